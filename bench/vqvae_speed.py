"""Benchmark: VQ-VAE-2 training speed and quality at fixed training time, against the reference.

    python bench/vqvae_speed.py --preset full --seconds 240 --out results/bench/vqvae_speed.json

Trains the preset's tokenizer through Ray Data -> TorchTrainer for ``--seconds`` of training
time on the default data (prepared at the preset's size if missing), validating every
``--report-every`` seconds, then measures the held-out split (val + test) with eval-vqvae:
PSNR, SSIM, rFID (standard TF-Inception features) and codes used per level. Prints and
records images/s, seconds per epoch, the validation curve at each report and the final
held-out metrics, with ratios against the reference implementation's figures from issue 3
(one H100, 64 px, its own recipe). A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import sys

import torch

from emojiray import storage
from emojiray.config import load_config
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.eval.vqvae import eval_vqvae
from emojiray.report import baselines as B
from emojiray.train.vqvae_loop import train_vqvae

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
    ap.add_argument("--fid-images", type=int, default=0, help="held-out images for rFID (0 = all)")
    ap.add_argument("--work", default="results/bench/vqvae_run", help="run directory (checkpoints, logs)")
    ap.add_argument("--out", default="results/bench/vqvae_speed.json")
    args = ap.parse_args()

    cfg = load_config(args.preset, [*args.overrides, f"train.max_seconds={args.seconds}",
                                    f"train.report_every_s={args.report_every}", "train.epochs=100000"])
    data = args.data or f"results/bench/data-{cfg.data.size}"
    if not storage.exists(storage.join(data, shards.MANIFEST)):
        prepare(cfg.data, data)
    run = train_vqvae(cfg, data, args.work, force=True)
    heldout = eval_vqvae(run["model"], data, storage.join(args.work, "eval"), split="heldout",
                         fid_images=args.fid_images)

    history = run["history"]
    steady = [h["images_per_s"] for h in history[1:]] or [h["images_per_s"] for h in history]
    images_per_s = sum(steady) / len(steady)
    epochs = max(h["epoch"] for h in history)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    record = {
        "benchmark": "vqvae_speed",
        "device": device,
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "preset": args.preset,
        "workers": run["workers"],
        "train_seconds": history[-1]["train_seconds"],
        "epochs": epochs,
        "seconds_per_epoch": history[-1]["train_seconds"] / epochs,
        "images_per_s": images_per_s,
        "curve": [{k: h[k] for k in h if k in ("train_seconds", "epoch", "step", "train_loss", "val_psnr",
                                               "val_ssim") or k.startswith("codes_used_")} for h in history],
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
    for h in record["curve"]:
        print(f"  {h['train_seconds']:7.1f} s  epoch {h['epoch']:.0f}  val PSNR {h.get('val_psnr', float('nan')):.2f} dB"
              f"  SSIM {h.get('val_ssim', float('nan')):.4f}")
    print(f"held-out ({heldout['images']} images): PSNR {heldout['psnr']:.2f} dB, SSIM {heldout['ssim']:.4f}, "
          f"rFID {heldout['rfid']:.2f}, codes used {heldout['codes_used']} -> {args.out}")


if __name__ == "__main__":
    main()
