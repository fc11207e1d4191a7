"""MaskGIT prior (Chang et al. 2022): a bidirectional transformer over masked code sequences.

Training is absorbing-state discrete diffusion: draw r ~ U(0, 1), mask ceil(cos(πr/2)·N) random
positions (replace them by the [MASK] id), predict the originals; the loss counts masked
positions only. Sampling starts from an all-masked sequence and, over T steps (8–16), predicts
every masked position at once, keeps the most confident predictions and re-masks the rest so
that cos(π/2·t/T)·N positions stay masked after step t — none after the last step.

    [cond] + tokens-with-masks (B, 1 + N) ─ L × bidirectional blocks ─► logits (B, N, V)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from emojiray.config import MaskGITConfig
from emojiray.models.codes import CodeLayout, guided, sample_logits
from emojiray.models.prior import PriorKind, sampling_kwargs, token_loss
from emojiray.models.transformer import Block


def cosine_schedule(ratio: torch.Tensor | float) -> torch.Tensor | float:
    """Share of positions still masked at progress ``ratio`` in [0, 1] (1 -> 0)."""
    if isinstance(ratio, torch.Tensor):
        return torch.cos(ratio * math.pi / 2)
    return math.cos(ratio * math.pi / 2)


class MaskGIT(nn.Module):
    def __init__(self, layout: CodeLayout, n_classes: int = 0, dim: int = 256, layers: int = 8,
                 heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.layout, self.n_classes = layout, n_classes
        self.mask_id = layout.vocab_size  # one extra input id: [MASK]
        self.tok_emb = nn.Embedding(layout.vocab_size + 1, dim)
        self.cls_emb = nn.Embedding(n_classes + 1, dim)  # index n_classes = unconditional
        self.pos_emb = nn.Parameter(torch.zeros(layout.seq_len + 1, dim))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, layout.vocab_size)
        self.register_buffer("allowed", layout.allowed(), persistent=False)

    def null_class(self, batch: int, device) -> torch.Tensor:
        return torch.full((batch,), self.n_classes, dtype=torch.long, device=device)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) tokens, some equal to ``mask_id`` -> (B, N, V) logits for every position."""
        B = tokens.shape[0]
        cond = self.null_class(B, tokens.device) if cond is None else cond
        x = torch.cat([self.cls_emb(cond)[:, None], self.tok_emb(tokens)], dim=1)
        x = self.drop(x + self.pos_emb)
        for blk in self.blocks:
            x = blk(x, causal=False)
        logits = self.head(self.ln_f(x[:, 1:]))
        return logits.masked_fill(~self.allowed, float("-inf"))

    def mask_for_training(self, tokens: torch.Tensor, generator: torch.Generator | None = None):
        """(masked tokens, bool mask (B, N)) with a cosine-scheduled number of masked positions."""
        B, N = tokens.shape
        r = torch.rand(B, generator=generator, device=tokens.device)
        n_mask = torch.ceil(cosine_schedule(r) * N).clamp(1, N).long()  # (B,)
        scores = torch.rand(B, N, generator=generator, device=tokens.device)
        rank = scores.argsort(dim=1).argsort(dim=1)  # a random permutation rank per position
        mask = rank < n_mask[:, None]
        return tokens.masked_fill(mask, self.mask_id), mask

    @torch.no_grad()
    def generate(self, n: int, cond: torch.Tensor | None = None, steps: int = 12, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, guidance: float = 1.0, choice_temperature: float = 4.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample (n, N) tokens in ``steps`` parallel decoding steps; every position ends filled."""
        device = self.pos_emb.device
        tokens = torch.full((n, self.layout.seq_len), self.mask_id, dtype=torch.long, device=device)
        return self.complete(tokens, cond, steps, temperature, top_k, top_p, guidance, choice_temperature,
                             generator)

    @torch.no_grad()
    def complete(self, tokens: torch.Tensor, cond: torch.Tensor | None = None, steps: int = 12,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, guidance: float = 1.0,
                 choice_temperature: float = 4.5, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill the positions of (B, N) ``tokens`` that equal ``mask_id``; the others are kept as given.

        Row b starts with M_b masked positions; after step t, floor(cos(π/2·(t+1)/T)·M_b) of them stay
        masked (none after the last step), the least confident re-masked. Generation from scratch is
        the all-masked case; inpainting, re-styling and interpolation pass partly known sequences.
        """
        device = self.pos_emb.device
        tokens = tokens.to(device).clone()
        n = tokens.shape[0]
        cond = self.null_class(n, device) if cond is None else cond.to(device)
        guide = guidance != 1.0 and bool((cond != self.n_classes).any())
        n_masked = (tokens == self.mask_id).sum(1)  # (B,) M_b
        for t in range(steps):
            masked = tokens == self.mask_id  # (B, N)
            if not masked.any():
                break
            if guide:
                both = self(torch.cat([tokens, tokens]), torch.cat([cond, self.null_class(n, device)])).float()
                logits = guided(both[:n], both[n:], guidance).masked_fill(~self.allowed, float("-inf"))
            else:
                logits = self(tokens, cond).float()
            sampled = sample_logits(logits, temperature, top_k, top_p, generator)  # (B, N)
            logp = F.log_softmax(logits, -1).gather(-1, sampled[..., None]).squeeze(-1)
            # confidence with annealed Gumbel noise (more exploration early), +inf where already fixed
            u = torch.rand(logp.shape, generator=generator, device=device).clamp_(1e-20, 1.0)
            gumbel = -torch.log(-torch.log(u))
            confidence = logp + choice_temperature * (1 - (t + 1) / steps) * gumbel
            confidence = confidence.masked_fill(~masked, float("inf"))
            tokens = torch.where(masked, sampled, tokens)
            if t == steps - 1:
                break
            # how many stay masked in each row after this step: fewer than now, never negative
            keep = torch.floor(cosine_schedule((t + 1) / steps) * n_masked.double()).long()
            keep = torch.minimum(keep, (masked.sum(1) - 1).clamp(min=0))  # (B,)
            if keep.any():
                rank = confidence.argsort(dim=1).argsort(dim=1)  # 0 = least confident
                tokens = tokens.masked_fill(rank < keep[:, None], self.mask_id)
        return tokens


# -- the prior kind "maskgit" ----------------------------------------------------------------------


def _build(cfg, layout: CodeLayout, n_classes: int) -> MaskGIT:
    s = cfg.maskgit  # prior.maskgit: the network's shape, and its decoding (steps, choice_temperature)
    return MaskGIT(layout, n_classes, s.dim, s.layers, s.heads, s.dropout)


def _loss(model, layout: CodeLayout, codes, cond, generator=None, smoothing: float = 0.0):
    """The cross-entropy of the masked positions only (mask drawn outside a DDP wrapper)."""
    tokens = layout.flatten(codes)
    inner = model.module if hasattr(model, "module") else model
    masked, mask = inner.mask_for_training(tokens, generator)
    return token_loss(model(masked, cond)[mask], tokens[mask], smoothing)


def _sample(model, layout: CodeLayout, n: int, cond, cfg, generator=None):
    return layout.unflatten(model.generate(n, cond, steps=cfg.maskgit.steps,
                                           choice_temperature=cfg.maskgit.choice_temperature,
                                           **sampling_kwargs(cfg, generator)))


PRIOR = PriorKind(build=_build, loss=_loss, sample=_sample, fills_masks=True, settings=MaskGITConfig)
