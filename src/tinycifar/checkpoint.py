"""Saving and loading: atomic checkpoints for resuming, safetensors for shipped weights.

Loading never unpickles arbitrary objects: checkpoints go through
``torch.load(weights_only=True)`` and weights through safetensors, so a file from a
stranger cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import save_file

from tinycifar.atomic import atomic_write
from tinycifar.errors import TinyCifarError
from tinycifar.untrusted import (
    SafetensorsHeader,
    check_checkpoint_zip,
    load_safetensors,
    read_bytes,
    safetensors_header,
)

LAST, PREVIOUS = "last.pt", "previous.pt"


def save_checkpoint(state: dict[str, Any], run_dir: Path) -> None:
    """Keep the two newest checkpoints: ``last.pt`` and ``previous.pt`` as a fallback."""
    run_dir = Path(run_dir)
    last = run_dir / LAST
    # Stage the new file first: if we die before the renames, last.pt is still whole.
    staged = run_dir / (LAST + ".new")
    atomic_write(staged, lambda p: torch.save(state, p))
    if last.exists():
        os.replace(last, run_dir / PREVIOUS)
    os.replace(staged, last)


def _candidates(run_dir: Path) -> list[Path]:
    return [run_dir / LAST, run_dir / (LAST + ".new"), run_dir / PREVIOUS]


def check_resumable(run_dir: Path) -> None:
    """Fail now, before any data is loaded, if a run folder holds no checkpoint file at all.

    Whether a file there is readable is only found out by :func:`load_checkpoint`.
    """
    run_dir = Path(run_dir)
    if not any(c.exists() for c in _candidates(run_dir)):
        raise _nothing_to_resume(run_dir)


def _nothing_to_resume(run_dir: Path) -> TinyCifarError:
    return TinyCifarError(f"nothing to resume: no checkpoint ({LAST}) in {run_dir}; start the run without --resume")


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest readable checkpoint of a run; falls back to the previous one with a warning."""
    run_dir = Path(run_dir)
    errors = []
    for path in (c for c in _candidates(run_dir) if c.exists()):
        try:
            state = _safe_torch_load(path)
        except TinyCifarError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; resuming from {path.name} instead", stacklevel=2)
        return state
    if errors:
        raise TinyCifarError("no usable checkpoint in " + str(run_dir) + ": " + "; ".join(errors))
    raise _nothing_to_resume(run_dir)


# A checkpoint holds a model, its optimizer and averager: about 1.5 MB for a 100k-parameter
# network, 30 MB for a 2M-parameter teacher. A larger file is refused before it is decoded.
MAX_CHECKPOINT_BYTES = 64 << 20


def _safe_torch_load(path: Path) -> dict[str, Any]:
    data = read_bytes(path, MAX_CHECKPOINT_BYTES, f"checkpoint {path}", "resume only runs written by `tinycifar train`")
    try:
        check_checkpoint_zip(data, MAX_CHECKPOINT_BYTES)
    except ValueError as e:
        # Not even opened by torch: a legacy (non-zip) torch file allocates the storages its
        # pickle declares, and a compressed entry expands in memory; torch.save writes neither.
        raise TinyCifarError(
            f"{path} is corrupt or not a tinycifar checkpoint ({e}); nothing in it was "
            "read or run. Resume only runs written by `tinycifar train`"
        ) from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global outside tensors and plain containers: this is
        # the path a malicious pickle takes, and nothing of it has run. Garbage bytes that
        # happen to look like a pickle end here too, with an unknown opcode instead.
        why = _why_refused(e)
        what = "not a safe tinycifar checkpoint" if "GLOBAL" in why else "corrupt or not a tinycifar checkpoint"
        raise TinyCifarError(
            f"{path} is {what} (refused to unpickle: {why}); nothing in it was run. "
            "Resume only runs written by `tinycifar train`"
        ) from None
    except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways (even IndexError); all alike
        raise TinyCifarError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise TinyCifarError(f"{path} is not a tinycifar checkpoint (no model state)")
    return state


def _why_refused(e: pickle.UnpicklingError) -> str:
    # torch's first line only advises re-running with weights_only=False, which is exactly
    # what must not be done with a stranger's file: quote the line that names the problem.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line
    return lines[0] if lines and "weights_only" not in lines[0] else "not a plain tensor checkpoint"


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Weights only, as safetensors: the format to ship and share."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda p: save_safetensors(tensors, p, metadata))


# The zoo's weights are under 1 MB and a 2M-parameter teacher's 8 MB: a larger file is
# refused before it is read, so a stranger's file cannot exhaust memory.
MAX_WEIGHTS_BYTES = 64 << 20


