"""``fastnet``: the fast recipe's model, airbench94's network shrunk under 100k parameters.

A frozen 2×2 patch-whitening stem fitted to the training images (decorrelated inputs
from the first step: the trick that lets the fast recipe stop early), then three
conv → pool → conv groups that halve the resolution each time, and a global max-pool
head. Only full 3×3 convolutions: they are the fastest kernels per MAC on a CPU, bf16 or
not, while depthwise ones are memory-bound. The logits are scaled down (airbench's 1/9)
so the high learning rate of the fast recipe does not blow up the head.

Half the MACs are the first convolution, at 31×31 on overlapping patches. Cheaper
shapes were tried on the validation split and lost more accuracy than they saved time
(``stem_stride=2``, space-to-depth at 16×16: 84.2% against 86.9% at 12 epochs;
``experiments/fast-recipe/README.md``); the options stay so those runs can be repeated.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tinycifar.layers import ConvPoolGroup, PatchWhitening
from tinycifar.models import register_model


class FastNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        widths: tuple[int, ...] = (24, 40, 64),
        logit_scale: float = 1 / 9,
        stem_stride: int = 1,
        pools: tuple[bool, bool, bool] = (True, True, True),
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.whiten = PatchWhitening(3, kernel_size=2, stride=stem_stride)  # → 31×31 at stride 1
        c = self.whiten.out_channels
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            ConvPoolGroup(c, w1, pools[0]),  # → 15×15
            ConvPoolGroup(w1, w2, pools[1]),  # → 7×7
            ConvPoolGroup(w2, w3, pools[2]),  # → 3×3
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = logit_scale

    def stages(self) -> list[nn.Module]:
        """What the recipe's ``freeze`` stops training, first to last: fastnet's three groups
        (sepnet's first group and its separable stages)."""
        return list(self.features)[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.whiten(x))
        return self.classifier(torch.flatten(self.pool(x), 1)) * self.logit_scale


@register_model("fastnet", "fast recipe's model: patch-whitening stem, conv-pool-conv groups", recipe="fast")
def fastnet(num_classes: int = 10, widths: tuple[int, int, int] = (24, 40, 64)) -> nn.Module:
    return FastNet(num_classes, tuple(widths))
