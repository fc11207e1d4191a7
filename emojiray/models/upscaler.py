"""The upscaler: a low-resolution encoder into the VQ-VAE's full-resolution codes (pure PyTorch).

Super-resolution through the tokenizer: instead of predicting pixels, the network predicts, for
every cell of every code grid of the full-resolution image, a distribution over that level's
codebook; the VQ-VAE decoder turns the most likely codes into pixels. Shapes at the default 64 px
VQ-VAE-2 (grids: bottom 16x16, top 8x8; K = 512 per level) and factor 2 (input s = 32 px), C channels:

    x (B, 3, 32, 32) ─ stem 3x3 ─► (B, C, 32, 32)
      ─ resample ×1/2 ─ res blocks ─► f_bottom (B, C, 16, 16)
      ─ resample ×1/2 ─ res blocks ─► f_top    (B, C, 8, 8)
    top-down (coarse to fine, as in a feature pyramid):
      g_top = f_top                               ─ head ─► logits_top    (B, K_top, 8, 8)
      g_bottom = f_bottom + up(g_top) (B, C, 16, 16) ─ head ─► logits_bottom (B, K_bottom, 16, 16)

The top-down path gives the bottom logits the wider context of the coarse level, as the VQ-VAE-2
bottom quantizer sees the decoded top codes. A flat VQ-VAE has one grid ("bottom") and no top-down
path. Every resampling factor is derived from the grid sizes: a power of two, down (strided 4x4
convs) or up (transposed 4x4 convs, when a grid is finer than the input).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emojiray.models.blocks import ResBlock


def _resample(channels: int, size_in: int, size_out: int) -> nn.Module:
    """(B, C, size_in, size_in) -> (B, C, size_out, size_out) by stride-2 (transposed) 4x4 convs."""
    if size_in == size_out:
        return nn.Identity()
    ratio = max(size_in, size_out) / min(size_in, size_out)
    n = round(math.log2(ratio))
    if 2 ** n != ratio:
        raise ValueError(f"cannot resample {size_in} -> {size_out}: the ratio is not a power of two")
    conv = nn.Conv2d if size_in > size_out else nn.ConvTranspose2d
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(conv(channels, channels, 4, stride=2, padding=1))
        if i < n - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class LowResEncoder(nn.Module):
    """(B, 3, s, s) low-res image in [-1, 1] -> {level: (B, K_level, h, w) logits over its codebook}.

    ``grids``: {level: (h, w)} of the tokenizer at full resolution (square grids);
    ``codebook_sizes``: {level: K}.
    """

    def __init__(self, input_size: int, grids: dict[str, tuple[int, int]], codebook_sizes: dict[str, int],
                 channels: int = 128, res_blocks: int = 4):
        super().__init__()
        if set(grids) != set(codebook_sizes) or not grids:
            raise ValueError(f"grids {sorted(grids)} and codebook sizes {sorted(codebook_sizes)} name different levels")
        if any(h != w for h, w in grids.values()):
            raise ValueError(f"the upscaler wants square code grids, got {grids}")
        self.input_size = input_size
        self.grids = {lv: (int(h), int(w)) for lv, (h, w) in grids.items()}
        self.codebook_sizes = {lv: int(k) for lv, k in codebook_sizes.items()}
        # fine -> coarse: each level's features come from the previous (finer) level's
        self.order = sorted(grids, key=lambda lv: -grids[lv][0])
        C = channels
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.down, self.body, self.up, self.head = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        size = input_size
        for i, lv in enumerate(self.order):
            side = grids[lv][0]
            self.down[lv] = _resample(C, size, side)
            self.body[lv] = nn.Sequential(*[ResBlock(C, C // 2) for _ in range(res_blocks)])
            if i + 1 < len(self.order):  # the coarser level's top-down features are added here
                self.up[lv] = _resample(C, grids[self.order[i + 1]][0], side)
            self.head[lv] = nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, padding=1), nn.ReLU(inplace=True),
                                          nn.Conv2d(C, codebook_sizes[lv], 1))
            size = side

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.stem(x)  # (B, C, s, s)
        feats = {}
        for lv in self.order:  # fine -> coarse
            h = self.body[lv](self.down[lv](h))  # (B, C, h_lv, w_lv)
            feats[lv] = h
        logits, g = {}, None
        for lv in reversed(self.order):  # coarse -> fine
            g = feats[lv] if g is None else feats[lv] + self.up[lv](g)
            logits[lv] = self.head[lv](g)  # (B, K_lv, h_lv, w_lv)
        return logits

    @torch.no_grad()
    def predict_codes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, s, s) -> {level: (B, h, w) long}: the most likely code of every cell."""
        return {lv: lg.argmax(1) for lv, lg in self(x).items()}
