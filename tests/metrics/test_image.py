"""MSE / PSNR / SSIM on batches in [-1, 1] and the streaming ReconstructionMeter."""

import math

import numpy as np
import pytest
import torch

from emojiray.errors import EmojirayError
from emojiray.metrics.image import (
    PSNR_CAP_DB,
    ReconstructionMeter,
    mse,
    per_image_psnr,
    per_image_ssim,
    psnr,
    psnr_from_mse,
    ssim,
)


def smooth_images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """(n, 3, size, size) float32 in [-0.9, 0.8]: random low-frequency patterns."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return x * 1.7 - 0.9


def test_identical_images_have_zero_mse_capped_psnr_and_unit_ssim():
    x = smooth_images(4)
    assert mse(x, x) == 0.0
    assert psnr(x, x) == PSNR_CAP_DB  # documented cap instead of inf
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)


def test_constant_offset_gives_the_closed_form_psnr():
    x = smooth_images(3)
    y = x + 0.1  # stays inside [-1, 1]
    assert mse(y, x) == pytest.approx(0.01, rel=1e-5)
    expected = 10 * math.log10(4 / 0.01)  # 26.0206 dB on range 2
    assert psnr(y, x) == pytest.approx(expected, rel=1e-5)
    assert psnr_from_mse(0.01) == pytest.approx(expected, rel=1e-12)
    assert psnr(y, x, data_range=1.0) == pytest.approx(10 * math.log10(1 / 0.01), rel=1e-5)


def test_psnr_is_a_mean_of_per_image_values_not_of_the_pooled_mse():
    x = torch.zeros(2, 3, 16, 16)
    y = x.clone()
    y[0] += 0.1  # image 0: MSE 0.01; image 1: exact
    values = per_image_psnr(y, x)
    assert values[1] == PSNR_CAP_DB
    assert psnr(y, x) == pytest.approx((10 * math.log10(400) + PSNR_CAP_DB) / 2, rel=1e-6)


def test_ssim_drops_with_noise_strength():
    x = smooth_images(4)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    values = [ssim((x + s * noise).clamp(-1, 1), x) for s in (0.02, 0.1, 0.4)]
    assert 1.0 > values[0] > values[1] > values[2]
    assert values[2] < 0.5


def test_numpy_input_works_like_torch():
    x = smooth_images(2)
    y = x + 0.05
    assert mse(y.numpy(), x.numpy()) == pytest.approx(mse(y, x), rel=1e-12)
    assert ssim(y.numpy(), x.numpy()) == pytest.approx(ssim(y, x), rel=1e-12)


def test_meter_equals_one_shot_computation_over_the_concatenation():
    g = torch.Generator().manual_seed(2)
    targets = [smooth_images(n, seed=i) for i, n in enumerate((5, 1, 3))]
    recons = [(t + 0.15 * torch.randn(t.shape, generator=g)).clamp(-1, 1) for t in targets]
    recons[1] = targets[1].clone()  # an exact reconstruction inside the stream
    meter = ReconstructionMeter()
    for r, t in zip(recons, targets):
        meter.update(r, t)
    got = meter.compute()
    x, y = torch.cat(recons), torch.cat(targets)
    assert got["count"] == 9
    assert got["mse"] == pytest.approx(mse(x, y), rel=1e-10)
    assert got["psnr"] == pytest.approx(psnr(x, y), rel=1e-10)
    assert got["ssim"] == pytest.approx(ssim(x, y), rel=1e-10)
    meter.reset()
    with pytest.raises(EmojirayError):
        meter.compute()


@pytest.mark.parametrize(
    "x, y",
    [
        (torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 15)),  # shape mismatch
        (torch.zeros(3, 16, 16), torch.zeros(3, 16, 16)),  # no batch axis
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16, dtype=torch.uint8)),
        ([0.0], [0.0]),
    ],
)
def test_bad_inputs_raise_one_line_errors(x, y):
    with pytest.raises(EmojirayError) as err:
        mse(x, y)
    assert "\n" not in str(err.value)


def test_ssim_rejects_images_smaller_than_its_window():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(EmojirayError, match="at least 11x11"):
        ssim(x, x)
    assert np.isfinite(psnr(x, x))


@pytest.mark.parametrize("size", [11, 32, 45])
def test_ssim_in_float32_and_psnr_match_torchmetrics_in_float64(size):
    """Our SSIM and PSNR are written out (no torchmetrics import at run time); torchmetrics, a test
    dependency, is the reference."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    x = torch.rand(16, 3, size, size + 3, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    y[0] = x[0]  # an exact reconstruction: SSIM 1, PSNR capped
    reference = structural_similarity_index_measure(y, x, data_range=2.0, reduction="none")
    got = per_image_ssim(y, x)
    assert got.dtype == torch.float64 and torch.allclose(got, reference, atol=1e-6, rtol=0)
    reference = peak_signal_noise_ratio(y, x, data_range=2.0, reduction="none", dim=(1, 2, 3)).clamp(max=PSNR_CAP_DB)
    got = per_image_psnr(y, x)
    # (torchmetrics converts to dB with a float32 constant: ~1e-6 dB apart)
    assert got.dtype == torch.float64 and torch.allclose(got, reference, atol=1e-5, rtol=0) and got[0] == PSNR_CAP_DB
