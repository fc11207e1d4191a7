"""Copy a trained tokenizer and prior into one folder that travels (results/models/<name>/).

    python bench/ship_models.py --vqvae /tmp/ship/vqvae --prior /tmp/ship/prior --out results/models/cpu

Writes ``<out>/vqvae`` and ``<out>/prior`` (each ``meta.json`` + ``model.safetensors``, nothing
else), with the prior's ``vqvae`` link rewritten to ``../vqvae`` so that the pair loads from any
working directory and any clone. The copy is then loaded through the checkpoint loader and the
sampler (which refuses a pair that does not match), its size printed, and two sheets drawn with
its default sampling parameters, seed 0, magnified 3x (nearest): ``samples.png`` (64 samples, the
conditions drawn from the training mix) and, for a conditional prior, ``samples_by_condition.png``
(8 samples per condition value, one column per value, in vocabulary order).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from emojiray import storage
from emojiray.config import config_from_dict, get_value, set_value
from emojiray.images import grid, to_png_bytes
from emojiray.generate.sample_run import condition_ids
from emojiray.generate.sampler import PARAMS, Sampler, check_params
from emojiray.models import checkpoint as ckpt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vqvae", required=True, help="an exported tokenizer directory")
    ap.add_argument("--prior", required=True, help="an exported prior directory trained on that tokenizer's codes")
    ap.add_argument("--out", required=True, help="the folder to write (e.g. results/models/cpu)")
    ap.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                    help=f"a default sampling parameter of the shipped prior ({', '.join(PARAMS)}), "
                         "e.g. the one chosen on held-out scores by bench/prior_recipes.py")
    args = ap.parse_args()
    sampling = dict(kv.split("=", 1) for kv in args.sampling)
    if set(sampling) - set(PARAMS):
        ap.error(f"unknown sampling parameter(s) {', '.join(sorted(set(sampling) - set(PARAMS)))}")
    out = Path(args.out)
    for name, src, kind in (("vqvae", args.vqvae, "vqvae"), ("prior", args.prior, "prior")):
        meta = ckpt.read_meta(src, kind=kind)
        dst = out / name
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(src) / ckpt.WEIGHTS, dst / ckpt.WEIGHTS)
        if kind == "prior":
            meta["vqvae"] = "../vqvae"
            cfg = config_from_dict(meta["config"])
            for k, v in sampling.items():
                set_value(cfg, f"prior.{k}", v)
            check_params({k: get_value(cfg, f"prior.{k}") for k in sampling})
            meta["config"] = cfg.to_dict()
        storage.write_text(str(dst / "meta.json"), json.dumps(meta, indent=2) + "\n")
    sampler = Sampler(str(out / "prior"), device="cpu")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: a {sampler.kind} prior ({sampler.condition_name}) over {sampler.vqvae_uri}, sampling "
          f"{sampler.params()}, {size / 2**20:.2f} MiB in all", file=sys.stderr)
    values, counts = sampler.condition_values, sampler.class_counts
    cond = torch.from_numpy(condition_ids({"mode": "data"}, values, counts, 0, 64, seed=0)) if values else None
    write_sheet(out / "samples.png", sampler.sample(64, cond=cond, seed=0)[0], ncols=16)
    if values:
        cond = torch.from_numpy(condition_ids({"mode": "all"}, values, counts, 0, 8 * len(values), seed=0))
        images, _ = sampler.sample(8 * len(values), cond=cond, seed=0)
        write_sheet(out / "samples_by_condition.png", images, ncols=len(values))
        print(f"{out / 'samples_by_condition.png'}: columns {', '.join(values)}", file=sys.stderr)


def write_sheet(path: Path, images: np.ndarray, ncols: int, scale: int = 3) -> None:
    sheet = grid(images, ncols=ncols)
    storage.write_bytes(str(path), to_png_bytes(sheet.repeat(scale, 0).repeat(scale, 1)))


if __name__ == "__main__":
    main()
