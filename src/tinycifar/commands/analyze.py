"""``tinycifar analyze``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tinycifar.analyze import distribution_figure, samples_figure
from tinycifar.commands.flags import add_data_flag
from tinycifar.data import CLASSES, channel_stats, load_cifar10
from tinycifar.figures import save_figure
from tinycifar.paths import writable_dir


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_data_flag(parser)
    parser.add_argument(
        "--out", metavar="DIR", default="analysis", help="where to write the figures (default: analysis)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading CIFAR-10 if it is missing"
    )


def run(args: argparse.Namespace) -> int:
    download = not args.no_download
    train_x, train_y = load_cifar10("train", args.data_dir, download=download)
    test_x, test_y = load_cifar10("test", args.data_dir, download=download)

    c, h, w = train_x.shape[1:]
    print(f"image size: {c}x{h}x{w} (channels x height x width)")
    print(f"images: {len(train_x)} train, {len(test_x)} test")
    train_counts = torch.bincount(train_y, minlength=len(CLASSES)).tolist()
    test_counts = torch.bincount(test_y, minlength=len(CLASSES)).tolist()
    print()
    print(f"{'class':<12}{'train':>8}{'test':>8}")
    for name, n_train, n_test in zip(CLASSES, train_counts, test_counts):
        print(f"{name:<12}{n_train:>8}{n_test:>8}")
    print(f"{'total':<12}{sum(train_counts):>8}{sum(test_counts):>8}")
    print()
    mean, std = channel_stats(train_x)
    print("training set, per channel in [0, 1]:")
    print("mean (R, G, B): " + " ".join(f"{v:.4f}" for v in mean))
    print("std (R, G, B): " + " ".join(f"{v:.4f}" for v in std))

    out = Path(args.out)
    writable_dir(out, "--out", "choose another folder with --out")
    written = [
        save_figure(samples_figure(train_x, train_y), out / "samples.png"),
        save_figure(distribution_figure(train_counts, test_counts), out / "class_distribution.png"),
    ]
    print()
    for path in written:
        print(f"wrote {path}")
    return 0
