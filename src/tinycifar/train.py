"""The training engine: :func:`fit` builds a run from its :class:`RunConfig` and loops.

Built for a CPU first: the whole data set sits in memory as uint8, each batch is gathered
by index, normalised and augmented as one tensor on the training device, and the model
runs channels-last. All randomness of epoch ``e`` comes from a generator seeded by
``(seed, e)``, so a run resumed from the checkpoint of epoch ``e-1`` repeats epoch ``e``
exactly and ends with the same weights as an uninterrupted run (bit for bit on a CPU with
the same thread count; on a GPU, cuDNN's non-deterministic kernels make it close, not equal).
What happens around the epochs (console, checkpoints, the run folder's files, a sweep's
pruner) is :mod:`tinycifar.callbacks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinycifar import distributed, records
from tinycifar.augment import Augmentation, Draws
from tinycifar.averaging import NoAveraging, make_averager
from tinycifar.callbacks import Callback, Checkpoints, RunFolder
from tinycifar.checkpoint import load_checkpoint
from tinycifar.distill import ConsistentTeacher, blend, check_teacher, fingerprint, untaught
from tinycifar.errors import TinyCifarError
from tinycifar.inference import predict_logits, prepare, resolve_device
from tinycifar.layers import PatchWhitening, freeze_stages, model_stages, train_whitening_bias
from tinycifar.models import build_model
from tinycifar.optimizers import make_optimizer
from tinycifar.paths import writable_dir
from tinycifar.precision import cpu_info, resolve_precision
from tinycifar.precision import describe as describe_precision
from tinycifar.recipe import MAX_EPOCHS
from tinycifar.runconfig import RunConfig
from tinycifar.runfolder import refuse_existing_run, run_lock
from tinycifar.splits import Data
from tinycifar.step import lr_factor, train_step

if TYPE_CHECKING:
    from tinycifar.budget import Plan

# Seeds are mixed with the epoch number into torch's 64-bit seed (``_epoch_seed``).
MAX_SEED = 2**32 - 1
WHITENING_IMAGES = 5000  # patches of this many training images fit the whitening stem


def fit(
    config: RunConfig,
    train: Data,
    eval_data: Data,
    out: Path | str,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    teacher: torch.Tensor | nn.Module | None = None,
) -> dict[str, Any]:
    """Train as ``config`` says on ``train``, score on ``eval_data`` every ``eval_every``
    epochs and after the last, into the run folder ``out``; the final metrics.

    ``resume`` continues the run in ``out`` from its checkpoint (the same configuration
    only). ``teacher`` holds a teacher's class probabilities for the rows of ``train``, or
    is a teacher model run on every augmented batch (:mod:`tinycifar.distill`), blended
    into the targets by the recipe's ``distill``. A
    ``time_budget_s`` picks the number of epochs that fit it here (:mod:`tinycifar.budget`).
    Under ``torchrun`` each process trains its share of every batch
    (:mod:`tinycifar.distributed`) and only rank 0 writes ``out`` and calls ``callbacks``.
    """
    started = time.perf_counter()
    check_teacher(config.recipe.distill, teacher is not None)
    if isinstance(teacher, torch.Tensor) and teacher.shape != (len(train[0]), 10):
        raise TinyCifarError(
            f"the teacher has {tuple(teacher.shape)} probabilities for {len(train[0]):,} "
            "training images: give one row of 10 for each, in the same order"
        )
    shard, dev = distributed.from_env(resolve_device(config.device), min(config.recipe.batch_size, len(train[0])))
    if config.time_budget_s is not None and shard.world > 1:
        raise TinyCifarError("--time is not available under torchrun: give --epochs")
    out = Path(out)
    if shard.is_main:
        check_writable(out)
    # The lock keeps a second writer out while this run is live; a folder that holds
    # another run is never started over (the command clears it first on --overwrite).
    with run_lock(out) if shard.is_main else contextlib.nullcontext():
        if shard.is_main and not resume:
            refuse_existing_run(out)
        saved = _saved_run(out) if resume else None
        config, notes, budget = resolve(config, train, eval_data, dev, shard, teacher, saved, started)
        run = Run.start(config, train, eval_data, out, dev, shard, teacher, saved, notes)
        # The other ranks write nothing and say nothing: rank 0 speaks for the job.
        hooks = (*budget, Checkpoints(), RunFolder(), *callbacks) if shard.is_main else ()
        for hook in hooks:
            hook.on_start(run)
        while len(run.history) < run.config.recipe.epochs:  # a time budget may shorten the run
            row = run.epoch(len(run.history), hooks)
            run.history.append(row)
            for hook in hooks:
                hook.on_epoch_end(run, row)
        metrics = run.metrics(started)
        for hook in hooks:
            hook.on_end(run, metrics)
        shard.close()
        return metrics


def resolve(
    config: RunConfig,
    train: Data,
    eval_data: Data,
    dev: torch.device,
    shard: distributed.Single,
    teacher: torch.Tensor | nn.Module | None,
    saved: dict[str, Any] | None,
    started: float,
) -> tuple[RunConfig, list[str], list[Callback]]:
    """The configuration as this run will keep it (precision for this machine, the epochs a
    time budget buys, the data and teacher it sees), what to tell the user of it, and the
    callback that holds a new run to its time budget."""
    check_freeze(len(config.recipe.freeze_epochs), config.model, config.model_args)
    notes: list[str] = []
    budget: list[Callback] = []
    precision = resolve_precision(config.precision, dev)
    recipe = config.recipe
    if config.time_budget_s is not None and saved is not None:  # a resumed run keeps its own plan
        recipe = recipe.with_length_of(saved["config"].recipe)
    elif config.time_budget_s is not None:
        planned_at = time.perf_counter()
        plan = plan_for_budget(
            dataclasses.replace(config, precision=precision),
            train,
            eval_data,
            dev,
            config.time_budget_s - (planned_at - started),
        )
        notes.append(plan.describe())
        recipe = recipe.scaled_to(plan.epochs)
        if plan.frozen_by is not None:  # a shortened run scales the recipe as scaled now (Run.shorten)
            plan = dataclasses.replace(plan, frozen_by=recipe)
        budget.append(KeepToBudget(plan, planned_at))
    resolved = dataclasses.replace(
        config,
        recipe=recipe,
        precision=precision,
        train_images=len(train[0]),
        eval_images=len(eval_data[0]),
        teacher=fingerprint(teacher) if teacher is not None else None,
        processes=shard.world,
    )
    return resolved, notes, budget


class KeepToBudget(Callback):
    """After the first epoch, fix the number of epochs again from what that epoch really
    took (the probe before the run times bare steps; the loop also gathers, augments,
    averages, logs and checkpoints), before its checkpoint records the schedule."""

    def __init__(self, plan: Plan, planned_at: float) -> None:
        self.plan, self.planned_at = plan, planned_at

    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None:
        from tinycifar.budget import epochs_after_first

        if row["epoch"] != 1:
            return
        recipe = run.config.recipe
        spent = time.perf_counter() - self.planned_at
        epochs = epochs_after_first(self.plan, spent, row["seconds"], row["eval_acc"] is not None, recipe.eval_every)
        if epochs < recipe.epochs:
            run.notes.append(
                f"the first epoch took {row['seconds']:.1f} s: {epochs} epochs fit the budget, not {recipe.epochs}"
            )
            run.shorten(epochs)
            if epochs == 1 and row["eval_acc"] is None:  # the run ends here: it is scored here
                row["eval_loss"], row["eval_acc"] = evaluate_loss_acc(run.final_model(), run.eval_data, run.dev)


@dataclass
class Parts:
    """What a run trains, built from its configuration in one place: the model (and the
    net the steps run, wrapped for data parallelism under torchrun), optimizer, schedule,
    weight averaging and augmentation. A checkpoint is their state."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    averager: NoAveraging
    augmentation: Augmentation

    @classmethod
    def build(
        cls, config: RunConfig, images: torch.Tensor, dev: torch.device, shard: distributed.Single, steps_per_epoch: int
    ) -> Parts:
        recipe = config.recipe
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.model_args).to(dev)
        # ignored: torch's stub of nn.Module.to omits memory_format, which the runtime accepts
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        init_from_data(model, images, dev)
        if config.compile:
            model.compile()  # in place: state_dict keys, checkpoints and averaging are unchanged
        net = shard.wrap(model)
        optimizer = make_optimizer(model, recipe)
        total, warmup = recipe.epochs * steps_per_epoch, round(recipe.warmup_epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total, warmup, recipe.schedule, recipe.lr_floor)
        )
        averager = make_averager(model, recipe.ema_decay, recipe.lookahead, total)
        return cls(
            model, net, optimizer, scheduler, averager, Augmentation.from_recipe(recipe, len(images), config.seed)
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "averager": self.averager.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.averager.load_state_dict(state["averager"])


@dataclass
class Run:
    """A run in progress: its resolved configuration, parts, data on the device, and the
    history of finished epochs. What the callbacks are given."""

    config: RunConfig
    out: Path
    parts: Parts
    dev: torch.device
    shard: distributed.Single
    train: Data  # on the device, uint8
    eval_data: Data
    targets: torch.Tensor | None  # what each image is trained towards instead of its label
    teach: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # a teacher's say on each batch's targets
    steps_per_epoch: int
    batch_size: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False
    notes: list[str] = field(default_factory=list)  # for the console: the plan, a resume
    trainable_params: int = 0  # as the run starts: whatever freezes later still counts

    @classmethod
    def start(
        cls,
        config: RunConfig,
        train: Data,
        eval_data: Data,
        out: Path,
        dev: torch.device,
        shard: distributed.Single,
        teacher: torch.Tensor | nn.Module | None,
        saved: dict[str, Any] | None,
        notes: list[str],
    ) -> Run:
        """Build the run, and continue ``saved`` (a checkpoint of the same run) if given."""
        images, labels = train
        batch_size = min(config.recipe.batch_size, len(images))
        steps_per_epoch = len(images) // batch_size  # drop the ragged last batch: BN needs full ones
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once
        parts = Parts.build(config, images, dev, shard, steps_per_epoch)
        history: list[dict[str, Any]] = []
        if saved is not None:
            if not saved["config"].same_run(config):
                raise TinyCifarError(
                    f"--resume: the run in {out} was started with a different configuration "
                    "(model, recipe, seed, data or precision); resume it with the same options, "
                    "or start a new run in another --out"
                )
            parts.load_state_dict(saved["state"])
            history = saved["history"]
            notes.append(f"resuming {out} after epoch {len(history)} of {config.recipe.epochs}")
        notes.append(f"precision {describe_precision(config.precision, dev)} on {device_name(dev)}")
        # stored soft labels are blended into each image's target once; a teacher model
        # has its say on every batch
        targets, teach = None, untaught
        if isinstance(teacher, torch.Tensor):
            targets = blend(teacher.float().cpu(), labels, config.recipe.distill).to(dev)
        elif teacher is not None:
            teach = ConsistentTeacher(teacher, config.recipe.distill, config.precision, dev)
        return cls(
            config,
            out,
            parts,
            dev,
            shard,
            (images.to(dev), labels.to(dev)),
            eval_data,
            targets,
            teach,
            steps_per_epoch,
            batch_size,
            history,
            saved is not None,
            notes,
            sum(p.numel() for p in parts.model.parameters() if p.requires_grad),
        )

    def epoch(self, epoch: int, hooks: Sequence[Callback]) -> dict[str, Any]:
        """Train epoch ``epoch`` (from 0); its log row."""
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(_epoch_seed(self.config.seed, epoch))  # data order, augmentation
        torch.manual_seed(_epoch_seed(self.config.seed, epoch))  # dropout, if a model has any
        self.parts.model.train()
        recipe = self.config.recipe
        bias_frozen, stages_frozen = recipe.frozen(epoch)
        changed = train_whitening_bias(self.parts.model, not bias_frozen)
        if (recipe.freeze_epochs and freeze_stages(self.parts.model, stages_frozen)) or changed:
            # DistributedDataParallel reduces the gradients of the parameters that trained
            # when it was made: make it again for the new set (a no-op in one process)
            self.parts.net = self.shard.wrap(self.parts.model)
        draws = self.parts.augmentation.draw(epoch, g, self.dev)
        for hook in hooks:
            hook.on_epoch_start(self, epoch)

        def on_step() -> None:
            for hook in hooks:
                hook.on_step(self)

        loss_sum, correct, lr = train_epoch(self, epoch, draws, on_step)
        seen = self.steps_per_epoch * self.batch_size
        train_loss = self.shard.total(loss_sum).item() / seen  # all ranks' shares
        check_finite(train_loss, epoch + 1, lr, self.out)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": self.shard.total(correct).item() / seen,
            "eval_loss": None,
            "eval_acc": None,
            "lr": lr,
        }
        if (epoch + 1) % self.config.recipe.eval_every == 0 or epoch + 1 == self.config.recipe.epochs:
            # in fp32 whatever the training precision: the accuracy a run reports is then the
            # one `tinycifar evaluate` (fp32) reproduces from its weights on any machine
            row["eval_loss"], row["eval_acc"] = evaluate_loss_acc(self.final_model(), self.eval_data, self.dev)
        row["seconds"] = time.perf_counter() - t0
        return row

    def shorten(self, epochs: int) -> None:
        """Run ``epochs`` in all instead (:meth:`Recipe.scaled_to`): the schedule and the
        averaging count the new total from the next step on."""
        recipe = self.config.recipe.scaled_to(epochs)
        self.config = dataclasses.replace(self.config, recipe=recipe)
        total, warmup = epochs * self.steps_per_epoch, round(recipe.warmup_epochs * self.steps_per_epoch)
        shape, floor = recipe.schedule, recipe.lr_floor
        schedule = lambda s: lr_factor(s, total, warmup, shape, floor)  # noqa: E731 - one for every group
        self.parts.scheduler.lr_lambdas = [schedule] * len(self.parts.scheduler.lr_lambdas)
        self.parts.averager.set_total_steps(self.parts.model, total, len(self.history) * self.steps_per_epoch)

    def final_model(self) -> nn.Module:
        """The weights a run reports and ships: the averaged ones where the recipe averages."""
        return self.parts.averager.final(self.parts.model)

    def checkpoint(self) -> dict[str, Any]:
        return {
            **self.parts.state_dict(),
            "epoch": len(self.history) - 1,
            "config": self.config.to_dict(),
            "history": self.history,
        }

    def metrics(self, started: float) -> dict[str, Any]:
        final = self.final_model()
        self.shard.check_in_sync(final)
        last = self.history[-1]
        return {
            "model": self.config.model,
            "seed": self.config.seed,
            # every parameter counts against the 100k budget, frozen ones (fastnet's
            # whitening filters) too, as in `tinycifar summary`
            "params": sum(p.numel() for p in final.parameters()),
            "trainable_params": self.trainable_params,
            "epochs": self.config.recipe.epochs,
            "precision": self.config.precision,
            "eval_on": self.config.eval_on,
            "eval_acc": last["eval_acc"],
            "eval_loss": last["eval_loss"],
            "train_seconds": sum(r["seconds"] for r in self.history),
            "wall_seconds": None if self.resumed else time.perf_counter() - started,
            "processes": self.shard.world,
        }

    def environment(self) -> dict[str, Any]:
        return environment(self.dev, self.config.precision)


