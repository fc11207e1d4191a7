"""Benchmark: VQ-VAE-2 training speed and quality at fixed training time, against the reference.

    python bench/vqvae_speed.py --preset full --seconds 240 --out results/bench/vqvae_speed.json

In one run, on the same device, model and data:

1. the bare loop: the harness's own ``VQVAEFamily.train_step`` on the train split held in
   memory, no Ray, for ``--bare-seconds`` of training (0 = skip): what the model itself costs.
   Half of it runs before the Ray path and half after (Ray shut down), so that a change in a
   shared machine's load during the benchmark shows (``bare_runs``) and weighs on both sides;
2. the Ray path: ``train_vqvae`` (Ray Data -> TorchTrainer) for ``--seconds`` of training time,
   validating every ``--report-every`` seconds; its wall time (Ray start-up, validation,
   checkpoints and export included) against that training budget;
3. the held-out split (val + test, or ``--split``) measured with eval-vqvae: PSNR, SSIM, rFID (standard
   TF-Inception features) and codes used per level.

images/s is images trained over training seconds for both paths (the first steps included in
both). Records the ratios Ray/bare and wall/budget, the validation curve, and the ratios against
the reference implementation's figures from issue 3 (one H100, 64 px, its own recipe). A
measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import subprocess
import sys
import time

import torch

from emojiray import storage
from emojiray.config import load_config
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.data.shards import read_arrays
from emojiray.eval.vqvae import eval_vqvae
from emojiray.report import baselines as B
from emojiray.train import harness
from emojiray.train.vqvae_loop import VQVAEFamily, train_vqvae

# The seed's reference VQ-VAE-2 on one H100 at 64 px (issue 3): 128 channels, 2 res blocks,
# K = 512, code dim 64, batch 128, Adam 3e-4, fp32, 240 s of training with its file loader.
REFERENCE = {"device": f"{B.REFERENCE_DEVICE} (reference run, issue 3)",
             **{k: v for k, v in B.REFERENCE_VQVAE.items() if k != "source"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", help="dataset URI (default: results/bench/data-<size>, prepared if missing)")
    ap.add_argument("--seconds", type=float, default=240, help="training time budget")
    ap.add_argument("--report-every", type=float, default=60, help="validate every this many seconds")
    ap.add_argument("--bare-seconds", type=float, default=60, help="training time of the bare loop (0 = skip)")
    ap.add_argument("--fid-images", type=int, default=0, help="held-out images for rFID (0 = all)")
    ap.add_argument("--split", default="heldout", help="the split measured: heldout (val + test), test or val")
    ap.add_argument("--work", default="results/bench/vqvae_run", help="run directory (checkpoints, logs)")
    ap.add_argument("--out", default="results/bench/vqvae_speed.json")
    args = ap.parse_args()

    cfg = load_config(args.preset, [*args.overrides, f"train.max_seconds={args.seconds}",
                                    f"train.report_every_s={args.report_every}", "train.epochs=100000"])
    data = args.data or f"results/bench/data-{cfg.data.size}"
    if not storage.exists(storage.join(data, shards.MANIFEST)):
        prepare(cfg.data, data)
    bare_runs = [bare_loop(cfg, data, args.bare_seconds / 2)] if args.bare_seconds > 0 else []
    t0 = time.perf_counter()
    run = train_vqvae(cfg, data, args.work, force=True)
    wall = time.perf_counter() - t0
    if bare_runs:
        import ray

        ray.shutdown()  # the second half without Ray's processes, as the first
        bare_runs.append(bare_loop(cfg, data, args.bare_seconds / 2))
    bare = {"images_per_s": sum(b["steps"] for b in bare_runs) * cfg.train.batch_size
                            / sum(b["train_seconds"] for b in bare_runs),
            "train_seconds": sum(b["train_seconds"] for b in bare_runs)} if bare_runs else None
    heldout = eval_vqvae(run["model"], data, storage.join(args.work, "eval"), split=args.split,
                         fid_images=args.fid_images)

    history = run["history"]
    train_seconds = run["train_seconds"]
    images_per_s = history[-1]["step"] * cfg.train.batch_size * run["workers"] / train_seconds
    epochs = max(h["epoch"] for h in history)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    record = {
        "benchmark": "vqvae_speed",
        "device": device,
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "preset": args.preset,
        "git_revision": _revision(),
        "threads": torch.get_num_threads(),
        "workers": run["workers"],
        "train_seconds": train_seconds,
        "wall_seconds": wall,
        "data_wait_seconds": run["data_wait_seconds"],  # of the training seconds, waiting for batches
        "report_seconds": run["report_seconds"],  # validation + checkpoints (outside the training seconds)
        "wall_over_budget": wall / args.seconds,
        "epochs": epochs,
        "seconds_per_epoch": train_seconds / epochs,
        "images_per_s": images_per_s,
        "ray_images_per_s": images_per_s,
        "bare_images_per_s": bare and bare["images_per_s"],
        "bare_train_seconds": bare and bare["train_seconds"],
        "bare_runs": bare_runs,  # before and after the Ray path
        "ray_over_bare": bare and images_per_s / bare["images_per_s"],
        "curve": [{k: h[k] for k in h if k in ("train_seconds", "epoch", "step", "train_loss", "val_psnr",
                                               "val_ssim") or k.startswith("codes_used_")} for h in history],
        "split": args.split,
        "heldout_images": heldout["images"],
        "psnr": heldout["psnr"],
        "ssim": heldout["ssim"],
        "rfid": heldout["rfid"],
        "rfid_images": heldout["rfid_images"],
        "codes_used": heldout["codes_used"],
        "codebook_size": {lv: v["codebook_size"] for lv, v in heldout["levels"].items()},
        "reference": REFERENCE,
        "ratios": {
            "images_per_s_vs_reference_file_loader": images_per_s / REFERENCE["images_per_s_file_loader"],
            "images_per_s_vs_reference_data_on_gpu": images_per_s / REFERENCE["images_per_s_data_on_gpu"],
        },
        "comparable_to_reference": torch.cuda.is_available() and "H100" in device,
    }
    storage.write_json(args.out, record)
    print(f"{device}: {images_per_s:,.0f} images/s ({record['ratios']['images_per_s_vs_reference_file_loader']:.2f}x "
          f"the reference's file loader), {record['seconds_per_epoch']:.1f} s/epoch")
    if bare:
        print(f"bare loop {bare['images_per_s']:,.0f} images/s (before the Ray path "
              f"{bare_runs[0]['images_per_s']:,.0f}, after {bare_runs[1]['images_per_s']:,.0f}); Ray path "
              f"{images_per_s:,.0f} ({record['ray_over_bare']:.3f}x the bare loop)")
    print(f"wall {wall:.1f} s for {args.seconds:g} s of training ({record['wall_over_budget']:.3f}x)")
    for h in record["curve"]:
        print(f"  {h['train_seconds']:7.1f} s  epoch {h['epoch']:.0f}  val PSNR {h.get('val_psnr', float('nan')):.2f} dB"
              f"  SSIM {h.get('val_ssim', float('nan')):.4f}")
    print(f"held-out ({heldout['images']} images): PSNR {heldout['psnr']:.2f} dB, SSIM {heldout['ssim']:.4f}, "
          f"rFID {heldout['rfid']:.2f}, codes used {heldout['codes_used']} -> {args.out}")


def bare_loop(cfg, data: str, seconds: float) -> dict:
    """The harness's own train step on the train split in memory, one process, no Ray."""
    train, _ = read_arrays(data, ("train",), ())
    torch.manual_seed(cfg.train.seed)
    family = VQVAEFamily(cfg, {"image_size": cfg.data.size, "examples": len(train)})
    family.schedule.max_seconds, family.schedule.report_every_s = seconds, 0.0
    summary = harness.run(family, harness.in_memory_batches({"image": torch.from_numpy(train)},
                                                            cfg.train.batch_size, cfg.train.seed), None,
                          harness.no_report)
    return {"images_per_s": summary["step"] * cfg.train.batch_size / summary["train_seconds"],
            "train_seconds": summary["train_seconds"], "steps": summary["step"]}


def _revision() -> str:
    """The checkout's commit, with "+dirty" when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
