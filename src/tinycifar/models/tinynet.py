"""``tinynet``: the default before fastnet (and its shipped weights still ship). A plain CNN
shaped for CPU speed.

Downsample early (the stem pools to 16×16 at once: most CPU time is spent where
resolution is high), full 3×3 convolutions while channels are few (they run faster on
CPU than depthwise ones at equal MACs), depthwise-separable convolutions where channels
are wide (that is where parameters go), two identity shortcuts to ease optimisation, and
ECA channel attention before the head (almost free).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import ECA, ConvBNAct, DepthwiseSeparableConv, Residual
from tinycifar.models import register_model


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            ConvBNAct(3, w1),  # 32×32
            nn.MaxPool2d(2),  # → 16×16
            Residual(ConvBNAct(w1, w1)),
            ConvBNAct(w1, w2),
            nn.MaxPool2d(2),  # → 8×8
            Residual(ConvBNAct(w2, w2)),
            DepthwiseSeparableConv(w2, w3),
            nn.MaxPool2d(2),  # → 4×4
            DepthwiseSeparableConv(w3, w3),
            ECA(w3),
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("tinynet", "plain CNN for CPU speed, DS convs where wide, ECA attention (classic recipe)")
def tinynet(num_classes: int = 10, widths: tuple[int, int, int] = (32, 64, 128)) -> nn.Module:
    return TinyNet(num_classes, tuple(widths))
