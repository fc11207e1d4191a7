"""A small single-device training loop for the extensions' helper models (classifier, upscaler).

They are small and train on a few thousand in-memory images, so they use one device (a GPU when
the Ray task running them has one) rather than a Ray Train run: AdamW, linear warm-up and cosine
decay, bf16 autocast on CUDA, gradient clipping, an optional time budget, validation after every
epoch and the best epoch's weights kept (pure PyTorch, no Ray).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from emojiray.errors import EmojirayError
from emojiray.train.loop_utils import autocast, optimizer_step, warmup_cosine


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
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, min(100, total // 10), total, 0.05))
    rng = np.random.default_rng(seed)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in train.items()}
    history: list[dict[str, float]] = []
    best, best_state = -math.inf, None
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        losses, seen, te = [], 0, time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            batch = {k: v[idx].to(device, non_blocking=True) for k, v in tensors.items()}
            with autocast(device, True):
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise EmojirayError(f"{label}: the loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            optimizer_step(model, opt, loss, grad_clip)
            sched.step()
            losses.append(float(loss.detach()))
            seen += len(idx)
            if max_seconds and time.perf_counter() - t0 > max_seconds:
                break
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)),
               "images_per_s": seen / max(time.perf_counter() - te, 1e-9)}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                row.update(validate(model))
        history.append(row)
        if score:
            value = row[score] if higher_is_better else -row[score]
            if value > best:
                best, best_state = value, copy.deepcopy(model.state_dict())
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
        log(f"{label}: epoch {epoch}/{epochs}: {shown}")
        if max_seconds and time.perf_counter() - t0 > max_seconds:
            log(f"{label}: time budget of {max_seconds:g} s reached")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
