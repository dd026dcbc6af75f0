"""``tinycifar evaluate``: accuracy, per-class table, confusion matrix and a gallery of
mistakes on the official 10,000-image CIFAR-10 test set.

The library entry point is :func:`evaluate` (model + images → metrics dict); the CLI adds
the shipped-or-given weights, the figures and ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.figures import new_figure
from tinycifar.pretrained import torch_forward

GALLERY_SIZE = 40
_GALLERY_COLS = 8


# --- the numbers -----------------------------------------------------------------------


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int = len(CLASSES)) -> torch.Tensor:
    """``(num_classes, num_classes)`` int64 counts: row = true class, column = predicted class."""
    labels, preds = labels.long().flatten(), preds.long().flatten()
    if labels.shape != preds.shape:
        raise TinyCifarError(f"{len(labels)} labels for {len(preds)} predictions")
    for name, t in (("labels", labels), ("predictions", preds)):
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise TinyCifarError(
                f"{name} out of range: found {int(t.min())}..{int(t.max())}, expected 0..{num_classes - 1}"
            )
    counts = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def metrics_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, tta_logits: torch.Tensor | None = None
) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix from plain logits; with
    ``tta_logits`` also ``tta_accuracy`` / ``tta_correct``. Every value is JSON-ready."""
    labels = labels.long().cpu()
    n = len(labels)
    if logits.shape != (n, len(CLASSES)):
        raise TinyCifarError(f"expected logits of shape ({n}, {len(CLASSES)}), got {tuple(logits.shape)}")
    cm = confusion_matrix(labels, logits.argmax(1).cpu())
    correct = int(cm.diagonal().sum())
    totals, hits = cm.sum(1).tolist(), cm.diagonal().tolist()
    result: dict[str, Any] = {
        "n_images": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "per_class": {
            name: {"correct": c, "total": t, "accuracy": c / t if t else None}
            for name, c, t in zip(CLASSES, hits, totals)
        },
        "classes": list(CLASSES),
        "confusion_matrix": cm.tolist(),
    }
    if tta_logits is not None:
        tta_correct = int((tta_logits.argmax(1).cpu() == labels).sum())
        result["tta_correct"] = tta_correct
        result["tta_accuracy"] = tta_correct / n if n else None
    return result


def forward_logits(
    forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tta: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Plain logits and, if asked, flip-TTA logits: two passes, not three. ``forward``
    takes uint8 images to logits (a PyTorch model's or an ONNX file's)."""
    plain = forward(images)
    if not tta:
        return plain, None
    return plain, (plain + forward(images.flip(3))) / 2


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str = "cpu",
    tta: bool = False,
    batch_size: int = 1000,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Evaluate ``model`` on uint8 ``images (N, 3, 32, 32)`` with int ``labels (N,)``.

    Returns ``n_images``, ``correct``, ``accuracy``, ``per_class`` (class name →
    correct/total/accuracy), ``classes`` and ``confusion_matrix`` (rows: true class,
    columns: predicted class), all from plain predictions; with ``tta`` also
    ``tta_accuracy`` and ``tta_correct`` (logits averaged with the mirrored image).
    """
    if len(images) != len(labels):
        raise TinyCifarError(f"{len(images)} images but {len(labels)} labels")
    plain, tta_logits = forward_logits(torch_forward(model, device, batch_size, precision), images, tta)
    return metrics_from_logits(plain, labels, tta_logits)


def format_per_class(metrics: dict[str, Any]) -> str:
    """The per-class table: class, correct/total, accuracy, and a total row."""
    lines = [f"{'class':<12}{'correct/total':>15}{'accuracy':>10}"]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<12}{row['correct']:>8}/{row['total']:<6}{percent(row['accuracy']):>10}")
    lines.append(f"{'total':<12}{metrics['correct']:>8}/{metrics['n_images']:<6}{percent(metrics['accuracy']):>10}")
    return "\n".join(lines)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


# --- the figures ---------------------------------------------------------------------------


def confusion_figure(cm: list[list[int]] | torch.Tensor, title: str = "Confusion matrix"):
    """10×10 heat map with the count in every cell; rows true class, columns predicted."""
    counts = np.asarray(torch.as_tensor(cm))
    fig = new_figure(8.5, 7.5)
    ax = fig.add_subplot()
    im = ax.imshow(counts, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="images")
    n = len(CLASSES)
    ax.set_xticks(range(n), labels=CLASSES, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=CLASSES)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    threshold = counts.max() / 2 if counts.size and counts.max() > 0 else 1
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if counts[i, j] > threshold else "black",
            )
    fig.tight_layout()
    return fig


def misclassified_figure(images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, limit: int = GALLERY_SIZE):
    """Gallery of the first ``limit`` misclassified images in test-set order (deterministic,
    so two models' galleries can be compared), each titled ``true → predicted (p=…)``."""
    probs = logits.softmax(1)
    conf, preds = probs.max(1)
    wrong = (preds != labels).nonzero().flatten()
    picks = wrong[:limit].tolist()
    cols = max(4, min(_GALLERY_COLS, len(picks)))
    rows = max(1, math.ceil(len(picks) / cols))
    cell_w, cell_h, top = 1.9, 2.05, 0.6  # inches; fixed margins (tight_layout is slow on 40 axes)
    fig = new_figure(cols * cell_w, rows * cell_h + top)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - top / (rows * cell_h + top), wspace=0.08, hspace=0.25
    )
    fig.suptitle(
        f"Misclassified test images: {len(picks)} shown of {len(wrong)} (true → predicted, p = predicted probability)",
        fontsize=11,
    )
    if not picks:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
        return fig
    for k, idx in enumerate(picks):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(images[idx].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(f"{CLASSES[int(labels[idx])]} → {CLASSES[int(preds[idx])]} (p={conf[idx]:.2f})", fontsize=7.5)
        ax.axis("off")
    return fig


# --- the command -------------------------------------------------------------------------
