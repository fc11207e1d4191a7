"""Hierarchical PixelSNAIL prior (Chen et al. 2018; as used by VQ-VAE-2, Razavi et al. 2019).

One PixelSNAIL per level: the top prior models p(top), the bottom prior p(bottom | top), the
top codes entering through a conditioning stack (embedding -> convolutions -> upsampling to the
bottom grid) added inside every gated block. A PixelSNAIL is

    codes (B, h, w) ─ embedding ─ masked conv 'A' (sees strictly earlier positions)
      └─ blocks × [gated residual masked convs 'B' ... ; causal self-attention over raster order]
      └─ ELU ─ 1×1 conv ─► logits (B, K, h, w)

Causality: the 'A' convolution hides the current position, later 'B' convolutions and the
attention (which attends to raster positions ≤ i) never reveal a later one, so the logits at
position i depend on codes before i only. Sampling runs one full forward pass per position (no
cache), which is why this prior is the slow one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emojiray.config import PixelSNAILConfig
from emojiray.models.codes import CodeLayout, guided, sample_logits
from emojiray.models.prior import PriorKind, sampling_kwargs, smoothed_cross_entropy


class MaskedConv2d(nn.Conv2d):
    """k×k convolution that sees rows above and, in its own row, columns to the left
    (type 'A') or also the centre (type 'B')."""

    def __init__(self, cin: int, cout: int, kernel: int, mask_type: str):
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        c = kernel // 2
        mask[:, :, c, c + (mask_type == "B"):] = 0
        mask[:, :, c + 1:] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedResBlock(nn.Module):
    """x + gate(masked_conv(elu(masked_conv(elu(x)))) + condition), gate(a, b) = a·σ(b)."""

    def __init__(self, channels: int, kernel: int, cond_channels: int, dropout: float):
        super().__init__()
        self.conv1 = MaskedConv2d(channels, channels, kernel, "B")
        self.conv2 = MaskedConv2d(channels, 2 * channels, kernel, "B")
        self.cond = nn.Conv2d(cond_channels, 2 * channels, 1) if cond_channels else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cond_map=None):
        h = self.conv1(F.elu(x))
        h = self.conv2(self.drop(F.elu(h)))
        if self.cond is not None and cond_map is not None:
            h = h + self.cond(cond_map)
        a, b = h.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


class CausalAttention(nn.Module):
    """Self-attention over raster order, position i attending to positions <= i."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)  # per position, over channels: no mixing across positions
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        normed = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        q, k, v = self.qkv(normed).view(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))  # (B, heads, HW, C/heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.proj(y.transpose(-1, -2).reshape(B, C, H, W))


