"""Test helpers: tiny untrained model checkpoints for tests that need a prior and its VQ-VAE (no
training), config edits, and waiting for what a Ray cluster does in the background."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from emojiray.config import Config, DataConfig, ModelConfig, set_value
from emojiray.models import build_vqvae
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import build_prior
from emojiray.models import checkpoint as ckpt

TINY_VQ = ModelConfig(channels=16, res_blocks=1, res_channels=8, codebook_size=[32, 16], code_dim=[8, 8])
EMOTIONS = ["happy", "sad", "none"]
VOCAB = {"emotion": EMOTIONS, "category": ["a"], "vendor": ["google", "twitter"]}
COUNTS = {"emotion": [6, 3, 1], "category": [4], "vendor": [5, 5]}


def set_keys(cfg: Config, section: str, **values) -> Config:
    """``cfg`` with ``section.key=value`` set for each keyword, as ``--set`` would (``train.lr`` included)."""
    for key, value in values.items():
        set_value(cfg, f"{section}.{key}", value)
    return cfg


def tiny_pair(root: Path, kind: str = "transformer", condition: str = "emotion", size: int = 32,
              codebook_size=(32, 16), seed: int = 0) -> tuple[str, str]:
    """(prior URI, VQ-VAE URI) of a matching pair of tiny random models at ``size`` px."""
    torch.manual_seed(seed)
    vcfg = Config(data=DataConfig(size=size), model=ModelConfig(**{**TINY_VQ.__dict__,
                                                                   "codebook_size": list(codebook_size)}))
    vq = build_vqvae(vcfg.model, size)
    vq.train()(torch.randn(8, 3, size, size))  # k-means init: decoded codes differ from each other
    vq_dir = Path(root) / f"vq-{size}-{'-'.join(map(str, codebook_size))}"
    ckpt.save(vq_dir, vq, "vqvae", vcfg.to_dict(), step=0, epoch=0)

    grids = vq.grid_sizes(size)
    sizes = {lv: q.K for lv, q in vq.quantizers.items()}
    layout = CodeLayout.from_dicts(vq.levels, grids, sizes)
    pcfg = set_keys(Config(), "prior", kind=kind, condition=condition, dim=32, layers=1, heads=2, channels=16,
                    blocks=1, res_per_block=1, dropout=0.0, maskgit_steps=4)
    n_classes = len(VOCAB[condition]) if condition != "none" else 0
    prior = build_prior(pcfg.prior, layout, n_classes)
    prior_dir = Path(root) / f"prior-{kind}-{condition}-{vq_dir.name}"
    ckpt.save(prior_dir, prior, "prior", pcfg.to_dict(), step=0, epoch=0,
              layout={"levels": list(layout.levels), "grids": {lv: list(g) for lv, g in grids.items()},
                      "sizes": sizes},
              n_classes=n_classes, vocab=VOCAB,
              vqvae=str(vq_dir), vqvae_sha256=ckpt.weights_hash(ckpt.read_meta(vq_dir)),
              class_counts=COUNTS[condition] if n_classes else [])
    return str(prior_dir), str(vq_dir)


def wait_until(condition: Callable[[], object], timeout: float = 30.0, every: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns whether it held (the
    caller asserts, so a failure names what did not happen)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True
