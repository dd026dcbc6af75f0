"""Trained weights → one ``.tflite`` file under :mod:`tinycifar.tflite_file`'s contract.

The converter is Google's ``litert-torch`` (PyTorch → LiteRT); int8 is its PT2E
quantiser: per-channel symmetric int8 weights, int8 activations calibrated on training
images. Three things the converter does not do on its own, done here with Google's tools:

- the IC01 input convention (int8, scale 1, zero point -128: a pixel p goes in as p - 128):
  the graph takes pixels in [0, 255] and its input is pinned to those quantisation
  parameters, then LiteRT's ``modify_model_interface`` (the TFLite tool behind
  ``inference_input_type=int8``) drops the float edges, so firmware copies camera bytes;
- what does not lower to integer kernels is rewritten first, exactly in float: a global
  max-pool becomes ``amax`` and a BatchNorm that follows no convolution (fastnet's, after a
  max-pool) a 1×1 depthwise convolution, which the quantiser handles as any convolution;
- names and debug strings are stripped (``flatbuffer_utils.strip_strings``) and the class
  names, model and tinycifar version go into the file's metadata.

A file that still holds a float operator is refused: on a microcontroller it would need
float kernels and four bytes an activation.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from tinycifar import __version__
from tinycifar.atomic import atomic_write, write_text
from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError, first_line
from tinycifar.inference import MEAN, STD

# Chosen on the validation split (benchmarks/int8_calibration.py --format tflite;
# experiments/mcu/README.md).
OBSERVERS = ("histogram", "minmax")
OBSERVER = "histogram"
CALIBRATION_IMAGES = 512
METADATA_NAME = "tinycifar"


def need_converter() -> Any:
    """litert-torch, with the parts of its stack :func:`convert` uses, or one line saying how
    to install them: a broken install is not the model's fault."""
    fix = "writing .tflite files is an optional extra: pip install -e '.[tflite-export]' (make setup installs it)"
    try:
        with _quiet():
            import litert_torch
            import torchao.quantization.pt2e  # noqa: F401
            from ai_edge_litert import _pywrap_modify_model_interface  # noqa: F401
    except ImportError:
        raise TinyCifarError(fix) from None
    except Exception as e:  # noqa: BLE001 - jax, protobuf and torchao fail to import in many ways
        raise TinyCifarError(f"litert-torch is installed but does not import ({first_line(e)}); {fix}") from None
    return litert_torch


class _GlobalMax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


class _GlobalMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def _depthwise(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A BatchNorm in eval mode as the 1×1 depthwise convolution it is."""
    if bn.running_var is None or bn.running_mean is None:
        raise TinyCifarError("a BatchNorm without running statistics cannot be exported: train it with them")
    scale = 1 / torch.sqrt(bn.running_var + bn.eps)
    weight = bn.weight if bn.weight is not None else torch.ones_like(scale)
    bias = bn.bias if bn.bias is not None else torch.zeros_like(scale)
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, groups=bn.num_features)
    with torch.no_grad():
        conv.weight.copy_((weight * scale).view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias - bn.running_mean * weight * scale)
    return conv


def deployable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval) computing the same function from operators that lower to
    TFLite's integer kernels: global pools as reductions, lone BatchNorms as convolutions."""
    model = copy.deepcopy(model).cpu().float().eval()
    with torch.no_grad():  # the converter reads a channels-last weight's storage as if contiguous:
        # fastnet's shipped weights converted to a file that scored 10 % before this
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.contiguous()
    for parent in list(model.modules()):
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveMaxPool2d) and child.output_size in (1, (1, 1)):
                setattr(parent, name, _GlobalMax())
            elif isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
                setattr(parent, name, _GlobalMean())
            elif isinstance(child, nn.BatchNorm2d):
                # Only in a plain Sequential is the module before it the one that feeds it.
                chained = isinstance(parent, nn.Sequential) and type(parent).forward is nn.Sequential.forward
                if chained and previous is not None and type(previous[1]) is nn.Conv2d:
                    # Folded here (the converter would too) so that the graph the quantiser
                    # calibrates and tinycifar.memory estimates is the one the file holds.
                    setattr(parent, previous[0], fuse_conv_bn_eval(previous[1], child))
                    setattr(parent, name, nn.Identity())
                else:
                    setattr(parent, name, _depthwise(child))
            previous = (name, child)
    return model


