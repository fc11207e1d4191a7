"""Load a prior and its VQ-VAE, sample code grids, decode them to images (pure PyTorch, no Ray)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from emojiray import storage
from emojiray.config import config_from_dict, get_value, range_of, range_text, set_value, within
from emojiray.errors import EmojirayError
from emojiray.images import from_model_output, grid, to_png_bytes
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import build_prior, sample_codes
from emojiray.models import checkpoint as ckpt
from emojiray.registry import PRIORS

# Sampling parameters a run may override; each sets the config key ``prior.<name>`` (maskgit_steps and
# choice_temperature by their aliases: prior.maskgit.steps, prior.maskgit.choice_temperature).
PARAMS = ("temperature", "top_k", "top_p", "guidance", "maskgit_steps", "choice_temperature")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate sampling parameters; one-line errors for values no sampler accepts."""
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise EmojirayError(f"unknown sampling parameter(s) {', '.join(sorted(unknown))}: use {', '.join(PARAMS)}")
    for key, value in params.items():  # the ranges of the prior config fields they set (finite numbers)
        if not within(value, range_of(f"prior.{key}")):
            raise EmojirayError(f"{key} must be {range_text(range_of(f'prior.{key}'))}, got {value}")
    return dict(params)


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
            self.class_counts = list(meta.get("class_counts") or [])
            self.prior = build_prior(self.cfg.prior, self.layout, self.n_classes)
            ckpt.load_weights(d, self.prior, meta)
        if not vqvae_uri and not meta.get("vqvae"):
            raise EmojirayError(f"{prior_uri}/{ckpt.META} names no VQ-VAE: pass the one it was trained with (--vqvae)")
        self.prior_uri, self.vqvae_uri = prior_uri, vqvae_uri or ckpt.linked_uri(prior_uri, meta["vqvae"])
        self.prior.to(self.device).eval()
        self.vqvae, vcfg, vmeta = ckpt.load_vqvae(self.vqvae_uri, self.device)
        self.image_size = int(vcfg.data.size)
        sizes = {lv: q.K for lv, q in self.vqvae.quantizers.items()}
        grids = self.vqvae.grid_sizes(self.image_size)
        if tuple(self.vqvae.levels) != self.layout.levels or any(
                sizes[lv] != k or tuple(grids[lv]) != tuple(g)
                for lv, k, g in zip(self.layout.levels, self.layout.sizes, self.layout.grids)):
            raise EmojirayError("the prior and the VQ-VAE do not match (levels, codebook sizes or code grids differ)")
        trained_on, given = meta.get("vqvae_sha256"), ckpt.weights_hash(vmeta)
        if trained_on and given and trained_on != given:
            raise EmojirayError(f"the prior learned the codes of another VQ-VAE (weights {trained_on[:12]}), "
                                f"not of {self.vqvae_uri} ({given[:12]}): pass the VQ-VAE it was trained with")

    @property
    def kind(self) -> str:
        return self.cfg.prior.kind

    @property
    def fills_masks(self) -> bool:
        """Whether the prior completes partly known code grids (inpainting, restyling, interpolation)."""
        return PRIORS[self.kind].fills_masks

    @property
    def condition_name(self) -> str:
        """The label the prior is conditioned on (emotion, category, vendor) or "none"."""
        return self.cfg.prior.condition

    @property
    def condition_values(self) -> list[str]:
        return list(self.vocab.get(self.condition_name, [])) if self.condition_name != "none" else []

    def condition_id(self, value: str) -> int:
        """The class id of one condition value (emotion names are normalised, e.g. 'joy' -> happy)."""
        name = self.condition_name
        if name == "none":
            raise EmojirayError("this prior was trained without a condition")
        vocab = self.condition_values
        if name == "emotion":
            from emojiray.data.labels import normalize_emotion

            value = normalize_emotion(value)
        if value not in vocab:
            raise EmojirayError(f"unknown {name} {value!r}: choose from {', '.join(vocab)}")
        return vocab.index(value)

    def condition_ids(self, value: str | None, n: int) -> torch.Tensor | None:
        """Class ids for ``--condition name=value`` (e.g. emotion=happy), or None."""
        if value is None:
            return None
        return torch.full((n,), self.condition_id(value), dtype=torch.long, device=self.device)

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The prior's sampling parameters with ``overrides`` applied (None = keep)."""
        p = {k: get_value(self.cfg, f"prior.{k}") for k in PARAMS}
        p.update({k: v for k, v in overrides.items() if v is not None})
        if self.condition_name == "none" and overrides.get("guidance") not in (None, 1, 1.0):
            raise EmojirayError(f"guidance {overrides['guidance']} needs a conditional prior: this one was trained "
                                f"without a condition")
        return check_params(p)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def generate(self, cond: torch.Tensor | None, n: int, generator: torch.Generator, params: dict[str, Any],
                 batch_size: int = 256) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``n`` samples in batches: (N, H, W, 3) uint8 images and {level: (N, h, w) int16} codes.

        ``cond`` is (n,) class ids (the null class ``n_classes`` = unconditional) or None.
        All randomness comes from ``generator``, so a seed fixes the result on a given device.
        """
        cfg = config_from_dict({"prior": self.cfg.to_dict()["prior"]})
        for k, v in check_params(params).items():
            set_value(cfg, f"prior.{k}", v)
        pcfg = cfg.prior
        images, codes = [], {lv: [] for lv in self.layout.levels}
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            c = None if cond is None else cond[start:start + m].to(self.device)
            with self._autocast():
                grid_codes = sample_codes(self.prior, pcfg.kind, self.layout, m, c, pcfg, generator)
                decoded = self.vqvae.decode_codes(grid_codes)
            images.append(from_model_output(decoded.float()))
            for lv in self.layout.levels:
                codes[lv].append(grid_codes[lv].to(torch.int16).cpu().numpy())
        return np.concatenate(images), {lv: np.concatenate(v) for lv, v in codes.items()}

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    @torch.no_grad()
    def sample(self, n: int, cond: torch.Tensor | None = None, seed: int = 0,
               **overrides: Any) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """``n`` samples from one seed: (N, H, W, 3) uint8 images and {level: (N, h, w)} long codes."""
        images, codes = self.generate(cond, n, self.generator(seed), self.params(**overrides), batch_size=max(n, 1))
        return images, {lv: torch.from_numpy(c.astype(np.int64)) for lv, c in codes.items()}


def write_sample_sheet(prior_uri: str, vqvae_uri: str | None, out_png: str, n: int = 32, seed: int = 0) -> str:
    sampler = Sampler(prior_uri, vqvae_uri)
    images, _ = sampler.sample(n, seed=seed)
    return storage.write_bytes(out_png, to_png_bytes(grid(images, ncols=min(8, n))))
