"""Inception Score (Salimans et al. 2016) from any classifier's class probabilities (pure NumPy).

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

It is 1 when every image gets the same prediction (or every prediction is uniform) and C when the
predictions are confident and spread evenly over C classes. As in the original recipe the set is cut
into ``splits`` contiguous parts, each with its own marginal p(y), and the mean and standard
deviation over the parts are reported.

Small sets: an estimate of p(y) from a few images is too peaked and biases IS down, so every split
must hold at least ``max(MIN_SPLIT, 2 * C)`` images; fewer splits are used when the set is too small
for the requested number (one split, std 0, below that).
"""

from __future__ import annotations

import numpy as np

from emojiray.errors import EmojirayError

MIN_SPLIT = 20
EPS = 1e-12


def effective_splits(n: int, classes: int, splits: int) -> int:
    """How many splits a set of ``n`` predictions over ``classes`` classes gets (>= 1)."""
    per_split = max(MIN_SPLIT, 2 * classes)
    return max(1, min(int(splits), n // per_split))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of IS over the splits of (N, C) class probabilities (rows sum to 1)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise EmojirayError(f"inception_score wants (N, C) probabilities with N >= 1, got shape {p.shape}")
    if splits < 1:
        raise EmojirayError(f"Inception Score splits must be >= 1, got {splits}")
    scores = []
    for part in np.array_split(p, effective_splits(len(p), p.shape[1], splits)):
        marginal = part.mean(axis=0, keepdims=True)  # p(y) of this split, (1, C)
        kl = (part * (np.log(part + EPS) - np.log(marginal + EPS))).sum(axis=1)  # (n,)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))
