"""The models shipped in results/models/ load through the checkpoint loader and draw emoji."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emojiray.generate.sampler import Sampler
from emojiray.models import checkpoint as ckpt

SHIPPED = Path(__file__).resolve().parents[1] / "results" / "models"


def test_shipped_models_are_small_and_complete():
    models = sorted(p.parent for p in SHIPPED.glob("*/*/meta.json"))
    assert models, f"no models under {SHIPPED}"
    total = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert total <= 20 * 2**20, f"results/models/ holds {total / 2**20:.1f} MiB (at most 20)"
    for m in models:
        meta = ckpt.read_meta(m)
        assert (m / ckpt.WEIGHTS).exists() and meta["kind"] in ("vqvae", "prior")


def test_shipped_prior_samples_four_images():
    for prior in sorted(SHIPPED.glob("*/prior")):
        meta = json.loads((prior / "meta.json").read_text())
        assert not Path(meta["vqvae"]).is_absolute(), "a shipped prior links its tokenizer by a relative path"
        sampler = Sampler(str(prior), device="cpu")
        cond = sampler.condition_ids(sampler.condition_values[0], 4) \
            if sampler.condition_values else None
        images, codes = sampler.sample(4, cond=cond, seed=0)
        assert images.shape == (4, sampler.image_size, sampler.image_size, 3) and images.dtype == np.uint8
        assert images.std() > 10  # drawn, not a flat field
        assert all(c.shape[0] == 4 for c in codes.values())
