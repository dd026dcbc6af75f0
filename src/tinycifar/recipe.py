"""Training recipes: a flat dataclass, stored as small TOML files inside the package.

Every field is also a command-line flag of ``tinycifar train`` (``lr`` → ``--lr``,
``label_smoothing`` → ``--label-smoothing``, booleans as ``--flip/--no-flip``); a flag
given on the command line overrides the recipe file.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from tinycifar.errors import TinyCifarError


@dataclass(frozen=True)
class Recipe:
    epochs: int = 20
    batch_size: int = 512
    lr: float = 0.4  # peak learning rate of the schedule
    momentum: float = 0.9  # SGD with Nesterov momentum
    weight_decay: float = 5e-4  # on conv/linear weights only, never on BatchNorm or biases
    warmup_epochs: float = 2.0  # linear warm-up, then linear decay to zero
    label_smoothing: float = 0.1
    ema_decay: float = 0.0  # per-step EMA of the weights; 0 turns it off
    flip: bool = True
    translate: int = 2  # pixels of random shift (reflect padding)
    ssr: bool = False  # shift-scale-rotate
    cutout: int = 0  # side of the erased square; 0 turns it off

    def validate(self) -> "Recipe":
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1 (got {self.batch_size})")
        if not self.lr > 0:
            problems.append(f"lr must be positive (got {self.lr})")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1) (got {self.momentum})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs] (got {self.warmup_epochs})")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1) (got {self.ema_decay})")
        if not 0 <= self.translate <= 16:
            problems.append(f"translate must be in [0, 16] pixels (got {self.translate})")
        if not 0 <= self.cutout <= 32:
            problems.append(f"cutout must be in [0, 32] pixels (got {self.cutout})")
        if problems:
            raise TinyCifarError("bad recipe: " + "; ".join(problems))
        return self


RECIPE_NAMES = ("default",)


def load_recipe(name_or_path: str | Path = "default") -> Recipe:
    """A packaged recipe by name (``default``) or a TOML file by path."""
    path = Path(name_or_path)
    if str(name_or_path) in RECIPE_NAMES:
        text = resources.files("tinycifar.recipes").joinpath(f"{name_or_path}.toml").read_text()
        source = f"packaged recipe {name_or_path!r}"
    elif path.is_file():
        text, source = path.read_text(), str(path)
    else:
        raise TinyCifarError(f"recipe {str(name_or_path)!r} is neither a packaged recipe "
                             f"({', '.join(RECIPE_NAMES)}) nor an existing TOML file")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TinyCifarError(f"{source} is not valid TOML: {e}") from None
    return recipe_from_dict(values, source)


def recipe_from_dict(values: dict, source: str = "recipe") -> Recipe:
    known = {f.name: f for f in fields(Recipe)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TinyCifarError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                             f"known keys: {', '.join(known)}")
    typed = {}
    for key, value in values.items():
        want = known[key].type
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "bool": isinstance(value, bool)}[want]
        if not ok:
            raise TinyCifarError(f"{source}: {key} must be {want}, got {value!r}")
        typed[key] = float(value) if want == "float" else value
    return Recipe(**typed).validate()


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per recipe field; default None means 'keep the recipe's value'."""
    group = parser.add_argument_group("recipe overrides (default: the recipe's value)")
    for f in fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            group.add_argument(flag, dest=f.name, type={"int": int, "float": float}[f.type],
                               default=None, metavar=f.name.upper())


def apply_overrides(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    changes = {f.name: getattr(args, f.name) for f in fields(Recipe)
               if getattr(args, f.name, None) is not None}
    return dataclasses.replace(recipe, **changes).validate()
