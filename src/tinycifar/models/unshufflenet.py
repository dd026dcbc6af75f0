"""``unshufflenet``: space-to-depth stem, separable body, top-down multi-scale fusion.

The question it answers: can a net that never runs at full resolution (the cheapest way
to be fast on a CPU) win back fine detail by feeding its deep features back down to the
higher-resolution maps, feature-pyramid style, before classifying?

* Stem, ``PixelUnshuffleDown`` 32x32 -> 16x16: every 2x2 patch becomes 12 channels and a
  1x1 conv mixes them to 32. Unlike pooling or a strided conv it discards nothing, and no
  layer of the net ever pays for a 32x32 map.
* C2 (16x16): two full 3x3 convolutions (one with an identity shortcut). With 32
  channels they are cheap in parameters, faster on CPU than depthwise ones at equal MACs,
  and they give the stem's 1x1 mixing its spatial context.
* C3 (8x8) and C4 (4x4): a strided depthwise-separable conv down, then a residual
  separable conv; channels are wide here (64, 96), which is where separable convolutions
  save the most parameters, and the maps are small enough that their memory-bound
  depthwise part costs little time.
* Top-down fusion (the FPN path):
  - ``PixelShuffleUp`` 4x4 -> 8x8 (96 -> 64 channels), added to C3, then a separable 3x3
    to smooth the sum: the deepest, most semantic features reach the 8x8 map.
  - ``TransposedConvUp`` 8x8 -> 16x16 (64 -> 32 channels), added to C2, then a full 3x3 to
    smooth: the 16x16 map, which saw only a small neighbourhood, gets global context.
  A transposed convolution with kernel = stride = 2 and a 1x1 conv followed by
  depth-to-space are the same linear map up to a permutation of the weights (same
  parameters, same MACs, no overlap artefacts in either). The net uses one of each so that
  both blocks of ``tinycifar.layers`` are exercised and can be swapped for one another:
  pixel shuffle where a deployment runtime prefers depth-to-space (TFLite, ONNX), the
  transposed conv where ConvTranspose kernels are the better-supported path.
* Head: each pyramid level (C4, the fused 8x8 map, the fused 16x16 map) is globally
  average-pooled and the three vectors are concatenated (96 + 64 + 32 = 192) into one
  linear layer, so the classifier sees coarse and fine features side by side.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import (
    ConvBNAct,
    DepthwiseSeparableConv,
    PixelShuffleUp,
    PixelUnshuffleDown,
    Residual,
    TransposedConvUp,
)
from tinycifar.models import register_model


class UnshuffleNet(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (32, 64, 96)) -> None:
        super().__init__()
        w2, w3, w4 = widths
        self.stem = PixelUnshuffleDown(3, w2, scale=2)  # -> 16x16
        self.c2 = nn.Sequential(
            ConvBNAct(w2, w2),
            Residual(ConvBNAct(w2, w2)),
        )
        self.c3 = nn.Sequential(
            DepthwiseSeparableConv(w2, w3, stride=2),  # -> 8x8
            Residual(DepthwiseSeparableConv(w3, w3)),
        )
        self.c4 = nn.Sequential(
            DepthwiseSeparableConv(w3, w4, stride=2),  # -> 4x4
            Residual(DepthwiseSeparableConv(w4, w4)),
        )
        self.up4 = PixelShuffleUp(w4, w3, scale=2)  # 4x4 -> 8x8
        self.smooth3 = DepthwiseSeparableConv(w3, w3)
        self.up3 = TransposedConvUp(w3, w2, scale=2)  # 8x8 -> 16x16
        self.smooth2 = ConvBNAct(w2, w2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w2 + w3 + w4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.c2(self.stem(x))
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        p3 = self.smooth3(c3 + self.up4(c4))
        p2 = self.smooth2(c2 + self.up3(p3))
        pooled = [torch.flatten(self.pool(t), 1) for t in (c4, p3, p2)]
        return self.classifier(torch.cat(pooled, 1))


@register_model("unshufflenet", "pixel-unshuffle stem, separable body, top-down pixel-shuffle/transposed fusion")
def unshufflenet(num_classes: int = 10) -> nn.Module:
    return UnshuffleNet(num_classes)
