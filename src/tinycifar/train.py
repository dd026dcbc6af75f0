"""``tinycifar train``: the training loop.

Built for a CPU first: the whole data set sits in memory as uint8, each batch is gathered
by index, normalised and augmented as one tensor on the training device, and the model
runs channels-last. All randomness of epoch ``e`` comes from a generator seeded by
``(seed, e)``, so a run resumed from the checkpoint of epoch ``e-1`` repeats epoch ``e``
exactly and ends with the same weights as an uninterrupted run (bit for bit on a CPU with
the same thread count; on a GPU, cuDNN's non-deterministic kernels make it close, not equal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from tinycifar import distributed
from tinycifar.atomic import write_json, write_text
from tinycifar.augment import Augmentation, Draws
from tinycifar.averaging import make_averager
from tinycifar.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    save_weights,
)
from tinycifar.data import split_indices
from tinycifar.distill import (
    blend,
    check_teacher,
    fingerprint,
)
from tinycifar.errors import TinyCifarError
from tinycifar.figures import new_figure, save_figure
from tinycifar.inference import predict_logits, prepare, resolve_device
from tinycifar.layers import PatchWhitening
from tinycifar.models import build_model
from tinycifar.paths import writable_dir
from tinycifar.precision import cpu_info, resolve_precision
from tinycifar.precision import describe as describe_precision
from tinycifar.recipe import MAX_EPOCHS, Recipe, recipe_from_dict
from tinycifar.runfolder import refuse_existing_run, run_lock
from tinycifar.step import lr_factor, make_optimizer, train_step

if TYPE_CHECKING:
    from tinycifar.budget import Plan

Data = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, 3, 32, 32), int64 labels (N,)


def split_validation(train: Data, val_size: int) -> tuple[Data, Data | None]:
    """Hold out ``val_size`` training images (same ones for every seed) for tuning."""
    images, labels = train
    keep, held = split_indices(len(images), val_size)
    if keep is None:
        return train, None
    return (images[keep], labels[keep]), (images[held], labels[held])






def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, averager,
                augmentation: Augmentation, draws: Draws, data: Data, recipe: Recipe, precision: str,
                dev: torch.device, steps: Iterable[int], first_step: int = 0,
                shard: distributed.Single = distributed.Single(),  # noqa: B008 - stateless
                net: nn.Module | None = None,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One pass over ``steps`` batches in the order of ``draws`` (already on ``dev``), each
    process training its ``shard`` of every batch through ``net`` (``model`` wrapped for
    data parallelism; ``model`` itself in one process). ``targets`` (N, classes), when
    given, are what each image is trained towards instead of its label (distillation).

    Returns this process's summed loss and correct count, still on the device, and the last
    learning rate. No step waits on the host (a GPU test holds it to that): the caller reads
    the sums once, after the epoch.
    """
    images, labels = data
    batch_size = min(recipe.batch_size, len(images))
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    lr = optimizer.param_groups[0]["lr"]
    for step in steps:
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses, for the log
        x, target, y = augmentation.batch(images, labels, draws[shard.rows(step, batch_size)], dev, targets)
        loss, logits = train_step(net or model, optimizer, x, target, recipe.label_smoothing, precision, dev)
        scheduler.step()
        averager.update(model, first_step + step)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    return loss_sum, correct, lr


# Seeds are mixed with the epoch number into torch's 64-bit seed (``_epoch_seed``).
MAX_SEED = 2**32 - 1

WHITENING_IMAGES = 5000  # patches of this many training images fit the whitening stem


def init_from_data(model: nn.Module, images: torch.Tensor, dev: torch.device) -> None:
    """Fit every data-initialised layer (the patch-whitening stem) on training images."""
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening)]
    if layers:
        sample = prepare(images[:WHITENING_IMAGES], dev)
        for m in layers:
            m.fit(sample)




def with_recipe_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config, its recipe completed with fields added since the run began: each new
    field's default is the behaviour before it existed, so such a run still resumes."""
    try:
        return {**config, "recipe": dataclasses.asdict(recipe_from_dict(config["recipe"]))}
    except (KeyError, TypeError, TinyCifarError):  # not a recipe this version knows: it differs
        return config


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def check_writable(out: Path) -> None:
    """Fail before any training time is spent if the run folder cannot be written."""
    writable_dir(out, "--out", "choose a folder you can write to")


