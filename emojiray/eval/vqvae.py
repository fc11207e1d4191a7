"""`emojiray eval-vqvae`: a tokenizer's reconstructions on a held-out split, measured.

Metrics (written to ``<out>/eval_vqvae.json``):

- ``mse``, ``psnr`` (dB), ``ssim``: reconstructions against originals, images in [-1, 1];
- ``rfid``: FID between the originals and their reconstructions with the standard TF-Inception
  pool3 features (see :mod:`emojiray.metrics.inception` for the fixed 299 px bilinear resize);
- per level: ``codes_used`` (distinct codes over the split) out of ``codebook_size``,
  ``perplexity``, ``kl_uniform_nats`` = log K − H (the VAE's KL term for a VQ-VAE with a uniform
  prior: how far the code distribution is from using every code equally), ``entropy_bits``;
- ``bits_per_image``: fixed-rate code length Σ h·w·log2 K, and ``entropy_coded_bits_per_image``
  Σ h·w·H (what an ideal entropy coder of the measured code frequencies would need).

Also writes ``<out>/recon_grid.png``: originals (top row) above their reconstructions.
The split is ``test``, ``val``, ``train`` or ``heldout`` (val and test together).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import torch

from emojiray import storage
from emojiray.devices import resolve_device
from emojiray.data import shards
from emojiray.errors import EmojirayError
from emojiray.images import from_model_output, grid, to_model_input, to_png_bytes
from emojiray.metrics.codes import (bits_per_image, code_histogram, entropy_bits,
                                    entropy_coded_bits_per_image, kl_from_uniform, perplexity, usage)
from emojiray.metrics.fid import FeatureStats, frechet_distance
from emojiray.metrics.image import ReconstructionMeter
from emojiray.models.checkpoint import load_vqvae


@torch.no_grad()
def eval_vqvae(checkpoint: str, data_uri: str, out: str, split: str = "test", fid: bool = True,
               fid_images: int = 0, batch_size: int = 256, device: str | None = None,
               force: bool = False, log=print) -> dict[str, Any]:
    """Measure the tokenizer at ``checkpoint`` on one split of ``data_uri``; write results under ``out``
    (the measurement of another tokenizer or dataset there is replaced only with ``force``).

    ``fid_images`` > 0 computes rFID on the first that many images only (quicker on a CPU, and
    noisier: the JSON records how many were used).
    """
    dev = resolve_device(device)
    model, cfg, meta = load_vqvae(checkpoint, dev)
    manifest = shards.load_manifest(data_uri)
    size = manifest["image"]["height"]
    trained = meta["config"].get("data", {}).get("size", size)
    if size != trained:
        raise EmojirayError(f"the model was trained on {trained} px images but {data_uri} holds {size} px images")
    splits = ("val", "test") if split == "heldout" else (split,)
    if not sum(manifest["counts"]["split"].get(s, 0) for s in splits):
        raise EmojirayError(f"the {split} split of {data_uri} is empty")
    storage.claim_output(out, "eval_vqvae.json", {"checkpoint": checkpoint, "data": data_uri}, force)

    features = None
    if fid:
        from emojiray.metrics.inception import InceptionFeatures

        features = InceptionFeatures(dev)
    rec, hists, stats, sheet = _measure(model, data_uri, manifest, splits, dev, batch_size, features, fid_images)
    grids = model.grid_sizes(size)
    K = {level: q.K for level, q in model.quantizers.items()}
    levels = {level: {"codebook_size": K[level], "grid": list(grids[level]), "codes_used": usage(h),
                      "perplexity": perplexity(h), "kl_uniform_nats": kl_from_uniform(h, K[level]),
                      "entropy_bits": entropy_bits(h)} for level, h in hists.items()}
    result = {
        "checkpoint": checkpoint,
        "data": data_uri,
        "split": split,
        "images": rec["count"],
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "date": dt.date.today().isoformat(),
        "model": {"arch": cfg.model.arch, "step": meta.get("step"), "epoch": meta.get("epoch")},
        "mse": rec["mse"],
        "psnr": rec["psnr"],
        "ssim": rec["ssim"],
        "rfid": frechet_distance(FeatureStats.merge(stats["real"]), FeatureStats.merge(stats["fake"])) if fid else None,
        "rfid_images": stats["count"] if fid else 0,
        "levels": levels,
        "codes_used": {level: v["codes_used"] for level, v in levels.items()},
        "bits_per_image": bits_per_image(grids, K),
        "entropy_coded_bits_per_image": entropy_coded_bits_per_image(hists, grids),
    }
    storage.write_json(storage.join(out, "eval_vqvae.json"), result)
    storage.write_bytes(storage.join(out, "recon_grid.png"), to_png_bytes(sheet))
    log(f"eval-vqvae: {result['images']} {split} images: PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}, "
        + (f"rFID {result['rfid']:.2f}, " if fid else "")
        + "codes used " + ", ".join(f"{lv} {v['codes_used']}/{v['codebook_size']}" for lv, v in levels.items())
        + f" -> {out}")
    return result


@torch.no_grad()
def _measure(model, data_uri: str, manifest: dict[str, Any], splits: tuple[str, ...], dev, batch_size: int,
             features, fid_images: int):
    """One pass over the splits: (reconstruction metrics, code histograms per level, Inception
    feature statistics {"real", "fake", "count"} of the first ``fid_images`` (0 = all), the sheet of
    the first 16 images over their reconstructions)."""
    meter = ReconstructionMeter()
    hists: dict[str, np.ndarray] = {}
    stats: dict[str, Any] = {"real": [], "fake": [], "count": 0}
    sheet = None
    tables = (t for s in splits for t in shards.iter_tables(data_uri, manifest, s, columns=["image"]))
    for table in tables:
        pixels = shards.pixels_from_table(table, manifest)  # (N, H, W, 3) uint8
        for start in range(0, len(pixels), batch_size):
            real = torch.from_numpy(pixels[start:start + batch_size].copy())
            x = to_model_input(real, dev, channels_last=False)
            out = model(x)
            recon = out.recon.float().clamp(-1, 1)
            meter.update(recon, x)
            for level, codes in out.codes.items():
                hists[level] = hists.get(level, 0) + code_histogram(codes, model.quantizers[level].K)
            recon_u8 = from_model_output(recon)
            take = len(real) if not fid_images else max(0, min(len(real), fid_images - stats["count"]))
            if features is not None and take > 0:
                stats["real"].append(FeatureStats.from_features(features(real.numpy()[:take])))
                stats["fake"].append(FeatureStats.from_features(features(recon_u8[:take])))
                stats["count"] += take
            if sheet is None:
                n = min(16, len(real))
                sheet = grid(np.concatenate([real.numpy()[:n], recon_u8[:n]]), ncols=n)
    return meter.compute(), hists, stats, sheet
