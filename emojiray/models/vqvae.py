"""VQ-VAE (one code grid) and VQ-VAE-2 (top and bottom codes) tokenizers.

Shapes for the default 64 px config (channels C=128, code dim D=64, downsample [4, 2]):

    x (B, 3, 64, 64)
    ├─ enc_b ──────────────► h_b (B, C, 16, 16)
    │   └─ enc_t ──────────► h_t (B, C, 8, 8) ─ pre_t ─► quant_t ─► q_t (B, D, 8, 8), codes_t (B, 8, 8)
    │                                                    q_t ─ dec_t ─► (B, D, 16, 16)
    └─ [h_b, dec_t(q_t)] ─ pre_b ─► quant_b ─► q_b (B, D, 16, 16), codes_b (B, 16, 16)
    [up_t(q_t), q_b] (B, 2D, 16, 16) ─ dec ─► x̂ (B, 3, 64, 64)

The bottom quantizer sees the encoder features together with the decoded top codes, and the
decoder uses both levels, as in Razavi et al. (2019). The flat VQ-VAE is enc ─ pre ─ quant ─ dec.
Levels are named "top" and "bottom"; ``levels`` lists them in generation order (top first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from emojiray.config import QUANTIZERS, RECON_LOSSES, ModelConfig
from emojiray.models.blocks import Decoder, Encoder, _halvings
from emojiray.models.quantize import FSQuantizer, VectorQuantizer



@dataclass
class VQVAEOutput:
    recon: torch.Tensor  # (B, 3, H, W)
    vq_loss: torch.Tensor  # scalar, summed over levels
    codes: dict[str, torch.Tensor]  # level -> (B, h, w) int64
    perplexity: dict[str, torch.Tensor] = field(default_factory=dict)
    restarted: dict[str, int] = field(default_factory=dict)


# The model settings that are VectorQuantizer's keyword arguments, under the same names.
VQ_SETTINGS = ("lookup_dim", "beta", "ema", "ema_decay", "kmeans_init", "dead_code_steps", "l2_normalize",
               "rotation_trick")


def _quantizer(cfg: ModelConfig, dim: int, level: int) -> VectorQuantizer | FSQuantizer:
    """The quantizer of one level: the per-level settings picked for it, the others passed as they are."""
    if cfg.quantizer == "fsq":
        return FSQuantizer(dim, levels=cfg.fsq_levels[level])
    return VectorQuantizer(dim, codebook_size=cfg.codebook_size[level], **{k: getattr(cfg, k) for k in VQ_SETTINGS})


def _upsampler(channels: int, factor: int) -> nn.Module:
    n = _halvings(factor)
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1))
        if i < n - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers) if layers else nn.Identity()


class VQVAE(nn.Module):
    """Flat VQ-VAE: one grid of codes ("bottom")."""

    levels = ("bottom",)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C, D, f = cfg.channels, cfg.code_dim[0], cfg.downsample[0]
        self.cfg = cfg
        self.enc = Encoder(3, C, cfg.res_blocks, cfg.res_channels, f)
        self.pre = nn.Conv2d(C, D, 1)
        self.quant = _quantizer(cfg, D, 0)
        self.dec = Decoder(D, 3, C, cfg.res_blocks, cfg.res_channels, f, cfg.up_blocks)

    @property
    def quantizers(self) -> dict[str, VectorQuantizer | FSQuantizer]:
        return {"bottom": self.quant}

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        out = self.quant(self.pre(self.enc(x)))
        return VQVAEOutput(self.dec(out.z_q), out.loss, {"bottom": out.codes},
                           {"bottom": out.perplexity}, {"bottom": out.restarted})

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"bottom": self.quant(self.pre(self.enc(x))).codes}

    def decode_codes(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.dec(self.quant.embed_codes(codes["bottom"]))

    def encode_latents(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The continuous pre-quantisation latents: {"bottom": z (B, D, h, w)}."""
        return {"bottom": self.pre(self.enc(x))}

    def quantize_latents(self, z: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Nearest codes of (possibly edited, e.g. interpolated) latents: {"bottom": (B, h, w)}."""
        return {"bottom": self.quant.nearest(z["bottom"])}

    def grid_sizes(self, image_size: int) -> dict[str, tuple[int, int]]:
        s = image_size // self.cfg.downsample[0]
        return {"bottom": (s, s)}


class VQVAE2(nn.Module):
    """Two-level VQ-VAE-2: top codes (coarse, global) and bottom codes (fine, local)."""

    levels = ("top", "bottom")

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C, rb, rc = cfg.channels, cfg.res_blocks, cfg.res_channels
        D_b, D_t = cfg.code_dim[0], cfg.code_dim[1]
        f_b, f_t = cfg.downsample[0], cfg.downsample[1]
        self.cfg = cfg
        self.enc_b = Encoder(3, C, rb, rc, f_b)
        self.enc_t = Encoder(C, C, rb, rc, f_t)
        self.pre_t = nn.Conv2d(C, D_t, 1)
        self.quant_t = _quantizer(cfg, D_t, 1)
        self.dec_t = Decoder(D_t, D_b, C, rb, rc, f_t)  # top codes' contribution to the bottom
        self.pre_b = nn.Conv2d(C + D_b, D_b, 1)
        self.quant_b = _quantizer(cfg, D_b, 0)
        self.up_t = _upsampler(D_t, f_t)
        self.dec = Decoder(D_t + D_b, 3, C, rb, rc, f_b, cfg.up_blocks)

    @property
    def quantizers(self) -> dict[str, VectorQuantizer | FSQuantizer]:
        return {"top": self.quant_t, "bottom": self.quant_b}

    def _quantize(self, x: torch.Tensor):
        h_b = self.enc_b(x)  # (B, C, H/f_b, W/f_b)
        out_t = self.quant_t(self.pre_t(self.enc_t(h_b)))  # (B, D_t, h_t, w_t)
        out_b = self.quant_b(self.pre_b(torch.cat([h_b, self.dec_t(out_t.z_q)], dim=1)))
        return out_t, out_b

    def _decode(self, q_t: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([self.up_t(q_t), q_b], dim=1))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        out_t, out_b = self._quantize(x)
        return VQVAEOutput(
            self._decode(out_t.z_q, out_b.z_q),
            out_t.loss + out_b.loss,
            {"top": out_t.codes, "bottom": out_b.codes},
            {"top": out_t.perplexity, "bottom": out_b.perplexity},
            {"top": out_t.restarted, "bottom": out_b.restarted},
        )

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out_t, out_b = self._quantize(x)
        return {"top": out_t.codes, "bottom": out_b.codes}

    def decode_codes(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._decode(self.quant_t.embed_codes(codes["top"]), self.quant_b.embed_codes(codes["bottom"]))

    def encode_latents(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The continuous pre-quantisation latents z_t (B, D_t, h_t, w_t) and z_b (B, D_b, h_b, w_b).

        z_b is computed with the image's own quantised top codes, as in ``encode``.
        """
        h_b = self.enc_b(x)
        z_t = self.pre_t(self.enc_t(h_b))
        q_t = self.quant_t.embed_codes(self.quant_t.nearest(z_t))
        z_b = self.pre_b(torch.cat([h_b, self.dec_t(q_t)], dim=1))
        return {"top": z_t, "bottom": z_b}

    def quantize_latents(self, z: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Nearest codes of (possibly edited, e.g. interpolated) latents, level by level."""
        return {"top": self.quant_t.nearest(z["top"]), "bottom": self.quant_b.nearest(z["bottom"])}

    def grid_sizes(self, image_size: int) -> dict[str, tuple[int, int]]:
        b = image_size // self.cfg.downsample[0]
        t = b // self.cfg.downsample[1]
        return {"top": (t, t), "bottom": (b, b)}


ARCHS = {"vqvae": VQVAE, "vqvae2": VQVAE2}


def build_vqvae(cfg: ModelConfig, image_size: int | None = None) -> VQVAE | VQVAE2:
    """The tokenizer a config describes; checks that the image size divides evenly."""
    from emojiray.errors import EmojirayError

    if cfg.arch not in ARCHS:
        raise EmojirayError(f"unknown model.arch {cfg.arch!r}: choose from {', '.join(ARCHS)}")
    if cfg.quantizer not in QUANTIZERS:
        raise EmojirayError(f"unknown model.quantizer {cfg.quantizer!r}: choose from {', '.join(QUANTIZERS)}")
    n_levels = 2 if cfg.arch == "vqvae2" else 1
    per_level = ("downsample", "code_dim") + (("fsq_levels",) if cfg.quantizer == "fsq" else ("codebook_size",))
    for name in per_level:
        if len(getattr(cfg, name)) < n_levels:
            raise EmojirayError(f"model.{name} needs {n_levels} values for {cfg.arch}, got {getattr(cfg, name)}")
    if cfg.quantizer == "fsq":
        for levels in cfg.fsq_levels[:n_levels]:
            if not isinstance(levels, (list, tuple)) or not levels or min(levels) < 2:
                raise EmojirayError(f"model.fsq_levels: each level needs a list of integers >= 2 (values per "
                                    f"channel), got {cfg.fsq_levels}")
    try:
        for f in cfg.downsample[:n_levels]:
            _halvings(f)
    except ValueError as exc:
        raise EmojirayError(f"model.downsample: {exc}") from None
    if image_size is not None:
        total = cfg.downsample[0] * (cfg.downsample[1] if n_levels == 2 else 1)
        if image_size % total:
            raise EmojirayError(f"image size {image_size} is not divisible by the total downsampling {total}")
    return ARCHS[cfg.arch](cfg)


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, kind: str = "mse",
                        edge_weight: float = 0.0) -> torch.Tensor:
    """The tokenizer's reconstruction loss of (B, C, H, W) images: ``kind`` ("mse" or "l1") on the
    pixels, plus ``edge_weight`` times the mean L1 distance between the horizontal and the vertical
    differences of neighbouring pixels. A pixel loss alone lets the decoder blur an edge it is
    unsure of; the edge term charges for every blurred step."""
    if kind not in RECON_LOSSES:
        raise ValueError(f"unknown reconstruction loss {kind!r}: expected one of {', '.join(RECON_LOSSES)}")
    loss = F.mse_loss(recon, x) if kind == "mse" else F.l1_loss(recon, x)
    if edge_weight:
        error = recon - x  # the difference of the differences is the differences of the error
        loss = loss + edge_weight * (error.diff(dim=-1).abs().mean() + error.diff(dim=-2).abs().mean())
    return loss
