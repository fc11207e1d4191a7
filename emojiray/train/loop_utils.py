"""Small pieces every training loop uses: the learning-rate schedule, precision, run directories, logging."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import tempfile

import torch

from emojiray import storage
from emojiray.errors import EmojirayError


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float, time_fraction: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps, or
    earlier when ``time_fraction`` (share of a time budget spent) is further along."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def autocast(device: torch.device, bf16: bool, cpu: bool = False):
    """bf16 autocast on CUDA when asked; with ``cpu`` also on a CPU that computes bf16 natively
    (AVX512-BF16 or AMX, through oneDNN); a no-op elsewhere (fp32)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if bf16 and cpu and device.type == "cpu" and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (else bf16 is emulated and slower than fp32)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def claim_run_dir(run_dir: str, resume: bool, force: bool, log=print) -> None:
    """Refuse to overwrite an existing Ray Train run unless resuming or forced (then delete it). A
    run that stopped before its first checkpoint holds nothing to keep: it is cleared, not in the way."""
    files = storage.list_files(run_dir) if storage.exists(run_dir) else []
    inside = [f[len(run_dir.rstrip("/")) + 1:] for f in files]
    if files and not any(rel.startswith("checkpoint_") and "/" in rel for rel in inside):
        log(f"clearing {run_dir}: its run stopped before its first checkpoint")
        storage.delete(run_dir)
        files = []
    if files:
        if force:
            storage.delete(run_dir)
        elif not resume:
            raise EmojirayError(f"{run_dir} already holds a training run: pass --resume to continue it "
                                f"or --force to start over")
    elif resume:
        log(f"nothing to resume at {run_dir}; starting a new run")


class TensorBoard:
    """tensorboardX on rank 0, writing to a local dir or syncing a temp dir to an ``s3://`` URI."""

    def __init__(self, uri: str | None):
        self.uri = uri
        self.writer = None
        if uri is None:
            return
        from tensorboardX import SummaryWriter

        self.local = tempfile.mkdtemp(prefix="emojiray-tb-") if storage.is_s3(uri) else uri
        os.makedirs(self.local, exist_ok=True)
        self.writer = SummaryWriter(self.local, flush_secs=30)

    def scalars(self, step: int, **values: float) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, float(v.detach()) if isinstance(v, torch.Tensor) else float(v), step)

    def image(self, tag: str, image_hwc_uint8, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc_uint8, step, dataformats="HWC")

    def flush(self) -> None:
        """Flush events; for S3, upload the event files (each upload replaces the object whole)."""
        if self.writer is None:
            return
        self.writer.flush()
        if self.uri is not None and storage.is_s3(self.uri):
            for root, _, files in os.walk(self.local):
                for name in files:
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, self.local)
                    with open(path, "rb") as f:
                        storage.write_bytes(storage.join(self.uri, *rel.split(os.sep)), f.read())

    def close(self) -> None:
        if self.writer is not None:
            self.flush()
            self.writer.close()
            if self.uri is not None and storage.is_s3(self.uri):
                shutil.rmtree(self.local, ignore_errors=True)
            self.writer = None
