"""FID, mergeable feature statistics, KID and k-NN precision/recall on synthetic features."""

import numpy as np
import pytest
import torch

from emojiray.errors import EmojirayError
from emojiray.metrics.fid import FeatureStats, fid_from_features, frechet_distance, kid, precision_recall


def gaussian(n: int, d: int = 64, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n, d) samples of N(shift, scale²·I)."""
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def closed_form_fid(mu1, var1, mu2, var2) -> float:
    """FID of two Gaussians with diagonal covariances (variances var1, var2)."""
    return float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum())


# -- FID -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cholesky", "sqrtm"])
def test_fid_of_a_set_with_itself_is_zero(method):
    x = gaussian(500)
    assert abs(fid_from_features(x, x, method=method)) < 1e-6


@pytest.mark.parametrize("method", ["cholesky", "sqrtm"])
def test_fid_is_symmetric(method):
    x, y = gaussian(500, seed=1), gaussian(400, shift=0.3, scale=1.5, seed=2)
    a, b = fid_from_features(x, y, method=method), fid_from_features(y, x, method=method)
    assert a > 1.0
    assert a == pytest.approx(b, rel=1e-6)


def test_cholesky_and_sqrtm_agree():
    x, y = gaussian(300, d=32, seed=3), gaussian(300, d=32, shift=0.2, scale=0.7, seed=4) ** 2
    sx, sy = FeatureStats.from_features(x), FeatureStats.from_features(y)
    assert frechet_distance(sx, sy) == pytest.approx(frechet_distance(sx, sy, method="sqrtm"), rel=1e-6)


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(5)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    var1, var2 = rng.uniform(0.2, 3.0, size=d), rng.uniform(0.2, 3.0, size=d)
    expected = closed_form_fid(mu1, var1, mu2, var2)
    # exact moments
    exact = frechet_distance(FeatureStats.from_moments(mu1, np.diag(var1), 10),
                             FeatureStats.from_moments(mu2, np.diag(var2), 10))
    assert exact == pytest.approx(expected, rel=1e-9)
    # estimated from samples
    n = 50_000
    x = mu1 + np.sqrt(var1) * rng.normal(size=(n, d))
    y = mu2 + np.sqrt(var2) * rng.normal(size=(n, d))
    assert fid_from_features(x, y) == pytest.approx(expected, rel=0.01)


def test_fid_with_fewer_samples_than_dimensions_matches_the_nuclear_norm_formula():
    """Rank-deficient covariances (n < d, as with 2048-d features of a few images): with centred
    data A₁, A₂, tr √(Σ₁Σ₂) = ‖A₁A₂ᵀ‖_* / √((n₁−1)(n₂−1)), an independent exact formula."""
    x, y = gaussian(20, d=64, seed=6), gaussian(30, d=64, shift=0.5, seed=7)
    a1, a2 = x - x.mean(0), y - y.mean(0)
    tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(19 * 29)
    expected = (((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(np.cov(x, rowvar=False))
                + np.trace(np.cov(y, rowvar=False)) - 2 * tr_sqrt)
    assert fid_from_features(x, y) == pytest.approx(expected, rel=1e-9)


def test_fid_of_constant_features_is_the_squared_mean_distance():
    x, y = np.ones((5, 8)), np.full((7, 8), 3.0)  # zero covariances (rank 0)
    assert fid_from_features(x, y) == pytest.approx(8 * 2.0**2, rel=1e-12)


def test_fid_grows_with_a_mean_shift():
    x = gaussian(500, seed=8)
    values = [fid_from_features(x, gaussian(500, shift=s, seed=9)) for s in (0.0, 0.1, 0.3, 1.0)]
    assert values == sorted(values) and len(set(values)) == 4
    # the mean term dominates for a large shift: 64 · 1.0²
    assert values[-1] == pytest.approx(64.0, rel=0.15)


def test_feature_stats_match_numpy_and_merge_exactly():
    x = gaussian(600, d=24, shift=0.4, seed=10)
    whole = FeatureStats.from_features(x)
    assert np.allclose(whole.mean, x.mean(0), rtol=0, atol=1e-12)
    assert np.allclose(whole.cov, np.cov(x, rowvar=False), rtol=0, atol=1e-12)
    parts = [FeatureStats.from_features(p) for p in (x[:100], x[100:101], x[101:])]
    merged = FeatureStats.merge(parts)
    assert merged.n == 600
    assert np.abs(merged.mean - whole.mean).max() < 1e-9
    assert np.abs(merged.cov - whole.cov).max() < 1e-9
    assert FeatureStats.from_features(torch.from_numpy(x)).n == 600


def test_feature_stats_round_trip_through_npz(tmp_path):
    stats = FeatureStats.from_features(gaussian(50, d=8, seed=11))
    stats.save(tmp_path / "ref.npz")
    back = FeatureStats.load(tmp_path / "ref.npz")
    assert back.n == 50 and np.array_equal(back.sum_outer, stats.sum_outer)


def test_stats_mistakes_raise():
    with pytest.raises(EmojirayError, match="at least 2 samples"):
        FeatureStats.from_features(gaussian(1, d=4)).cov
    with pytest.raises(EmojirayError, match="dimensions"):
        FeatureStats.merge([FeatureStats.from_features(gaussian(5, d=4)),
                            FeatureStats.from_features(gaussian(5, d=3))])
    with pytest.raises(EmojirayError, match="dimensions differ"):
        fid_from_features(gaussian(5, d=4), gaussian(5, d=3))
    with pytest.raises(EmojirayError, match="unknown"):
        fid_from_features(gaussian(5, d=4), gaussian(5, d=4), method="svd")
    with pytest.raises(EmojirayError, match=r"\(N, D\)"):
        FeatureStats.from_features(np.zeros(5))


# -- KID -----------------------------------------------------------------------------------------


def test_kid_is_near_zero_for_one_distribution_and_larger_for_a_shift():
    x, y = gaussian(300, seed=12), gaussian(300, seed=13)
    shifted = gaussian(300, shift=0.5, seed=14)
    same_mean, same_std = kid(x, y, subset_size=100, subsets=20)
    shift_mean, _ = kid(x, shifted, subset_size=100, subsets=20)
    assert shift_mean > 0.1
    assert abs(same_mean) < 0.05 * shift_mean
    assert same_std > 0


def test_kid_adapts_the_subset_size_to_small_sets_and_is_seeded():
    x, y = gaussian(40, seed=15), gaussian(30, shift=0.5, seed=16)
    a = kid(x, y)  # subset_size 1000 -> 30
    assert a == kid(x, y)
    assert a != kid(x, y, seed=1)
    assert a[0] > 0
    with pytest.raises(EmojirayError):
        kid(x[:1], y)


def test_kid_of_full_sets_is_the_unbiased_mmd():
    """With subset = whole set, every subset is the same: std 0, mean = MMD² computed by hand."""
    x, y = gaussian(12, d=5, seed=17), gaussian(12, d=5, shift=0.3, seed=18)
    k = lambda a, b: (a @ b.T / 5 + 1) ** 3  # noqa: E731
    m = 12
    off = lambda kk: (kk.sum() - np.trace(kk)) / (m * (m - 1))  # noqa: E731
    expected = off(k(x, x)) + off(k(y, y)) - 2 * k(x, y).mean()
    mean, std = kid(x, y, subset_size=12, subsets=3)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


# -- precision / recall ----------------------------------------------------------------------------


def modes(n: int, centres: np.ndarray, spread: float, seed: int) -> np.ndarray:
    """(n, d) samples spread around the rows of centres (cycled)."""
    rng = np.random.default_rng(seed)
    which = np.arange(n) % len(centres)
    return centres[which] + spread * rng.normal(size=(n, centres.shape[1]))


CENTRES = np.random.default_rng(100).normal(scale=10.0, size=(4, 16))  # 4 well-separated modes


def test_identical_sets_have_full_precision_and_recall():
    x = modes(200, CENTRES, 1.0, seed=19)
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x, x.copy(), k=3, chunk_size=50) == (1.0, 1.0)


def test_far_away_fakes_have_zero_precision():
    real = modes(200, CENTRES, 1.0, seed=20)
    fake = modes(200, CENTRES + 100.0, 1.0, seed=21)
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_fakes_from_one_tight_mode_have_high_precision_and_low_recall():
    real = modes(400, CENTRES, 1.0, seed=22)
    fake = modes(100, CENTRES[:1], 0.3, seed=23)
    precision, recall = precision_recall(real, fake, k=3, chunk_size=64)
    assert precision > 0.95
    assert recall < 0.2


def test_precision_recall_checks_k():
    x = gaussian(3, d=4)
    with pytest.raises(EmojirayError, match="k=3"):
        precision_recall(x, x, k=3)
