"""``tinycifar export``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tinycifar.commands.flags import add_weights_flags
from tinycifar.errors import TinyCifarError
from tinycifar.export import (
    CALIBRATION_IMAGES,
    CALIBRATION_METHOD,
    CALIBRATION_METHODS,
    calibration_sample,
    compare,
    export_onnx,
    int8_path,
    quantize_int8,
)
from tinycifar.inference import predict_logits
from tinycifar.onnx_file import OnnxClassifier, need_onnx
from tinycifar.paths import writable_dir


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.commands.flags import add_data_flag, whole_number

    add_weights_flags(p)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.onnx",
        help="the fp32 ONNX file to write; with --int8 the int8 file goes beside it as FILE.int8.onnx",
    )
    p.add_argument(
        "--int8", action="store_true", help="also write a statically quantised int8 file (QDQ, per-channel weights)"
    )
    p.add_argument(
        "--calibration-images",
        type=whole_number(1, 50_000),
        default=CALIBRATION_IMAGES,
        metavar="N",
        help=f"training images that calibrate the int8 ranges (default: {CALIBRATION_IMAGES})",
    )
    p.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default=CALIBRATION_METHOD,
        help=f"how activation ranges are set from them (default: {CALIBRATION_METHOD})",
    )
    add_data_flag(p, ", for the check and the calibration")


def run(args: argparse.Namespace) -> int:
    from tinycifar.data import load_cifar10
    from tinycifar.evaluate import metrics_from_logits
    from tinycifar.pretrained import load_model, resolve_model_name

    need_onnx()
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise TinyCifarError(f"--out {out}: name the file *.onnx")
    if out.is_dir():
        raise TinyCifarError(f"--out {out} is a folder: name the .onnx file to write")
    writable_dir(out.parent, "--out folder", "choose an --out in a folder you can write to")
    name = resolve_model_name(args.model, args.weights)
    model = load_model(name, args.weights, "cpu")
    test_images, test_labels = load_cifar10("test", args.data_dir)

    export_onnx(model, out, name)
    torch_logits = predict_logits(model, test_images, torch.device("cpu"))
    onnx_logits = OnnxClassifier(out).logits(test_images)
    check = compare(torch_logits, onnx_logits)
    rows = [
        ("PyTorch fp32", None, metrics_from_logits(torch_logits, test_labels)["accuracy"]),
        (f"ONNX fp32 {out}", out.stat().st_size, metrics_from_logits(onnx_logits, test_labels)["accuracy"]),
    ]
    print(
        f"wrote {out}: ONNX Runtime vs PyTorch on the {len(test_images):,} test images: largest logit "
        f"difference {check['max_abs_logit_diff']:.2e}, top-1 agreement {check['top1_agreement']:.2%}"
    )
    if args.int8:
        train_images, _ = load_cifar10("train", args.data_dir)
        q = int8_path(out)
        quantize_int8(out, q, calibration_sample(train_images, args.calibration_images), args.calibration_method)
        int8_acc = metrics_from_logits(OnnxClassifier(q).logits(test_images), test_labels)["accuracy"]
        rows.append((f"ONNX int8 {q}", q.stat().st_size, int8_acc))
    print(f"{'file':<48}{'size':>10}{'test accuracy':>15}")
    for label, size, acc in rows:
        print(f"{label:<48}{'' if size is None else f'{size / 1000:.1f} KB':>10}{acc:>15.2%}")
    return 0
