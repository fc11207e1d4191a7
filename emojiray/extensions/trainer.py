"""The extensions' helper models (classifier, upscaler) trained by the harness loop on one device.

They are small and train on a few thousand in-memory images inside one Ray task (a GPU when the
task has one), so they run :func:`emojiray.train.harness.run` directly rather than a Ray Train
run: the same schedule (AdamW, warm-up + cosine decay, gradient clipping, a training-time budget,
a stop on a non-finite loss), a validation after every epoch and the best epoch's weights kept.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from emojiray.errors import EmojirayError
from emojiray.train import harness
from emojiray.train.loop_utils import autocast


class HelperFamily:
    """A model with its own ``loss_fn(model, batch)`` and ``validate(model)`` as a harness family."""

    score = None
    generator = None

    def __init__(self, model: nn.Module, loss_fn, validate, schedule: harness.Schedule, steps_per_epoch: int,
                 weight_decay: float, device: torch.device, name: str):
        self.name, self.model, self.net, self.device = name, model, model, device
        self.loss_fn, self.validate = loss_fn, validate
        self.opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=weight_decay)
        self.schedule, self.steps_per_epoch = schedule, steps_per_epoch

    def examples(self, batch: dict[str, torch.Tensor]) -> int:
        return len(next(iter(batch.values())))

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, True):
            return {"loss": self.loss_fn(self.net, batch)}

    def evaluate(self, batches) -> tuple[dict[str, float], None]:
        return (self.validate(self.model) if self.validate else {}), None

    def meta(self) -> dict[str, Any]:
        return {}


def fit(model: nn.Module, loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
        train: dict[str, np.ndarray], *, epochs: int, batch_size: int, lr: float, weight_decay: float = 0.0,
        max_seconds: float = 0.0, device: torch.device, validate: Callable[[nn.Module], dict[str, float]] | None = None,
        score: str = "", higher_is_better: bool = True, seed: int = 0, grad_clip: float = 1.0,
        label: str = "fit", log=print) -> list[dict[str, float]]:
    """Train ``model`` in place on arrays ``train`` (equal first dimension); return the history.

    ``loss_fn(model, batch)`` gets a dict of tensors on ``device`` (uint8 images stay uint8: the
    loss converts them) and returns a scalar. After every epoch ``validate(model)`` (eval mode, no
    grad) adds metrics; with ``score`` the weights of the best epoch by that metric are restored
    at the end. A non-finite loss stops with a one-line error.
    """
    n = len(next(iter(train.values())))
    if n == 0:
        raise EmojirayError(f"{label}: no training examples")
    if epochs < 1:
        raise EmojirayError(f"{label}: epochs must be >= 1, got {epochs}")
    batch_size = max(1, min(batch_size, n))
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    schedule = harness.Schedule(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=min(100, total // 10),
                                min_lr_ratio=0.05, grad_clip=grad_clip, max_seconds=max_seconds,
                                log_every=1 << 30)
    family = HelperFamily(model.to(device), loss_fn, validate, schedule, steps_per_epoch, weight_decay, device, label)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in train.items()}
    best = {"value": -math.inf, "state": None}

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        if score:
            value = metrics[score] if higher_is_better else -metrics[score]
            if value > best["value"]:
                best.update(value=value, state=copy.deepcopy(model.state_dict()))
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "step"))
        log(f"{label}: epoch {metrics['epoch']}/{epochs}: {shown}")

    summary = harness.run(family, harness.in_memory_batches(tensors, batch_size, seed, device),
                          (lambda: ()) if validate else None, report)
    if summary["status"] != "ok":
        raise EmojirayError(f"{label}: the {summary['status']}; lower the learning rate")
    if max_seconds and summary["train_seconds"] >= max_seconds:
        log(f"{label}: time budget of {max_seconds:g} s reached")
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return summary["history"]
