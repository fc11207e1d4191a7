"""A patch discriminator and the adversarial losses of a VQGAN-style tokenizer (Esser et al. 2021).

The discriminator judges overlapping patches, not whole images: ``layers`` strided 4x4 convs
(LeakyReLU, GroupNorm after the first) and a 3x3 conv to one logit per patch, so a 32 px image
gives a 4x4 grid of logits with 3 layers. It trains with the hinge loss; the tokenizer's decoder
gets ``-D(x̂)`` on top of its reconstruction loss. :func:`balance` scales that adversarial term
so that its gradient at the decoder's output is as large as the reconstruction's (VQGAN measures
the two gradients at the decoder's last weights; at the output the measure needs no parameter
gradients, so it works unchanged inside DDP).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, 1, H / 2**layers, W / 2**layers) logits."""

    def __init__(self, channels: int = 64, layers: int = 3, in_channels: int = 3):
        super().__init__()
        if layers < 1:
            raise ValueError(f"a discriminator needs at least one layer, got {layers}")
        blocks: list[nn.Module] = []
        c = in_channels
        for i in range(layers):
            out = channels * 2 ** min(i, 3)
            blocks.append(nn.Conv2d(c, out, 4, stride=2, padding=1))
            if i > 0:
                blocks.append(nn.GroupNorm(math.gcd(out, 32), out))
            blocks.append(nn.LeakyReLU(0.2, inplace=True))
            c = out
        blocks.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss: real patches above +1, reconstructed ones below -1."""
    return 0.5 * (F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss: make reconstructed patches look real to the discriminator."""
    return -fake_logits.float().mean()


def balance(recon_loss: torch.Tensor, adv_loss: torch.Tensor, output: torch.Tensor,
            max_weight: float = 1e4) -> torch.Tensor:
    """||d recon_loss / d output|| / ||d adv_loss / d output||, clamped to [0, max_weight] and
    detached: the weight that gives the adversarial term the reconstruction's gradient scale."""
    g_rec = torch.autograd.grad(recon_loss, output, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, output, retain_graph=True)[0]
    return (g_rec.float().norm() / (g_adv.float().norm() + 1e-4)).clamp(0, max_weight).detach()
