"""Memorization and diversity of generated samples (pure PyTorch/numpy).

Memorization: for every sample, the distance to its nearest training image,

* in pixel space: RMSE over all pixels with values in [0, 1] (0 = an exact copy; PSNR = −20·log10);
* in feature space: Euclidean distance between Inception pool3 features.

A sample is a **near-copy** when that distance is at most a threshold calibrated on real data:
the ``quantile`` (default 1 %) of the same distance measured from held-out real images to the
training set. Held-out emoji are new by construction (the split is by emoji identity, so no skin
tone or vendor variant of a held-out emoji is in the training set); a sample that is closer to a
training image than 99 % of genuinely new emoji counts as copied. An exact copy (distance 0) is
always flagged. The threshold is reported with the share.

Diversity: the share of distinct code sequences among the samples, and the mean pairwise
Euclidean distance of the samples' features (compare it with the same number on real images).
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np
import torch

from emojiray.errors import EmojirayError


def flat_pixels(images, device=None) -> torch.Tensor:
    """(N, H, W, 3) uint8 (numpy or torch) -> (N, H·W·3) float32 in [0, 1]."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])) if isinstance(images, np.ndarray) else images
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise EmojirayError(f"images must be (N, H, W, C) uint8, got {x.dtype} {tuple(x.shape)}")
    return x.to(device).reshape(x.shape[0], -1).float().div_(255.0)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, support: torch.Tensor, chunk_size: int = 1024,
                       support_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``queries`` (Nq, D): (distance, index) of its nearest row of ``support`` (Ns, D).

    The neighbour is found with one matrix product per chunk (‖y‖² − 2 x·y), then its distance is
    recomputed directly as ‖x − y‖, so an exact copy measures exactly 0 (the product form alone
    loses that to cancellation in float32).
    """
    if queries.ndim != 2 or support.ndim != 2 or queries.shape[1] != support.shape[1]:
        raise EmojirayError(f"nearest_neighbours needs (Nq, D) and (Ns, D), got {tuple(queries.shape)} "
                            f"and {tuple(support.shape)}")
    if support.shape[0] == 0:
        raise EmojirayError("nearest_neighbours: the support set is empty")
    support_sq = (support * support).sum(1) if support_sq is None else support_sq  # (Ns,)
    dists, idxs = [], []
    for rows in queries.split(chunk_size):
        score = support_sq[None, :] - 2.0 * rows @ support.T  # (chunk, Ns) = ‖x−y‖² − ‖x‖²
        idx = score.argmin(1)
        dists.append((rows - support[idx]).norm(dim=1))
        idxs.append(idx)
    if not dists:
        return queries.new_zeros(0), torch.zeros(0, dtype=torch.long, device=queries.device)
    return torch.cat(dists), torch.cat(idxs)


def rmse_to_psnr(rmse) -> np.ndarray:
    """Pixel RMSE in [0, 1] units -> PSNR in dB (capped at 100 for exact copies)."""
    r = np.asarray(rmse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.minimum(-20.0 * np.log10(np.maximum(r, 0.0)), 100.0)


def near_copy_threshold(heldout_distances, quantile: float = 0.01) -> float:
    """The ``quantile`` of held-out images' nearest-training distances (see the module docstring)."""
    d = np.asarray(heldout_distances, dtype=np.float64)
    if d.size == 0:
        raise EmojirayError("calibrating the near-copy threshold needs held-out images")
    if not 0.0 <= quantile < 1.0:
        raise EmojirayError(f"eval.memorization_quantile must be in [0, 1), got {quantile}")
    return float(np.quantile(d, quantile))


def memorization(distances, heldout_distances, quantile: float = 0.01) -> dict[str, float]:
    """Share of samples within the calibrated threshold of a training image, and the distances."""
    d = np.asarray(distances, dtype=np.float64)
    threshold = near_copy_threshold(heldout_distances, quantile)
    flagged = d <= threshold
    return {"threshold": threshold, "quantile": quantile, "share": float(flagged.mean()) if d.size else 0.0,
            "count": int(flagged.sum()), "median": float(np.median(d)) if d.size else float("nan"),
            "heldout_median": float(np.median(heldout_distances))}


def code_sequence_hashes(codes: Mapping[str, np.ndarray]) -> list[str]:
    """One hash per sample of all its code grids (levels in sorted order)."""
    levels = sorted(codes)
    n = len(codes[levels[0]]) if levels else 0
    rows = [np.ascontiguousarray(np.asarray(codes[lv]).astype(np.int32).reshape(n, -1)) for lv in levels]
    out = []
    for i in range(n):
        h = hashlib.blake2b(digest_size=16)
        for r in rows:
            h.update(r[i].tobytes())
        out.append(h.hexdigest())
    return out


def distinct_share(hashes) -> float:
    """Distinct items / items (1 = every sample has its own code sequence)."""
    hashes = list(hashes)
    return len(set(hashes)) / len(hashes) if hashes else 0.0


def mean_pairwise_distance(features, max_items: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance between distinct rows (on a seeded subset of ``max_items`` rows)."""
    f = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if f.ndim != 2 or f.shape[0] < 2:
        raise EmojirayError(f"mean pairwise distance needs (N >= 2, D) features, got {tuple(f.shape)}")
    if f.shape[0] > max_items:
        idx = np.sort(np.random.default_rng(seed).choice(f.shape[0], max_items, replace=False))
        f = f[torch.from_numpy(idx)]
    return float(torch.pdist(f).mean())
