"""What a model needs on a microcontroller as a full-int8 TFLite file, estimated before export.

- **flash**: the ``.tflite`` file: int8 weights, int32 biases, a scale and a zero point per
  output channel of every weight and bias (TFLite stores zero points as int64), and the
  flatbuffer's tables for each operator and tensor;
- **RAM**: TFLM's tensor arena: the activations live at the worst moment of one inference
  (int8, one byte each; a tensor lives from the operator that writes it to the last one that
  reads it, operators in execution order), plus what TFLM keeps per operator and tensor.

Both are read off the graph that :mod:`tinycifar.tflite_export` converts (BatchNorm folded,
the same operators), traced with ``torch.export``: no converter is needed, a model takes
a fraction of a second. The constants below were fitted to the files and arenas of every
zoo model; ``tests/test_tflite_export.py`` exports each one and checks the estimate against
the file's size and TFLM's own arena within :data:`FLASH_TOLERANCE` and
:data:`ARENA_TOLERANCE`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn as nn

from tinycifar.tflite_export import PixelsToScores, deployable

# Operators that TFLite fuses into the one before them or that only rename a tensor:
# they write no new activation.
_ALIASES = {
    "aten.view.default",
    "aten.reshape.default",
    "aten._unsafe_view.default",
    "aten.flatten.using_ints",
    "aten.permute.default",
    "aten.squeeze.dim",
    "aten.squeeze.dims",
    "aten.unsqueeze.default",
    "aten.contiguous.default",
    "aten.clone.default",
    "aten.dropout.default",
    "aten.detach.default",
    "aten.alias.default",
    "aten.transpose.int",
}
# Not modelled: the TRANSPOSE the converter keeps where a model flattens a map into a
# linear layer or transposes inside an attention block; within the tolerance on the zoo.
_FUSED_ACTIVATIONS = {"aten.relu.default", "aten.relu_.default", "aten.hardtanh.default", "aten.hardtanh_.default"}
_FUSING = ("conv", "linear", "addmm", "add", "mul")
# Fitted by least squares to the int8 files and TFLM arenas of the eight zoo models
# (tinycifar 2026-12, litert-torch 0.10, tflite-micro 0.dev20261023): the flash estimate
# came within 1.5% of every file, the RAM estimate within 13% of every arena.
FLASH_BASE = 1_970  # the model's tables, operator codes, metadata
FLASH_PER_OP = 143  # an operator's table, its output tensor's
FLASH_PER_CHANNEL = 28  # an int32 bias and two (float32 scale, int64 zero point) pairs
ARENA_PER_CHANNEL = 12  # TFLM's per-channel output multiplier and shift, and its tensor records
FLASH_TOLERANCE = 0.03
ARENA_TOLERANCE = 0.15


@dataclass(frozen=True)
class McuMemory:
    flash_bytes: int
    ram_bytes: int
    peak_activation_bytes: int  # the activations alone, at the worst operator
    operators: int


def estimate(model: nn.Module) -> McuMemory | None:
    """Flash and RAM of ``model`` exported as full int8 (``tinycifar export --int8``), or
    None for a model ``torch.export`` cannot trace (which the converter cannot take either)."""
    graph = PixelsToScores(deployable(model), 255.0).eval()
    try:
        program = torch.export.export(graph, (torch.zeros(1, 32, 32, 3),))
    except Exception:  # noqa: BLE001 - tracing fails in many ways; the estimate's own errors still raise
        return None
    nodes = list(program.graph_module.graph.nodes)
    constants = set(program.graph_signature.inputs_to_parameters) | set(program.graph_signature.inputs_to_buffers)
    constants |= set(program.graph_signature.inputs_to_lifted_tensor_constants)

    owner: dict[str, str] = {}  # node → the tensor it is (itself, or what it aliases)
    size: dict[str, int] = {}
    produced_at: dict[str, int] = {}
    last_use: dict[str, int] = {}
    kinds: dict[str, str] = {}
    step = 0
    ops = 0
    channels = 0
    for node in nodes:
        if node.op == "placeholder":
            if node.name in constants:
                continue
            owner[node.name] = node.name
            size[node.name] = _bytes(node)
            produced_at[node.name] = step
            kinds[node.name] = "input"
            continue
        if node.op != "call_function":
            continue
        target = str(node.target)
        inputs = [owner[a.name] for a in node.all_input_nodes if a.name in owner]
        for tensor in inputs:
            last_use[tensor] = step
        if node.target is operator.getitem or target in _ALIASES:
            if inputs:
                owner[node.name] = inputs[0]
            continue
        if target in _FUSED_ACTIVATIONS and inputs and kinds.get(inputs[0], "").startswith(_FUSING):
            owner[node.name] = inputs[0]
            continue
        if not inputs:  # a constant computed from constants: folded by the converter
            continue
        padded = _explicit_padding(node)
        if padded:  # the converter writes a PAD first: one more operator and tensor
            step += 1
            ops += 1
            pad_name = node.name + ".pad"
            size[pad_name], produced_at[pad_name], last_use[pad_name] = padded, step, step + 1
            for tensor in inputs:
                last_use[tensor] = step
        step += 1
        ops += 1
        for tensor in inputs:
            last_use[tensor] = step
        if target.startswith("aten.conv_transpose"):  # TFLM accumulates it in an int32 scratch
            scratch = node.name + ".scratch"
            size[scratch], produced_at[scratch], last_use[scratch] = 4 * _bytes(node), step, step
        owner[node.name] = node.name
        size[node.name] = _bytes(node)
        produced_at[node.name] = step
        last_use[node.name] = step
        kinds[node.name] = target.removeprefix("aten.")
        if target.startswith(("aten.conv", "aten.linear", "aten.addmm")):
            channels += _out_channels(node)
    peak = 0
    for s in range(step + 1):
        live = sum(b for t, b in size.items() if produced_at[t] <= s <= last_use.get(t, produced_at[t]))
        peak = max(peak, live)
    weights = sum(p.numel() for p in graph.model.parameters()) + sum(
        b.numel() for n, b in graph.model.named_buffers() if not n.endswith(("running_mean", "running_var"))
    )
    flash = FLASH_BASE + weights + FLASH_PER_OP * ops + FLASH_PER_CHANNEL * channels
    ram = peak + ARENA_PER_CHANNEL * channels
    return McuMemory(flash_bytes=flash, ram_bytes=ram, peak_activation_bytes=peak, operators=ops)


def _bytes(node: torch.fx.Node) -> int:
    value = node.meta.get("val")
    if isinstance(value, torch.Tensor):
        return math.prod(value.shape)  # int8: a byte an element
    return 0


def _out_channels(node: torch.fx.Node) -> int:
    value = node.meta.get("val")
    if not isinstance(value, torch.Tensor) or value.dim() < 2:
        return 0
    return int(value.shape[1])


def _explicit_padding(node: torch.fx.Node) -> int:
    """Bytes of the padded copy the converter makes when a convolution's or pooling's
    padding is not TFLite's VALID (none) or SAME (what keeps ``ceil(size / stride)``, the
    odd pixel after the image), else 0."""
    target = str(node.target)
    if target not in ("aten.conv2d.default", "aten.max_pool2d.default", "aten.avg_pool2d.default"):
        return 0
    source, second = node.args[0], node.args[1]
    value = source.meta.get("val") if isinstance(source, torch.fx.Node) else None
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        return 0
    shape = value.shape
    if target == "aten.conv2d.default":
        assert isinstance(second, torch.fx.Node)
        kernel = _pair(tuple(second.meta["val"].shape[2:]))
        stride = _pair(node.args[3] if len(node.args) > 3 else 1)
        padding = _pair(node.args[4] if len(node.args) > 4 else 0)
        dilation = _pair(node.args[5] if len(node.args) > 5 else 1)
    else:
        kernel = _pair(node.args[1])
        stride = _pair(node.args[2] if len(node.args) > 2 and node.args[2] else kernel)
        padding = _pair(node.args[3] if len(node.args) > 3 else 0)
        dilation = (1, 1)
    if padding == (0, 0):
        return 0
    same = True
    for size, k, st, p, d in zip(shape[2:], kernel, stride, padding, dilation):
        total = max((math.ceil(size / st) - 1) * st + (k - 1) * d + 1 - size, 0)
        same &= p == total // 2 and p == total - total // 2
    if same:
        return 0
    return int(shape[1] * (shape[2] + 2 * padding[0]) * (shape[3] + 2 * padding[1]))


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))  # type: ignore[call-overload]
