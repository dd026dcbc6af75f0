"""``tinycifar analyze``: class counts, channel statistics and two figures of CIFAR-10."""

from __future__ import annotations

import numpy as np
import torch

from tinycifar.data import CLASSES
from tinycifar.figures import new_figure

SAMPLES_PER_CLASS = 10
_UPSCALE = 3  # screen pixels per image pixel in samples.png
_GAP = 2  # white pixels between tiles


def samples_figure(images: torch.Tensor, labels: torch.Tensor):
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


def distribution_figure(train_counts: list[int], test_counts: list[int]):
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
