"""``tinycifar export``: trained weights → one ONNX file for ONNX Runtime, optionally int8.

The file keeps the contract of :mod:`tinycifar.onnx_file` (``images`` in [0, 1] → ``logits``,
normalisation inside, dynamic batch, self-contained) and carries the class names, the model
name and the tinycifar version as metadata. After writing, it checks itself with ONNX
Runtime against PyTorch on the test set.

``--int8`` is post-training static quantisation with ``onnxruntime.quantization``: QDQ
format, int8 per-channel weights, activations calibrated on training images (never test
images). The calibration method and image count were chosen on the validation split
(``benchmarks/int8_calibration.py``; docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tinycifar import __version__
from tinycifar.atomic import atomic_write
from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.inference import MEAN, STD
from tinycifar.onnx_file import CONTRACT, IMAGE_SHAPE, INPUT, OUTPUT, need_onnx

# Chosen on the validation split (benchmarks/int8_calibration.py, docs/deployment.md).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_METHOD = "minmax"
CALIBRATION_IMAGES = 512
CALIBRATION_SEED = 0
# Weights use 7 of their 8 bits (``reduce_range``): x86 CPUs without VNNI (AVX2, most
# AVX-512) multiply uint8 by int8 with an instruction whose pairwise sums saturate int16,
# which with full-range weights kept only 46% of fastnet's predictions (98.8% with 7 bits).
# ONNX Runtime's guide gives the same advice; the file stays correct on every CPU.
# What int8 runs. Not BatchNormalization: one that could not be folded into a convolution
# (fastnet's sits after a max-pool) has its rank-1 scale quantised "per channel" along an
# axis it does not have, which cost 44 points of accuracy (87.3% → 43.1%); kept in float.
QUANTIZED_OPS = [
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "MaxPool",
    "AveragePool",
    "Relu",
    "Clip",
    "Add",
    "Mul",
    "Reshape",
    "Flatten",
    "Transpose",
    "Resize",
    "Pad",
    "Slice",
    "Split",
    "Squeeze",
    "Unsqueeze",
]


class ImagesToLogits(nn.Module):
    """The deployed graph: float images in [0, 1] → logits, the normalisation inside, so a
    device feeds it pixels / 255 and needs to know nothing else."""

    scale: torch.Tensor  # buffers, registered in __init__
    shift: torch.Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.tensor([1 / s for s in STD]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(torch.addcmul(self.shift, images, self.scale))


def export_onnx(model: nn.Module, path: Path, model_name: str, extra: dict[str, str] | None = None) -> None:
    """Write ``model`` (eval mode, CPU) to ``path`` as a contract-keeping ONNX file."""
    onnx, _ = need_onnx()
    # ignored below: torch's stub of nn.Module.to omits memory_format, which the runtime accepts
    contiguous = model.cpu().float().eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    graph = ImagesToLogits(contiguous).eval()
    example = torch.rand(2, *IMAGE_SHAPE)
    try:
        with _quiet():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=1 << 16)}},
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as e:  # noqa: BLE001 - the exporter fails in many ways; say which model
        raise TinyCifarError(f"model {model_name!r} does not export to ONNX ({str(e).splitlines()[0][:300]})") from None
    assert program is not None  # dynamo=True returns an ONNXProgram; only the legacy exporter returns None
    proto = program.model_proto
    strip_debug_info(proto)
    metadata = {
        "model": model_name,
        "tinycifar_version": __version__,
        "classes": json.dumps(list(CLASSES)),
        "contract": CONTRACT,
        **(extra or {}),
    }
    set_metadata(proto, metadata)
    atomic_write(path, lambda p: onnx.save_model(proto, p))


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantiser print progress, log that torchvision's detection
    operators are missing (we use none) and warn about their own internals: nothing a user
    can act on. Errors still raise."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def strip_debug_info(proto: Any) -> None:
    """Drop what only a debugger wants: the exporter's per-node stack traces (they hold this
    machine's file paths), doc strings and the intermediate shapes (ONNX Runtime infers
    them again). A third of an int8 file's size, nothing of its meaning."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]


def shorten_names(proto: Any) -> None:
    """Rename every tensor but the graph's input and output to ``t0, t1, ...`` and drop node
    names. The quantiser's names (``model.features.3.4.0.weight_bias_quantized_zero_point``)
    repeat at every use and are over a tenth of an int8 file; the fp32 file keeps its
    readable names for anyone inspecting it."""
    g = proto.graph
    if any(a.HasField("g") or len(a.graphs) for node in g.node for a in node.attribute):
        return  # a subgraph (If, Loop) may use outer names: never the case for our models
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for t in g.initializer:
        t.name = short(t.name)
    for node in g.node:
        node.name = ""
        node.input[:] = [short(i) for i in node.input]
        node.output[:] = [short(o) for o in node.output]


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over uint8 images, in batches."""

    def __init__(self, images: torch.Tensor, batch_size: int = 64) -> None:
        self.batches = iter(
            [images[i : i + batch_size].numpy().astype(np.float32) / 255.0 for i in range(0, len(images), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT: batch}


def quantize_int8(
    fp32_path: Path, path: Path, calibration_images: torch.Tensor, method: str = CALIBRATION_METHOD
) -> None:
    """Static int8 quantisation of ``fp32_path`` into ``path``: QDQ, per-channel int8
    weights (7-bit range), uint8 activations whose ranges are calibrated on
    ``calibration_images`` (uint8, from the training set)."""
    onnx, _ = need_onnx()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise TinyCifarError(f"unknown calibration method {method!r}; use {', '.join(methods)}")
    metadata = {p.key: p.value for p in onnx.load(fp32_path).metadata_props}
    with tempfile.TemporaryDirectory() as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        # Shape inference and graph optimisation (BatchNorm folded into the convolutions)
        # first, as ONNX Runtime's quantisation guide asks: fewer tensors to quantise.
        with _quiet():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                _Calibration(calibration_images),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                calibrate_method=methods[method],
                op_types_to_quantize=QUANTIZED_OPS,
            )
        proto = onnx.load(quantized)
        strip_debug_info(proto)
        shorten_names(proto)
        set_metadata(
            proto,
            {
                **metadata,
                "quantization": f"int8 QDQ, per-channel weights, {method} "
                f"calibration on {len(calibration_images)} training images",
            },
        )
        atomic_write(path, lambda p: onnx.save_model(proto, p))


def compare(ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, float]:
    """Two sets of logits for the same images (PyTorch's, ONNX Runtime's): largest absolute
    difference and the share of images where both pick the same class."""
    if not len(ours):
        return {"max_abs_logit_diff": 0.0, "top1_agreement": 1.0}
    return {
        "max_abs_logit_diff": float((ours - theirs).abs().max()),
        "top1_agreement": float((ours.argmax(1) == theirs.argmax(1)).float().mean()),
    }


def calibration_sample(images: torch.Tensor, count: int, seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """``count`` training images, drawn with a fixed seed so an export is repeatable."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return images[pick.sort().values]


def int8_path(path: Path) -> Path:
    return path.with_name(path.stem + ".int8.onnx")


# --- the command -------------------------------------------------------------------------
