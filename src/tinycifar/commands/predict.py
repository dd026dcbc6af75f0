"""``tinycifar predict``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tinycifar.commands.flags import (
    add_device_flag,
    add_precision_flag,
    add_tflite_flags,
    add_weights_flags,
    whole_number,
)
from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.predict import load_image, top_classes
from tinycifar.pretrained import load_forward


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...; any size)")
    add_weights_flags(p)
    p.add_argument(
        "--onnx",
        type=Path,
        default=None,
        metavar="FILE",
        help="classify with an ONNX file on ONNX Runtime instead of PyTorch weights",
    )
    add_tflite_flags(p)
    add_device_flag(p)
    add_precision_flag(p)
    p.add_argument(
        "--top-k",
        type=whole_number(1, len(CLASSES)),
        default=3,
        metavar="K",
        help="classes to show per image (default: 3)",
    )


def run(args: argparse.Namespace) -> int:
    _, _, _, forward = load_forward(
        args.model, args.weights, args.onnx, args.device, args.precision, tflite=args.tflite, runtime=args.runtime
    )
    names, tensors, failed = [], [], 0
    for name in args.images:
        try:
            tensors.append(load_image(name))
            names.append(name)
        except TinyCifarError as e:
            print(f"tinycifar predict: error: {e}", file=sys.stderr)
            failed += 1
    if tensors:
        for name, top in zip(names, top_classes(forward, torch.stack(tensors), args.top_k)):
            print(f"{name}: " + ", ".join(f"{cls} {p:.2f}" for cls, p in top))
    return 1 if failed else 0
