"""``tinycifar export``: ONNX for desktop runtimes, TFLite for phones and microcontrollers."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn as nn

from tinycifar.commands.flags import add_weights_flags
from tinycifar.errors import TinyCifarError
from tinycifar.export import CALIBRATION_IMAGES, CALIBRATION_METHOD, CALIBRATION_METHODS
from tinycifar.paths import writable_dir

FORMATS = {".onnx": "ONNX", ".tflite": "TFLite"}


def tflite_defaults() -> tuple[str, int, tuple[str, ...]]:
    """The TFLite calibration's defaults (method, image count, methods), read without the
    converter installed."""
    from tinycifar.tflite_export import CALIBRATION_IMAGES as IMAGES
    from tinycifar.tflite_export import OBSERVER, OBSERVERS

    return OBSERVER, IMAGES, OBSERVERS


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.commands.flags import add_data_flag, whole_number

    add_weights_flags(p)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="the fp32 file to write, FILE.onnx (ONNX Runtime) or FILE.tflite (LiteRT, TFLM); "
        "with --int8 the int8 file goes beside it as FILE.int8.onnx or FILE.int8.tflite",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write a full-integer int8 file: per-channel weights, activations calibrated on training images",
    )
    p.add_argument(
        "--calibration-images",
        type=whole_number(1, 50_000),
        default=None,
        metavar="N",
        help=f"with --int8: training images that calibrate the int8 ranges (default: {CALIBRATION_IMAGES} "
        f"for ONNX, {tflite_defaults()[1]} for TFLite)",
    )
    p.add_argument(
        "--calibration-method",
        default=None,
        help=f"with --int8: how activation ranges are set from them: ONNX {', '.join(CALIBRATION_METHODS)} "
        f"(default {CALIBRATION_METHOD}); TFLite {', '.join(tflite_defaults()[2])} (default {tflite_defaults()[0]})",
    )
    p.add_argument(
        "--c-array",
        action="store_true",
        help="TFLite: also write each file as a C array (FILE.cc) to compile into firmware",
    )
    add_data_flag(p, ", for the check and the calibration")


def run(args: argparse.Namespace) -> int:
    from tinycifar.data import load_cifar10
    from tinycifar.pretrained import load_model, resolve_model_name

    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise TinyCifarError(f"--out {out}: name the file *.onnx or *.tflite (the format follows the suffix)")
    if out.is_dir():
        raise TinyCifarError(f"--out {out} is a folder: name the file to write")
    if args.c_array and out.suffix != ".tflite":
        raise TinyCifarError("--c-array writes TFLite files as C arrays: name the --out file *.tflite")
    if not args.int8 and (args.calibration_images or args.calibration_method):
        raise TinyCifarError("--calibration-images and --calibration-method set up the int8 file: add --int8")
    if out.suffix == ".onnx":
        from tinycifar.onnx_file import need_onnx

        need_onnx()
        methods: tuple[str, ...] = CALIBRATION_METHODS
        method, count = CALIBRATION_METHOD, CALIBRATION_IMAGES
    else:
        from tinycifar.tflite_export import need_converter
        from tinycifar.tflite_file import need_tflite

        need_converter()
        need_tflite("tflm")
        method, count, methods = tflite_defaults()
    args.calibration_method = args.calibration_method or method
    args.calibration_images = args.calibration_images or count
    if args.calibration_method not in methods:
        raise TinyCifarError(
            f"--calibration-method {args.calibration_method!r}: for {FORMATS[out.suffix]} choose one of "
            f"{', '.join(methods)}"
        )
    writable_dir(out.parent, "--out folder", "choose an --out in a folder you can write to")
    name = resolve_model_name(args.model, args.weights)
    model = load_model(name, args.weights, "cpu")
    test_images, test_labels = load_cifar10("test", args.data_dir)
    calibration = None
    if args.int8:
        from tinycifar.export import calibration_sample

        train_images, _ = load_cifar10("train", args.data_dir)
        calibration = calibration_sample(train_images, args.calibration_images)
    if out.suffix == ".onnx":
        _onnx(args, model, name, out, test_images, test_labels, calibration)
    else:
        _tflite(args, model, name, out, test_images, test_labels, calibration)
    return 0


def _onnx(
    args: argparse.Namespace,
    model: nn.Module,
    name: str,
    out: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    calibration: torch.Tensor | None,
) -> None:
    from tinycifar.evaluate import metrics_from_logits
    from tinycifar.export import compare, export_onnx, int8_path, quantize_int8
    from tinycifar.inference import predict_logits
    from tinycifar.onnx_file import OnnxClassifier

    method = args.calibration_method
    if method not in CALIBRATION_METHODS:
        raise TinyCifarError(
            f"--calibration-method {method!r}: for ONNX choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    export_onnx(model, out, name)
    torch_logits = predict_logits(model, images, torch.device("cpu"))
    onnx_logits = OnnxClassifier(out).logits(images)
    check = compare(torch_logits, onnx_logits)
    rows = [
        ("PyTorch fp32", None, metrics_from_logits(torch_logits, labels)["accuracy"]),
        (f"ONNX fp32 {out}", out.stat().st_size, metrics_from_logits(onnx_logits, labels)["accuracy"]),
    ]
    print(
        f"wrote {out}: ONNX Runtime vs PyTorch on the {len(images):,} test images: largest logit "
        f"difference {check['max_abs_logit_diff']:.2e}, top-1 agreement {check['top1_agreement']:.2%}"
    )
    if calibration is not None:
        q = int8_path(out)
        quantize_int8(out, q, calibration, method)
        int8_acc = metrics_from_logits(OnnxClassifier(q).logits(images), labels)["accuracy"]
        rows.append((f"ONNX int8 {q}", q.stat().st_size, int8_acc))
    print(f"{'file':<48}{'size':>10}{'test accuracy':>15}")
    for label, size, acc in rows:
        print(f"{label:<48}{'' if size is None else f'{size / 1000:.1f} KB':>10}{acc:>15.2%}")


def _tflite(
    args: argparse.Namespace,
    model: nn.Module,
    name: str,
    out: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    calibration: torch.Tensor | None,
) -> None:
    from tinycifar import tflite_export
    from tinycifar.evaluate import metrics_from_logits
    from tinycifar.export import compare
    from tinycifar.inference import predict_logits
    from tinycifar.tflite_file import TfliteClassifier

    method = args.calibration_method
    files = [(out, tflite_export.convert(model, name))]
    if calibration is not None:
        files.append((tflite_export.int8_path(out), tflite_export.convert(model, name, calibration, method)))
    torch_logits = predict_logits(model, images, torch.device("cpu"))
    notes: list[str] = []
    labels_of = {path: f"TFLite {'int8' if path != out else 'fp32'} {path}" for path, _ in files}
    width = max(len(label) for label in labels_of.values()) + 2
    print(f"{'file':<{width}}{'bytes':>10}{'arena':>10}{'test accuracy':>15}{'agrees with PyTorch':>21}")
    print(f"{'PyTorch fp32':<{width}}{'':>20}{metrics_from_logits(torch_logits, labels)['accuracy']:>15.2%}")
    for path, data in files:
        tflite_export.write(path, data)
        written = [path]
        if args.c_array:
            tflite_export.write_c_array(path.with_suffix(".cc"), data, path.name)
            written.append(path.with_suffix(".cc"))
        # The int8 file is scored in TFLM, the kernels a microcontroller runs; the float one
        # in LiteRT (TFLM's float kernels give the same classes, a hundred times slower).
        clf = TfliteClassifier(path, "tflm" if path != out else "litert")
        logits = clf.logits(images)
        arena = clf.arena_bytes()
        agreement = compare(torch_logits, logits)["top1_agreement"]
        print(
            f"{labels_of[path]:<{width}}{len(data):>10,}{'' if arena is None else f'{arena:,}':>10}"
            f"{metrics_from_logits(logits, labels)['accuracy']:>15.2%}{agreement:>21.2%}"
        )
        notes.append(f"wrote {', '.join(str(p) for p in written)}")
    if calibration is not None:
        print("arena: the RAM TFLM allocates to run the int8 file (its own report); bytes: the flash it takes")
    print("\n".join(notes))
