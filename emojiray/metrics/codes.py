"""Codebook statistics from VQ code indices: usage, perplexity, KL to uniform, code lengths.

A histogram is a (K,) int64 numpy array of code counts (``code_histogram``); every statistic
below reads the empirical distribution p = hist / hist.sum(). Entropies are in nats unless the
name says bits. Results are plain python floats and ints.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from emojiray.errors import EmojirayError


def code_histogram(indices, K: int) -> np.ndarray:
    """Counts of each code 0..K-1 in an index tensor/array of any shape: (K,) int64."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    idx = np.asarray(indices).reshape(-1)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise EmojirayError(f"code indices must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise EmojirayError(f"code indices must lie in [0, {K}), got [{idx.min()}, {idx.max()}]")
    return np.bincount(idx.astype(np.int64), minlength=K).astype(np.int64)


def _probabilities(hist) -> np.ndarray:
    """Histogram -> empirical distribution (K,) float64."""
    h = np.asarray(hist, dtype=np.float64).reshape(-1)
    if (h < 0).any() or h.sum() <= 0:
        raise EmojirayError("code histogram must be non-negative with at least one count")
    return h / h.sum()


def usage(hist) -> int:
    """Number of codes used at least once."""
    return int((np.asarray(hist) > 0).sum())


def entropy_nats(hist) -> float:
    """Entropy H(p) in nats (0 · log 0 = 0)."""
    p = _probabilities(hist)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def entropy_bits(hist) -> float:
    """Entropy H(p) in bits."""
    return entropy_nats(hist) / math.log(2)


def perplexity(hist) -> float:
    """exp(H): the effective number of codes (K for uniform use, 1 for a single code)."""
    return math.exp(entropy_nats(hist))


def kl_from_uniform(hist, K: int) -> float:
    """KL(p ‖ uniform over K) = log K − H(p), in nats."""
    if len(hist) > K:
        raise EmojirayError(f"histogram has {len(hist)} bins, more than K={K}")
    return max(0.0, math.log(K) - entropy_nats(hist))


def kl_from_uniform_bits(hist, K: int) -> float:
    """KL(p ‖ uniform over K) = log2 K − H(p), in bits."""
    return kl_from_uniform(hist, K) / math.log(2)


def _check_levels(a: Mapping, b: Mapping, what: str) -> None:
    if set(a) != set(b):
        raise EmojirayError(f"{what} name different levels: {sorted(map(str, a))} vs {sorted(map(str, b))}")


def bits_per_image(grid_sizes: Mapping[str, tuple[int, int]], K: Mapping[str, int]) -> float:
    """Fixed-rate code length of one image: Σ over levels of h·w·log2 K."""
    _check_levels(grid_sizes, K, "grid_sizes and K")
    return float(sum(h * w * math.log2(K[level]) for level, (h, w) in grid_sizes.items()))


def entropy_coded_bits_per_image(hists: Mapping[str, np.ndarray],
                                 grid_sizes: Mapping[str, tuple[int, int]]) -> float:
    """Code length with an ideal per-level entropy coder: Σ over levels of h·w·H_bits(level)."""
    _check_levels(hists, grid_sizes, "hists and grid_sizes")
    return float(sum(h * w * entropy_bits(hists[level]) for level, (h, w) in grid_sizes.items()))
