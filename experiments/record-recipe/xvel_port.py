"""A port of the published sub-100k CIFAR-10 record's network, as a peer to measure against.

xvel/cifar10-tiniest (github.com/xvel/cifar10-tiniest; no licence is given there, so this
is our own code written from its description, not a copy): 97,530 parameters, 94.4 % in
200 epochs. Two stages of MetaFormer-style blocks, three at 48 channels on 32×32, three at
80 on 16×16, between them a grouped 4×4 stride-2 convolution:

- each block splits its channels in four equal parts: one passes through, one goes through a
  depthwise 3×3, one a depthwise 7×7, one a 3×3 average pool then a depthwise 7×7 dilated 3
  ("same" padding everywhere);
- then LayerNorm over the channels, a 1×1 convolution to twice the width, the gate
  ``a · tanh(exp(a)) · b`` of its two halves, a 1×1 convolution back;
- the residual adds the input times a learnt per-channel scale (initialised to 1);
- stem: 3×3 convolution 3 → 48 and LayerNorm, no activation; head: global average pool,
  linear. Every convolution has a bias; no BatchNorm anywhere; the input is pixels/255 − 0.5.

Run ``python experiments/record-recipe/xvel_port.py COMMAND ...`` for ``tinycifar COMMAND``
with the port registered: ``... xvel_port.py summary --model xvel_tiniest`` prints
97,530 parameters and 43.88 M MACs (convolutions and the linear layer; the 44.7 M quoted
elsewhere adds the pools and elementwise work). The recipe it was published with is in
``README.md`` beside this file.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinycifar.models import register_model


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map, at every pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SplitMixBlock(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        q = channels // 4
        self.near = nn.Conv2d(q, q, 3, padding="same", groups=q)
        self.wide = nn.Conv2d(q, q, 7, padding="same", groups=q)
        self.far = nn.Conv2d(q, q, 7, padding="same", dilation=3, groups=q)
        self.norm = ChannelLayerNorm(channels)
        self.expand = nn.Conv2d(channels, 2 * hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1)
        self.skip_scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, near, wide, far = torch.chunk(x, 4, dim=1)
        far = self.far(F.avg_pool2d(far, 3, stride=1, padding=1))
        y = self.norm(torch.cat([keep, self.near(near), self.wide(wide), far], dim=1))
        a, b = torch.chunk(self.expand(y), 2, dim=1)
        return self.project(a * torch.tanh(torch.exp(a)) * b) + x * self.skip_scale


class XvelTiniest(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), ChannelLayerNorm(48))
        self.stage1 = nn.Sequential(*[SplitMixBlock(48, 48) for _ in range(3)])
        self.down = nn.Sequential(nn.Conv2d(48, 80, 4, stride=2, padding=1, groups=16), ChannelLayerNorm(80))
        self.stage2 = nn.Sequential(*[SplitMixBlock(80, 80) for _ in range(3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(80, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.classifier(torch.flatten(self.pool(x), 1))


@register_model("xvel_tiniest", "port of xvel/cifar10-tiniest (the sub-100k record): split-mix blocks, LayerNorm")
def xvel_tiniest(num_classes: int = 10) -> nn.Module:
    return XvelTiniest(num_classes)


if __name__ == "__main__":  # `tinycifar` with the port registered, e.g. `... xvel_port.py train --model xvel_tiniest`
    import sys

    from tinycifar import cli

    sys.exit(cli.main(sys.argv[1:]))
