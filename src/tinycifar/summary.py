"""``tinycifar summary``: a model's layer table, parameter count, MACs and receptive field.

The table has the exact layout of ``torchsummary`` (which is what the seed task printed),
so a model's table can be compared line by line with the seed's. The library entry points
are :func:`summarize` (walk a model, return a :class:`ModelSummary`) and
:func:`format_summary` (render it as text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from tinycifar.errors import TinyCifarError
from tinycifar.memory import McuMemory, estimate
from tinycifar.models import DEFAULT_BUDGET

# torchinfo (checked: 1.8.0) prints a nested depth-indexed tree with a 40-wide name column,
# real batch sizes and "--" for zero, not torchsummary's flat leaf table, so a small
# forward-hook walker is simpler than post-processing it and adds no dependency.

LINE_WIDTH = 64
DEFAULT_INPUT_SIZE = (3, 32, 32)

# Leaves that own parameters but do no multiply-accumulates worth counting (by policy).
_ZERO_MAC_WITH_PARAMS = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.PReLU,
    nn.Embedding,
)


class LayerRow(NamedTuple):
    """One leaf-module call: ``Conv2d-1``, ``(-1, 10, 32, 32)``, its own parameters, its MACs."""

    name: str
    output_shape: Any  # list like [-1, C, H, W]; a list of such lists for tuple outputs
    params: int
    macs: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int  # per image
    receptive_field: int | None  # pixels, larger of the two axes; None if no spatial layer
    receptive_field_hw: tuple[int, int] | None
    receptive_field_layer: str | None  # row name the receptive field is measured at
    input_size: tuple[int, ...] = DEFAULT_INPUT_SIZE
    budget: int = DEFAULT_BUDGET
    macs_not_counted: list[str] = field(default_factory=list)  # leaves with params, unknown MACs
    params_not_in_rows: int = 0  # params owned by non-leaf or never-called modules
    mcu: McuMemory | None = None  # int8 TFLite flash and TFLM RAM, estimated; None off 3x32x32

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def size_kb_fp32(self) -> float:
        return self.total_params * 4 / 1024

    @property
    def size_kb_int8(self) -> float:
        return self.total_params / 1024

    @property
    def over_budget(self) -> bool:
        return self.total_params > self.budget


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (1, 1)
    return (int(v), int(v))


def _shape_of(out: Any) -> Any:
    """torchsummary's output-shape convention: batch dimension shown as -1."""
    if isinstance(out, torch.Tensor):
        return [-1] + list(out.shape[1:]) if out.dim() else []
    if isinstance(out, (tuple, list)):
        return [_shape_of(o) for o in out]
    return "?"


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for item in x:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


