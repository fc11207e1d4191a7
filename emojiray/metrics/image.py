"""Reconstruction metrics for batches of images in [-1, 1]: MSE, PSNR and SSIM.

All functions take two float batches of the same shape (N, C, H, W) (torch tensors or numpy
arrays; C is 3 for RGB) and return python floats: means over the batch of per-image values.

PSNR of a perfect reconstruction is infinite; we cap each per-image PSNR at
:data:`PSNR_CAP_DB` (100 dB) so that one exact image does not turn a batch mean (or a running
mean over a whole evaluation) into ``inf``. 100 dB on range 2 corresponds to an MSE of 4e-10,
far below float32 rounding of 8-bit images, so the cap never changes a real measurement.

SSIM is Wang et al. (2004) with the usual settings (Gaussian window 11, sigma 1.5, K1 0.01,
K2 0.03, borders reflected, the mean over every pixel): the values of torchmetrics' default,
which the tests check. It is written here because importing torchmetrics (and the scipy and
matplotlib it pulls in) cost every process that validates about 1.5 s on a 2-core machine. MSE
and PSNR are computed in float64; SSIM's Gaussian-window convolutions in float32 (on a CPU float64
convolutions are 4-12x slower and made validation the largest cost of a training report; the
per-image values differ from float64 by about 2e-7), returned as float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from emojiray.errors import EmojirayError

PSNR_CAP_DB = 100.0
SSIM_KERNEL = 11  # the Gaussian window's size: images must be at least this big
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_batch(x, name: str) -> torch.Tensor:
    """numpy or torch (N, C, H, W) float -> float64 torch tensor on the same device."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.require(x, requirements=["W"]))  # copies read-only arrays
    if not isinstance(x, torch.Tensor):
        raise EmojirayError(f"{name} must be a torch tensor or numpy array, not {type(x).__name__}")
    if x.ndim != 4:
        raise EmojirayError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise EmojirayError(f"{name} must be float images in [-1, 1], got dtype {x.dtype}")
    return x.detach().to(torch.float64)


def _pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (reconstruction, target) pair and return both as float64 on x's device."""
    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    if x.shape != y.shape:
        raise EmojirayError(f"image batches differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise EmojirayError("empty image batch")
    return x, y.to(x.device)


# -- per-image values: (N,) float64 tensors ----------------------------------------------------


def per_image_mse(x, y) -> torch.Tensor:
    """Mean squared error of each image: (N,)."""
    return _mse(*_pair(x, y))


def per_image_psnr(x, y, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB of each image, capped at PSNR_CAP_DB: (N,)."""
    return _psnr(*_pair(x, y), data_range)


def per_image_ssim(x, y, data_range: float = 2.0) -> torch.Tensor:
    """SSIM of each image (Gaussian window 11, sigma 1.5, averaged over channels): (N,)."""
    return _ssim(*_pair(x, y), data_range)


def _mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).flatten(1).mean(dim=1)


def _psnr(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    return (10 * torch.log10(data_range**2 / _mse(x, y))).clamp(max=PSNR_CAP_DB)  # 1/0 = inf: capped


def _ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    if min(x.shape[-2:]) < SSIM_KERNEL:
        raise EmojirayError(f"SSIM needs images of at least {SSIM_KERNEL}x{SSIM_KERNEL}, got "
                            f"{x.shape[-2]}x{x.shape[-1]}")
    x, y = x.float(), y.float()
    n, c = x.shape[:2]
    d = torch.arange(SSIM_KERNEL, dtype=x.dtype, device=x.device) - (SSIM_KERNEL - 1) / 2
    g = torch.exp(-0.5 * (d / SSIM_SIGMA) ** 2)
    g = g / g.sum()
    # local (Gaussian-weighted) means of x, y, x², y², xy per channel at every pixel (the borders
    # reflected): one grouped convolution of the five maps (on a CPU faster than two 1-D passes)
    pad = (SSIM_KERNEL - 1) // 2
    x, y = (F.pad(t, (pad, pad, pad, pad), mode="reflect") for t in (x, y))
    window = torch.outer(g, g).expand(c, 1, SSIM_KERNEL, SSIM_KERNEL)
    moments = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), window, groups=c)
    mu_x, mu_y, xx, yy, xy = moments.view(5, n, c, *moments.shape[-2:])
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    var_x, var_y, cov = (xx - mu_x**2).clamp(min=0), (yy - mu_y**2).clamp(min=0), xy - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(dim=1).double()


# -- batch means: python floats ------------------------------------------------------------------


def mse(x, y) -> float:
    """Mean squared error over the batch (all images have the same size, so per-image mean = global)."""
    return float(per_image_mse(x, y).mean())


def psnr(x, y, data_range: float = 2.0) -> float:
    """Mean over the batch of per-image PSNR (dB, each capped at PSNR_CAP_DB)."""
    return float(per_image_psnr(x, y, data_range).mean())


def ssim(x, y, data_range: float = 2.0) -> float:
    """Mean over the batch of per-image SSIM (1 for identical images)."""
    return float(per_image_ssim(x, y, data_range).mean())


class ReconstructionMeter:
    """Streams batches and keeps per-image sums, so evaluation never holds all images at once.

    ``compute()`` gives the same numbers as :func:`mse`, :func:`psnr` and :func:`ssim` on the
    concatenation of every batch passed to ``update``.
    """

    def __init__(self, data_range: float = 2.0):
        self.data_range = data_range
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.sum_mse = 0.0
        self.sum_psnr = 0.0
        self.sum_ssim = 0.0
        self.count = 0

    def update(self, x, y) -> None:
        """Add one batch: x the reconstructions, y the targets, both (N, C, H, W) in [-1, 1]."""
        x, y = _pair(x, y)  # validated and converted once for the three metrics
        self.sum_mse += float(_mse(x, y).sum())
        self.sum_psnr += float(_psnr(x, y, self.data_range).sum())
        self.sum_ssim += float(_ssim(x, y, self.data_range).sum())
        self.count += int(x.shape[0])

    def compute(self) -> dict[str, float | int]:
        """{"mse", "psnr", "ssim": means over all images seen, "count": number of images}."""
        if self.count == 0:
            raise EmojirayError("ReconstructionMeter.compute() called before any update()")
        n = self.count
        return {"mse": self.sum_mse / n, "psnr": self.sum_psnr / n, "ssim": self.sum_ssim / n, "count": n}


def psnr_from_mse(mse_value: float, data_range: float = 2.0) -> float:
    """10·log10(range² / MSE), capped at PSNR_CAP_DB (for a single MSE, not a batch mean)."""
    if mse_value <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(data_range**2 / mse_value))
