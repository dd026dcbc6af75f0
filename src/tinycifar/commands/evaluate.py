"""``tinycifar evaluate``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tinycifar.atomic import write_json
from tinycifar.commands.flags import (
    add_data_flag,
    add_device_flag,
    add_precision_flag,
    add_tflite_flags,
    add_weights_flags,
    whole_number,
)
from tinycifar.data import load_cifar10
from tinycifar.evaluate import (
    confusion_figure,
    format_per_class,
    forward_logits,
    metrics_from_logits,
    misclassified_figure,
    percent,
)
from tinycifar.figures import save_figure
from tinycifar.paths import writable_dir
from tinycifar.pretrained import load_forward


def configure_parser(p: argparse.ArgumentParser) -> None:
    add_weights_flags(p)
    add_data_flag(p)
    p.add_argument(
        "--onnx",
        type=Path,
        default=None,
        metavar="FILE",
        help="evaluate an ONNX file (tinycifar export's, or any keeping its contract) "
        "with ONNX Runtime instead of PyTorch weights",
    )
    add_tflite_flags(p)
    add_device_flag(p)
    add_precision_flag(p)
    p.add_argument(
        "--tta", action="store_true", help="also report accuracy with horizontal-flip test-time augmentation"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("evaluation"),
        metavar="DIR",
        help="where to write metrics.json and the figures (default: evaluation)",
    )
    p.add_argument(
        "--batch-size", type=whole_number(1), default=1000, metavar="N", help="images per forward pass (default: 1000)"
    )


def run(args: argparse.Namespace) -> int:
    name, weights, runs_as, forward = load_forward(
        args.model,
        args.weights,
        args.onnx,
        args.device,
        args.precision,
        args.batch_size,
        tflite=args.tflite,
        runtime=args.runtime,
    )
    out = Path(args.out)
    # Before the test set and the forward passes: fail fast.
    writable_dir(out, "--out", "choose another folder with --out")
    images, labels = load_cifar10("test", args.data_dir)

    start = time.perf_counter()
    plain, tta_logits = forward_logits(forward, images, args.tta)
    seconds = time.perf_counter() - start
    metrics = metrics_from_logits(plain, labels, tta_logits)

    print(f"model {name}, weights {weights}, {runs_as}: {metrics['n_images']} test images in {seconds:.1f} s")
    print(f"accuracy: {percent(metrics['accuracy'])} ({metrics['correct']}/{metrics['n_images']})")
    if args.tta:
        print(
            f"accuracy with flip TTA: {percent(metrics['tta_accuracy'])} "
            f"({metrics['tta_correct']}/{metrics['n_images']})"
        )
    print()
    print("per class (without TTA):")
    print(format_per_class(metrics))

    record = {"model": name, "weights": str(weights), "runs_as": runs_as, **metrics}
    metrics_path = out / "metrics.json"
    write_json(metrics_path, record)
    title = f"Confusion matrix: {name}, accuracy {percent(metrics['accuracy'])} on {metrics['n_images']} test images"
    written = [
        metrics_path,
        save_figure(confusion_figure(metrics["confusion_matrix"], title), out / "confusion_matrix.png"),
        save_figure(misclassified_figure(images, labels, plain), out / "misclassified.png"),
    ]
    print()
    for path in written:
        print(f"wrote {path}")
    return 0