def _macs(module: nn.Module, inp: torch.Tensor | None, out: torch.Tensor | None) -> int | None:
    """Multiply-accumulates per image for one leaf call; None if the type is unknown.

    Conv (any N-d): output elements x in_channels/groups x kernel volume (dilation and
    stride act through the output size). Transposed conv: input elements x
    out_channels/groups x kernel volume. Linear: output elements x in_features. Bias adds,
    normalisation, activations, pooling, dropout and shuffles count as 0.
    """
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        if inp is None:
            return None
        return (inp[0].numel() * module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        if out is None:
            return None
        return (out[0].numel() * module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        if out is None:
            return None
        return out[0].numel() * module.in_features
    if isinstance(module, _ZERO_MAC_WITH_PARAMS):
        return 0
    if any(True for _ in module.parameters(recurse=False)):
        return None
    return 0


class _RF:
    """Theoretical receptive field along the executed sequence of leaf calls, per axis."""

    def __init__(self) -> None:
        self.rf = [Fraction(1), Fraction(1)]
        self.jump = [Fraction(1), Fraction(1)]
        self.layer: str | None = None

    def _kernel_op(self, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> None:
        for a in range(2):
            self.rf[a] += (k[a] - 1) * d[a] * self.jump[a]
            self.jump[a] *= s[a]

    def step(self, name: str, m: nn.Module, inp: torch.Tensor | None, out: torch.Tensor | None) -> None:
        # Only 4-D -> 4-D calls whose input map is larger than 1x1 count: on a 1x1 map every
        # off-centre kernel tap sees padding, so layers after global pooling (classifier
        # heads, squeeze-excitation branches) cannot widen what the network sees.
        if inp is None or out is None or inp.dim() != 4 or out.dim() != 4:
            return
        if inp.shape[2] * inp.shape[3] <= 1:
            return
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return  # global pooling ends the spatial part (or feeds an attention branch)
        if isinstance(m, nn.ConvTranspose2d):
            k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
            for a in range(2):
                self.jump[a] /= s[a]
                self.rf[a] += (k[a] - 1) * d[a] * self.jump[a]
        elif isinstance(m, nn.Conv2d):
            self._kernel_op(_pair(m.kernel_size), _pair(m.stride), _pair(m.dilation))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)):
            k = _pair(m.kernel_size)
            s = _pair(m.stride) if m.stride is not None else k
            d = _pair(getattr(m, "dilation", 1))
            self._kernel_op(k, s, d)
        elif isinstance(m, nn.PixelUnshuffle):
            r = m.downscale_factor
            self._kernel_op((r, r), (r, r), (1, 1))
        elif isinstance(m, nn.PixelShuffle):
            for a in range(2):
                self.jump[a] /= m.upscale_factor
        else:
            # Anything else that resizes the map (Upsample, custom leaves) rescales the step.
            for a in range(2):
                if inp.shape[2 + a] != out.shape[2 + a]:
                    self.jump[a] *= Fraction(inp.shape[2 + a], out.shape[2 + a])
        self.layer = name

    def result(self) -> tuple[int, int] | None:
        if self.layer is None:
            return None
        return (math.ceil(self.rf[0]), math.ceil(self.rf[1]))


def summarize(
    model: nn.Module,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    budget: int = DEFAULT_BUDGET,
    mcu: bool = False,
) -> ModelSummary:
    """Run a batch of two zero images through ``model`` and describe every leaf-module call.

    Rows: one per call of a leaf module (a module without children) in execution order,
    numbered across all calls from 1, so a module called twice appears twice. A row's
    parameter count is the module's own parameters (``recurse=False``); the totals count
    each parameter of the model once.

    MACs per image are counted for Conv (incl. groups, stride, dilation), ConvTranspose and
    Linear leaves; BatchNorm/normalisation, activations, pooling and dropout count as 0,
    and operations done with functional calls inside ``forward`` are not seen. Leaves with
    parameters of any other type are listed in ``macs_not_counted``.

    Receptive field: the theoretical receptive field (in input pixels, ignoring padding) at
    the last spatial layer, i.e. the last leaf call mapping a 4-D tensor with a map larger
    than 1x1 to a 4-D tensor, before any global (adaptive) pooling. It is computed
    analytically along the sequence of leaf calls as they execute (rf += (k-1)*d*jump,
    jump *= stride; transposed conv and PixelShuffle divide the jump). For models with
    branches (residual shortcuts, attention) every branch is walked in execution order as
    if it were in sequence, so the number is an approximation, usually an over-estimate.

    The model runs in eval mode under ``torch.no_grad``; each module's training flag is
    restored and all hooks are removed afterwards.
    """
    input_size = tuple(int(v) for v in input_size)
    leaves = [m for m in model.modules() if next(iter(m.children()), None) is None]
    calls: list[tuple[nn.Module, Any, Any]] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        calls.append((module, inputs, output))

    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        handles = [m.register_forward_hook(hook) for m in leaves]
        model.eval()
        with torch.no_grad():
            try:
                model(torch.zeros((2, *input_size), device=device, dtype=dtype))
            except Exception as e:  # noqa: BLE001 - any failure here is a bad model/input pair
                raise TinyCifarError(f"{type(model).__name__} cannot run on input size {list(input_size)}: {e}") from e
    finally:
        for h in handles:
            h.remove()
        for m, was_training in modes.items():
            m.training = was_training

    rows: list[LayerRow] = []
    rf = _RF()
    not_counted: list[str] = []
    seen: set[int] = set()
    total_macs = 0
    for i, (m, inputs, output) in enumerate(calls, start=1):
        name = f"{type(m).__name__}-{i}"
        own = list(m.parameters(recurse=False))
        seen.update(id(p) for p in own)
        inp, out = _first_tensor(inputs), _first_tensor(output)
        macs = _macs(m, inp, out)
        if macs is None:
            not_counted.append(name)
            macs = 0
        total_macs += macs
        rf.step(name, m, inp, out)
        rows.append(LayerRow(name, _shape_of(output), sum(p.numel() for p in own), macs))

    all_params = list(model.parameters())
    rf_hw = rf.result()
    return ModelSummary(
        rows=rows,
        total_params=sum(p.numel() for p in all_params),
        trainable_params=sum(p.numel() for p in all_params if p.requires_grad),
        macs=total_macs,
        receptive_field=max(rf_hw) if rf_hw else None,
        receptive_field_hw=rf_hw,
        receptive_field_layer=rf.layer,
        input_size=input_size,
        budget=budget,
        macs_not_counted=not_counted,
        params_not_in_rows=sum(p.numel() for p in all_params if id(p) not in seen),
        mcu=_mcu(model, input_size) if mcu else None,
    )


def _mcu(model: nn.Module, input_size: tuple[int, ...]) -> McuMemory | None:
    if input_size != DEFAULT_INPUT_SIZE:
        return None
    return estimate(model)


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def format_summary(s: ModelSummary) -> str:
    """Render a summary: torchsummary's table, then MACs, receptive field, size and budget."""
    lines = [
        "-" * LINE_WIDTH,
        "{:>20}  {:>25} {:>15}".format("Layer (type)", "Output Shape", "Param #"),
        "=" * LINE_WIDTH,
    ]
    for r in s.rows:
        lines.append("{:>20}  {:>25} {:>15}".format(r.name, str(r.output_shape), f"{r.params:,}"))
    lines += [
        "=" * LINE_WIDTH,
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.non_trainable_params:,}",
        "-" * LINE_WIDTH,
        f"Input size: {' x '.join(map(str, s.input_size))}",
        f"MACs per image: {s.macs:,} ({_human(s.macs)})",
    ]
    if s.macs_not_counted:
        lines.append(f"  (not counted, unknown layer type: {', '.join(s.macs_not_counted)})")
    if s.receptive_field_hw is None:
        lines.append("Receptive field: n/a (no spatial layers)")
    else:
        h, w = s.receptive_field_hw
        rf_text = f"{h} px" if h == w else f"{h}x{w} px"
        note = f"theoretical, at {s.receptive_field_layer}, the last spatial layer"
        if len(s.input_size) == 3 and h >= s.input_size[1] and w >= s.input_size[2]:
            note += f"; covers the whole {s.input_size[1]}x{s.input_size[2]} input"
        lines.append(f"Receptive field: {rf_text} ({note})")
    lines.append(f"Size: {s.size_kb_fp32:,.1f} KB as fp32, {s.size_kb_int8:,.1f} KB as int8")
    if s.mcu is not None:
        lines.append(
            f"Microcontroller (int8 TFLite, estimated): flash {s.mcu.flash_bytes / 1000:,.1f} KB, "
            f"RAM {s.mcu.ram_bytes / 1000:,.1f} KB (TFLM arena; {s.mcu.peak_activation_bytes / 1000:,.1f} KB "
            "of it activations)"
        )
    if s.params_not_in_rows:
        lines.append(
            f"  ({s.params_not_in_rows:,} params belong to non-leaf or uncalled modules: in the totals, not the rows)"
        )
    if s.over_budget:
        lines.append(f"Budget: OVER the {s.budget:,}-parameter budget by {s.total_params - s.budget:,} parameters")
    else:
        lines.append(f"Budget: within the {s.budget:,}-parameter budget ({s.budget - s.total_params:,} to spare)")
    lines.append("-" * LINE_WIDTH)
    return "\n".join(lines)