def fit(model_name: str, recipe: Recipe, out: Path, train: Data, eval_data: Data,
        eval_name: str = "test", seed: int = 0, device: str = "auto", resume: bool = False,
        progress: bool = True, log=print, precision: str = "auto",
        time_budget: float | None = None, compile: bool = False, model_args: dict[str, Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        teacher: torch.Tensor | None = None) -> dict[str, Any]:
    """Train ``model_name`` on ``train``; evaluate on ``eval_data`` every ``eval_every`` epochs.

    With ``time_budget`` (seconds) the number of epochs is chosen so that the whole
    schedule ends within it (see :mod:`tinycifar.budget`). ``compile`` runs the model through
    ``torch.compile`` (worth it on a GPU, where the first epoch pays for it). ``model_args``
    go to the model's constructor (widths, say); ``on_epoch`` sees each epoch's log row
    once it is saved (a sweep reports it to its pruner, and may stop the run). ``teacher`` holds
    a teacher's class probabilities for the rows of ``train`` (:mod:`tinycifar.distill`),
    blended into the targets by ``recipe.distill``. Writes config, environment,
    per-epoch log, checkpoints, final weights, metrics and plots into ``out``; returns the
    final metrics. Under ``torchrun`` each process trains its share of every batch
    (:mod:`tinycifar.distributed`) and only rank 0 writes ``out`` and logs.
    """
    started = time.perf_counter()
    check_teacher(recipe.distill, teacher is not None)
    if teacher is not None and teacher.shape != (len(train[0]), 10):
        raise TinyCifarError(f"the teacher has {tuple(teacher.shape)} probabilities for {len(train[0]):,} "
                             "training images: give one row of 10 for each, in the same order")
    shard, dev = distributed.from_env(resolve_device(device), min(recipe.batch_size, len(train[0])))
    if time_budget is not None and shard.world > 1:
        raise TinyCifarError("--time is not available under torchrun: give --epochs")
    run_dir = Path(out)  # where a resumed run's checkpoint is read from, by every rank
    out = run_dir if shard.is_main else Path(tempfile.mkdtemp(prefix=f"tinycifar-rank{shard.rank}-"))
    if not shard.is_main:  # the other ranks write a scratch copy, silently
        log, progress = (lambda *_: None), False
    check_writable(out)
    # The lock keeps a second writer out while this run is live; a folder that holds
    # another run is never started over (the command clears it first on --overwrite).
    with run_lock(out) if shard.is_main else contextlib.nullcontext():
        if not resume:
            refuse_existing_run(out)
        precision = resolve_precision(precision, dev)
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once
        images, labels = train
        batch_size = min(recipe.batch_size, len(images))
        steps_per_epoch = len(images) // batch_size  # drop the ragged last batch: BN needs full ones

        if time_budget is not None:
            recipe = _recipe_for_budget(model_name, recipe, out, train, eval_data, dev, precision,
                                        time_budget - (time.perf_counter() - started), resume, log,
                                        model_args or {})
        config = {"model": model_name, "recipe": dataclasses.asdict(recipe), "seed": seed,
                  "eval_on": eval_name, "train_images": len(images), "eval_images": len(eval_data[0]),
                  "precision": precision, "time_budget_s": time_budget,
                  **({"processes": shard.world} if shard.world > 1 else {}),
                  **({"model_args": model_args} if model_args else {}),
                  **({"teacher": fingerprint(teacher.cpu())} if teacher is not None else {})}

        torch.manual_seed(seed)
        # ignored below: torch's stub of nn.Module.to omits memory_format, which the runtime accepts
        model = build_model(model_name, model_args).to(dev)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        init_from_data(model, images, dev)
        if compile:
            model.compile()  # in place: state_dict keys, checkpoints and averaging are unchanged
        net = shard.wrap(model)  # what the steps run: DistributedDataParallel under torchrun
        optimizer = make_optimizer(model, recipe)
        total_steps = recipe.epochs * steps_per_epoch
        warmup = round(recipe.warmup_epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, warmup))
        averager = make_averager(model, recipe.ema_decay, recipe.lookahead, total_steps)
        augmentation = Augmentation.from_recipe(recipe, len(images), seed)

        history: list[dict[str, Any]] = []
        start_epoch = 0
        if resume:
            state = load_checkpoint(run_dir)
            check_run_state(state, run_dir)
            if with_recipe_defaults(state["config"]) != config:
                raise TinyCifarError(f"--resume: the run in {run_dir} was started with a different "
                                     "configuration (model, recipe, seed, data or precision); resume it "
                                     "with the same options, or start a new run in another --out")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            averager.load_state_dict(state["averager"])
            history, start_epoch = state["history"], state["epoch"] + 1
            # The log may hold an epoch the checkpoint does not (killed in between, or resumed
            # from previous.pt): the checkpoint's history is the truth.
            _write_log(out, history)
            log(f"resuming {run_dir} after epoch {start_epoch} of {recipe.epochs}")
        else:
            write_json(out / "config.json", config)
            write_json(out / "environment.json", environment(dev, precision))
            _write_log(out, history)
        log(f"precision {describe_precision(precision, dev)} on {device_name(dev)}")

        log(f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {eval_name + '_loss':>10} "
            f"{eval_name + '_acc':>9} {'lr':>8} {'seconds':>7}")
        for row in history:
            log(_format_row(row, eval_name))
        device_data = images.to(dev), labels.to(dev)  # the whole set stays on the device (uint8)
        targets = blend(teacher.float().cpu(), labels, recipe.distill).to(dev) if teacher is not None else None
        for epoch in range(start_epoch, recipe.epochs):
            t0 = time.perf_counter()
            g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))  # data order, augmentation
            torch.manual_seed(_epoch_seed(seed, epoch))  # dropout, if a model has any
            model.train()
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False,
                       disable=not progress, file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 30)
            loss_sum, correct, lr = train_epoch(model, optimizer, scheduler, averager, augmentation,
                                                augmentation.draw(epoch, g, dev), device_data, recipe,
                                                precision, dev, bar, first_step=epoch * steps_per_epoch,
                                                shard=shard, net=net, targets=targets)
            # all ranks' shares
            loss_total, correct_total = shard.total(loss_sum).item(), shard.total(correct).item()
            seen = steps_per_epoch * batch_size
            check_finite(loss_total / seen, epoch + 1, lr, out)
            row = {"epoch": epoch + 1, "train_loss": loss_total / seen, "train_acc": correct_total / seen,
                   f"{eval_name}_loss": None, f"{eval_name}_acc": None, "lr": lr}
            if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
                # in fp32 whatever the training precision: the accuracy a run reports is then the
                # one `tinycifar evaluate` (fp32) reproduces from its weights on any machine
                row[f"{eval_name}_loss"], row[f"{eval_name}_acc"] = evaluate_loss_acc(
                    averager.final(model), eval_data, dev)
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "averager": averager.state_dict(),
                             "epoch": epoch, "config": config, "history": history}, out)
            _write_log(out, history)
            log(_format_row(row, eval_name))
            if on_epoch is not None:
                on_epoch(row)

        final_model = averager.final(model)
        shard.check_in_sync(final_model)
        # held_out: a teacher made of these weights must not judge a student on images they saw.
        save_weights(final_model, out / "model.safetensors",
                     {"model": model_name, "seed": str(seed), "epochs": str(recipe.epochs),
                      "held_out": str(len(eval_data[0]) if eval_name == "val" else 0),
                      # evaluate, predict, export and soft-labels rebuild the network from these
                      **({"model_args": json.dumps(model_args)} if model_args else {})})
        last = history[-1]
        metrics = {"model": model_name, "seed": seed,
                   # every parameter counts against the 100k budget, frozen ones (fastnet's
                   # whitening filters) too, as in `tinycifar summary`
                   "params": sum(p.numel() for p in final_model.parameters()),
                   "trainable_params": sum(p.numel() for p in final_model.parameters() if p.requires_grad),
                   "epochs": recipe.epochs, "precision": precision,
                   f"final_{eval_name}_acc": last[f"{eval_name}_acc"],
                   f"final_{eval_name}_loss": last[f"{eval_name}_loss"],
                   "train_seconds": sum(r["seconds"] for r in history),
                   "wall_seconds": time.perf_counter() - started if not resume else None,
                   **({"processes": shard.world} if shard.world > 1 else {})}
        write_json(out / "metrics.json", metrics)
        plot_history(history, eval_name, out / "curves.png")
        if not shard.is_main:
            shutil.rmtree(out, ignore_errors=True)
        shard.close()
        return metrics