class PixelSNAIL(nn.Module):
    """One level's autoregressive prior over a (h, w) grid of K codes."""

    def __init__(self, K: int, shape: tuple[int, int], channels: int = 128, blocks: int = 4,
                 res_per_block: int = 2, kernel: int = 5, heads: int = 4, n_classes: int = 0,
                 cond_codes: int = 0, cond_upsample: int = 1, dropout: float = 0.1):
        super().__init__()
        self.K, self.shape, self.n_classes = K, shape, n_classes
        self.embed = nn.Embedding(K, channels)
        self.inp = MaskedConv2d(channels, channels, 7, "A")
        self.cls_emb = nn.Embedding(n_classes + 1, channels)  # index n_classes = unconditional
        cond_ch = channels if cond_codes else 0
        if cond_codes:  # conditioning stack over the coarser level's codes (fully known: not masked)
            self.cond_embed = nn.Embedding(cond_codes, channels)
            self.cond_net = nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
                nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
                nn.Upsample(scale_factor=cond_upsample, mode="nearest") if cond_upsample > 1 else nn.Identity(),
                nn.Conv2d(channels, channels, 3, padding=1),
            )
        self.cond_codes = cond_codes
        self.res = nn.ModuleList(
            nn.ModuleList(GatedResBlock(channels, kernel, cond_ch, dropout) for _ in range(res_per_block))
            for _ in range(blocks))
        self.attn = nn.ModuleList(CausalAttention(channels, heads) for _ in range(blocks))
        self.out = nn.Sequential(nn.ELU(), nn.Conv2d(channels, K, 1))

    def null_class(self, batch: int, device) -> torch.Tensor:
        return torch.full((batch,), self.n_classes, dtype=torch.long, device=device)

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None,
                cond_codes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, h, w) codes -> (B, K, h, w) logits; logits at (i, j) depend on earlier codes only."""
        B = codes.shape[0]
        cond = self.null_class(B, codes.device) if cond is None else cond
        x = self.inp(self.embed(codes).permute(0, 3, 1, 2))
        x = x + self.cls_emb(cond)[:, :, None, None]
        cond_map = None
        if self.cond_codes:
            cond_map = self.cond_net(self.cond_embed(cond_codes).permute(0, 3, 1, 2))
        for res, attn in zip(self.res, self.attn):
            for blk in res:
                x = blk(x, cond_map)
            x = attn(x)
        return self.out(x)

    @torch.no_grad()
    def generate(self, n: int, cond=None, cond_codes=None, temperature=1.0, top_k=0, top_p=1.0,
                 guidance: float = 1.0, generator=None) -> torch.Tensor:
        device = self.embed.weight.device
        h, w = self.shape
        cond = self.null_class(n, device) if cond is None else cond.to(device)
        guide = guidance != 1.0 and bool((cond != self.n_classes).any())
        codes = torch.zeros(n, h, w, dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                if guide:
                    both = self(torch.cat([codes, codes]), torch.cat([cond, self.null_class(n, device)]),
                                None if cond_codes is None else torch.cat([cond_codes, cond_codes]))
                    logits = guided(both[:n, :, i, j], both[n:, :, i, j], guidance)
                else:
                    logits = self(codes, cond, cond_codes)[:, :, i, j]
                codes[:, i, j] = sample_logits(logits.float(), temperature, top_k, top_p, generator)
        return codes


class HierarchicalPixelSNAIL(nn.Module):
    """p(top) · p(bottom | top) for VQ-VAE-2 codes (or a single PixelSNAIL for a flat VQ-VAE)."""

    def __init__(self, levels: tuple[str, ...], grids: dict, sizes: dict, n_classes: int = 0, **kw):
        super().__init__()
        self.levels = tuple(levels)
        nets = {}
        for i, lv in enumerate(self.levels):
            parent = self.levels[i - 1] if i > 0 else None
            up = grids[lv][0] // grids[parent][0] if parent else 1
            nets[lv] = PixelSNAIL(sizes[lv], tuple(grids[lv]), n_classes=n_classes,
                                  cond_codes=sizes[parent] if parent else 0, cond_upsample=up, **kw)
        self.nets = nn.ModuleDict(nets)

    def forward(self, codes: dict[str, torch.Tensor], cond=None) -> dict[str, torch.Tensor]:
        """{level: (B, K, h, w) logits}."""
        out, parent = {}, None
        for lv in self.levels:
            out[lv] = self.nets[lv](codes[lv], cond, codes[parent] if parent else None)
            parent = lv
        return out

    @torch.no_grad()
    def generate(self, n: int, cond=None, **kw) -> dict[str, torch.Tensor]:
        codes, parent = {}, None
        for lv in self.levels:
            codes[lv] = self.nets[lv].generate(n, cond, codes[parent] if parent else None, **kw)
            parent = lv
        return codes


# -- the prior kind "pixelsnail" -------------------------------------------------------------------


def _build(cfg, layout: CodeLayout, n_classes: int) -> HierarchicalPixelSNAIL:
    return HierarchicalPixelSNAIL(layout.levels, dict(zip(layout.levels, layout.grids)),
                                  dict(zip(layout.levels, layout.sizes)), n_classes,
                                  **vars(cfg.pixelsnail))  # prior.pixelsnail: channels, blocks, res_per_block, heads, dropout


def _loss(model, layout: CodeLayout, codes, cond, generator=None, smoothing: float = 0.0):
    """The exact NLL of every level's codes, top first, summed over positions and levels."""
    logits = model(codes, cond)
    losses, correct, count = [], 0, 0
    for lv in layout.levels:
        lg, tgt = logits[lv].float(), codes[lv]
        losses.append(smoothed_cross_entropy(lg, tgt, smoothing, dim=1, reduction="sum"))
        correct += int((lg.argmax(1) == tgt).sum())
        count += tgt.numel()
    return torch.stack(losses).sum() / count, correct, count


def _sample(model, layout: CodeLayout, n: int, cond, cfg, generator=None):
    return model.generate(n, cond, **sampling_kwargs(cfg, generator))


PRIOR = PriorKind(build=_build, loss=_loss, sample=_sample, settings=PixelSNAILConfig)
