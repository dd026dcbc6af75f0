"""One searched value of a space: a range ``{low, high, log, step}`` or ``{choices = [...]}``.

Checked so that Optuna takes it as written, its ends (what :mod:`tinycifar.sweep.space`
builds before any trial), and a trial's draw from it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.sweep.optuna_extra import need_optuna

_RANGE_HINT = (
    "use {low = A, high = B} (A < B; log = true needs A > 0; a step S > 0 draws A, A + S, ...) or {choices = [...]}"
)


def show(value: Any) -> str:
    """``value`` as an error message quotes it: a huge table must not flood the line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (TOML's ``true`` is not 1, nor its ``inf`` a bound)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range (TOML allows any size)
        return False


def check_spec(path: Path, name: str, spec: Any, whole: bool = False, choices_only: bool = False) -> None:
    """A search range or choices that Optuna takes as they are; ``whole``: the field takes
    integers, so the range must be one of integers."""
    where = f"{path}: {name} = {show(spec)}"
    if isinstance(spec, dict) and "choices" in spec:
        _check_choices(where, spec)
        return
    if choices_only:
        raise TinyCifarError(f'{where} is not a search of models: use {{choices = ["fastnet", "tinynet"]}}')
    if not (
        isinstance(spec, dict)
        and {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}
        and is_number(spec["low"])
        and is_number(spec["high"])
        and spec["low"] < spec["high"]
    ):
        raise TinyCifarError(f"{where} is not a search range: {_RANGE_HINT}")
    _check_log_and_step(where, spec)
    if whole and not whole_range(spec):
        raise TinyCifarError(
            f"{where}: {name.split()[-1]} takes whole numbers: give low, high and step "
            "as integers, e.g. {low = 2, high = 8, step = 2}"
        )


def _check_choices(where: str, spec: dict[str, Any]) -> None:
    if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
        raise TinyCifarError(
            f"{where} is not a search range: choices take a non-empty list and nothing "
            "else, e.g. {choices = [128, 256]}"
        )
    for choice in spec["choices"]:
        if not _storable(choice, top=True):
            raise TinyCifarError(
                f"{where}: Optuna cannot store the choice {show(choice)}: a choice is a "
                "number, true/false, a string (not starting with '[') or a list of those"
            )


def _check_log_and_step(where: str, spec: dict[str, Any]) -> None:
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise TinyCifarError(f"{where}: log = {show(log)} is not true or false")
    if log and spec["low"] <= 0:
        raise TinyCifarError(f"{where} is not a search range: log = true needs low > 0")
    if step is None:
        return
    if log:
        raise TinyCifarError(f"{where}: a log range takes no step (Optuna refuses both): drop one of them")
    if not is_number(step) or step <= 0:
        raise TinyCifarError(f"{where}: step = {show(step)} must be a number > 0")
    if step > spec["high"] - spec["low"]:
        raise TinyCifarError(
            f"{where}: step = {step} is longer than the range, so only low could be "
            "drawn: make the step smaller or the range wider"
        )


def _storable(value: Any, top: bool = False) -> bool:
    # Optuna stores scalars; a list travels as JSON text, so a string starting with "["
    # would come back as a list.
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, str):
        return not (top and value.startswith("["))
    return isinstance(value, bool) or is_number(value)


def whole_range(spec: dict[str, Any]) -> bool:
    """Whether low, high and step are all integers (then the range draws integers)."""
    return (
        _is_int(spec.get("low")) and _is_int(spec.get("high")) and (spec.get("step") is None or _is_int(spec["step"]))
    )


def _distribution(spec: dict[str, Any], whole: bool) -> Any:
    optuna = need_optuna()
    log, step = spec.get("log", False), spec.get("step")
    with warnings.catch_warnings():  # a step that does not divide the range: Optuna lowers high
        warnings.simplefilter("ignore")
        if whole:
            return optuna.distributions.IntDistribution(spec["low"], spec["high"], log=log, step=step or 1)
        return optuna.distributions.FloatDistribution(
            float(spec["low"]), float(spec["high"]), log=log, step=None if step is None else float(step)
        )


def ends(spec: dict[str, Any], whole: bool) -> list[tuple[Any, str]]:
    """The values at the edges of what the sampler draws, each with how to name it."""
    if "choices" in spec:
        return [(c, "one of its choices") for c in spec["choices"]]
    d = _distribution(spec, whole)  # Optuna's own bounds: a step that does not divide lowers high
    return [(d.low, "the low end of its range"), (d.high, "the high end of its range")]


def suggest(trial: Any, name: str, spec: dict[str, Any], whole: bool | None = None) -> Any:
    """A value for ``name``; ``whole``: draw integers (None: when low, high and step are)."""
    if "choices" in spec:  # Optuna stores scalars: lists (widths) travel as JSON text
        encoded = [json.dumps(c) if isinstance(c, list) else c for c in spec["choices"]]
        return decode(trial.suggest_categorical(name, encoded))
    if whole is None:
        whole = whole_range(spec)
    if whole:
        return trial.suggest_int(
            name, spec["low"], spec["high"], step=spec.get("step") or 1, log=spec.get("log", False)
        )
    step = spec.get("step")
    return trial.suggest_float(
        name,
        float(spec["low"]),
        float(spec["high"]),
        log=spec.get("log", False),
        step=None if step is None else float(step),
    )


def decode(value: Any) -> Any:
    """A stored parameter as it was chosen: a list comes back from its JSON text."""
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value
