"""Load a prior and its VQ-VAE, sample code grids, decode them to images (pure PyTorch, no Ray)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from emojiray import storage
from emojiray.config import config_from_dict
from emojiray.errors import EmojirayError
from emojiray.images import from_model_output, grid, to_png_bytes
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import build_prior, sample_codes
from emojiray.train import checkpoint as ckpt


class Sampler:
    """A prior and a decoder on one device: ``sample(n, cond)`` -> (images uint8 NHWC, codes)."""

    def __init__(self, prior_uri: str, vqvae_uri: str | None = None, device: str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with ckpt.LocalCopy(prior_uri) as d:
            meta = ckpt.read_meta(d, kind="prior")
            self.cfg = config_from_dict(meta["config"])
            lay = meta["layout"]
            self.layout = CodeLayout.from_dicts(lay["levels"], lay["grids"], lay["sizes"])
            self.n_classes = int(meta["n_classes"])
            self.vocab = meta.get("vocab", {})
            self.prior = build_prior(self.cfg.prior, self.layout, self.n_classes)
            ckpt.load_weights(d, self.prior)
        self.prior.to(self.device).eval()
        self.vqvae, vcfg, _ = ckpt.load_vqvae(vqvae_uri or meta["vqvae"], self.device)
        sizes = {lv: q.K for lv, q in self.vqvae.quantizers.items()}
        if tuple(self.vqvae.levels) != self.layout.levels or any(
                sizes[lv] != k for lv, k in zip(self.layout.levels, self.layout.sizes)):
            raise EmojirayError("the prior and the VQ-VAE do not match (levels or codebook sizes differ)")

    def condition_ids(self, value: str | None, n: int) -> torch.Tensor | None:
        """Class ids for ``--condition name=value`` (e.g. emotion=happy), or None."""
        if value is None:
            return None
        name = self.cfg.prior.condition
        if name == "none":
            raise EmojirayError("this prior was trained without a condition")
        vocab = self.vocab.get(name, [])
        if name == "emotion":
            from emojiray.data.labels import normalize_emotion

            value = normalize_emotion(value)
        if value not in vocab:
            raise EmojirayError(f"unknown {name} {value!r}: choose from {', '.join(vocab)}")
        return torch.full((n,), vocab.index(value), dtype=torch.long, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None, seed: int = 0,
               **overrides: Any) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        pcfg = self.cfg.prior
        for k, v in overrides.items():
            setattr(pcfg, k, v)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        codes = sample_codes(self.prior, pcfg.kind, self.layout, n, cond, pcfg, gen)
        images = from_model_output(self.vqvae.decode_codes(codes).float().clamp(-1, 1))
        return images, codes


def write_sample_sheet(prior_uri: str, vqvae_uri: str | None, out_png: str, n: int = 32, seed: int = 0) -> str:
    sampler = Sampler(prior_uri, vqvae_uri)
    images, _ = sampler.sample(n, seed=seed)
    return storage.write_bytes(out_png, to_png_bytes(grid(images, ncols=min(8, n))))
