"""``sepnet_g31``: the most accurate network of issue #8's search that trains within the hour.

fastnet's whitening stem and first conv group, kept at 31×31 (no pool), then
depthwise-separable residual stages: 80 wide at 15×15 and 144 at 7×7. fastnet spends two
thirds of its parameters on two full 3×3 convolutions at 7×7 and 3×3, which caps its width
at 64; a separable convolution costs ``9c + c²`` instead of ``9c²``, so the same budget buys
more than twice the width and residual blocks. The MACs go where they bought accuracy on
the validation split (``experiments/hour-recipe/README.md``): the same parameters at fastnet's
MACs gave nothing (s01, 87.60%), the first separable stage unpooled +0.8 (s02), and the
first group unpooled too, so the first separable convolution runs at 31×31, +1.1 more
(s09: 90.98 ± 0.36% over three seeds at 37 epochs, against 90.12% for one seed of s03).
26.6 M MACs, 2.5× fastnet's, and 4.4× its time a training step in bf16 on a 2-core AMD
EPYC with ``avx512_bf16`` (1,137 against 4,972 img/s; 2.2× faster than fp32 there): the
hour's budget is what it is sized to, not fastnet's few minutes.
"""

from __future__ import annotations

import torch.nn as nn

from tinycifar.layers import ConvPoolGroup, DepthwiseSeparableConv, Residual
from tinycifar.models import register_model
from tinycifar.models.fastnet import FastNet


class SepNet(FastNet):
    """``pools[i]`` false keeps separable stage ``i`` at the resolution before it;
    ``group_pool`` false keeps the first group at the stem's 31×31."""

    def __init__(
        self,
        num_classes: int = 10,
        widths: tuple[int, ...] = (32, 80, 144),
        depths: tuple[int, int] = (2, 2),
        pools: tuple[bool, bool] = (True, True),
        group_pool: bool = True,
    ) -> None:
        super().__init__(num_classes)
        w1, w2, w3 = widths
        stages: list[nn.Module] = [ConvPoolGroup(self.whiten.out_channels, w1, pool=group_pool)]
        for c_in, c_out, blocks, pool in zip((w1, w2), (w2, w3), depths, pools):
            stages.append(
                nn.Sequential(
                    DepthwiseSeparableConv(c_in, c_out),
                    nn.MaxPool2d(2) if pool else nn.Identity(),
                    *[Residual(DepthwiseSeparableConv(c_out, c_out)) for _ in range(blocks)],
                )
            )
        self.features = nn.Sequential(nn.ReLU(inplace=True), *stages)
        self.classifier = nn.Linear(w3, num_classes, bias=False)


@register_model("sepnet_g31", "whitening stem, conv group at 31x31, separable residual stages", recipe="long")
def sepnet_g31(num_classes: int = 10, widths: tuple[int, int, int] = (32, 80, 144)) -> nn.Module:
    return SepNet(num_classes, tuple(widths), group_pool=False)
