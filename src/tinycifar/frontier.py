"""What a training budget buys: the recorded frontier of model and recipe.

``tinycifar train --time 15m`` with no model named trains the most accurate pair whose
whole recipe fits the budget on this machine. The accuracies are the recorded 3-seed test
figures (``tests/test_frontier.py`` recomputes each from its records); whether a recipe
fits is measured here, by the same probe that plans a ``--time`` run, since the time
an epoch takes differs between CPUs far more than the accuracy a recipe reaches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tinycifar.budget import Plan
from tinycifar.errors import TinyCifarError


@dataclass(frozen=True)
class Entry:
    model: str
    recipe: str
    epochs: int  # the recipe's, at which the accuracy was measured
    accuracy: float  # mean test accuracy of the seeds, in %
    spread: float  # their sample standard deviation, in points
    records: tuple[str, ...]  # the seeds' records in the repository

    def describe(self) -> str:
        return f"{self.model} with the {self.recipe} recipe ({self.accuracy:.2f} ± {self.spread:.2f} % in {self.epochs} epochs)"


# Most accurate first.
FRONTIER = (
    Entry(
        "sepnet_g31",
        "long",
        37,
        90.61,
        0.16,
        tuple(f"benchmarks/results/sepnet_g31/sepnet_g31-seed{s}.json" for s in range(3)),
    ),
    Entry(
        "fastnet",
        "classic",
        30,
        88.06,
        0.16,
        tuple(f"benchmarks/results/gpu-h200-2026-11-26/zoo-fastnet-classic-s{s}/metrics.json" for s in range(3)),
    ),
    Entry(
        "fastnet",
        "fast",
        14,
        87.78,
        0.11,
        tuple(
            f"benchmarks/results/time_to_accuracy-epyc-avx512bf16-2026-12-05b/fast-fastnet-seed{s}.json"
            for s in range(3)
        ),
    ),
)


def pick(
    seconds: float, plan_for: Callable[[Entry, float], Plan], clock: Callable[[], float]
) -> tuple[Entry, list[str]]:
    """The most accurate entry of :data:`FRONTIER` whose recipe's epochs, and one more, fit
    ``seconds``, each measured by ``plan_for(entry, seconds_left)``; the fastest if none fits whole (it
    then trains the epochs that fit). Returns the entry and why, a line for each entry tried."""
    start = clock()
    why = []
    for entry in FRONTIER:
        left = seconds - (clock() - start)
        try:
            plan = plan_for(entry, left)
        except TinyCifarError:  # not one epoch fits
            if entry is FRONTIER[-1]:
                raise
            why.append(f"{entry.describe()}: not one epoch fits")
            continue
        # One epoch to spare: the run times itself again, and once more after its first epoch.
        if plan.epochs > entry.epochs:
            why.append(f"{entry.describe()}: {plan.epochs} epochs fit, taken")
            return entry, why
        why.append(f"{entry.describe()}: {plan.epochs} epochs fit, too few")
    why[-1] = why[-1].replace("too few", "the fastest, taken for the epochs that fit")
    return FRONTIER[-1], why
