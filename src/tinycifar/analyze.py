"""``tinycifar analyze``: class counts, channel statistics and two figures of CIFAR-10."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from tinycifar.cli import add_data_flag
from tinycifar.data import CLASSES, channel_stats, load_cifar10
from tinycifar.paths import writable_dir
from tinycifar.figures import new_figure, save_figure

SAMPLES_PER_CLASS = 10
_UPSCALE = 3  # screen pixels per image pixel in samples.png
_GAP = 2  # white pixels between tiles


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_data_flag(parser)
    parser.add_argument("--out", metavar="DIR", default="analysis", help="where to write the figures (default: analysis)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading CIFAR-10 if it is missing")


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
        save_figure(_samples_figure(train_x, train_y), out / "samples.png"),
        save_figure(_distribution_figure(train_counts, test_counts), out / "class_distribution.png"),
    ]
    print()
    for path in written:
        print(f"wrote {path}")
    return 0


def _samples_figure(images: torch.Tensor, labels: torch.Tensor):
    tile = images.shape[-1] * _UPSCALE
    step = tile + _GAP
    n = len(CLASSES)
    mosaic = np.full((n * step - _GAP, SAMPLES_PER_CLASS * step - _GAP, 3), 255, dtype=np.uint8)
    for row in range(n):
        # The first images of each class: deterministic, and the same on every run.
        picks = (labels == row).nonzero().flatten()[:SAMPLES_PER_CLASS]
        for col, idx in enumerate(picks.tolist()):
            img = images[idx].permute(1, 2, 0).numpy()
            # Nearest-neighbour upscale by repetition, so each pixel stays a crisp square.
            big = img.repeat(_UPSCALE, axis=0).repeat(_UPSCALE, axis=1)
            mosaic[row * step : row * step + tile, col * step : col * step + tile] = big

    dpi = 100
    left, right, top, bottom = 1.1, 0.15, 0.45, 0.15  # inches of margin around the mosaic
    mh, mw = mosaic.shape[0] / dpi, mosaic.shape[1] / dpi
    fw, fh = mw + left + right, mh + top + bottom
    fig = new_figure(fw, fh, dpi)
    # Axes sized to exactly one screen pixel per mosaic pixel, so nothing gets resampled.
    ax = fig.add_axes((left / fw, bottom / fh, mw / fw, mh / fh))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([r * step + tile / 2 for r in range(n)], labels=CLASSES, fontsize=11)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"CIFAR-10 training set: first {SAMPLES_PER_CLASS} images of each class", fontsize=12)
    return fig


def _distribution_figure(train_counts: list[int], test_counts: list[int]):
    fig = new_figure(9, 4.8)
    ax = fig.add_subplot()
    x = np.arange(len(CLASSES))
    width = 0.4
    bars_train = ax.bar(x - width / 2, train_counts, width, label="train", color="tab:blue")
    bars_test = ax.bar(x + width / 2, test_counts, width, label="test", color="tab:orange")
    ax.bar_label(bars_train, fontsize=8)
    ax.bar_label(bars_test, fontsize=8)
    ax.set_xticks(x, labels=CLASSES, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("CIFAR-10 images per class")
    ax.margins(y=0.12)
    ax.legend()
    fig.tight_layout()
    return fig
