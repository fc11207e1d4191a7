"""Codebook statistics: histogram, usage, perplexity, KL to uniform, bits per image."""

import math

import numpy as np
import pytest
import torch

from emojiray.errors import EmojirayError
from emojiray.metrics.codes import (
    bits_per_image,
    code_histogram,
    entropy_bits,
    entropy_coded_bits_per_image,
    kl_from_uniform,
    kl_from_uniform_bits,
    perplexity,
    usage,
)


def test_histogram_counts_every_code_of_any_shape():
    idx = torch.tensor([[[0, 1], [1, 3]], [[3, 3], [0, 1]]])  # (2, 2, 2) code grid
    hist = code_histogram(idx, K=5)
    assert hist.tolist() == [2, 3, 0, 3, 0]
    assert hist.dtype == np.int64
    assert usage(hist) == 3
    assert code_histogram(np.array([], dtype=np.int64), K=3).tolist() == [0, 0, 0]


def test_uniform_use_has_perplexity_k_and_no_kl():
    K = 16
    hist = code_histogram(torch.arange(K).repeat(5), K)
    assert usage(hist) == K
    assert perplexity(hist) == pytest.approx(K, rel=1e-12)
    assert kl_from_uniform(hist, K) == pytest.approx(0.0, abs=1e-12)
    assert entropy_bits(hist) == pytest.approx(4.0, rel=1e-12)


def test_collapsed_codebook_has_perplexity_one_and_maximal_kl():
    K = 512
    hist = code_histogram(torch.full((4, 8, 8), 7), K)
    assert usage(hist) == 1
    assert perplexity(hist) == pytest.approx(1.0)
    assert kl_from_uniform(hist, K) == pytest.approx(math.log(K))
    assert kl_from_uniform_bits(hist, K) == pytest.approx(9.0)


def test_two_codes_three_to_one():
    hist = np.array([3, 1, 0, 0])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert perplexity(hist) == pytest.approx(math.exp(h), rel=1e-12)
    assert kl_from_uniform(hist, 4) == pytest.approx(math.log(4) - h, rel=1e-12)


def test_bits_per_image_fixed_rate_and_entropy_coded():
    grids = {"top": (8, 8), "bottom": (16, 16)}
    K = {"top": 512, "bottom": 256}
    assert bits_per_image(grids, K) == pytest.approx(64 * 9 + 256 * 8)
    hists = {"top": np.ones(512), "bottom": np.array([1, 1, 0, 0])}  # 9 bits and 1 bit per code
    assert entropy_coded_bits_per_image(hists, grids) == pytest.approx(64 * 9 + 256 * 1)
    assert entropy_coded_bits_per_image(hists, grids) <= bits_per_image(grids, K)


def test_user_mistakes_raise():
    with pytest.raises(EmojirayError, match=r"\[0, 4\)"):
        code_histogram(torch.tensor([0, 4]), K=4)
    with pytest.raises(EmojirayError):
        code_histogram(np.array([0.5]), K=4)
    with pytest.raises(EmojirayError):
        perplexity(np.zeros(4))
    with pytest.raises(EmojirayError, match="different levels"):
        bits_per_image({"top": (8, 8)}, {"bottom": 512})
