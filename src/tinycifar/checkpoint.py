"""Saving and loading: atomic checkpoints for resuming, safetensors for shipped weights.

Loading never unpickles arbitrary objects: checkpoints go through
``torch.load(weights_only=True)`` and weights through safetensors, so a file from a
stranger cannot run code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tinycifar.errors import TinyCifarError

LAST, PREVIOUS = "last.pt", "previous.pt"


def atomic_write(path: Path, write: "callable[[Path], None]") -> None:
    """Write through a temp file in the same folder, fsync, then rename over ``path``.

    A crash or kill at any moment leaves either the old file or the new one, never half.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The newest readable checkpoint of a run; falls back to the previous one with a warning."""
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST, run_dir / (LAST + ".new"), run_dir / PREVIOUS]
    errors = []
    for i, path in enumerate(c for c in candidates if c.exists()):
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
    raise TinyCifarError(f"nothing to resume: no checkpoint ({LAST}) in {run_dir}; "
                         "start the run without --resume")


def _safe_torch_load(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global outside tensors and plain containers: this is
        # the path a malicious pickle takes, and nothing of it has run.
        raise TinyCifarError(f"{path} is not a safe tinycifar checkpoint (refused to unpickle: "
                             f"{str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise TinyCifarError(f"{path} is corrupt or truncated ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise TinyCifarError(f"{path} is not a tinycifar checkpoint (no model state)")
    return state


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Weights only, as safetensors: the format to ship and share."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata=metadata))


def load_weights(model: nn.Module, path: Path) -> dict[str, str]:
    """Load safetensors weights into ``model``; returns the file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise TinyCifarError(f"weights file {path} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise TinyCifarError(f"{path} is not a readable safetensors weights file ({e})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        arch = metadata.get("model", "unknown")
        raise TinyCifarError(f"{path} holds weights for model {arch!r} that do not fit this "
                             f"architecture; pass the matching --model ("
                             f"{str(e).splitlines()[0]})") from None
    return metadata
