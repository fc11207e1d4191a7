"""The emoji classifier: a small residual CNN with one linear head per label (pure PyTorch).

It is the measuring instrument of conditional generation: its emotion, category and vendor heads
say whether a sample shows what it was asked for (agreement), and give the Inception Score
(Salimans et al. 2016) over emoji classes, which the standard TF-Inception pool3 network cannot
(it carries no classifier head). ``features()`` is its penultimate layer (global average pool).

Layout (channels c, image side S in {32, 64}): a 3x3 stem, then log2(S) - 2 stages, each a
stride-2 pre-activation residual block (He et al. 2016, "Identity mappings") followed by a plain
one, doubling the width up to 4c, so the last map is 4x4 at any supported size; BatchNorm + ReLU,
global average pool, dropout, one ``nn.Linear`` per label.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PreActBlock(nn.Module):
    """x -> shortcut(x) + conv3x3(relu(bn(conv3x3(relu(bn(x)))))), optionally strided."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        h = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(h)
        h = self.conv1(h)
        h = self.conv2(torch.relu(self.bn2(h)))
        return skip + h


class EmojiClassifier(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> {label: (B, C_label) logits}, one head per label."""

    def __init__(self, classes: dict[str, int], channels: int = 64, size: int = 32, dropout: float = 0.1):
        super().__init__()
        stages = int(math.log2(size)) - 2 if size > 0 else 0
        if size < 8 or 2 ** (stages + 2) != size:
            raise ValueError(f"the classifier wants a power-of-two image side >= 8, got {size}")
        if not classes or min(classes.values()) < 1:
            raise ValueError(f"every head needs at least one class, got {classes}")
        self.labels = list(classes)
        self.size = size
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        blocks, c = [], channels
        for i in range(stages):
            out = channels * min(2 ** (i + 1), 4)
            blocks += [PreActBlock(c, out, stride=2), PreActBlock(out, out)]
            c = out
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(c)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({label: nn.Linear(c, n) for label, n in classes.items()})
        self.feature_dim = c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, feature_dim): the pooled penultimate layer."""
        h = self.blocks(self.stem(x))
        return torch.relu(self.norm(h)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.dropout(self.features(x))
        return {label: head(f) for label, head in self.heads.items()}