class PixelsToScores(nn.Module):
    """The deployed graph: one NHWC image in → scores, normalisation inside. ``pixel_max``
    is 255 for the int8 file (pixels as the camera gives them) and 1 for the float one."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, model: nn.Module, pixel_max: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.tensor([1 / (pixel_max * s) for s in STD]))
        self.register_buffer("shift", torch.tensor([-m / s for m, s in zip(MEAN, STD)]))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels * self.scale + self.shift).permute(0, 3, 1, 2))


def _quantizer(observer: str) -> Any:
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec

    config = pq.get_symmetric_quantization_config(is_per_channel=True)
    observer_class = {"histogram": HistogramObserver, "minmax": MinMaxObserver}[observer]
    spec = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=observer_class.with_args(eps=2**-12))
    config = dataclasses.replace(config, input_activation=spec, output_activation=spec)
    pixels = FixedQParamsQuantizationSpec(
        dtype=torch.int8, scale=1.0, zero_point=-128, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine
    )

    class CameraPixels(pq.PT2EQuantizer):
        """The global int8 config, with the graph's input pinned to scale 1 and zero point
        -128: 8-bit pixels become int8 by subtracting 128 and nothing else."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            for node in model.graph.nodes:
                if node.op != "placeholder":
                    continue
                for user in node.users:
                    annotation = user.meta.get("quantization_annotation")
                    if annotation is not None and node in annotation.input_qspec_map:
                        annotation.input_qspec_map[node] = pixels
            return model

    return CameraPixels().set_global(config)


def convert(
    model: nn.Module,
    model_name: str,
    calibration_images: torch.Tensor | None = None,
    observer: str = OBSERVER,
) -> bytes:
    """``model`` as ``.tflite`` bytes: float32 when ``calibration_images`` is None, else full
    int8 calibrated on those uint8 images (N, 3, 32, 32), which must be training images."""
    litert_torch = need_converter()
    if observer not in OBSERVERS:
        raise TinyCifarError(f"unknown calibration observer {observer!r}; use {', '.join(OBSERVERS)}")
    int8 = calibration_images is not None
    try:
        graph = PixelsToScores(deployable(model), 255.0 if int8 else 1.0).eval()
        with _quiet():
            if calibration_images is None:
                flat = litert_torch.convert(graph, (torch.zeros(1, 32, 32, 3),)).model_content()
            else:
                flat = _int8(litert_torch, graph, calibration_images, observer)
        return _finish(flat, model_name, int8, observer, 0 if calibration_images is None else len(calibration_images))
    except TinyCifarError:
        raise
    except Exception as e:  # noqa: BLE001 - the converter fails in many ways; say which model
        raise TinyCifarError(f"model {model_name!r} does not convert to TFLite ({first_line(e)[:300]})") from None


