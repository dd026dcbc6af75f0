"""What a training run is: one frozen record, written as the run folder's ``config.json``.

``RunConfig`` names everything that decides a run's result (model and its arguments,
recipe, seed, precision, what it is scored on, the data and teacher it saw) and how it is
run (device, ``torch.compile``), which does not. Before the first step the loop resolves it
(``auto`` precision to what this machine runs, a time budget to a number of epochs, the
data's size, the teacher's fingerprint); that resolved record is what the run folder keeps
and what ``--resume`` compares, field for field, but for the ``how`` fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.models import DEFAULT_MODEL
from tinycifar.recipe import Recipe, recipe_from_dict

_HOW = {"how": True}  # a field that changes how a run goes, not what it computes


@dataclass(frozen=True)
class RunConfig:
    model: str = DEFAULT_MODEL
    recipe: Recipe = field(default_factory=Recipe)
    seed: int = 0
    model_args: dict[str, Any] | None = None  # constructor arguments (widths, say)
    precision: str = "auto"  # resolved to fp32 or bf16 before the run starts
    time_budget_s: float | None = None  # the whole run within this many seconds (--time)
    eval_on: str = "test"  # test, or val: the held-out part of the training set
    train_images: int = 0  # the data the run saw, filled in when it starts
    eval_images: int = 0
    teacher: str | None = None  # the fingerprint of the soft labels or teacher model it was taught with
    processes: int = 1  # torchrun's world size
    device: str = field(default="auto", metadata=_HOW)
    compile: bool = field(default=False, metadata=_HOW)

    def __post_init__(self) -> None:
        if self.eval_on not in ("test", "val"):
            raise TinyCifarError(f"eval_on must be test or val (got {self.eval_on!r})")
        if self.model_args == {}:  # no arguments, however given, is one configuration
            object.__setattr__(self, "model_args", None)

    def to_dict(self) -> dict[str, Any]:
        """The record ``config.json`` holds (the recipe as a table of its fields)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """A saved record, from this version or an older one: fields added since take their
        defaults (the behaviour before they existed), so an older run still resumes. One
        clear error for a record this version cannot read."""
        known = {f.name for f in fields(cls)}
        try:
            kept = {k: v for k, v in values.items() if k in known}
            return cls(**{**kept, "recipe": recipe_from_dict(values["recipe"], "the run's recipe")})
        except (KeyError, TypeError, AttributeError) as e:
            raise TinyCifarError(f"not a run configuration this version reads ({type(e).__name__}: {e})") from None

    def same_run(self, other: RunConfig) -> bool:
        """Whether ``other`` continues this run: every field equal but the ``how`` ones."""
        what = [f.name for f in fields(self) if not f.metadata.get("how")]
        return all(getattr(self, name) == getattr(other, name) for name in what)
