"""One interface over the three priors: build, loss (NLL in bits per code, accuracy), sample.

- ``transformer``: exact NLL of every code given the earlier ones (raster order, top first).
- ``pixelsnail``: exact NLL of p(top) · p(bottom | top).
- ``maskgit``: the masked-token cross-entropy at the training mask schedule (an upper bound on
  nothing in particular: it is what MaskGIT optimises, reported in the same unit). Validation
  uses a fixed seed so the number is comparable across epochs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from emojiray.config import CONDITIONS, PriorConfig
from emojiray.config import PRIOR_KINDS as KINDS
from emojiray.errors import EmojirayError
from emojiray.models.codes import CodeLayout
from emojiray.models.maskgit import MaskGIT
from emojiray.models.pixelsnail import HierarchicalPixelSNAIL
from emojiray.models.transformer import ARTransformer


def build_prior(cfg: PriorConfig, layout: CodeLayout, n_classes: int):
    if cfg.kind == "transformer":
        return ARTransformer(layout, n_classes, cfg.dim, cfg.layers, cfg.heads, cfg.dropout)
    if cfg.kind == "maskgit":
        return MaskGIT(layout, n_classes, cfg.dim, cfg.layers, cfg.heads, cfg.dropout)
    if cfg.kind == "pixelsnail":
        grids = dict(zip(layout.levels, layout.grids))
        sizes = dict(zip(layout.levels, layout.sizes))
        return HierarchicalPixelSNAIL(layout.levels, grids, sizes, n_classes, channels=cfg.channels,
                                      blocks=cfg.blocks, res_per_block=cfg.res_per_block,
                                      heads=max(1, cfg.heads // 2), dropout=cfg.dropout)
    raise EmojirayError(f"unknown prior.kind {cfg.kind!r}: choose from {', '.join(KINDS)}")


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0, dim: int = -1,
                           reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with label smoothing over the *allowed* classes only: the target's weight is
    1 - smoothing and the rest is spread evenly over the classes whose logit is finite (the
    priors give -inf to the codes of other levels, which must get no share)."""
    logp = F.log_softmax(logits.float(), dim=dim)
    nll = -logp.gather(dim, target.unsqueeze(dim)).squeeze(dim)
    if smoothing > 0:
        allowed = torch.isfinite(logits)
        uniform = -logp.masked_fill(~allowed, 0.0).sum(dim) / allowed.sum(dim).clamp(min=1)
        nll = (1 - smoothing) * nll + smoothing * uniform
    return nll.sum() if reduction == "sum" else nll.mean()


def prior_loss(model, kind: str, layout: CodeLayout, codes: dict[str, torch.Tensor],
               cond: torch.Tensor | None, generator: torch.Generator | None = None, label_smoothing: float = 0.0):
    """(mean cross-entropy in nats, correct predictions, predicted codes) for one batch; with
    ``label_smoothing`` the training loss (targets mixed with a uniform over the level's codes)."""
    if kind == "pixelsnail":
        logits = model(codes, cond)
        losses, correct, count = [], 0, 0
        for lv in layout.levels:
            lg, tgt = logits[lv].float(), codes[lv]
            losses.append(smoothed_cross_entropy(lg, tgt, label_smoothing, dim=1, reduction="sum"))
            correct += int((lg.argmax(1) == tgt).sum())
            count += tgt.numel()
        return torch.stack(losses).sum() / count, correct, count
    tokens = layout.flatten(codes)
    if kind == "maskgit":
        # mask outside the (possibly DDP-wrapped) module, predict through its forward
        inner = model.module if hasattr(model, "module") else model
        masked, mask = inner.mask_for_training(tokens, generator)
        logits = model(masked, cond)[mask].float()
        target = tokens[mask]
        return (smoothed_cross_entropy(logits, target, label_smoothing), int((logits.argmax(-1) == target).sum()),
                int(mask.sum()))
    logits = model(tokens, cond).float()
    loss = smoothed_cross_entropy(logits, tokens, label_smoothing)
    return loss, int((logits.argmax(-1) == tokens).sum()), tokens.numel()


def nats_to_bits(x: float) -> float:
    return x / math.log(2)


@torch.no_grad()
def sample_codes(model, kind: str, layout: CodeLayout, n: int, cond: torch.Tensor | None, cfg: PriorConfig,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    kw = dict(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, guidance=cfg.guidance,
              generator=generator)
    if kind == "pixelsnail":
        return model.generate(n, cond, **kw)
    if kind == "maskgit":
        return layout.unflatten(model.generate(n, cond, steps=cfg.maskgit_steps,
                                               choice_temperature=cfg.choice_temperature, **kw))
    return layout.unflatten(model.generate(n, cond, **kw))
