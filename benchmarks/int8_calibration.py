"""Which int8 calibration to ship: method × image count, judged on the validation split.

The model must not have seen the validation images: train it with ``--val-split 5000``
(the split is fixed, see ``tinycifar.splits``). Calibration images come from the
rest of the training set; the score is int8 accuracy on the 5,000 held-out images and its
agreement with the fp32 file. The test set is never read.

    tinycifar train --val-split 5000 --out runs/val-fastnet
    python benchmarks/int8_calibration.py --weights runs/val-fastnet/model.safetensors \\
        --json benchmarks/results/int8_calibration.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tinycifar.data import load_cifar10
from tinycifar.evaluate import metrics_from_logits
from tinycifar.export import CALIBRATION_METHODS, calibration_sample, export_onnx, quantize_int8
from tinycifar.onnx_file import OnnxClassifier
from tinycifar.precision import cpu_info
from tinycifar.pretrained import load_model, resolve_model_name
from tinycifar.splits import split_validation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="weights of a run trained with --val-split")
    p.add_argument("--model", default=None)
    p.add_argument("--val-split", type=int, default=5000)
    p.add_argument("--counts", type=int, nargs="+", default=[128, 512, 2048])
    p.add_argument("--methods", nargs="+", default=list(CALIBRATION_METHODS))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    name = resolve_model_name(args.model, args.weights)
    model = load_model(name, args.weights, "cpu")
    (train_images, _), (val_images, val_labels) = split_validation(load_cifar10("train", args.data_dir),
                                                                    args.val_split)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model.onnx"
        export_onnx(model, fp32, name)
        ref = OnnxClassifier(fp32).logits(val_images)
        fp32_acc = metrics_from_logits(ref, val_labels)["accuracy"]
        print(f"{name}, {args.weights}: fp32 val accuracy {fp32_acc:.2%} on {len(val_images)} images")
        print("| method | images | int8 val accuracy | vs fp32 | agreement | seconds |\n|---|---:|---:|---:|---:|---:|")
        for method in args.methods:
            for count in args.counts:
                q = Path(scratch) / f"{method}-{count}.onnx"
                t0 = time.perf_counter()
                quantize_int8(fp32, q, calibration_sample(train_images, count), method)
                seconds = time.perf_counter() - t0
                logits = OnnxClassifier(q).logits(val_images)
                acc = metrics_from_logits(logits, val_labels)["accuracy"]
                agree = float((logits.argmax(1) == ref.argmax(1)).float().mean())
                rows.append({"method": method, "images": count, "val_acc": acc, "fp32_val_acc": fp32_acc,
                             "agreement": agree, "seconds": seconds, "bytes": q.stat().st_size})
                print(f"| {method} | {count} | {acc:.2%} | {100 * (acc - fp32_acc):+.2f} | {agree:.2%} | {seconds:.1f} |",
                      flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": name, "weights": str(args.weights), "val_split": args.val_split,
                                         "cpu": cpu_info(), "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
