"""Build a model with weights: the shipped pretrained file, or a run's ``model.safetensors``.

Shipped weights live inside the package as ``tinycifar/weights/<model>.safetensors``; the
commands that need a trained model (``evaluate``, ``predict``) use them unless given
``--weights``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tinycifar.checkpoint import check_fits, load_weights, weights_header
from tinycifar.errors import TinyCifarError
from tinycifar.models import DEFAULT_MODEL, build_model, describe_model


def pretrained_path(model_name: str) -> Path:
    """Where the shipped weights of ``model_name`` are (or would be) inside the package.

    The model name is checked against the registry first, so it can never point outside
    the weights folder. The file itself may not exist: see :func:`load_model`.
    """
    describe_model(model_name)  # TinyCifarError for an unknown name
    return Path(str(files("tinycifar").joinpath("weights", f"{model_name}.safetensors")))


def resolve_model_name(model_name: str | None, weights: Path | str | None) -> str:
    """The model to build: as given; else the one a weights file names in its metadata
    (every run's ``model.safetensors`` does); else the default model."""
    if model_name is not None:
        return model_name
    if weights is not None:
        return _metadata_model(Path(weights)) or DEFAULT_MODEL
    return DEFAULT_MODEL


def load_model(model_name: str, weights: Path | str | None, device: torch.device | str) -> nn.Module:
    """``model_name`` built and loaded with ``weights`` (or the shipped file when None).

    A run trained with ``--model-args`` records them in its weights, and the network is
    built with them. Returned in eval mode, channels-last, on ``device``. Raises
    :class:`TinyCifarError` when no weights ship for the model, when the file is unreadable
    or too large, when its metadata names another model, or when its tensors do not fit the
    architecture; all of it is checked before any tensor is read or allocated.
    """
    describe_model(model_name)  # TinyCifarError for an unknown name
    if weights is None:
        path = pretrained_path(model_name)
        if not path.is_file():
            raise TinyCifarError(
                f"no pretrained weights ship for model {model_name!r}: pass --weights PATH "
                "(the model.safetensors of a `tinycifar train` run)"
            )
    else:
        path = Path(weights)
    header = weights_header(path)
    metadata = header.metadata
    saved_as = metadata.get("model")
    if saved_as is not None and saved_as != model_name:
        raise TinyCifarError(
            f"{path} holds weights for model {saved_as!r}, not {model_name!r}: pass --model {saved_as}"
        )
    model_args = _saved_model_args(path, metadata)
    try:
        with torch.device("meta"):  # a stranger's arguments are checked against the file unallocated
            shell = build_model(model_name, model_args)
    except TinyCifarError as e:
        raise TinyCifarError(f"{path}: {e}; the file was not written by `tinycifar train`") from None
    check_fits(shell, path, header, recorded_args=model_args)
    model = build_model(model_name, model_args)
    load_weights(model, path, header)
    # ignored below: torch's stub of nn.Module.to omits memory_format, which the runtime accepts
    model = model.to(device=torch.device(device), memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model.eval()


def _saved_model_args(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The constructor arguments a run's weights record (``--model-args``), or {}."""
    text = metadata.get("model_args")
    if text is None:
        return {}
    try:
        args = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deep enough to be an attack
        args = None
    if not isinstance(args, dict) or not all(_small(v) for v in args.values()):
        raise TinyCifarError(
            f"{path}: its model_args metadata is not a JSON object of small constructor "
            f"arguments ({text[:60]!r}); the file was not written by `tinycifar train`"
        )
    return args


def _small(value: Any) -> bool:
    """What a zoo constructor takes: flags, names, numbers up to 4,096 (widths, depths) and
    short lists of them. Larger numbers could make a constructor loop for hours before the
    shapes are compared, so a file may not record them."""
    if isinstance(value, list):
        return len(value) <= 16 and all(not isinstance(v, list) and _small(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(value) <= 4096
    return value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 64)


Forward = Callable[[torch.Tensor], torch.Tensor]  # uint8 images (N, 3, 32, 32) → fp32 logits (N, 10)


def torch_forward(
    model: nn.Module, device: torch.device | str, batch_size: int = 1000, precision: str = "fp32"
) -> Forward:
    from tinycifar.inference import predict_logits

    return lambda images: predict_logits(
        model, images, torch.device(device), batch_size=batch_size, precision=precision
    )


def load_forward(
    model_name: str | None,
    weights: Path | str | None,
    onnx: Path | str | None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 1000,
    tflite: Path | str | None = None,
    runtime: str = "litert",
) -> tuple[str, Path, str, Forward]:
    """The classifier the evaluate and predict options name: an ONNX file run by ONNX
    Runtime (``onnx``), a TFLite file run by LiteRT or TFLM (``tflite``, ``runtime``), or a
    model with weights run by PyTorch. Returns the model name, the file, how it runs (for
    the console) and its forward."""
    from tinycifar.inference import resolve_device
    from tinycifar.precision import resolve_precision

    if tflite is not None:
        from tinycifar.tflite_file import TfliteClassifier

        if weights is not None or model_name is not None or onnx is not None:
            raise TinyCifarError("--tflite runs the TFLite file alone: drop --model, --weights and --onnx")
        tfl = TfliteClassifier(tflite, runtime)
        kind = "int8" if tfl.input["dtype"] == np.int8 else "float32"
        where = "TFLM (x86 reference kernels)" if runtime == "tflm" else "LiteRT"
        return Path(tflite).stem, Path(tflite), f"{where} on the CPU, {kind}", tfl.logits

    if onnx is not None:
        from tinycifar.onnx_file import OnnxClassifier

        if weights is not None or model_name is not None:
            raise TinyCifarError("--onnx runs the ONNX file alone: drop --model and --weights")
        clf = OnnxClassifier(onnx)
        runs_as = "ONNX Runtime on the CPU" + (", int8" if "quantization" in clf.metadata else ", fp32")
        return (
            clf.metadata.get("model", Path(onnx).name),
            Path(onnx),
            runs_as,
            lambda images: clf.logits(images, batch_size),
        )
    dev = resolve_device(device)
    name = resolve_model_name(model_name, weights)
    path = Path(weights) if weights is not None else pretrained_path(name)
    model = load_model(name, weights, dev)
    precision = resolve_precision(precision, dev)
    return name, path, f"PyTorch on {dev}, {precision}", torch_forward(model, dev, batch_size, precision)


def weights_metadata(path: Path | str) -> dict[str, str]:
    """A safetensors file's metadata (``model``, ``seed``, ``held_out``...), or {} if it has
    none or cannot be read: :func:`load_weights` says what is wrong with an unreadable file.
    Read by :func:`weights_header`, so a file over the size cap is not opened."""
    try:
        return weights_header(path).metadata
    except TinyCifarError:
        return {}


def _metadata_model(path: Path) -> str | None:
    """The ``model`` entry of a safetensors file's metadata, or None if absent or unreadable."""
    return weights_metadata(path).get("model")
