"""``dilatednet``: a C1-C2-C3-C4 network with no max-pooling; dilation grows what it sees.

The question it answers: how far do strided and dilated convolutions get without any
pooling layer? (The C1C2C3C4-then-output shape is the one the ERA/EVA course assignments
use for CIFAR-10.) Four blocks, each ending in the layer that changes the resolution:

* C1 (32x32): one full 3x3 convolution, then a stride-2 3x3 convolution to 16x16. Full
  resolution is where CPU time goes, so only one layer runs there; the strided conv
  computes only its 16x16 outputs, so downsampling costs a quarter of a same-size conv, and
  unlike max-pooling it is learned.
* C2 (16x16): full 3x3 convolutions, the second one dilated (d=2): a 5x5 footprint for the
  price of a 3x3, so the receptive field grows twice as fast while channels are still few
  enough for full convolutions (which run faster on CPU than depthwise ones at equal MACs).
  A stride-2 conv takes it to 8x8.
* C3 (8x8): depthwise-separable convolutions, one of them dilated: channels are wide now,
  which is where separable convolutions save parameters (and cost little time at 8x8).
  The dilation goes on the depthwise part, so the wider view is again free. A strided
  separable conv takes it to 4x4.
* C4 (4x4): separable convolutions at the widest width; dilation would only reach into the
  padding on a 4x4 map, so none here. Identity shortcuts around the same-width layers of
  C2-C4 keep the eight-conv-deep plain stack easy to optimise (they cost nothing).
* Output: global average pooling and one linear layer (no flatten-and-dense over a map,
  which would cost parameters for nothing).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import ConvBNAct, DepthwiseSeparableConv, Residual
from tinycifar.models import register_model


class DilatedNet(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int, int] = (24, 40, 64, 128)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.c1 = nn.Sequential(
            ConvBNAct(3, w1),  # 32x32, rf 3
            ConvBNAct(w1, w2, stride=2),  # -> 16x16, rf 5
        )
        self.c2 = nn.Sequential(
            Residual(ConvBNAct(w2, w2)),  # rf 9
            Residual(ConvBNAct(w2, w2, dilation=2)),  # 5x5 footprint, rf 17
            ConvBNAct(w2, w3, stride=2),  # -> 8x8, rf 21
        )
        self.c3 = nn.Sequential(
            Residual(DepthwiseSeparableConv(w3, w3, dilation=2)),  # rf 37
            DepthwiseSeparableConv(w3, w4, stride=2),  # -> 4x4, rf 45
        )
        self.c4 = nn.Sequential(
            Residual(DepthwiseSeparableConv(w4, w4)),  # rf 61
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c4(self.c3(self.c2(self.c1(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))


@register_model("dilatednet", "no max-pooling: strided convs downsample, dilated (DS) convs widen the view")
def dilatednet(num_classes: int = 10) -> nn.Module:
    return DilatedNet(num_classes)
