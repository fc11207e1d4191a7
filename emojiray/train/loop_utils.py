"""Small pieces every training loop uses: schedules, precision, logging, agreement across workers."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile

import torch
import torch.distributed as dist

from emojiray import storage
from emojiray.errors import EmojirayError


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked; a no-op elsewhere (CPU trains in fp32)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def any_worker(flag: bool, device: torch.device) -> bool:
    """True on every worker if ``flag`` is true on any (so all of them stop together)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def optimizer_step(net: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward, optional global-norm clipping, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    opt.step()


def restore_from_ray_checkpoint(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Load the run's latest Ray Train checkpoint (resume or restart after a failure) into
    ``model`` and ``opt``; return the saved trainer state ({} for a new run)."""
    import ray.train

    from emojiray.models import checkpoint as ckpt

    resumed = ray.train.get_checkpoint()
    if resumed is None:
        return {}
    with resumed.as_directory() as d:
        ckpt.load_weights(d, model)
        state = ckpt.load_trainer_state(d) or {}
    if "optimizer" in state:
        opt.load_state_dict(state["optimizer"])
    return state


def claim_run_dir(run_dir: str, resume: bool, force: bool, log=print) -> None:
    """Refuse to overwrite an existing Ray Train run unless resuming or forced (then delete it)."""
    if storage.exists(run_dir) and storage.list_files(run_dir):
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
                self.writer.add_scalar(k, float(v), step)

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
