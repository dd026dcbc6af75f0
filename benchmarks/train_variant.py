"""``tinycifar train`` with the fastnet variants the fast recipe was chosen against.

The validation runs in ``benchmarks/results/validation/`` that tried another shape of
fastnet ran through this script (the zoo keeps only the winner)::

    python benchmarks/train_variant.py --threads 1 train --model fastnet_s2c --recipe fast \\
        --epochs 12 --warmup-epochs 2.4 --val-split 5000 --out runs/v03a
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn as nn

from tinycifar import cli
from tinycifar.models import register_model
from tinycifar.models.fastnet import FastNet


def with_gelu(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.GELU())
        else:
            with_gelu(child)
    return model


VARIANTS = {
    # stride-2 whitening (16x16 map), last group unpooled: 3.5 M MACs
    "fastnet_s2": lambda n: FastNet(n, stem_stride=2, pools=(True, True, False)),
    # stride-2 whitening, first group unpooled: 7.9 M MACs
    "fastnet_s2c": lambda n: FastNet(n, stem_stride=2, pools=(False, True, True)),
    # airbench's activation
    "fastnet_gelu": lambda n: with_gelu(FastNet(n)),
}

for _name, _build in VARIANTS.items():
    register_model(_name, "validation-only variant of fastnet", recipe="fast")(
        lambda num_classes=10, _build=_build: _build(num_classes))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads (1 lets two runs share a 2-core machine)")
    args, rest = p.parse_known_args()
    torch.set_num_threads(args.threads)
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