def plan_for_budget(model_name: str, recipe: Recipe, train: Data, eval_data: Data, dev: torch.device,
                    precision: str, seconds: float, model_args: dict[str, Any] | None = None) -> Plan:
    """How many epochs of ``recipe`` fit ``seconds`` here, timed on a throw-away model."""
    from tinycifar.budget import epochs_within

    # ignored below: torch's stub of nn.Module.to omits memory_format, which the runtime accepts
    model = build_model(model_name, model_args).to(dev)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return epochs_within(seconds, model, make_optimizer(model, recipe), recipe, train, eval_data, dev,
                         precision)


def _recipe_for_budget(model_name: str, recipe: Recipe, out: Path, train: Data, eval_data: Data,
                       dev: torch.device, precision: str, seconds: float, resume: bool, log,
                       model_args: dict[str, Any]) -> Recipe:
    """The recipe with as many epochs as fit ``seconds``; a resumed run keeps its own."""
    if resume:
        state = load_checkpoint(out)
        check_run_state(state, out)
        saved = with_recipe_defaults(state["config"]).get("recipe")
        if not isinstance(saved, dict) or "epochs" not in saved:
            raise TinyCifarError(f"the checkpoint in {out} records no recipe this version reads: start a new run "
                                 "with --overwrite or another --out")
        return dataclasses.replace(recipe, epochs=saved["epochs"], warmup_epochs=saved["warmup_epochs"])
    plan = plan_for_budget(model_name, recipe, train, eval_data, dev, precision, seconds, model_args)
    log(plan.describe())
    # Warm-up keeps its share of the schedule, and is never longer than the run.
    warmup = min(recipe.warmup_epochs * plan.epochs / recipe.epochs, plan.epochs)
    return dataclasses.replace(recipe, epochs=plan.epochs, warmup_epochs=warmup)


