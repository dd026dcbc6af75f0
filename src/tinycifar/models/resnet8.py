"""``resnet8``: the MLPerf Tiny image-classification reference network, for comparison.

MLPerf Tiny (v0.5 onwards) benchmarks CIFAR-10 with this ResNet-8 (``resnet_v1_eembc`` in
the ``mlcommons/tiny`` Keras training code). It is the standard yardstick for networks of
this size, so the zoo carries it to measure our own designs against:

    3x3 conv 16, BN, ReLU                                      32x32
    stack 1: [3x3 conv 16, BN, ReLU, 3x3 conv 16, BN] + identity, ReLU        32x32
    stack 2: [3x3 conv 32 /2, BN, ReLU, 3x3 conv 32, BN] + 1x1 conv 32 /2, ReLU  16x16
    stack 3: [3x3 conv 64 /2, BN, ReLU, 3x3 conv 64, BN] + 1x1 conv 64 /2, ReLU   8x8
    global average pool, dense 10

ReLU comes after the addition (ResNet v1); the 1x1 strided shortcut is a plain convolution
with a bias and no BatchNorm, as in the reference.

Parameters: 77,946 here. The Keras reference reports 78,666 total / 78,186 trainable: its
convolutions all carry a bias, and the seven in front of a BatchNorm are bias-free here
(the BN shift makes them redundant: 240 fewer parameters), while Keras counts BN's moving
mean and variance (480 values) as parameters and PyTorch keeps them as buffers. The
function computed is the same. MACs: about 12.5M per image, most of them in stack 1 at
full resolution, which is also what makes it slow to train on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import ConvBNAct
from tinycifar.models import register_model

RESNET8_PARAMS = 77_946


class BasicStack(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, ReLU after the sum (ResNet v1 block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(in_ch, out_ch, 3, stride),
            ConvBNAct(out_ch, out_ch, 3, act=False),
        )
        if stride == 1 and in_ch == out_ch:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.body(x))


class ResNet8(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            ConvBNAct(3, w1),  # 32x32
            BasicStack(w1, w1),  # 32x32
            BasicStack(w1, w2, stride=2),  # 16x16
            BasicStack(w2, w3, stride=2),  # 8x8
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("resnet8", "MLPerf Tiny reference ResNet-8 (16/32/64 filters), for comparison")
def resnet8(num_classes: int = 10) -> nn.Module:
    return ResNet8(num_classes)
