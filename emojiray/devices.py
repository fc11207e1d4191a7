"""The torch device a command runs on: the one asked for, checked, or the best this machine has."""

from __future__ import annotations

import torch

from emojiray.errors import EmojirayError


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` (``cpu``, ``cuda``, ``cuda:1``) as a torch device, or by default CUDA when this torch
    sees a GPU, else the CPU; one line for a device this machine does not have."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise EmojirayError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise EmojirayError(f"device {name!r}: this torch sees no CUDA GPU (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise EmojirayError(f"device {name!r}: this machine has {count} CUDA GPU(s)")
    elif device.type != "cpu":
        raise EmojirayError(f"device {name!r}: emojiray runs on cpu or cuda")
    return device
