"""The training loop every model family runs, with no Ray in it.

A *family* (the VQ-VAE tokenizer, the priors, ...) is a small class that knows its model::

    family = VQVAEFamily(cfg, spec, device)        # build: model, optimiser, schedule
    logs = family.train_step(batch)                 # forward, loss, backward, step -> {"loss": ...}
    metrics, image = family.evaluate(val_batches)   # deterministic held-out metrics (+ a grid)
    family.meta()                                   # what its checkpoint records besides weights

and :func:`run` drives it the same way on one device (tests, ``bench/vqvae_speed.py``'s bare
loop) and inside a Ray Train worker (:mod:`emojiray.train.driver`): epochs over
``train_batches()``, warm-up + cosine learning rate, a training-time budget, a stop on a
non-finite loss, and a report (validation + checkpoint + image grid) every
``schedule.report_every_s`` seconds of training and at the end. What differs between the two
is passed in: where batches come from, how workers agree, and what a report does with a
checkpoint. :func:`save` and :func:`restore` are the one checkpoint format for resuming:
weights, optimiser, step, epoch, training seconds, history and every RNG state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from emojiray.errors import EmojirayError
from emojiray.models import checkpoint as ckpt
from emojiray.train.loop_utils import TensorBoard, warmup_cosine


@dataclass
class Schedule:
    """How long and how fast a family trains, and how often it reports."""

    epochs: int
    batch_size: int  # per worker
    lr: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # the cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # 0 = off
    max_seconds: float = 0.0  # training-time budget (0 = none)
    report_every_s: float = 0.0  # validate + checkpoint after this much training time (0 = every epoch)
    log_every: int = 50  # steps between TensorBoard scalars
    image_every: int = 1  # reports between TensorBoard image grids (0 = never)


def optimiser(model: nn.Module, optim) -> torch.optim.AdamW:
    """AdamW as a config's optimiser section (``train.optim``, ``prior.optim``, ...) sets it."""
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=tuple(optim.betas),
                             weight_decay=optim.weight_decay)


