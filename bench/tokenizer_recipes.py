"""Benchmark: which 32 px tokenizer recipe gives the best reconstructions per CPU-minute.

    python bench/tokenizer_recipes.py --seconds 240 --recipe vq-smoke --recipe fsq-8x8 ...

Each recipe is a list of ``--set`` overrides on a base preset (``--preset``, default ``smoke``).
Every recipe trains with the harness's own bare loop (``VQVAEFamily.train_step`` on the train
split in memory, one process, no Ray: the Ray path's overhead is ``bench/vqvae_speed.py``'s
business) for the same training time, or the same number of steps with ``--steps``, and is then
measured by eval-vqvae on the test split: PSNR, SSIM, codes used per level and, unless
``--fid-images -1``, rFID. Rows are appended to ``--out`` (JSON lines) so that runs made on
different days keep one table; ``--table`` writes that table as Markdown. A measurement, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import recipe_rows  # noqa: E402

from emojiray import storage  # noqa: E402
from emojiray.config import load_config  # noqa: E402
from emojiray.data.shards import read_arrays  # noqa: E402
from emojiray.eval.vqvae import eval_vqvae  # noqa: E402
from emojiray.models import checkpoint as ckpt  # noqa: E402
from emojiray.train import harness  # noqa: E402
from emojiray.train.vqvae_loop import VQVAEFamily  # noqa: E402

# name -> overrides on the base preset. The smoke model's layout: 32 px -> 8x8 bottom, 4x4 top.
RECIPES: dict[str, list[str]] = {
    "vq-smoke": [],
    "vq-smoke-rot": ["model.rotation_trick=true"],
    "fsq-8x8-1000": ["model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]"],
    "fsq-8x8-4375": ["model.quantizer=fsq", "model.fsq_levels=[[7,5,5,5,5],[8,5,5,5]]"],
    "fsq-8x8-64k": ["model.quantizer=fsq", "model.fsq_levels=[[8,8,8,5,5,5],[8,5,5,5]]"],
    "fsq-16x16-1000": ["model.quantizer=fsq", "model.downsample=[2,2]", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]"],
    "fsq-16x16-240": ["model.quantizer=fsq", "model.downsample=[2,4]", "model.fsq_levels=[[8,6,5],[8,5,5,5]]"],
    "fsq-flat-8x8-1000": ["model.arch=vqvae", "model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5]]"],
    "fsq-flat-8x8-4375": ["model.arch=vqvae", "model.quantizer=fsq", "model.fsq_levels=[[7,5,5,5,5]]"],
    "fsq-flat-16x16-64": ["model.arch=vqvae", "model.quantizer=fsq", "model.downsample=[2,2]",
                          "model.fsq_levels=[[4,4,4]]"],
    "fsq-flat-16x16-240": ["model.arch=vqvae", "model.quantizer=fsq", "model.downsample=[2,2]",
                           "model.fsq_levels=[[8,6,5]]"],
    "fsq-flat-16x16-1000": ["model.arch=vqvae", "model.quantizer=fsq", "model.downsample=[2,2]",
                            "model.fsq_levels=[[8,5,5,5]]"],
    "vq-flat-16x16-256": ["model.arch=vqvae", "model.downsample=[2,2]", "model.codebook_size=[256,64]"],
    "vq-flat-8x8-256": ["model.arch=vqvae", "model.codebook_size=[256,64]"],
    "vq-flat-8x8-1024": ["model.arch=vqvae", "model.codebook_size=[1024,64]"],
    "vq-16x16-512": ["model.downsample=[2,2]", "model.codebook_size=[512,512]"],
    "fsq-8x8-1000-c128": ["model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]", "model.channels=128"],
    "fsq-8x8-1000-lr2e-3": ["model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]", "train.lr=2e-3"],
    "fsq-8x8-1000-b32": ["model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]", "train.batch_size=32"],
    "fsq-8x8-1000-b128": ["model.quantizer=fsq", "model.fsq_levels=[[8,5,5,5],[8,5,5,5]]", "train.batch_size=128"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--recipe", action="append", default=[], help=f"one of {', '.join(RECIPES)} (repeatable)")
    ap.add_argument("--name", help="with --set: the name of a recipe given by its overrides")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", default="results/bench/data-32")
    ap.add_argument("--seconds", type=float, default=240, help="training time of each recipe")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of --seconds")
    ap.add_argument("--fid-images", type=int, default=0, help="test images for rFID (0 = all, -1 = no rFID)")
    ap.add_argument("--keep", help="export the last recipe's model to this directory")
    ap.add_argument("--init", help="start from this tokenizer's weights (a fine-tuning recipe; same model config)")
    ap.add_argument("--out", default="results/cpu/tokenizer_recipes.jsonl")
    ap.add_argument("--table", default="results/cpu/tokenizer_recipes.md")
    args = ap.parse_args()
    for name, overrides in recipe_rows.chosen(ap, args, RECIPES).items():
        row = measure(name, args.preset, overrides, args)
        recipe_rows.append(args.out, row)
        print(f"{name}: {row['steps']} steps in {row['train_seconds']:.0f} s ({row['images_per_s']:.0f} images/s): "
              f"test PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, rFID {row['rfid']}, "
              f"codes used {row['codes_used_share']}", flush=True)
    write_table(args.out, args.table)


def measure(name: str, preset: str, overrides: list[str], args) -> dict:
    cfg = load_config(preset, [*overrides, "train.epochs=100000",
                               f"train.max_seconds={0 if args.steps else args.seconds}"])
    train, _ = read_arrays(args.data, ("train",), ())
    torch.manual_seed(cfg.train.seed)
    family = VQVAEFamily(cfg, {"image_size": cfg.data.size, "examples": len(train)})
    if args.init:
        ckpt.load_weights(args.init, family.model)
    if args.steps:  # the cosine decays over exactly these steps
        family.schedule.epochs = -(-args.steps // family.steps_per_epoch)
    family.schedule.report_every_s = 0.0
    batches = harness.in_memory_batches({"image": torch.from_numpy(train)}, cfg.train.batch_size, cfg.train.seed)
    if args.steps:
        batches = _first_steps(batches, args.steps)
    t0 = time.perf_counter()
    summary = harness.run(family, batches, None, harness.no_report)
    wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        ckpt.save(d, family.model, "vqvae", cfg.to_dict(), step=summary["step"], epoch=summary["epoch"])
        ev = eval_vqvae(d, args.data, storage.join(d, "eval"), split="test", fid=args.fid_images >= 0,
                        fid_images=max(args.fid_images, 0), device="cpu", log=lambda *_: None)
        if args.keep:
            ckpt.export(d, args.keep)
    params = sum(p.numel() for p in family.model.parameters())
    return {"recipe": name, "overrides": overrides, "preset": preset, "params": params, "init": args.init,
            "steps": summary["step"], "train_seconds": round(summary["train_seconds"], 1), "wall_seconds": round(wall, 1),
            "images_per_s": round(summary["step"] * cfg.train.batch_size / summary["train_seconds"], 1),
            "psnr": round(ev["psnr"], 3), "ssim": round(ev["ssim"], 4),
            "rfid": None if ev.get("rfid") is None else round(ev["rfid"], 2), "rfid_images": ev.get("rfid_images"),
            "codes_used": ev["codes_used"],
            "codebook_size": {lv: v["codebook_size"] for lv, v in ev["levels"].items()},
            "codes_used_share": {lv: round(v["codes_used"] / v["codebook_size"], 3) for lv, v in ev["levels"].items()},
            "bits_per_image": round(ev.get("bits_per_image") or 0), "test_images": ev["images"],
            **recipe_rows.provenance()}


def _first_steps(epoch_fn, steps: int):
    """The epoch function cut so that the run ends after ``steps`` steps."""
    state = {"left": steps}

    def epoch():
        for batch in epoch_fn():
            if state["left"] <= 0:
                return
            state["left"] -= 1
            yield batch

    return epoch


def write_table(jsonl: str, md: str) -> None:
    intro = ["# Tokenizer recipes at 32 px on 2 CPU cores (bare loop, test split)", "",
             "Written by `bench/tokenizer_recipes.py` (every row: its command, date and revision are in "
             f"`{Path(jsonl).name}`). Budget = training seconds or steps of each row.", ""]
    columns = ["recipe", "overrides", "params", "steps", "train s", "images/s", "test PSNR dB", "SSIM", "rFID",
               "codes used (share per level)", "bits/image", "date", "rev"]
    cells = []
    for r in recipe_rows.read(jsonl):
        used = ", ".join(f"{lv} {r['codes_used'][lv]}/{r['codebook_size'][lv]}" for lv in r["codebook_size"])
        start = f" from `{r['init']}`" if r.get("init") else ""
        cells.append([r["recipe"], f"`{' '.join(r['overrides']) or '-'}`{start}", f"{r['params'] / 1e6:.2f} M",
                      str(r["steps"]),
                      f"{r['train_seconds']:.0f}", f"{r['images_per_s']:.0f}", f"{r['psnr']:.2f}", f"{r['ssim']:.3f}",
                      "-" if r["rfid"] is None else str(r["rfid"]), used, str(r["bits_per_image"] or "-"), r["date"],
                      r["git_revision"]])
    recipe_rows.write_markdown(md, intro, columns, cells)


if __name__ == "__main__":
    main()