def evaluate_loss_acc(model: nn.Module, data: Data, dev: torch.device) -> tuple[float, float]:
    from tinycifar.evaluate import metrics_from_logits  # the one definition of accuracy

    logits = predict_logits(model, data[0], dev)
    return F.cross_entropy(logits, data[1]).item(), metrics_from_logits(logits, data[1])["accuracy"]


def _format_row(row: dict[str, Any], eval_name: str) -> str:
    loss, acc = row[eval_name + "_loss"], row[eval_name + "_acc"]
    evaluated = f"{loss:>10.4f} {acc:>9.2%}" if acc is not None else f"{'-':>10} {'-':>9}"
    return (f"{row['epoch']:>5} {row['train_loss']:>10.4f} {row['train_acc']:>9.2%} "
            f"{evaluated} {row['lr']:>8.4f} {row['seconds']:>7.1f}")


def environment(dev: torch.device, precision: str = "fp32") -> dict[str, Any]:
    cpu = cpu_info()
    return {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu["model"], "cpu_flags": cpu["flags"],
            "device": str(dev), "precision": precision, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = cpu_info()
    return f"{cpu['model']} ({', '.join(cpu['flags']) or 'no AVX flags'}), {torch.get_num_threads()} threads"


def plot_history(history: list[dict[str, Any]], eval_name: str, path: Path) -> None:
    fig = new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    for split, style in (("train", "-"), (eval_name, "o--")):
        label = "train (label-smoothed)" if split == "train" else split
        rows = [r for r in history if r[f"{split}_acc"] is not None]  # eval_every skips some
        ax1.plot([r["epoch"] for r in rows], [r[f"{split}_loss"] for r in rows], style, label=label)
        ax2.plot([r["epoch"] for r in rows], [100 * r[f"{split}_acc"] for r in rows], style, label=split)
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def _write_log(out: Path, history: list[dict[str, Any]]) -> None:
    # Rewritten whole (a few KB) rather than appended: a crash leaves the last whole log,
    # and a symlink planted as log.jsonl is replaced, not written through.
    write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def check_finite(train_loss: float, epoch: int, lr: float, out: Path) -> None:
    """End a run whose training loss is no longer a number, before its weights are saved:
    the checkpoint in ``out`` stays the last finite one. Checked once an epoch, when the
    loss is read anyway, so no step waits on the device."""
    if not math.isfinite(train_loss):
        raise TinyCifarError(f"training diverged: the loss of epoch {epoch} is {train_loss} at learning rate "
                             f"{lr:.4g}; {out} keeps the last finite checkpoint. Lower --lr (or raise "
                             "--warmup-epochs) and start again in another --out")


# What a checkpoint of this loop holds; a file lacking any of it was not written here.
STATE_KEYS = ("model", "optimizer", "scheduler", "averager", "epoch", "config", "history")


def check_run_state(state: dict[str, Any], run_dir: Path) -> None:
    """Refuse a checkpoint that is not a resumable run of this loop, with one line: its
    history is written back to the log, so its size and shape are bounded first."""
    missing = [k for k in STATE_KEYS if k not in state]
    history, epoch = state.get("history"), state.get("epoch")
    problem = (f"it lacks {', '.join(missing)}" if missing
               else "its config is not a dict" if not isinstance(state["config"], dict)
               else "its epoch is not a whole number" if type(epoch) is not int
               else "its history does not match its epoch" if not (isinstance(history, list)
                                                                 and len(history) == epoch + 1 <= MAX_EPOCHS)
               else "its history rows are not records of numbers" if not all(_is_log_row(r) for r in history)
               else None)
    if problem:
        raise TinyCifarError(f"the checkpoint in {run_dir} is not a resumable tinycifar run ({problem}): start a "
                             "new run with --overwrite or another --out")


def _is_log_row(row: Any) -> bool:
    return (isinstance(row, dict) and len(row) <= 16
            and all(isinstance(k, str) and len(k) <= 32 and (v is None or type(v) in (int, float))
                    for k, v in row.items()))










