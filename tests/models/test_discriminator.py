"""The patch discriminator and the adversarial losses of the tokenizer (emojiray/models/discriminator.py)."""

from __future__ import annotations

import pytest
import torch

from emojiray.models.discriminator import PatchDiscriminator, balance, generator_loss, hinge_d_loss


@pytest.mark.parametrize("layers,grid", [(1, 16), (3, 4), (5, 1)])
def test_one_logit_per_patch(layers, grid):
    d = PatchDiscriminator(channels=12, layers=layers)
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, grid, grid)


def test_a_discriminator_needs_a_layer():
    with pytest.raises(ValueError, match="at least one layer"):
        PatchDiscriminator(layers=0)


def test_hinge_losses():
    ones = torch.ones(2, 1, 4, 4)
    assert hinge_d_loss(2 * ones, -2 * ones) == 0  # both sides beyond the margin: nothing to learn
    assert hinge_d_loss(0 * ones, 0 * ones) == 1
    assert hinge_d_loss(-ones, ones) == 2
    assert generator_loss(3 * ones) == -3


def test_balance_matches_the_gradient_scales_at_the_output():
    out = torch.randn(4, 3, 8, 8, requires_grad=True)
    target = torch.zeros_like(out)
    recon = ((out - target) ** 2).mean()
    w = balance(recon, 4 * recon, out)  # the adversarial term's gradient is 4x the reconstruction's
    assert w == pytest.approx(0.25, rel=1e-3) and not w.requires_grad
    assert balance(recon, 0 * out.sum(), out, max_weight=50.0) == 50  # no adversarial gradient: the clamp
    assert out.grad is None  # measured without touching any .grad