# safetensors' names of the floating-point types a network's parameters may be stored in
# (fp16 and bf16 widen to fp32 on loading); fp8 is left out: it would load as a lossy cast.
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


WeightsHeader = SafetensorsHeader  # what a weights file declares before any tensor is read


def weights_header(path: Path | str) -> WeightsHeader:
    """The tensor shapes, types and metadata a safetensors file declares, read from its
    header alone (no tensor data): what :func:`check_fits` compares with a network."""
    return _read_weights(path)[0]


def _read_weights(path: Path | str) -> tuple[WeightsHeader, bytes]:
    path = Path(path)
    data = read_bytes(
        path, MAX_WEIGHTS_BYTES, f"weights file {path}", "pass the model.safetensors of a `tinycifar train` run"
    )
    try:
        return safetensors_header(data), data
    except ValueError as e:
        raise TinyCifarError(f"{path} is not a readable safetensors weights file ({e})") from None


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The names and shapes of ``model``'s tensors, as a weights file declares them."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_fits(
    model: nn.Module, path: Path | str, header: WeightsHeader, recorded_args: dict[str, Any] | None = None
) -> None:
    """Refuse weights whose tensor names, shapes or kinds (float or integer) are not
    ``model``'s, before any is read.

    ``model`` may live on the meta device: that is how ``recorded_args``, the constructor
    arguments the file itself records, are checked before a network of their size is
    allocated."""
    expected = state_shapes(model)
    if expected != header.shapes:
        _refuse_shapes(path, expected, header, recorded_args)
    # load_state_dict would cast an integer tensor into a float parameter silently: an
    # int8-quantised file of the right shapes would load as a model at chance, with no error.
    for name, mine in model.state_dict().items():
        stored = header.dtypes[name]
        if mine.is_floating_point() != (stored in FLOAT_DTYPES):
            raise TinyCifarError(
                f"{path}: tensor {name} is stored as {_clip(stored)} where the network holds "
                f"{str(mine.dtype).removeprefix('torch.')}: pass the model.safetensors of a "
                "`tinycifar train` run (int8 models ship as ONNX: `tinycifar export --int8`)"
            )


def _refuse_shapes(
    path: Path | str, expected: dict[str, tuple[int, ...]], header: WeightsHeader, recorded_args: dict[str, Any] | None
) -> NoReturn:
    metadata = header.metadata
    if recorded_args:  # then no --model can fix it: the file contradicts itself
        raise TinyCifarError(
            f"{path}: model {metadata.get('model')} built with the arguments it records "
            f"({_clip(json.dumps(recorded_args))}) does not fit its tensors; the file was "
            "not written by `tinycifar train`"
        )
    arch = metadata.get("model")
    saved = f"for model {arch!r}" if arch else "(with no model name in the file)"
    fits = _models_that_fit(header.shapes)
    fix = f"pass --model {' or '.join(fits)}" if fits else "pass the --model they were trained with"
    raise TinyCifarError(
        f"{path} holds weights {saved} that do not fit this architecture ({_mismatch(expected, header.shapes)}): {fix}"
    )


def load_weights(model: nn.Module, path: Path | str, header: WeightsHeader | None = None) -> dict[str, str]:
    """Load safetensors weights into ``model``; returns the file's metadata. ``header`` is
    the file's :func:`weights_header` where the caller has read it already (the file is then
    read again, bounded, and its header must not have changed)."""
    read, data = _read_weights(path)
    if header is not None and read != header:
        raise TinyCifarError(f"{path} changed while it was being read: load it again")
    check_fits(model, path, read)
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise TinyCifarError(f"{path} is not a readable safetensors weights file ({e})") from None
    model.load_state_dict(tensors, strict=True)  # names, shapes and kinds fit; fp16/bf16 widen to fp32
    return read.metadata


def _mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """What differs between two networks' tensor shapes, in a few words with one example of each."""
    parts = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and expected[k] != found[k]]
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]}")
    if unexpected:  # a stranger's names: quoted and cut, so the message stays one line
        parts.append(f"{len(unexpected)} unexpected, e.g. {_clip(repr(unexpected[0]))}")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape, e.g. {k} {_clip(str(found[k]))} instead of {expected[k]}")
    return "; ".join(parts)


def _clip(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[:most] + "..."


def _models_that_fit(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Registered models (with their default arguments) whose tensors have exactly these names and shapes."""
    from tinycifar.models import create_model, list_models

    with torch.device("meta"):
        return [name for name in list_models() if state_shapes(create_model(name)) == shapes]


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, its write errors (a full disk) as the ``OSError``
    that :func:`tinycifar.atomic.atomic_write` turns into one line."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        raise OSError(str(e)) from None
