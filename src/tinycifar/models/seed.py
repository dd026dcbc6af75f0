"""The seed task's original network, rebuilt layer for layer from its model table.

It has 112,966 parameters, so it is *over* the 100k budget: it is kept as the reference
point the other models are measured against, not as something to ship.

Layer plan (input 3x32x32), each conv block being Conv2d -> ReLU -> BatchNorm2d -> Dropout::

    3x3 conv  3->10, pad 1          32x32   280
    5x5 conv 10->16, pad 1          30x30   4,016   (the table's 30x30 output needs pad 1)
    maxpool 2                       15x15
    1x1 conv 16->32 (no activation) 15x15   544
    3x3 conv 32->32, pad 1          15x15   9,248
    maxpool 2                        7x7
    3x3 conv 32->64, no pad (no act.) 5x5   18,496
    3x3 conv 64->64, pad 1           5x5    36,928
    grouped 3x3 conv 64->64, groups=32, pad 1 (no act.)  1,216 = 64*2*9 + 64
    1x1 conv 64->64                  5x5    4,160
    maxpool 2                        2x2
    3x3 conv 64->64, pad 1           2x2    36,928
    global average pool, linear 64->10      650
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.models import register_model


def _post(channels: int, dropout: float) -> list[nn.Module]:
    """The seed's post-conv tail: ReLU -> BatchNorm2d -> Dropout."""
    return [nn.ReLU(), nn.BatchNorm2d(channels), nn.Dropout(dropout)]


class SeedNet(nn.Module):
    """The seed's network; ``features`` is a flat Sequential so hooks see the seed's exact order."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.05) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 10, 3, padding=1),
            *_post(10, dropout),
            nn.Conv2d(10, 16, 5, padding=1),
            *_post(16, dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 1),
            nn.Conv2d(32, 32, 3, padding=1),
            *_post(32, dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.Conv2d(64, 64, 3, padding=1),
            *_post(64, dropout),
            nn.Conv2d(64, 64, 3, padding=1, groups=32),
            nn.Conv2d(64, 64, 1),
            *_post(64, dropout),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            *_post(64, dropout),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("seed", "the task's original network (112,966 params, over budget)")
def seed(num_classes: int = 10, dropout: float = 0.05) -> nn.Module:
    """The seed task's network exactly as its model table shows it."""
    return SeedNet(num_classes=num_classes, dropout=dropout)
