"""Build a model with weights: the shipped pretrained file, or a run's ``model.safetensors``.

Shipped weights live inside the package as ``tinycifar/weights/<model>.safetensors``; the
commands that need a trained model (``evaluate``, ``predict``) use them unless given
``--weights``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import torch
import torch.nn as nn

from tinycifar.checkpoint import load_weights
from tinycifar.errors import TinyCifarError
from tinycifar.models import DEFAULT_MODEL, create_model, describe_model


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

    Returned in eval mode, channels-last, on ``device``. Raises :class:`TinyCifarError` when
    no weights ship for the model, when the file is unreadable, when its metadata names
    another model, or when its tensors do not fit the architecture.
    """
    model = create_model(model_name)  # TinyCifarError for an unknown name
    if weights is None:
        path = pretrained_path(model_name)
        if not path.is_file():
            raise TinyCifarError(
                f"no pretrained weights ship for model {model_name!r}: pass --weights PATH "
                "(the model.safetensors of a `tinycifar train` run)"
            )
    else:
        path = Path(weights)
    saved_as = _metadata_model(path)
    if saved_as is not None and saved_as != model_name:
        raise TinyCifarError(
            f"{path} holds weights for model {saved_as!r}, not {model_name!r}: "
            f"pass --model {saved_as}"
        )
    load_weights(model, path)
    return model.to(device=torch.device(device), memory_format=torch.channels_last).eval()


def _metadata_model(path: Path) -> str | None:
    """The ``model`` entry of a safetensors file's metadata, or None if absent or unreadable.

    An unreadable file is not reported here: :func:`load_weights` says what is wrong with it.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("model")
    except Exception:  # noqa: BLE001 - any failure is reported by load_weights with context
        return None