def _int8(litert_torch: Any, graph: nn.Module, images: torch.Tensor, observer: str) -> bytes:
    from litert_torch.quantize import quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    pixels = images.permute(0, 2, 3, 1).float()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    # strict: the quantiser finds its patterns (a residual add, mul) by the Python operator
    # each node came from, which only the strict (dynamo) capture records
    example = torch.zeros(2, 32, 32, 3)  # two, or export fixes the batch at one
    captured = torch.export.export(graph, (example,), dynamic_shapes={"pixels": {0: batch}}, strict=True).module()
    quantizer = _quantizer(observer)
    prepared = quantize_pt2e.prepare_pt2e(captured, quantizer)
    with torch.no_grad():
        for i in range(0, len(pixels), 64):
            prepared(pixels[i : i + 64])
    quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(
        quantized, (pixels[:1],), quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)
    )
    from ai_edge_litert import _pywrap_modify_model_interface as interface
    from ai_edge_litert import schema_py_generated as schema

    # The TFLite tool that turns float edges (QUANTIZE in, DEQUANTIZE out) into int8 ones;
    # LiteRT ships it compiled, with a file-to-file interface only.
    with tempfile.TemporaryDirectory() as scratch:
        src, dst = Path(scratch) / "float_io.tflite", Path(scratch) / "int8_io.tflite"
        src.write_bytes(edge.model_content())
        int8 = schema.TensorType.INT8
        if interface.modify_model_interface(str(src), str(dst), int8, int8) != 0:
            raise TinyCifarError("the int8 file's float input and output could not be made int8")
        return dst.read_bytes()


def _finish(flat: bytes, model_name: str, int8: bool, observer: str, images: int) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flat))
    if int8:
        floats = _float_operators(model, schema, flatbuffer_utils)
        if floats:
            raise TinyCifarError(
                f"model {model_name!r} does not quantise to int8 throughout ({', '.join(floats)} compute in float): "
                "an operator the int8 kernels lack; export it without --int8"
            )
    flatbuffer_utils.strip_strings(model)
    info = {
        "model": model_name,
        "tinycifar_version": __version__,
        "classes": list(CLASSES),
        "contract": "int8 input pixel - 128, int8 scores" if int8 else "float32 input in [0, 1], float32 scores",
    }
    if int8:
        info["quantization"] = f"int8 PT2E, per-channel weights, {observer} observer on {images} training images"
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(info).encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _float_operators(model: Any, schema: Any, flatbuffer_utils: Any) -> list[str]:
    """Operators of the graph that read or write a float tensor: float islands, which a
    microcontroller would run with float kernels at four bytes an activation."""
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    found = set()
    for op in graph.operators:
        tensors = [graph.tensors[i] for i in [*op.inputs, *op.outputs] if i >= 0]
        if any(t.type == schema.TensorType.FLOAT32 for t in tensors):
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            found.add(names.get(code, str(code)))
    return sorted(found)


def write(path: Path, data: bytes) -> None:
    def save(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(path, save)


def int8_path(path: Path) -> Path:
    return path.with_name(path.stem + ".int8.tflite")


def write_c_array(path: Path, data: bytes, source_name: str) -> None:
    """The file as C source, as firmware projects embed a model (what ``xxd -i`` writes,
    aligned as TFLM asks of a model buffer)."""
    symbol = "".join(c if c.isalnum() else "_" for c in source_name)
    if not symbol[:1].isalpha():
        symbol = "model_" + symbol
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    text = (
        f"// {source_name}: a tinycifar model, {len(data):,} bytes, for TensorFlow Lite Micro.\n"
        "#include <stdint.h>\n\n"
        "// extern: a const at file scope is private to its file in C++; other files declare these\n"
        f"extern const uint8_t {symbol}[];\nextern const unsigned int {symbol}_len;\n\n"
        f"alignas(16) const uint8_t {symbol}[] = {{\n  " + ",\n  ".join(rows) + "\n};\n"
        f"const unsigned int {symbol}_len = {len(data)};\n"
    )
    write_text(path, text)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter logs its progress, absl and torchao warnings: nothing a user can act on.
    Errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read once, when the native code loads; a user's own wins
    loggers = [logging.getLogger(), logging.getLogger("litert_torch"), logging.getLogger("torchao")]
    levels = [lg.level for lg in loggers]
    streams = sys.stdout, sys.stderr  # an import of the converter's stack may replace them
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _stderr_to_null():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        sys.stdout, sys.stderr = streams


@contextlib.contextmanager
def _stderr_to_null() -> Iterator[None]:
    """C++ parts of the converter write to file descriptor 2 directly."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
