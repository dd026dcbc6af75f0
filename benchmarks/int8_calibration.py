"""Which int8 calibration to ship: method × image count, judged on the validation split.

``--format onnx`` (ONNX Runtime's quantiser, scored in ONNX Runtime) or ``--format tflite``
(litert-torch's PT2E quantiser with its activation observers, scored in TFLM, the
microcontroller runtime).

The model must not have seen the validation images: train it with ``--val-split 5000``
(the split is fixed, see ``tinycifar.splits``). Calibration images come from the
rest of the training set; the score is int8 accuracy on the 5,000 held-out images and its
agreement with the fp32 file. The test set is never read.

    tinycifar train --val-split 5000 --out runs/val-fastnet
    python benchmarks/int8_calibration.py --weights runs/val-fastnet/model.safetensors \\
        --json benchmarks/results/int8_calibration.json [--format tflite]
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
from tinycifar.tflite_file import TfliteClassifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="weights of a run trained with --val-split")
    p.add_argument("--model", default=None)
    p.add_argument("--val-split", type=int, default=5000)
    p.add_argument("--counts", type=int, nargs="+", default=[128, 512, 2048])
    p.add_argument("--format", choices=("onnx", "tflite"), default="onnx")
    p.add_argument("--methods", nargs="+", default=None, help="default: every method of the format")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    name = resolve_model_name(args.model, args.weights)
    model = load_model(name, args.weights, "cpu")
    (train_images, _), (val_images, val_labels) = split_validation(load_cifar10("train", args.data_dir), args.val_split)
    if args.format == "tflite":
        from tinycifar import tflite_export

        methods = args.methods or list(tflite_export.OBSERVERS)
        runtime = "TFLM"

        def fp32_scores(scratch: Path) -> torch.Tensor:
            path = scratch / "model.tflite"
            tflite_export.write(path, tflite_export.convert(model, name))
            return TfliteClassifier(path, "litert").logits(val_images)  # float: the runtimes agree

        def int8_scores(scratch: Path, method: str, images: torch.Tensor) -> tuple[torch.Tensor, int]:
            path = scratch / f"{method}-{len(images)}.tflite"
            tflite_export.write(path, tflite_export.convert(model, name, images, method))
            return TfliteClassifier(path, "tflm").logits(val_images), path.stat().st_size
    else:
        methods = args.methods or list(CALIBRATION_METHODS)
        runtime = "ONNX Runtime"

        def fp32_scores(scratch: Path) -> torch.Tensor:
            export_onnx(model, scratch / "model.onnx", name)
            return OnnxClassifier(scratch / "model.onnx").logits(val_images)

        def int8_scores(scratch: Path, method: str, images: torch.Tensor) -> tuple[torch.Tensor, int]:
            path = scratch / f"{method}-{len(images)}.onnx"
            quantize_int8(scratch / "model.onnx", path, images, method)
            return OnnxClassifier(path).logits(val_images), path.stat().st_size

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        ref = fp32_scores(scratch)
        fp32_acc = metrics_from_logits(ref, val_labels)["accuracy"]
        print(
            f"{name}, {args.weights}: fp32 val accuracy {fp32_acc:.2%} on {len(val_images)} images; "
            f"int8 scored in {runtime}; CPU {cpu_info()['model']} ({', '.join(cpu_info()['flags'])})"
        )
        print("| method | images | int8 val accuracy | vs fp32 | agreement | bytes | seconds |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for method in methods:
            for count in args.counts:
                t0 = time.perf_counter()
                logits, size = int8_scores(scratch, method, calibration_sample(train_images, count))
                seconds = time.perf_counter() - t0
                acc = metrics_from_logits(logits, val_labels)["accuracy"]
                agree = float((logits.argmax(1) == ref.argmax(1)).float().mean())
                rows.append(
                    {
                        "method": method,
                        "images": count,
                        "val_acc": acc,
                        "fp32_val_acc": fp32_acc,
                        "agreement": agree,
                        "seconds": seconds,
                        "bytes": size,
                    }
                )
                print(
                    f"| {method} | {count} | {acc:.2%} | {100 * (acc - fp32_acc):+.2f} | {agree:.2%} | {size:,} "
                    f"| {seconds:.1f} |",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": name,
                    "weights": str(args.weights),
                    "val_split": args.val_split,
                    "format": args.format,
                    "runtime": runtime,
                    "cpu": cpu_info(),
                    "torch": torch.__version__,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