def schedule(optim, *, epochs: int, batch_size: int, steps_per_epoch: int, max_seconds: float = 0.0,
             **reports: Any) -> Schedule:
    """A family's Schedule from its optimiser section and its length; ``reports`` are the reporting
    fields (``report_every_s``, ``log_every``, ``image_every``). A warm-up of -1 is a tenth of the
    training steps, at most 100."""
    warmup = optim.warmup_steps if optim.warmup_steps >= 0 else min(100, epochs * steps_per_epoch // 10)
    return Schedule(epochs=epochs, batch_size=batch_size, lr=optim.lr, warmup_steps=warmup,
                    min_lr_ratio=optim.min_lr_ratio, grad_clip=optim.grad_clip, max_seconds=max_seconds, **reports)


class Family(Protocol):
    name: str  # checkpoint kind and Ray Train run name
    score: tuple[str, str] | None  # (metric, "min" | "max") that picks the best checkpoint; None = the last
    batch_key: str  # the config key of the per-worker batch size ("train.batch_size"), read by the Ray driver
    model: nn.Module  # the plain module (checkpoints, evaluation)
    net: nn.Module  # what trains: the model, or its DDP / compiled wrapper
    opt: torch.optim.Optimizer
    schedule: Schedule
    steps_per_epoch: int
    generator: torch.Generator | None  # the family's own random stream (saved with the checkpoint)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]]) -> tuple[dict[str, float], np.ndarray | None]: ...

    def examples(self, batch: dict[str, torch.Tensor]) -> int: ...

    def meta(self) -> dict[str, Any]: ...

    # optional: ``trainer_state() -> dict`` and ``load_trainer_state(dict)``, what a resumable
    # checkpoint keeps of the family besides the model and ``opt`` (a discriminator and its optimiser)


Agree = Callable[[list[float]], list[float]]  # each value's maximum over the workers


def single(values: list[float]) -> list[float]:
    """Agreement on one worker: the values as they are."""
    return values


def step(family: Family, loss: torch.Tensor, agree: Agree = single) -> bool:
    """Backward, clip, optimiser step -- unless the loss is not finite on some worker (then no worker
    steps, so DDP's collectives still pair up, and False)."""
    if agree([0.0 if bool(torch.isfinite(loss)) else 1.0])[0] > 0:
        return False
    family.opt.zero_grad(set_to_none=True)
    loss.backward()
    if family.schedule.grad_clip > 0:
        nn.utils.clip_grad_norm_(family.net.parameters(), family.schedule.grad_clip)
    family.opt.step()
    return True


def run(family: Family, train_batches: Callable[[], Iterable[dict]], val_batches: Callable[[], Iterable[dict]] | None,
        report: Callable[[dict[str, float], dict[str, Any]], None], *, state: dict[str, Any] | None = None,
        agree: Agree = single, world: int = 1, tb: TensorBoard | None = None,
        clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Train ``family`` until its epochs or time budget run out, or the loss stops being finite.

    ``train_batches()`` yields one epoch of this worker's batches; ``val_batches()`` (None on
    workers that do not validate) the held-out ones. ``report(metrics, state)`` is called at every
    report with the metrics and the trainer state (:func:`save` it to checkpoint). ``agree`` (the
    maximum over workers) gives every worker the same clock, so all of them take the same decision
    (stop, report) at the same step and use the same learning rate. With a time budget the cosine
    decay follows whichever runs out first, the steps or the seconds: a budgeted run ends annealed.
    Returns the summary: status ("ok" or why it stopped), step, epoch, training seconds, history.
    """
    sc = family.schedule
    state = dict(state or {})
    step_no, epoch0 = int(state.get("step", 0)), int(state.get("epoch", 0))
    elapsed, history = float(state.get("elapsed", 0.0)), list(state.get("history", []))
    total = family.steps_per_epoch * sc.epochs
    tb = tb or TensorBoard(None)
    status, epoch, last_report, now = "ok", epoch0, elapsed, elapsed
    window = {"sums": {}, "steps": 0, "seen": 0, "seconds": 0.0, "data_wait": 0.0}  # since the last report
    overhead = {"data_wait_seconds": 0.0, "report_seconds": 0.0}  # where wall time goes besides steps

    def do_report(epoch_done: int) -> None:
        nonlocal last_report
        started = time.perf_counter()
        metrics = {"epoch": epoch_done, "step": step_no, "train_seconds": elapsed,
                   **{f"train_{k}": float(v) / max(window["steps"], 1) for k, v in window["sums"].items()},
                   "images_per_s": window["seen"] * world / max(window["seconds"], 1e-9),
                   "data_wait_s": window["data_wait"]}
        if val_batches is not None:
            family.model.eval()
            with torch.no_grad():
                val, image = family.evaluate(val_batches())
            family.model.train()
            metrics.update(val)
            tb.scalars(step_no, **{f"val/{k}": v for k, v in val.items()},
                       **{"train/report_loss": metrics[k] for k in ("train_loss",) if k in metrics})
            if image is not None and sc.image_every and len(history) % sc.image_every == 0:
                tb.image("val/originals_over_reconstructions", image, step_no)
            tb.flush()
        history.append({k: float(v) for k, v in metrics.items()})
        report(metrics, {"step": step_no, "epoch": epoch_done, "elapsed": elapsed, "history": history})
        last_report = elapsed
        window.update(sums={}, steps=0, seen=0, seconds=0.0, data_wait=0.0)
        overhead["report_seconds"] += time.perf_counter() - started

    family.net.train()
    for epoch in range(epoch0, sc.epochs):
        t0, n_steps, reported_mid = clock(), 0, False
        waiting = time.perf_counter()
        for batch in train_batches():
            waited = time.perf_counter() - waiting  # the loader's share of this step (first batch: epoch start)
            window["data_wait"] += waited
            overhead["data_wait_seconds"] += waited
            for g in family.opt.param_groups:
                g["lr"] = sc.lr * warmup_cosine(step_no, sc.warmup_steps, total, sc.min_lr_ratio,
                                                time_fraction=now / sc.max_seconds if sc.max_seconds else 0.0)
            logs = family.train_step(batch)
            if not step(family, logs["loss"], agree):
                status = f"loss became {logs['loss'].item()} at step {step_no} (epoch {epoch + 1})"
                break
            step_no, n_steps = step_no + 1, n_steps + 1
            for k, v in logs.items():  # summed on the device: no host sync per step
                window["sums"][k] = window["sums"].get(k, 0) + v.detach().float()
            window["steps"] += 1
            window["seen"] += family.examples(batch)
            if step_no % sc.log_every == 0:
                tb.scalars(step_no, **{f"train/{k}": v for k, v in logs.items()},
                           **{"train/lr": family.opt.param_groups[0]["lr"]})
            now = agree([elapsed + clock() - t0])[0]  # the slowest worker's training time
            due = bool(sc.report_every_s and now - last_report >= sc.report_every_s)
            if sc.max_seconds and now >= sc.max_seconds:
                break  # every worker stops at the same step
            if due:  # a report inside a long epoch; the checkpoint resumes at the start of this epoch
                window["seconds"] += now - elapsed
                elapsed = now
                do_report(epoch)
                t0, reported_mid = clock(), True
            waiting = time.perf_counter()
        took = clock() - t0
        window["seconds"] += took
        elapsed = now = agree([elapsed + took])[0]
        if status != "ok":
            break
        if n_steps == 0 and not reported_mid:
            raise EmojirayError(f"no full training batch in epoch {epoch + 1}: fewer examples than "
                                f"{sc.batch_size} (the batch size) per worker")
        out_of_time = bool(sc.max_seconds and elapsed >= sc.max_seconds)
        done = epoch + 1 >= sc.epochs or out_of_time
        if done or not sc.report_every_s or elapsed - last_report >= sc.report_every_s:
            do_report(epoch + 1)
        if done:
            break
    tb.close()
    last = history[-1]["epoch"] if history else epoch0
    return {"status": status, "step": step_no, "epoch": int(last), "train_seconds": elapsed,
            "history": history, "start_epoch": epoch0, **overhead}


# -- checkpoints --------------------------------------------------------------------------------------


def save(directory: str, family: Family, cfg: dict[str, Any], state: dict[str, Any],
         metrics: dict[str, float]) -> None:
    """A resumable checkpoint of ``family``: weights + meta, and the trainer state with every RNG."""
    rng = {"torch": torch.get_rng_state(), "numpy": _numpy_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    if family.generator is not None:
        rng["generator"] = family.generator.get_state()
    trainer = {**state, "optimizer": family.opt.state_dict(), "rng": rng}
    if hasattr(family, "trainer_state"):  # what else the family trains (a discriminator, its counters)
        trainer["family"] = family.trainer_state()
    ckpt.save(directory, family.model, family.name, cfg, trainer_state=trainer, step=state["step"],
              epoch=state["epoch"], metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
              **family.meta())


def restore(directory: str, family: Family) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save` into ``family``; return its trainer state."""
    ckpt.load_weights(directory, family.model)
    state = ckpt.load_trainer_state(directory) or {}
    if "optimizer" in state:
        family.opt.load_state_dict(state["optimizer"])
    if "family" in state and hasattr(family, "load_trainer_state"):
        family.load_trainer_state(state["family"])
    rng = state.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        np.random.set_state(_numpy_state_from(rng["numpy"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if "generator" in rng and family.generator is not None:
        family.generator.set_state(rng["generator"])
    return state


def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as plain tensors and numbers (checkpoints load with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from(s: dict[str, Any]):
    return (s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"])


# -- one device, no Ray -------------------------------------------------------------------------------


def in_memory_batches(arrays: dict[str, torch.Tensor], batch_size: int, seed: int = 0,
                      device: torch.device | str = "cpu") -> Callable[[], Iterable[dict[str, torch.Tensor]]]:
    """An epoch function over tensors held in memory: shuffled full batches (the bare loop's data)."""
    n = len(next(iter(arrays.values())))
    gen = torch.Generator().manual_seed(seed)

    def epoch() -> Iterable[dict[str, torch.Tensor]]:
        order = torch.randperm(n, generator=gen)
        for i in range(n // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield {k: v[idx].to(device) for k, v in arrays.items()}

    return epoch


def sequential_batches(arrays: dict[str, torch.Tensor], batch_size: int,
                       device: torch.device | str = "cpu") -> Callable[[], Iterable[dict[str, torch.Tensor]]]:
    """An epoch function over every example in order (validation)."""
    n = len(next(iter(arrays.values())))

    def epoch() -> Iterable[dict[str, torch.Tensor]]:
        for i in range(0, n, batch_size):
            yield {k: v[i:i + batch_size].to(device) for k, v in arrays.items()}

    return epoch


def no_report(metrics: dict[str, float], state: dict[str, Any]) -> None:
    """The bare loop's report: nothing kept but the history :func:`run` returns."""

