"""``tinycifar train`` with the model variants that were tried against the zoo's.

The validation runs in ``benchmarks/results/validation/`` that tried another shape of
fastnet (the fast recipe's search, ``experiments/fast-recipe/``) or another network (the
search for the ``best`` recipe, ``experiments/hour-recipe/``) ran through this script. A
candidate that won moved into the zoo (``sepnet_g31``, s09; this script still trains it, as
any zoo model); those that lost stay here, with their experiment::

    python experiments/hour-recipe/train_variant.py --threads 1 train --model fastnet_s2c \\
        --recipe fast --epochs 12 --warmup-epochs 2.4 --val-split 5000 --out runs/v03a
    python experiments/hour-recipe/train_variant.py train --model sepnet \\
        --model-args '{"pools": [false, true]}' --val-split 5000 --out runs/s02

With ``--record-into DIR`` (before ``train``) the run's result lands in ``DIR`` as it finishes
(``benchmarks/record.py``), also when it finishes in a later session under ``--resume``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

from tinycifar import cli
from tinycifar.layers import ConvPoolGroup, DepthwiseSeparableConv
from tinycifar.models import register_model
from tinycifar.models.fastnet import FastNet
from tinycifar.models.sepnet import SepNet


def with_gelu(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.GELU())
        else:
            with_gelu(child)
    return model


class MixerBlock(nn.Module):
    """A MetaFormer block with BatchNorm (xvel/cifar10-tiniest's shape, CPU-friendlier):
    a quarter of the channels passes through, the others are mixed spatially by depthwise
    3×3, 5×5 and dilated 3×3 (×3) convolutions, then BN → 1×1 expansion → ReLU → 1×1 →
    BN (zero-initialised scale, so the block starts as the identity) → + input."""

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        q = c // 4
        self.split = (c - 3 * q, q, q, q)
        self.spatial = nn.ModuleList([
            nn.Conv2d(q, q, 3, padding=1, groups=q, bias=False),
            nn.Conv2d(q, q, 5, padding=2, groups=q, bias=False),
            nn.Conv2d(q, q, 3, padding=3, dilation=3, groups=q, bias=False)])
        self.mlp = nn.Sequential(
            nn.BatchNorm2d(c), nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, c, 1, bias=False), nn.BatchNorm2d(c))
        nn.init.zeros_(self.mlp[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, *parts = torch.split(x, self.split, dim=1)
        mixed = torch.cat([keep, *[conv(p) for conv, p in zip(self.spatial, parts)]], 1)
        return x + self.mlp(mixed)


class MixerNet(FastNet):
    """The whitening stem and fastnet's first group (→ 15×15), then ``depths[0]`` mixer
    blocks at 15×15 and, after a separable conv and a pool, ``depths[1]`` at 7×7."""

    def __init__(self, num_classes: int = 10, widths=(24, 56, 92), depths=(3, 2),
                 expansions=(2.0, 1.0)) -> None:
        super().__init__(num_classes)
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            ConvPoolGroup(self.whiten.out_channels, w1),
            nn.Conv2d(w1, w2, 1, bias=False), nn.BatchNorm2d(w2),
            *[MixerBlock(w2, round(w2 * expansions[0])) for _ in range(depths[0])],
            DepthwiseSeparableConv(w2, w3), nn.MaxPool2d(2),
            *[MixerBlock(w3, round(w3 * expansions[1])) for _ in range(depths[1])])
        self.classifier = nn.Linear(w3, num_classes, bias=False)


def strided_first_conv(model: FastNet) -> FastNet:
    group = model.features[1]
    conv = group[0]
    group[0] = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=2, bias=False)
    group[1] = nn.Identity()
    return model


VARIANTS = {
    # stride-2 whitening (16x16 map), last group unpooled: 3.5 M MACs
    "fastnet_s2": lambda n: FastNet(n, stem_stride=2, pools=(True, True, False)),
    # stride-2 whitening, first group unpooled: 7.9 M MACs
    "fastnet_s2c": lambda n: FastNet(n, stem_stride=2, pools=(False, True, True)),
    # issue #25: the first group's convolution at stride 2 (no padding: 31 → 15) in place of
    # convolution then max-pool, so it runs on a quarter of the positions
    "fastnet_sconv": lambda n, **kw: strided_first_conv(FastNet(n, **kw)),
    # airbench's activation
    "fastnet_gelu": lambda n: with_gelu(FastNet(n)),
    # issue #8: widths 32/80/144, two residual separable blocks at 7x7 and at 3x3: 11.3 M MACs
    "sepnet": SepNet,
    # issue #8's candidate "sepnet-hires": sepnet's first separable stage unpooled: 17.8 M MACs
    "sepnet_hires": lambda n: SepNet(n, pools=(False, True)),
    # issue #8: MetaFormer blocks with BatchNorm, three at 15x15 and two at 7x7: 18.6 M MACs
    "mixernet": MixerNet,
}

for _name, _build in VARIANTS.items():
    register_model(_name, "validation-only variant", recipe="fast")(
        lambda num_classes=10, _build=_build, **kwargs: _build(num_classes, **kwargs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads (1 lets two runs share a 2-core machine)")
    p.add_argument("--record-into", type=Path, default=None, metavar="DIR",
                   help="when the run finishes, copy its result into DIR (benchmarks/record.py)")
    p.add_argument("--note", default="", help="with --record-into: what the run was for")
    args, rest = p.parse_known_args(argv)
    torch.set_num_threads(args.threads)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out", type=Path, default=None)
    run_dir = out.parse_known_args(rest)[0].out
    if args.record_into is not None and run_dir is None:
        p.error("--record-into needs the run's --out folder")
    code = cli.main(rest)
    if code == 0 and args.record_into is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
        from record import record  # benchmarks/record.py

        print(f"recorded: {record(run_dir, args.record_into, args.note)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
