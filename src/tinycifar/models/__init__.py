"""Model zoo: every network is registered by name and built with :func:`create_model`.

Each entry module holds one network. ``list_models()`` gives the names in the order the
README table shows them; ``DEFAULT_MODEL`` is the one ``tinycifar train`` uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from tinycifar.errors import TinyCifarError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_RECIPES: dict[str, str] = {}

DEFAULT_MODEL = "fastnet"
# Every network of the zoo must stay under this many parameters (frozen ones included).
DEFAULT_BUDGET = 100_000


def register_model(
    name: str, description: str, recipe: str = "classic"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a constructor under ``name`` with a one-line description and
    the packaged recipe ``tinycifar train`` uses for it unless told otherwise."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        _RECIPES[name] = recipe
        return fn

    return wrap


def list_models() -> list[str]:
    return list(_REGISTRY)


def describe_model(name: str) -> str:
    _check(name)
    return _DESCRIPTIONS[name]


def model_recipe(name: str) -> str:
    """The packaged recipe a model trains with by default."""
    _check(name)
    return _RECIPES[name]


def create_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build a registered model with freshly initialised weights."""
    _check(name)
    return _REGISTRY[name](num_classes=num_classes, **kwargs)


def build_model(name: str, model_args: dict[str, Any] | None = None) -> nn.Module:
    """:func:`create_model` with constructor arguments (``--model-args``, or those a weights
    file records); arguments the model does not take are one clear error."""
    try:
        return create_model(name, **(model_args or {}))
    except (TypeError, ValueError, RuntimeError) as e:  # RuntimeError: torch refusing a size, e.g. -1
        given = json.dumps(model_args)
        given = given if len(given) <= 80 else given[:80] + "..."
        raise TinyCifarError(
            f"model {name} does not take the arguments {given} "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None


def _check(name: str) -> None:
    if name not in _REGISTRY:
        raise TinyCifarError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")


# Importing the entry modules fills the registry (order = README table order).
# isort: off
from tinycifar.models import fastnet  # noqa: E402,F401
from tinycifar.models import sepnet  # noqa: E402,F401
from tinycifar.models import fastnet_mcu  # noqa: E402,F401
from tinycifar.models import tinynet  # noqa: E402,F401
from tinycifar.models import dilatednet  # noqa: E402,F401
from tinycifar.models import senet  # noqa: E402,F401
from tinycifar.models import unshufflenet  # noqa: E402,F401
from tinycifar.models import resnet8  # noqa: E402,F401
from tinycifar.models import seed  # noqa: E402,F401
# isort: on


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``--model-args`` as a JSON object; one clear error otherwise (:func:`build_model` says
    whether the model takes them)."""
    if text is None:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise TinyCifarError(f"--model-args is not JSON ({e}): write it like '{{\"widths\": [16, 32, 64]}}'") from None
    if not isinstance(values, dict):
        raise TinyCifarError(
            "--model-args must be a JSON object of constructor arguments, e.g. '{\"widths\": [16, 32, 64]}'"
        )
    return values