def train_epoch(
    run: Run, epoch: int, draws: Draws, on_step: Callable[[], None] = lambda: None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One pass over the epoch's batches in the order of ``draws`` (already on the device),
    each process training its shard of every batch.

    Returns this process's summed loss and correct count, still on the device, and the last
    learning rate. No step waits on the host (a GPU test holds it to that): the caller reads
    the sums once, after the epoch.
    """
    parts, recipe = run.parts, run.config.recipe
    images, labels = run.train
    loss_sum = torch.zeros((), device=run.dev)
    correct = torch.zeros((), device=run.dev, dtype=torch.long)
    lr = parts.optimizer.param_groups[0]["lr"]
    for step in range(run.steps_per_epoch):
        lr = parts.optimizer.param_groups[0]["lr"]  # the rate this step uses, for the log
        rows = draws[run.shard.rows(step, run.batch_size)]
        x, target, y = parts.augmentation.batch(images, labels, rows, run.dev, run.targets)
        target = run.teach(x, target)
        loss, logits = train_step(
            parts.net, parts.optimizer, x, target, recipe.label_smoothing, run.config.precision, run.dev
        )
        parts.scheduler.step()
        parts.averager.update(parts.model, epoch * run.steps_per_epoch + step)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        on_step()
    return loss_sum, correct, lr


def check_freeze(wanted: int, model: str, model_args: dict[str, Any] | None) -> None:
    """Refuse a ``freeze`` of ``wanted`` stages where the model names fewer, before any time is spent."""
    if wanted:
        with torch.device("meta"):  # counted, not allocated
            stages = len(model_stages(build_model(model, model_args)))
        if wanted > stages:
            raise TinyCifarError(
                f"freeze names {wanted} stage(s) but {model} has {stages} to freeze; list at most {stages} "
                "epochs (fastnet, fastnet_mcu and sepnet_g31 have 3), or drop --freeze"
            )


def init_from_data(model: nn.Module, images: torch.Tensor, dev: torch.device) -> None:
    """Fit every data-initialised layer (the patch-whitening stem) on training images."""
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening)]
    if layers:
        sample = prepare(images[:WHITENING_IMAGES], dev)
        for m in layers:
            m.fit(sample)


def _saved_run(out: Path) -> dict[str, Any]:
    """The checkpoint a resume continues: its configuration, state and history, checked."""
    state = load_checkpoint(out)
    check_run_state(state, out)
    try:
        config = RunConfig.from_dict(state["config"])
    except TinyCifarError as e:
        raise TinyCifarError(
            f"the checkpoint in {out}: {e}; start a new run with --overwrite or another --out"
        ) from None
    return {"config": config, "state": state, "history": [records.row(r) for r in state["history"]]}


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def check_writable(out: Path) -> None:
    """Fail before any training time is spent if the run folder cannot be written."""
    writable_dir(out, "--out", "choose a folder you can write to")


def plan_for_budget(config: RunConfig, train: Data, eval_data: Data, dev: torch.device, seconds: float) -> Plan:
    """How many epochs of ``config``'s recipe fit ``seconds`` here (in its resolved
    precision), timed on a throw-away model."""
    from tinycifar.budget import epochs_within

    check_freeze(len(config.recipe.freeze_epochs), config.model, config.model_args)
    model = build_model(config.model, config.model_args).to(dev)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as in Parts.build
    return epochs_within(
        seconds, model, make_optimizer(model, config.recipe), config.recipe, train, eval_data, dev, config.precision
    )


def evaluate_loss_acc(model: nn.Module, data: Data, dev: torch.device) -> tuple[float, float]:
    from tinycifar.evaluate import metrics_from_logits  # the one definition of accuracy

    logits = predict_logits(model, data[0], dev)
    return F.cross_entropy(logits, data[1]).item(), metrics_from_logits(logits, data[1])["accuracy"]


def environment(dev: torch.device, precision: str = "fp32") -> dict[str, Any]:
    cpu = cpu_info()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu["model"],
        "cpu_flags": cpu["flags"],
        "device": str(dev),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
    }


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = cpu_info()
    return f"{cpu['model']} ({', '.join(cpu['flags']) or 'no AVX flags'}), {torch.get_num_threads()} threads"


def check_finite(train_loss: float, epoch: int, lr: float, out: Path) -> None:
    """End a run whose training loss is no longer a number, before its weights are saved:
    the checkpoint in ``out`` stays the last finite one. Checked once an epoch, when the
    loss is read anyway, so no step waits on the device."""
    if not math.isfinite(train_loss):
        raise TinyCifarError(
            f"training diverged: the loss of epoch {epoch} is {train_loss} at learning rate "
            f"{lr:.4g}; {out} keeps the last finite checkpoint. Lower --lr (or raise "
            "--warmup-epochs) and start again in another --out"
        )


# What a checkpoint of this loop holds; a file lacking any of it was not written here.
STATE_KEYS = ("model", "optimizer", "scheduler", "averager", "epoch", "config", "history")


def check_run_state(state: dict[str, Any], run_dir: Path) -> None:
    """Refuse a checkpoint that is not a resumable run of this loop, with one line: its
    history is written back to the log, so its size and shape are bounded first."""
    missing = [k for k in STATE_KEYS if k not in state]
    history, epoch = state.get("history"), state.get("epoch")
    problem = (
        f"it lacks {', '.join(missing)}"
        if missing
        else "its config is not a dict"
        if not isinstance(state["config"], dict)
        else "its epoch is not a whole number"
        if type(epoch) is not int
        else "its history does not match its epoch"
        if not (isinstance(history, list) and len(history) == epoch + 1 <= MAX_EPOCHS)
        else "its history rows are not records of numbers"
        if not all(_is_log_row(r) for r in history)
        else None
    )
    if problem:
        raise TinyCifarError(
            f"the checkpoint in {run_dir} is not a resumable tinycifar run ({problem}): start a "
            "new run with --overwrite or another --out"
        )


def _is_log_row(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and len(row) <= 16
        and all(isinstance(k, str) and len(k) <= 32 and (v is None or type(v) in (int, float)) for k, v in row.items())
    )
