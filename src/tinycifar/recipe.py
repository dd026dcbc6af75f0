"""Training recipes: a flat dataclass, stored as small TOML files inside the package.

Every field is also a command-line flag of ``tinycifar train`` (``lr`` → ``--lr``,
``label_smoothing`` → ``--label-smoothing``, booleans as ``--flip/--no-flip``); a flag
given on the command line overrides the recipe file.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError

# Bounds past which a value is absurd rather than large: 10,000 epochs of CIFAR-10 are weeks
# on a CPU, a batch past 65,536 is larger than the data, and SGD diverges long before lr 10.
MAX_EPOCHS, MAX_BATCH_SIZE, MAX_LR = 10_000, 65_536, 10.0


def freeze_parts(text: str) -> list[str]:
    """The entries of a ``freeze`` text, stripped: one per stage, [] for none."""
    return [p.strip() for p in text.split(",")] if text.strip() else []


# The fields Recipe.scaled_to sets from a run's length.
LENGTH_FIELDS = ("epochs", "warmup_epochs", "whiten_bias_epochs", "freeze")


@dataclass(frozen=True)
class Recipe:
    epochs: int = field(default=30, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=512, metadata={"help": "images per SGD step"})
    lr: float = field(default=0.4, metadata={"help": "peak learning rate of the schedule"})
    optimizer: str = field(
        default="sgd",
        metadata={
            "help": "sgd (Nesterov momentum, L2 weight decay), adamw (decoupled weight decay, as "
            "xvel/cifar10-tiniest: lr 0.02, weight decay 0.01), or muon (Muon for the convolution filters "
            "at muon_lr, SGD for the rest, as airbench's Muon variant)",
            "choices": ("sgd", "adamw", "muon"),
        },
    )
    momentum: float = field(default=0.9, metadata={"help": "SGD Nesterov momentum"})
    muon_lr: float = field(
        default=0.24,
        metadata={"help": "with optimizer muon: the convolution filters' peak learning rate (airbench: 0.24)"},
    )
    muon_momentum: float = field(
        default=0.6, metadata={"help": "with optimizer muon: Muon's Nesterov momentum (airbench: 0.6)"}
    )
    weight_decay: float = field(
        default=5e-4, metadata={"help": "L2 on conv/linear weights only, never on BatchNorm or biases"}
    )
    warmup_epochs: float = field(default=2.0, metadata={"help": "linear warm-up length; then the decay"})
    schedule: str = field(
        default="linear",
        metadata={"help": "the decay after warm-up: linear or cosine, to lr_floor", "choices": ("linear", "cosine")},
    )
    lr_floor: float = field(
        default=0.0, metadata={"help": "where the decay ends, a share of the peak learning rate (xvel: 0.1)"}
    )
    label_smoothing: float = field(default=0.1, metadata={"help": "cross-entropy label smoothing"})
    ema_decay: float = field(
        default=0.0, metadata={"help": "per-step EMA of the weights, evaluated and saved instead; 0 = off"}
    )
    lookahead: int = field(
        default=0,
        metadata={"help": "Lookahead: every N steps pull the weights to a slow average (airbench: 5); 0 = off"},
    )
    bias_lr_scale: float = field(
        default=1.0, metadata={"help": "learning-rate multiplier for BatchNorm biases (airbench: 64)"}
    )
    whiten_bias_epochs: int = field(
        default=0,
        metadata={
            "help": "the patch-whitening stem's bias trains for this many epochs, then freezes, and the steps "
            "after skip the backward into the first convolution's input (airbench: 3 of 10); 0 = it trains "
            "throughout; models without the stem ignore it"
        },
    )
    freeze: str = field(
        default="",
        metadata={
            "help": "epochs after which the model's first, second, ... stage stops training, e.g. '5,9' "
            "(FreezeOut): the steps after skip their gradients; '' = none freeze"
        },
    )
    flip: bool = field(default=True, metadata={"help": "random horizontal flip"})
    alt_flip: bool = field(
        default=False,
        metadata={"help": "with flip: random in the first epoch, then each image mirrored every other epoch"},
    )
    translate: int = field(default=2, metadata={"help": "random shift in pixels (reflect padding); 0 = off"})
    ssr: bool = field(default=False, metadata={"help": "random shift-scale-rotate"})
    cutout: int = field(default=0, metadata={"help": "side of the erased square (16 = ERA's CoarseDropout); 0 = off"})
    brightness: float = field(
        default=0.0,
        metadata={"help": "colour jitter: brightness times U(1 - a, 1 + a) (xvel/cifar10-tiniest: 0.1); 0 = off"},
    )
    contrast: float = field(
        default=0.0, metadata={"help": "colour jitter: contrast times U(1 - a, 1 + a) (xvel: 0.1); 0 = off"}
    )
    saturation: float = field(
        default=0.0, metadata={"help": "colour jitter: saturation times U(1 - a, 1 + a) (xvel: 0.5); 0 = off"}
    )
    sharpness: float = field(
        default=0.0, metadata={"help": "sharpness times U(1, 1 + a), torchvision's (xvel: 1.2, i.e. 1 to 2.2); 0 = off"}
    )
    mixup: float = field(
        default=0.0, metadata={"help": "mixup: blend image pairs and their labels, share ~ Beta(a, a); a = 0 is off"}
    )
    cutmix: float = field(
        default=0.0,
        metadata={"help": "CutMix: paste a box of another image, area ~ Beta(a, a); 0 = off (with mixup: half each)"},
    )
    mixup_ramp: float = field(
        default=0.0,
        metadata={
            "help": "mixup whose partner share ~ U(0, min(e/epochs, this)) in epoch e counted from 0: none in "
            "the first epoch, then more (xvel/cifar10-tiniest: 0.5); instead of mixup's Beta; 0 = off"
        },
    )
    distill: float = field(
        default=0.0,
        metadata={"help": "share of a teacher's probabilities in each image's target (train --teacher FILE); 0 = off"},
    )
    eval_every: int = field(default=1, metadata={"help": "evaluate every N epochs, and always after the last"})

    def __post_init__(self) -> None:
        # one spelling of each freeze schedule, so a resume spelt "5, 9" is the run of "5,9"
        object.__setattr__(self, "freeze", ",".join(freeze_parts(self.freeze)))
        self.validate()

    def scaled_to(self, epochs: int) -> Recipe:
        """The recipe run for ``epochs`` instead (a time budget's): warm-up, the stem's bias
        epochs and the stages' freeze epochs keep their share of the run, warm-up never
        longer than it."""
        share = epochs / self.epochs
        bias_epochs = max(1, round(self.whiten_bias_epochs * share)) if self.whiten_bias_epochs else 0
        freeze = ",".join(str(max(1, round(e * share))) for e in self.freeze_epochs)
        return replace(
            self,
            epochs=epochs,
            warmup_epochs=min(self.warmup_epochs * share, epochs),
            whiten_bias_epochs=bias_epochs,
            freeze=freeze,
        )

    def with_length_of(self, planned: Recipe) -> Recipe:
        """This recipe with the fields :meth:`scaled_to` sets taken from ``planned``: a run
        resumed under a time budget keeps the length it planned."""
        return replace(self, **{name: getattr(planned, name) for name in LENGTH_FIELDS})

    @property
    def freeze_epochs(self) -> tuple[int, ...]:
        """``freeze`` as numbers: stage ``i`` trains for ``freeze_epochs[i]`` epochs."""
        return tuple(int(e) for e in freeze_parts(self.freeze))

    def frozen(self, epoch: int) -> tuple[bool, int]:
        """What the run keeps frozen in epoch ``epoch`` (from 0): whether the whitening
        stem's bias is, and how many of the model's first stages are."""
        bias = bool(self.whiten_bias_epochs) and epoch >= self.whiten_bias_epochs
        return bias, sum(epoch >= e for e in self.freeze_epochs)

    def validate(self) -> Recipe:
        # nan and inf slip through range checks such as ``weight_decay < 0``: refuse them first.
        nonfinite = [
            f"{f.name} must be a finite number (got {getattr(self, f.name)})"
            for f in fields(self)
            if f.type == "float" and not math.isfinite(getattr(self, f.name))
        ]
        if nonfinite:
            raise TinyCifarError("bad recipe: " + "; ".join(nonfinite))
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1 (got {self.epochs})")
        if self.epochs > MAX_EPOCHS:
            problems.append(
                f"epochs must be at most {MAX_EPOCHS:,} (got {self.epochs:,}); a recipe needs tens to hundreds"
            )
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1 (got {self.batch_size})")
        if self.batch_size > MAX_BATCH_SIZE:
            problems.append(
                f"batch_size must be at most {MAX_BATCH_SIZE:,} (got {self.batch_size:,}); the "
                "training set has 50,000 images"
            )
        if not self.lr > 0:
            problems.append(f"lr must be positive (got {self.lr})")
        if self.lr > MAX_LR:
            problems.append(f"lr must be at most {MAX_LR:g} (got {self.lr}); the packaged recipes use 0.27 to 0.4")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1) (got {self.momentum})")
        if not 0 < self.muon_lr <= MAX_LR:
            problems.append(f"muon_lr must be in (0, {MAX_LR:g}] (got {self.muon_lr}); airbench uses 0.24")
        if not 0 <= self.muon_momentum < 1:
            problems.append(f"muon_momentum must be in [0, 1) (got {self.muon_momentum})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if self.weight_decay > 1:
            problems.append(f"weight_decay must be at most 1 (got {self.weight_decay}); the packaged recipes use 5e-4")
        if not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs] (got {self.warmup_epochs})")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1) (got {self.ema_decay})")
        if self.ema_decay and self.lookahead:
            problems.append("ema_decay and lookahead are two ways to average weights: set one of them to 0")
        if self.lookahead < 0:
            problems.append(f"lookahead must be >= 0 steps (got {self.lookahead})")
        if self.lookahead > 10_000:
            problems.append(f"lookahead must be at most 10,000 steps (got {self.lookahead:,})")
        if not self.bias_lr_scale > 0:
            problems.append(f"bias_lr_scale must be positive (got {self.bias_lr_scale})")
        if self.bias_lr_scale > 1000:
            problems.append(f"bias_lr_scale must be at most 1000 (got {self.bias_lr_scale}); airbench uses 64")
        if not 0 <= self.whiten_bias_epochs <= MAX_EPOCHS:
            problems.append(
                f"whiten_bias_epochs must be in [0, {MAX_EPOCHS:,}] (got {self.whiten_bias_epochs}); 0 = never frozen"
            )
        problems += self._freeze_problems()
        if self.eval_every < 1:
            problems.append(f"eval_every must be at least 1 (got {self.eval_every})")
        if self.eval_every > MAX_EPOCHS:
            problems.append(f"eval_every must be at most {MAX_EPOCHS:,} epochs (got {self.eval_every:,})")
        if not 0 <= self.translate <= 16:
            problems.append(f"translate must be in [0, 16] pixels (got {self.translate})")
        problems += [
            f"{name} must be in [0, 1], the largest change of the factor (got {getattr(self, name)})"
            for name in ("brightness", "contrast", "saturation")
            if not 0 <= getattr(self, name) <= 1
        ]
        if not 0 <= self.sharpness <= 10:
            problems.append(f"sharpness must be in [0, 10], how much sharper at most (got {self.sharpness})")
        if not 0 <= self.cutout <= 32:
            problems.append(f"cutout must be in [0, 32] pixels (got {self.cutout})")
        problems += [
            f"{name} must be a Beta parameter >= 0, 0 for off (got {getattr(self, name)})"
            for name in ("mixup", "cutmix")
            if getattr(self, name) < 0
        ]
        if not 0 <= self.mixup_ramp <= 0.5:
            problems.append(f"mixup_ramp must be in [0, 0.5], the partner's largest share (got {self.mixup_ramp})")
        if not 0 <= self.distill <= 1:
            problems.append(f"distill must be in [0, 1], the teacher's share of each target (got {self.distill})")
        if self.mixup and self.mixup_ramp:
            problems.append("mixup and mixup_ramp are two ways to draw mixup's share: set one of them to 0")
        problems += [
            f"{f.name} must be one of {', '.join(f.metadata['choices'])} (got {getattr(self, f.name)!r})"
            for f in fields(self)
            if "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]
        ]
        if not 0 <= self.lr_floor < 1:
            problems.append(f"lr_floor must be in [0, 1), a share of the peak learning rate (got {self.lr_floor})")
        if problems:
            raise TinyCifarError("bad recipe: " + "; ".join(problems))
        return self

    def _freeze_problems(self) -> list[str]:
        parts = freeze_parts(self.freeze)
        if not all(p.isascii() and p.isdigit() and len(p) <= 5 for p in parts):
            return [f"freeze must be epochs separated by commas, such as '5,9' (got {self.freeze!r}); '' = none"]
        epochs = [int(p) for p in parts]
        if any(not 1 <= e <= self.epochs for e in epochs) or epochs != sorted(epochs):
            return [
                f"freeze must list epochs in [1, epochs] that never decrease, first stage first (got {self.freeze!r})"
            ]
        return []


RECIPE_NAMES = ("classic", "fast", "long", "mcu")


def load_recipe(name_or_path: str | Path = "classic") -> Recipe:
    """A packaged recipe by name (``classic``, ``fast``) or a TOML file by path."""
    path = Path(name_or_path)
    if str(name_or_path) in RECIPE_NAMES:
        text = resources.files("tinycifar.recipes").joinpath(f"{name_or_path}.toml").read_text()
        source = f"packaged recipe {name_or_path!r}"
    elif path.is_file():
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TinyCifarError(
                f"cannot read recipe {source}: {getattr(e, 'strerror', None) or e}; a recipe is a UTF-8 TOML text file"
            ) from None
    else:
        raise TinyCifarError(
            f"recipe {str(name_or_path)!r} is neither a packaged recipe "
            f"({', '.join(RECIPE_NAMES)}) nor an existing TOML file"
        )
    try:
        values = tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer of over 4300 digits
        raise TinyCifarError(f"{source} is not valid TOML: {e}") from None
    return recipe_from_dict(values, source)


def recipe_to_toml(recipe: Recipe) -> str:
    """The recipe as TOML text that :func:`load_recipe` reads back to the same recipe."""
    return "".join(
        f"{f.name} = {str(v).lower() if isinstance(v := getattr(recipe, f.name), bool) else repr(v)}\n"
        for f in fields(recipe)
    )


def recipe_from_dict(values: dict, source: str = "recipe") -> Recipe:
    known = {f.name: f for f in fields(Recipe)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TinyCifarError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    typed: dict[str, Any] = {}
    for key, value in values.items():
        want = known[key].type
        assert isinstance(want, str)  # `from __future__ import annotations`: a field's type is its annotation's text
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[want]
        if not ok:
            raise TinyCifarError(f"{source}: {key} must be {want}, got {value!r}")
        try:
            typed[key] = float(value) if want == "float" else value
        except OverflowError:  # an int beyond float range (TOML allows any size)
            raise TinyCifarError(f"{source}: {key} is too large to be a number") from None
    return Recipe(**typed)
