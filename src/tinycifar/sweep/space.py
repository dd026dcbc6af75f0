"""The search space: the TOML file a sweep searches, checked in full before any worker
starts, and a trial's model, constructor arguments and recipe drawn from it.

Every check runs here, in the command's own process, because an error a worker meets
would be met by every trial of every worker: one line now beats a log full of failures.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.recipe import RECIPE_NAMES
from tinycifar.sweep.ranges import check_spec, ends, is_number, show, suggest, whole_range

MAX_SEED = 4_000_000  # the sampler's seed is seed * 1000 + worker: numpy takes < 2**32


@dataclass
class Space:
    model: Any = "fastnet"
    recipe: str = "fast"
    val_split: int = 5000
    train_images: int = 0
    val_images: int = 0
    seed: int = 0
    prune_from: int = 1  # the first epoch the median pruner may stop a trial at; 0: never
    fixed: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_args: dict[str, dict[str, Any]] = field(default_factory=dict)


# What each top-level key of a space holds, and how to write it instead.
_TOP_LEVEL: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str, dict), 'a model name, e.g. model = "fastnet", or model = {choices = ["fastnet", "tinynet"]}'),
    "recipe": ((str,), f'a packaged recipe ({", ".join(RECIPE_NAMES)}) or a recipe file, e.g. recipe = "fast"'),
    "val_split": ((int,), "a whole number of held-out training images, e.g. val_split = 5000"),
    "train_images": ((int,), "a whole number of training images (0: all), e.g. train_images = 10000"),
    "val_images": ((int,), "a whole number of validation images (0: all), e.g. val_images = 2000"),
    "seed": ((int,), f"a whole number from 0 to {MAX_SEED:,}, e.g. seed = 0"),
    "prune_from": (
        (int,),
        "the first epoch the median pruner may stop a trial at (0: never), e.g. prune_from = 8: a decaying "
        "learning rate makes early scores a poor guide to the last",
    ),
    "fixed": ((dict,), "a table of recipe fields: a line [fixed], then lines like epochs = 4"),
    "search": ((dict,), "a table of ranges or choices: a line [search], then lines like lr = {low = 0.1, high = 1.0}"),
    "model_args": (
        (dict,),
        ("a table of ranges or choices: a line [model_args], then lines like widths = {choices = [[16, 32, 64]]}"),
    ),
}


def load_space(path: Path | str) -> Space:
    """The space in a TOML file, every name, type and range checked, and the recipe and
    the model built from the ends of every range and from every choice: one clear error
    otherwise, before any worker starts."""
    from tinycifar.recipe import load_recipe

    path = Path(path)
    values = _read(path)
    _check_top_level(path, values)
    space = Space(**values)
    if load_recipe(space.recipe).distill:  # a TinyCifarError names a bad recipe
        raise TinyCifarError(
            f"{path}: recipe = {space.recipe!r} distils from a teacher, which a sweep does not take: "
            f'choose another recipe, e.g. recipe = "long"'
        )
    _check_recipe_fields(path, space)
    models = _check_model_names(path, space)
    for name, spec in space.search.items():
        check_spec(path, f"[search] {name}", spec, whole=name in _whole_fields())
    for name, spec in space.model_args.items():
        check_spec(path, f"[model_args] {name}", spec)
    _check_recipes(path, space)
    _check_models(path, space, models)
    _check_freeze(path, space, models)
    return space


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TinyCifarError(f"cannot read the search space {path} ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise TinyCifarError(f"{path} is not a valid TOML search space ({e})") from None


def _check_top_level(path: Path, values: dict[str, Any]) -> None:
    from tinycifar.data import train_size

    known = {f.name for f in fields(Space)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TinyCifarError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key, value in values.items():
        kinds, hint = _TOP_LEVEL[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TinyCifarError(f"{path}: {key} = {show(value)} is not {hint}")
    held_out = values.get("val_split", Space.val_split)
    if not 0 < held_out < train_size():
        raise TinyCifarError(
            f"{path}: val_split = {held_out} must be between 1 and {train_size() - 1:,}: "
            "a sweep scores its trials on that many held-out training images"
        )
    for key in ("train_images", "val_images"):
        if values.get(key, 0) < 0:
            raise TinyCifarError(f"{path}: {key} = {values[key]} must be >= 0 (0: all the images)")
    if values.get("prune_from", 0) < 0:
        raise TinyCifarError(f"{path}: prune_from = {values['prune_from']} must be >= 0 (0: never prune)")
    if not 0 <= values.get("seed", 0) <= MAX_SEED:
        raise TinyCifarError(f"{path}: seed = {values['seed']} must be between 0 and {MAX_SEED:,}")


def _check_recipe_fields(path: Path, space: Space) -> None:
    from tinycifar.recipe import Recipe

    recipe_fields = {f.name for f in fields(Recipe)}
    for section in ("fixed", "search"):
        bad = sorted(set(getattr(space, section)) - recipe_fields)
        if bad:
            raise TinyCifarError(
                f"{path}: [{section}] {', '.join(bad)} are not recipe fields "
                f"(they are: {', '.join(sorted(recipe_fields))})"
            )
    if "distill" in {**space.fixed, **space.search}:
        raise TinyCifarError(
            f"{path}: distill needs a teacher, which a sweep does not take: leave distill out of the search space"
        )
    both = sorted(set(space.fixed) & set(space.search))
    if both:
        raise TinyCifarError(f"{path}: {', '.join(both)} both [fixed] and [search]: keep one")


def _check_model_names(path: Path, space: Space) -> list[str]:
    """The models the space names, each registered."""
    from tinycifar.models import list_models

    if isinstance(space.model, dict):
        check_spec(path, "model", space.model, choices_only=True)
    models = space.model["choices"] if isinstance(space.model, dict) else [space.model]
    for m in models:
        if m not in list_models():
            raise TinyCifarError(f"{path}: unknown model {show(m)}; registered: {', '.join(list_models())}")
    return models


def _whole_fields() -> set[str]:
    """The recipe fields that take integers: a range of them draws integers."""
    from tinycifar.recipe import Recipe

    return {f.name for f in fields(Recipe) if f.type == "int"}


def _check_recipes(path: Path, space: Space) -> None:
    """Build the recipe of each [fixed] value, then of every range's ends and every choice
    (the other searched fields at their low ends), then of every high end together."""
    base = _base_values(space)
    for key, value in space.fixed.items():
        _try_recipe(base, {key: value}, {}, f"{path}: [fixed] {key} = {show(value)}")
    _try_recipe(base, space.fixed, {}, f"{path}: [fixed] {', '.join(space.fixed)} together")
    edges = {k: ends(spec, k in _whole_fields()) for k, spec in space.search.items()}
    lows = {k: e[0][0] for k, e in edges.items()}
    for key, values in edges.items():
        for value, what in values:
            others = " (the other searched fields at their low ends)" if len(edges) > 1 else ""
            _try_recipe(
                base, space.fixed, {**lows, key: value}, f"{path}: [search] {key} = {show(value)}, {what}{others}"
            )
    if len(edges) > 1:
        highs = {k: e[-1][0] for k, e in edges.items()}
        _try_recipe(base, space.fixed, highs, f"{path}: [search] with every field at its high end ({show(highs)})")


def _check_freeze(path: Path, space: Space, models: list[str]) -> None:
    """Every model against the most stages any ``freeze`` of the space names (the recipes
    themselves were checked): one clear error, not one failed trial after another."""
    from tinycifar.recipe import freeze_parts
    from tinycifar.train import check_freeze

    spec = space.search.get("freeze")
    values = [_base_values(space)["freeze"], space.fixed.get("freeze", "")]
    values += spec.get("choices", []) if isinstance(spec, dict) else []
    wanted = max(len(freeze_parts(str(v))) for v in values)
    for model in models:
        try:
            check_freeze(wanted, model, None)
        except TinyCifarError as e:
            raise TinyCifarError(f"{path}: {e}") from None


def _try_recipe(base: dict[str, Any], fixed: dict[str, Any], drawn: dict[str, Any], where: str) -> None:
    from tinycifar.recipe import recipe_from_dict

    try:
        recipe_from_dict(trial_values(base, fixed, drawn), "bad recipe")
    except TinyCifarError as e:
        raise TinyCifarError(f"{where}: {e}") from None


def trial_values(base: dict[str, Any], fixed: dict[str, Any], drawn: dict[str, Any]) -> dict[str, Any]:
    """A trial's recipe fields: the base recipe's, then the fixed ones, then those drawn;
    warm-up no longer than the run (a short fixed ``epochs`` must not fail every trial)."""
    values = {**base, **fixed, **drawn}
    warmup, epochs = values.get("warmup_epochs"), values.get("epochs")
    if is_number(warmup) and is_number(epochs) and warmup > epochs:  # type: ignore[operator]  # numbers, checked
        values["warmup_epochs"] = epochs
    return values


def _check_models(path: Path, space: Space, models: list[str]) -> None:
    """Build each model with the constructor arguments at their ends (on the meta device:
    nothing is allocated, however wide)."""
    if not space.model_args:
        return
    edges = {k: ends(spec, whole_range(spec)) for k, spec in space.model_args.items()}
    lows = {k: e[0][0] for k, e in edges.items()}
    points = [{**lows, k: v} for k, values in edges.items() for v, _ in values]
    points.append({k: e[-1][0] for k, e in edges.items()})
    for model in models:
        for model_args in points:
            try:
                count_params(model, model_args)
            except TinyCifarError as e:
                raise TinyCifarError(f"{path}: [model_args]: {e}") from None
            except Exception as e:  # noqa: BLE001 - whatever a constructor raises: one line
                raise TinyCifarError(
                    f"{path}: [model_args]: model {model} cannot be built with "
                    f"{show(model_args)} ({type(e).__name__}: {str(e)[:200]})"
                ) from None


def count_params(model: str, model_args: dict[str, Any]) -> int:
    """The parameters of ``model`` built with ``model_args``."""
    import torch

    from tinycifar.models import build_model

    with torch.device("meta"):  # counted, not allocated: a search space may hold huge widths
        return sum(p.numel() for p in build_model(model, model_args).parameters())


def configure(trial: Any, space: Space) -> tuple[str, dict[str, Any], Any]:
    """A trial's model, constructor arguments and recipe."""
    from tinycifar.recipe import recipe_from_dict

    model = suggest(trial, "model", space.model) if isinstance(space.model, dict) else space.model
    model_args = {k: suggest(trial, f"model.{k}", spec) for k, spec in space.model_args.items()}
    drawn = {k: suggest(trial, k, spec, whole=k in _whole_fields()) for k, spec in space.search.items()}
    values = trial_values(_base_values(space), space.fixed, drawn)
    return model, model_args, recipe_from_dict(values, f"trial {trial.number}")


def _base_values(space: Space) -> dict[str, Any]:
    from tinycifar.recipe import load_recipe

    return {**vars(load_recipe(space.recipe)), "eval_every": 1}  # every epoch: the pruner sees each
