"""One interface over the kinds of prior: build, loss (NLL in bits per code, accuracy), sample.

Each kind is a :class:`PriorKind` in :data:`emojiray.registry.PRIORS`, defined in its own file,
with its settings in a config section named after it (``prior.transformer``, ``prior.maskgit``,
``prior.pixelsnail``; :func:`kind_settings`) beside what every kind shares (``prior.*``):

- ``transformer`` (:mod:`~emojiray.models.transformer`): exact NLL of every code given the earlier
  ones (raster order, top first).
- ``pixelsnail`` (:mod:`~emojiray.models.pixelsnail`): exact NLL of p(top) · p(bottom | top).
- ``maskgit`` (:mod:`~emojiray.models.maskgit`): the masked-token cross-entropy at the training
  mask schedule (an upper bound on nothing in particular: it is what MaskGIT optimises, reported in
  the same unit). Validation uses a fixed seed so the number is comparable across epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emojiray.config import PriorConfig
from emojiray.models.codes import CodeLayout
from emojiray.registry import PRIORS


@dataclass(frozen=True)
class PriorKind:
    """What training, sampling and the extensions need of one kind of prior.

    ``loss`` gets the model as training runs it (possibly DDP-wrapped: call it, do not reach into
    it without ``.module``) and ``cond`` with the null class ``n_classes`` where the condition is
    dropped. Codes are {level: (B, h, w) int64}; the null class and -inf logits for other levels'
    codes are the model's business.
    """

    build: Callable[..., nn.Module]  # (prior config, layout, n_classes) -> model
    # (model, layout, codes, cond, generator, label smoothing) -> (mean cross-entropy in nats, correct, count)
    loss: Callable[..., tuple[torch.Tensor, int, int]]
    # (model, layout, n, cond (n,) or None, prior config, generator) -> codes {level: (n, h, w)}
    sample: Callable[..., dict[str, torch.Tensor]]
    fills_masks: bool = False  # the model has ``complete(tokens, cond, steps, ...)``: inpaint, restyle, interpolate
    # its settings, a dataclass with defaults (and RANGES, if it likes): the config section prior.<name>,
    # read and checked like the built-in kinds' (``--set prior.<name>.<key>=...``); see kind_settings
    settings: type | None = None


def kind_settings(cfg: PriorConfig) -> Any:
    """The kind's own config section, ``prior.<kind>`` (``prior.maskgit``, or a plug-in's), or None
    for a kind without settings. A kind whose section has ``label_smoothing`` trains with it; the
    others train on the plain likelihood they are measured by."""
    settings = PRIORS[cfg.kind].settings
    if settings is None:
        return None
    own = getattr(cfg, cfg.kind, None)  # a built-in kind's section is a field of PriorConfig
    return own if isinstance(own, settings) else cfg.plugins.get(cfg.kind) or settings()


def build_prior(cfg: PriorConfig, layout: CodeLayout, n_classes: int) -> nn.Module:
    return PRIORS[cfg.kind].build(cfg, layout, n_classes)


def prior_loss(model, kind: str, layout: CodeLayout, codes: dict[str, torch.Tensor],
               cond: torch.Tensor | None, generator: torch.Generator | None = None, label_smoothing: float = 0.0):
    """(mean cross-entropy in nats, correct predictions, predictions) for one batch; with
    ``label_smoothing`` the training loss (targets mixed with a uniform over the level's codes)."""
    return PRIORS[kind].loss(model, layout, codes, cond, generator, label_smoothing)


@torch.no_grad()
def sample_codes(model, kind: str, layout: CodeLayout, n: int, cond: torch.Tensor | None, cfg: PriorConfig,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    return PRIORS[kind].sample(model, layout, n, cond, cfg, generator)


def sampling_kwargs(cfg: PriorConfig, generator: torch.Generator | None) -> dict:
    """The sampling settings every kind's ``generate`` takes."""
    return dict(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, guidance=cfg.guidance,
                generator=generator)


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


def token_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0):
    """(mean cross-entropy, correct, count) of (…, V) logits against (…) targets."""
    logits = logits.float()
    return smoothed_cross_entropy(logits, target, smoothing), int((logits.argmax(-1) == target).sum()), target.numel()


def nats_to_bits(x: float) -> float:
    return x / math.log(2)
