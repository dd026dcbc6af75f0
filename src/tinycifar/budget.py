"""Training to a time budget: ``tinycifar train --time 5m``.

For users who know how long they have, not how many epochs they need. A few training
steps and a slice of evaluation are timed on a throw-away copy of the model (after
``WARMUP_STEPS`` steps and one evaluation, so one-off kernel selection is not counted), and
the number of epochs is the largest whose whole schedule, warm-up to zero learning rate,
fits what is left of the budget with a safety margin. The probe's steps run without the
loop's data gathering, logging and first-epoch costs, so once the first epoch has run the
count is fixed again from what that epoch really took (:func:`epochs_after_first`). The
schedule is then fixed: a resumed run keeps it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from tinycifar.checkpoint import save_checkpoint
from tinycifar.errors import TinyCifarError
from tinycifar.inference import predict_logits
from tinycifar.layers import freeze_stages, model_stages, train_whitening_bias
from tinycifar.recipe import Recipe

MARGIN = 0.85  # timings on a shared 2-core VM drift by 10% and more within minutes
END_RESERVE_S = 2.0  # final weights, metrics and the curves plot
# Steps not timed. bf16 kernels on an AVX-512 EPYC took four steps to settle (366, 639, 256,
# 238 ms, then 150-210): skipping two overstated sepnet_g31's step by a quarter, and an hour's
# plan left a third of the hour unused (experiments/hour-recipe/README.md).
WARMUP_STEPS = 4


def parse_duration(text: str) -> float:
    """``90s``, ``5m``, ``1h``, ``1h30m`` or a bare number of seconds → seconds."""
    t = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or parts is None or not any(parts.groups()):
        raise TinyCifarError(f"--time {text!r} is not a duration; write it like 90s, 5m, 1h or 1h30m")
    h, m, s = (float(x) if x else 0.0 for x in parts.groups())
    seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise TinyCifarError(f"--time must be longer than zero (got {text!r})")
    return seconds


@dataclass(frozen=True)
class Plan:
    epochs: int
    budget_s: float
    step_s: float
    epoch_s: float
    eval_s: float
    evals: int
    # What an epoch's steps save against the first epoch's once parts of the network freeze
    # (the stem's bias, the recipe's stages; checkpoints and the loop's other costs stay),
    # by Recipe.frozen. frozen_by is the recipe whose epochs freeze them, as Recipe.scaled_to
    # scales them to a run's length (None: nothing freezes).
    savings_s: dict[tuple[bool, int], float] = dataclasses.field(default_factory=dict)
    frozen_by: Recipe | None = None

    def epochs_s(self, epochs: int, first_epoch_s: float | None = None) -> float:
        """What ``epochs`` epochs cost without their evaluations, at ``first_epoch_s`` a
        first epoch if given (measured) instead of the probe's ``epoch_s``."""
        epoch_s = self.epoch_s if first_epoch_s is None else first_epoch_s
        if self.frozen_by is None:
            return epochs * epoch_s
        recipe = self.frozen_by.scaled_to(epochs)
        return epochs * epoch_s - sum(self.savings_s.get(recipe.frozen(a), 0.0) * (b - a) for a, b in spans(recipe))

    @property
    def expected_s(self) -> float:
        return self.epochs_s(self.epochs) + self.evals * self.eval_s

    def describe(self) -> str:
        cheaper = [
            f"{self.epoch_s - saving:.1f} s "
            + (f"with {stages} stage(s) frozen" if stages else "once the stem's bias freezes")
            + ("" if bias or not stages else ", the stem's bias training")
            for (bias, stages), saving in sorted(self.savings_s.items())
        ]
        later = f" ({', '.join(cheaper)})" if cheaper else ""
        return (
            f"time budget {self.budget_s:.0f} s: {self.step_s * 1000:.0f} ms a step, "
            f"{self.epoch_s:.1f} s an epoch{later}, "
            f"{self.eval_s:.1f} s an evaluation -> {self.epochs} epochs (about {self.expected_s:.0f} s)"
        )


def spans(recipe: Recipe) -> list[tuple[int, int]]:
    """The runs of epochs ``[a, b)`` over which what ``recipe`` keeps frozen stays the same
    (:meth:`Recipe.frozen`): as many as there are freezes, however long the run."""
    edges = {0, recipe.epochs, recipe.whiten_bias_epochs, *recipe.freeze_epochs}
    cuts = sorted(e for e in edges if 0 <= e <= recipe.epochs)
    return list(zip(cuts, cuts[1:]))


