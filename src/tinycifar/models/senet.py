"""``senet``: a small residual network with squeeze-and-excitation in every residual block.

The question it answers: at a fixed budget, is channel attention with a real bottleneck
(SE, two small fully connected layers) worth its parameters over ECA's nearly free
1-D convolution (``tinynet``) or over none at all (``resnet8``)?

Layout (CPU-shaped, like ``tinynet``):

* Stem: one full 3x3 convolution at 32x32, then a stride-2 3x3 convolution to 16x16.
  Only one layer runs at full resolution because that is where CPU time goes; the
  residual stages start at 16x16 (``resnet8`` runs a whole stage at 32x32 instead).
* Two residual stages (16x16, then 8x8 after another stride-2 conv), each one SE-ResNet
  basic block: conv-BN-ReLU, conv-BN, SE gate, add the identity, ReLU (Hu et al.'s
  SE-ResNet placement: the gate rescales the residual branch before the sum, so the
  identity path stays untouched and the block can still default to the identity).
  Full 3x3 convolutions throughout: channels stay few enough (32, 52) that they are both
  affordable and faster on CPU than depthwise ones.
* SE uses reduction 4, a little richer than the paper's 16 because the channel counts here
  are small (32 channels at 16 would leave a 2-unit bottleneck); the SE layers cost about
  2k parameters in all, about 2% of the model.
* Head: global average pooling and one linear layer.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import ConvBNAct, SqueezeExcite
from tinycifar.models import register_model


class SEBasicBlock(nn.Module):
    """``relu(x + SE(bn(conv(relu(bn(conv(x)))))))``: a same-shape SE-ResNet block."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(channels, channels),
            ConvBNAct(channels, channels, act=False),
            SqueezeExcite(channels, reduction),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class SENet(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (24, 32, 52), reduction: int = 4) -> None:
        super().__init__()
        w0, w1, w2 = widths
        self.features = nn.Sequential(
            ConvBNAct(3, w0),  # 32x32
            ConvBNAct(w0, w1, stride=2),  # -> 16x16
            SEBasicBlock(w1, reduction),
            ConvBNAct(w1, w2, stride=2),  # -> 8x8
            SEBasicBlock(w2, reduction),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("senet", "small SE-ResNet: residual blocks with squeeze-and-excitation gates")
def senet(num_classes: int = 10) -> nn.Module:
    return SENet(num_classes)
