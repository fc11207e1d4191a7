"""Convolutional building blocks of the VQ-VAE encoders and decoders (Razavi et al. 2019, fig. 2a)."""

from __future__ import annotations

import math

from torch import nn


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))): the VQ-VAE residual block."""

    def __init__(self, channels: int, res_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(res_channels, channels, 1),
        )

    def forward(self, x):
        return x + self.block(x)


def _halvings(factor: int) -> int:
    n = int(math.log2(factor)) if factor > 0 else -1
    if factor < 1 or 2**n != factor:
        raise ValueError(f"downsampling factor must be a power of two, got {factor}")
    return n


class Encoder(nn.Module):
    """(B, in, H, W) -> (B, channels, H/factor, W/factor): strided 4x4 convs, then res blocks."""

    def __init__(self, in_channels: int, channels: int, res_blocks: int, res_channels: int, factor: int):
        super().__init__()
        n = _halvings(factor)
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(n):
            out = channels // 2 if i < n - 1 else channels
            layers += [nn.Conv2d(c, out, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
            c = out
        layers.append(nn.Conv2d(c, channels, 3, padding=1))
        layers += [ResBlock(channels, res_channels) for _ in range(res_blocks)]
        layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """(B, in, h, w) -> (B, out, h*factor, w*factor): 3x3 conv, res blocks, transposed 4x4 convs.

    ``up_blocks`` > 0 adds that many residual blocks after each upsampling (at half the channels of
    the stage before) and a final 3x3 conv, so that the higher resolutions get capacity of their own:
    a flat VQ-VAE decoding 8x8 codes to 32 px otherwise draws every pixel from one transposed conv.
    ``up_blocks`` = 0 is the paper's decoder (and the layout of checkpoints written without it).
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, res_blocks: int,
                 res_channels: int, factor: int, up_blocks: int = 0):
        super().__init__()
        n = _halvings(factor)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1)]
        layers += [ResBlock(channels, res_channels) for _ in range(res_blocks)]
        layers.append(nn.ReLU(inplace=True))
        c = channels
        for i in range(n):
            last = i == n - 1 and not up_blocks
            width = max(channels // 2 ** (i + 1), 8) if up_blocks else channels // 2
            out = out_channels if last else width
            layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))
            if up_blocks:
                layers += [ResBlock(out, max(res_channels // 2 ** (i + 1), 8)) for _ in range(up_blocks)]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            c = out
        if n == 0 or up_blocks:
            layers.append(nn.Conv2d(c, out_channels, 3 if up_blocks else 1, padding=1 if up_blocks else 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
