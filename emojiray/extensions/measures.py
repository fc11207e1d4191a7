"""What the extensions measure with: per-image PSNR/SSIM, Inception features and FID, JSON-safe records."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from emojiray.devices import resolve_device


def image_scores(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR in dB, SSIM) of uint8 NHWC images against their targets."""
    from emojiray.images import to_model_input
    from emojiray.metrics.image import per_image_psnr, per_image_ssim

    a = to_model_input(torch.from_numpy(np.ascontiguousarray(pred)), channels_last=False)
    b = to_model_input(torch.from_numpy(np.ascontiguousarray(target)), channels_last=False)
    return per_image_psnr(a, b).numpy(), per_image_ssim(a, b).numpy()


def inception_features(device=None) -> Callable[[np.ndarray], np.ndarray]:
    """The standard TF-Inception pool3 features (uint8 NHWC -> (N, 2048))."""
    from emojiray.metrics.inception import InceptionFeatures

    return InceptionFeatures(resolve_device(device))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float | None:
    """FID between two feature sets, or None when either has fewer than 2 images."""
    from emojiray.metrics.fid import fid_from_features

    if len(features_a) < 2 or len(features_b) < 2:
        return None
    return float(fid_from_features(features_a, features_b))


def json_safe(obj: Any) -> Any:
    """Floats rounded, numpy scalars and arrays made plain, NaN -> None (for metrics JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if v != v or v in (float("inf"), float("-inf")) else round(v, 5)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
