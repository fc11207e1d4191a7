"""Inception Score from class probabilities: the two ends of its range, splits and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from emojiray.errors import EmojirayError
from emojiray.metrics.inception_score import effective_splits, inception_score


def test_uniform_predictions_score_one():
    mean, std = inception_score(np.full((200, 7), 1 / 7), splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-9)


def test_identical_confident_predictions_score_one():
    probs = np.zeros((100, 5))
    probs[:, 2] = 1
    assert inception_score(probs, splits=1)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_confident_predictions_spread_evenly_score_the_number_of_classes(classes):
    n = 40 * classes * 3
    probs = np.eye(classes)[np.arange(n) % classes]  # every split holds each class equally often
    mean, std = inception_score(probs, splits=3)
    assert mean == pytest.approx(classes, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_score_rises_with_confidence_and_spread():
    rng = np.random.default_rng(0)
    classes = 6
    ids = rng.integers(0, classes, 600)
    sharp = 0.9 * np.eye(classes)[ids] + 0.1 / classes
    blurry = 0.3 * np.eye(classes)[ids] + 0.7 / classes
    lopsided = 0.9 * np.eye(classes)[ids % 2] + 0.1 / classes  # confident but only two classes
    s, b, lop = (inception_score(p, splits=5)[0] for p in (sharp, blurry, lopsided))
    assert s > b > 1 and s > lop > 1
    assert s <= classes


def test_splits_adapt_to_small_sets():
    assert effective_splits(10_000, 10, 10) == 10
    assert effective_splits(100, 10, 10) == 5  # at least 2 * C = 20 per split
    assert effective_splits(64, 2, 10) == 3  # at least 20 per split
    assert effective_splits(8, 10, 10) == 1
    probs = np.eye(4)[np.arange(8) % 4]
    mean, std = inception_score(probs, splits=10)  # one split: std 0
    assert mean == pytest.approx(4.0) and std == 0.0


def test_bad_input_is_a_one_line_error():
    with pytest.raises(EmojirayError, match="N >= 1"):
        inception_score(np.zeros((0, 3)))
    with pytest.raises(EmojirayError, match=r"\(N, C\)"):
        inception_score(np.ones(5))
    with pytest.raises(EmojirayError, match="splits must be >= 1"):
        inception_score(np.full((4, 2), 0.5), splits=0)
