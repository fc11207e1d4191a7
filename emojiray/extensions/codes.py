"""Images to codes and back through a tokenizer, pixel masks as code masks (pure PyTorch)."""

from __future__ import annotations

import numpy as np
import torch

from emojiray.errors import EmojirayError


@torch.no_grad()
def encode(vqvae, images: np.ndarray, device: torch.device | None = None, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """(N, H, W, 3) uint8 -> {level: (N, h, w) long} codes on ``device``."""
    from emojiray.images import to_model_input

    device = device or next(vqvae.parameters()).device
    parts: dict[str, list] = {}
    for s in range(0, len(images), batch_size):
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])), device, channels_last=False)
        for lv, c in vqvae.encode(x).items():
            parts.setdefault(lv, []).append(c)
    return {lv: torch.cat(v) for lv, v in parts.items()}


@torch.no_grad()
def decode(vqvae, codes: dict[str, torch.Tensor], batch_size: int = 256) -> np.ndarray:
    """{level: (N, h, w)} codes -> (N, H, W, 3) uint8 images."""
    from emojiray.images import from_model_output

    n = next(iter(codes.values())).shape[0]
    out = [from_model_output(vqvae.decode_codes({lv: c[s:s + batch_size] for lv, c in codes.items()}).float())
           for s in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.uint8)


def require_mask_filling(sampler, what: str) -> None:
    if not sampler.fills_masks:
        raise EmojirayError(f"{what} re-samples masked codes, which a {sampler.kind} prior cannot do "
                            f"({sampler.prior_uri}): train a MaskGIT prior (--set prior.kind=maskgit)")


def code_masks(pixel_mask: np.ndarray, grids: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """(H, W) bool pixel mask -> {level: (h, w) bool}: a code is masked when its cell touches the mask."""
    m = torch.from_numpy(np.asarray(pixel_mask, dtype=np.float32))[None, None]
    H, W = pixel_mask.shape
    out = {}
    for lv, (h, w) in grids.items():
        if H % h or W % w:
            raise EmojirayError(f"a {H}x{W} mask does not tile the {h}x{w} {lv} code grid")
        out[lv] = torch.nn.functional.max_pool2d(m, (H // h, W // w))[0, 0] > 0
    return out