def epochs_after_first(plan: Plan, spent_s: float, first_epoch_s: float, first_evaluated: bool, every: int) -> int:
    """The epochs that fit the plan's budget now that the first one has run and taken
    ``first_epoch_s`` (its evaluation included where it ran), ``spent_s`` after the run
    began: at least the one done, at most as many as the first plan allowed."""
    epoch_s = first_epoch_s - (plan.eval_s if first_evaluated else 0.0)
    left = (plan.budget_s - spent_s) * MARGIN - END_RESERVE_S
    epochs = 1
    while epochs < plan.epochs:
        more = epochs + 1
        evals = evaluations(more, every) - int(first_evaluated)
        if plan.epochs_s(more, epoch_s) - epoch_s + evals * plan.eval_s > left:
            break
        epochs = more
    return epochs


def evaluations(epochs: int, every: int) -> int:
    """How many times a run of ``epochs`` evaluates (every ``every`` epochs and at the end)."""
    return epochs // every + (epochs % every != 0)


def epochs_within(
    seconds: float,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    recipe: Recipe,
    train: tuple[torch.Tensor, torch.Tensor],
    eval_data: tuple[torch.Tensor, torch.Tensor],
    dev: torch.device,
    precision: str,
    steps: int = 8,
) -> Plan:
    """The plan for as many epochs as fit ``seconds`` (measured from this call)."""
    from tinycifar.augment import Augmentation
    from tinycifar.distributed import Single
    from tinycifar.step import train_step

    started = time.perf_counter()
    images, labels = train
    batch_size = min(recipe.batch_size, len(images))
    steps_per_epoch = len(images) // batch_size
    augmentation = Augmentation.from_recipe(recipe, len(images), seed=0)
    draws = augmentation.draw(0, torch.Generator().manual_seed(0), dev)
    images, labels = images.to(dev), labels.to(dev)
    model.train()

    def mean_step_s() -> float:
        """The mean of ``steps`` steps after ``WARMUP_STEPS`` untimed ones (kernel selection):
        a run pays for its slow steps too."""
        times = []
        for step in range(WARMUP_STEPS + steps):
            t0 = time.perf_counter()
            rows = draws[Single().rows(step % steps_per_epoch, batch_size)]
            x, target, _ = augmentation.batch(images, labels, rows, dev)
            loss, _ = train_step(model, optimizer, x, target, recipe.label_smoothing, precision, dev)
            loss.item()  # wait for the device
            times.append(time.perf_counter() - t0)
        return sum(times[WARMUP_STEPS:]) / steps

    step_s = mean_step_s()
    # each way the recipe freezes parts of this model, timed: the lighter backward passes
    # pick their own kernels
    has_bias = train_whitening_bias(model, False)
    train_whitening_bias(model, True)
    stages = len(model_stages(model))
    savings: dict[tuple[bool, int], float] = {}
    for bias, frozen in sorted({recipe.frozen(a) for a, _ in spans(recipe)}):
        if (bias and has_bias) or (frozen and stages):
            train_whitening_bias(model, not bias)
            freeze_stages(model, frozen)
            savings[bias, frozen] = steps_per_epoch * max(0.0, step_s - mean_step_s())
    train_whitening_bias(model, True)
    freeze_stages(model, 0)

    # Each epoch writes a checkpoint through a temp file with fsync, keeping the previous one.
    with tempfile.TemporaryDirectory() as scratch:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        save_checkpoint(state, Path(scratch))
        t0 = time.perf_counter()
        save_checkpoint(state, Path(scratch))
        checkpoint_s = time.perf_counter() - t0

    sample = min(len(eval_data[0]), 1000)
    predict_logits(model, eval_data[0][:sample], dev)  # untimed: kernel selection; runs evaluate in fp32
    t0 = time.perf_counter()
    predict_logits(model, eval_data[0][:sample], dev)
    eval_s = (time.perf_counter() - t0) * len(eval_data[0]) / sample

    epoch_s = steps_per_epoch * step_s + checkpoint_s
    left = (seconds - (time.perf_counter() - started)) * MARGIN - END_RESERVE_S
    costs = Plan(0, seconds, step_s, epoch_s, eval_s, 0, savings, recipe if savings else None)
    epochs = 0
    while left >= costs.epochs_s(epochs + 1) + evaluations(epochs + 1, recipe.eval_every) * eval_s:
        epochs += 1
    plan = dataclasses.replace(costs, epochs=epochs, evals=evaluations(max(epochs, 1), recipe.eval_every))
    if epochs < 1:
        need = math.ceil((epoch_s + eval_s + END_RESERVE_S) / MARGIN + (time.perf_counter() - started))
        raise TinyCifarError(
            f"--time {seconds:.0f}s is too short: one epoch and its evaluation take "
            f"about {epoch_s + eval_s:.0f} s here; give at least --time {need}s"
        )
    return plan
