"""Memorization and diversity metrics: nearest neighbours, calibrated near-copy share, code diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emojiray.errors import EmojirayError
from emojiray.metrics.memorization import (code_sequence_hashes, distinct_share, flat_pixels, mean_pairwise_distance,
                                           memorization, near_copy_threshold, nearest_neighbours, rmse_to_psnr)


def test_nearest_neighbours_match_brute_force_and_copies_measure_exactly_zero():
    g = torch.Generator().manual_seed(0)
    support = torch.rand(300, 768, generator=g)
    queries = torch.cat([torch.rand(50, 768, generator=g), support[[7, 123]]])  # two exact copies
    dist, idx = nearest_neighbours(queries, support, chunk_size=16)
    brute = torch.cdist(queries.double(), support.double(), compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.equal(idx, brute.argmin(1))
    assert torch.allclose(dist.double(), brute.min(1).values, atol=1e-4)
    assert idx[-2:].tolist() == [7, 123]
    assert dist[-2:].tolist() == [0.0, 0.0]  # exact, not ~1e-3 from the ‖x‖² − 2x·y + ‖y‖² form


def test_flat_pixels_scale_and_rmse_of_a_uniform_offset():
    a = np.full((1, 4, 4, 3), 100, np.uint8)
    b = np.full((1, 4, 4, 3), 151, np.uint8)
    x, y = flat_pixels(a), flat_pixels(b)
    assert x.shape == (1, 48) and float(x.max()) == pytest.approx(100 / 255)
    dist, _ = nearest_neighbours(x, y)
    rmse = float(dist[0]) / 48 ** 0.5
    assert rmse == pytest.approx(51 / 255, rel=1e-5)
    assert rmse_to_psnr([rmse])[0] == pytest.approx(-20 * np.log10(51 / 255), rel=1e-5)
    assert rmse_to_psnr([0.0])[0] == 100.0
    with pytest.raises(EmojirayError, match="uint8"):
        flat_pixels(np.zeros((1, 4, 4, 3), np.float32))


def test_calibrated_threshold_flags_copies_and_not_new_images():
    rng = np.random.default_rng(0)
    heldout = rng.uniform(0.1, 0.3, 1000)  # distances of genuinely new images to the training set
    threshold = near_copy_threshold(heldout, 0.01)
    assert threshold == pytest.approx(np.quantile(heldout, 0.01))
    samples = np.concatenate([np.zeros(3), np.full(2, threshold / 2), rng.uniform(0.15, 0.3, 95)])
    m = memorization(samples, heldout, 0.01)
    assert m["count"] == 5 and m["share"] == pytest.approx(0.05)
    assert m["threshold"] == threshold and m["quantile"] == 0.01
    # an exact copy is a near-copy even when the threshold is 0
    assert memorization([0.0, 0.2], [0.0, 0.1, 0.2], 0.0)["count"] == 1


def test_threshold_mistakes_raise():
    with pytest.raises(EmojirayError, match="held-out"):
        near_copy_threshold([], 0.01)
    with pytest.raises(EmojirayError, match="memorization_quantile"):
        near_copy_threshold([0.1], 1.5)


def test_code_sequence_hashes_see_every_level():
    top = np.array([[[1, 2]], [[1, 2]], [[1, 2]]])
    bottom = np.array([[[0, 0, 0]], [[0, 0, 0]], [[0, 0, 1]]])
    h = code_sequence_hashes({"top": top, "bottom": bottom})
    assert h[0] == h[1] != h[2]
    assert distinct_share(h) == pytest.approx(2 / 3)
    assert distinct_share([]) == 0.0


def test_mean_pairwise_distance_closed_form_and_subset():
    pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # distances 3, 4, 5
    assert mean_pairwise_distance(pts) == pytest.approx(4.0)
    big = np.random.default_rng(1).normal(size=(500, 8))
    full = mean_pairwise_distance(big, max_items=500)
    sub = mean_pairwise_distance(big, max_items=200, seed=3)
    assert sub == mean_pairwise_distance(big, max_items=200, seed=3)  # seeded
    assert sub == pytest.approx(full, rel=0.05)
    assert mean_pairwise_distance(np.zeros((5, 3))) == 0.0  # a collapsed set has no diversity
    with pytest.raises(EmojirayError, match="N >= 2"):
        mean_pairwise_distance(np.zeros((1, 3)))
