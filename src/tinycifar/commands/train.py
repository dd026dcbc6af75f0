"""``tinycifar train``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

import torch

from tinycifar import distributed
from tinycifar.callbacks import ConsoleLog
from tinycifar.checkpoint import check_resumable, load_checkpoint
from tinycifar.commands.flags import (
    add_data_flag,
    add_device_flag,
    add_precision_flag,
    add_recipe_flags,
    apply_overrides,
    whole_number,
)
from tinycifar.data import load_cifar10, train_size
from tinycifar.distill import check_held_out, check_teacher, held_out, holds_model_weights, load_soft_labels
from tinycifar.errors import TinyCifarError
from tinycifar.inference import resolve_device
from tinycifar.models import DEFAULT_MODEL, build_model, model_recipe, parse_model_args
from tinycifar.precision import describe as describe_precision
from tinycifar.precision import resolve_precision
from tinycifar.recipe import RECIPE_NAMES, Recipe, load_recipe
from tinycifar.runconfig import RunConfig
from tinycifar.runfolder import clear_run, refuse_existing_run, run_lock
from tinycifar.splits import Data, split_indices, split_validation, training_rows
from tinycifar.train import MAX_SEED, check_run_state, check_writable, device_name, fit, plan_for_budget


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help=f"model name (default: {DEFAULT_MODEL}; with --time and nothing else said of what to train, "
        "the most accurate recorded model and recipe whose whole run fits the budget here)",
    )
    p.add_argument(
        "--recipe",
        default=None,
        help=f"packaged recipe ({', '.join(RECIPE_NAMES)}) or a TOML file (default: the model's "
        "own: fast for fastnet, long for sepnet_g31, classic for the others)",
    )
    p.add_argument(
        "--model-args",
        default=None,
        metavar="JSON",
        help="constructor arguments of the model, e.g. '{\"widths\": [16, 32, 64]}' (a sweep's best.toml names them)",
    )
    p.add_argument(
        "--seed",
        type=whole_number(0, MAX_SEED),
        default=0,
        help=f"seed of the weights, data order and augmentation, 0 to {MAX_SEED:,} (default: 0)",
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/MODEL-seedN)")
    add_device_flag(p)
    p.add_argument(
        "--val-split",
        type=int,
        default=0,
        metavar="N",
        help="hold out N training images and report on them instead of the test set "
        "(use for any tuning); 0 trains on all 50,000 (default)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in --out (its checkpoints, weights, logs) and start again",
    )
    add_data_flag(p)
    add_precision_flag(p)
    p.add_argument(
        "--time",
        default=None,
        metavar="DURATION",
        help="train for as many epochs as fit this budget (90s, 5m, 1h): overrides --epochs; with no "
        "--model, --recipe, recipe field or --teacher it also picks the model and recipe",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        default=None,
        metavar="FILE",
        help="distil from a teacher's soft labels (written by `tinycifar soft-labels`), or from a model's "
        "weights (a run's model.safetensors: the teacher then sees every augmented batch); give its share "
        "with --distill",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="with --time: print how many epochs fit the budget on this machine, and exit without training",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (on a GPU: faster epochs after a slow first one)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recipe_flags(p)


def _load_data(args: argparse.Namespace) -> tuple[Data, Data, str]:
    """The training rows, and what a run is scored on: the held-out rows, or the test set."""
    train, val = split_validation(load_cifar10("train", args.data_dir), args.val_split)
    if val is not None:
        return train, val, "val"
    return train, load_cifar10("test", args.data_dir), "test"


def _print_plan(args: argparse.Namespace, config: RunConfig, data: tuple[Data, Data, str] | None) -> int:
    """``--plan``: the schedule ``--time`` would choose, measured as a run would measure it."""
    seconds = config.time_budget_s
    assert seconds is not None  # --plan without --time is refused first
    train, eval_data, _ = data or _load_data(args)
    dev = resolve_device(config.device)
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, dev))
    torch.backends.cudnn.benchmark = True  # as a run sets it, so the steps are timed alike
    plan = plan_for_budget(config, train, eval_data, dev, seconds)
    print(
        f"{config.model}, batch {config.recipe.batch_size}, {len(train[0]):,} training images, precision "
        f"{describe_precision(config.precision, dev)} on {device_name(dev)}: "
        f"{plan.describe()}"
    )
    print(f"plan: {plan.epochs} epochs")
    return 0


def _pick_for_budget(args: argparse.Namespace, budget: float, data: tuple[Data, Data, str]) -> float:
    """``--time`` with no model named: set ``args.model`` and ``args.recipe`` to the most
    accurate pair of the recorded frontier whose run fits here, say why, and return the
    budget that is left for the run (timing the candidates takes its share)."""
    import time

    from tinycifar.budget import Plan
    from tinycifar.frontier import Entry, pick

    train, eval_data, _ = data
    dev = resolve_device(args.device)
    precision = resolve_precision(args.precision, dev)
    torch.backends.cudnn.benchmark = True  # as a run sets it, so the steps are timed alike

    def plan_for(entry: Entry, seconds: float) -> Plan:
        config = RunConfig(model=entry.model, recipe=load_recipe(entry.recipe), precision=precision)
        return plan_for_budget(config, train, eval_data, dev, seconds)

    started = time.perf_counter()
    entry, why = pick(budget, plan_for, time.perf_counter)
    left = budget - (time.perf_counter() - started)
    print(f"--time {args.time} and no model named: the most accurate recorded model and recipe that fit, measured here")
    for line in why:
        print(f"  {line}")
    print(f"  {left:.0f} s of the budget are left for the run")
    args.model, args.recipe = entry.model, entry.recipe
    return left


def _names_nothing(args: argparse.Namespace) -> bool:
    """``--time`` and nothing about what to train: no model, its arguments, recipe, recipe
    field or teacher. ``--time`` then picks what to train (:mod:`tinycifar.frontier`)."""
    chosen = [args.model, args.recipe, args.model_args, args.teacher]
    chosen += [getattr(args, f.name) for f in dataclasses.fields(Recipe)]
    return args.time is not None and all(c is None for c in chosen)


def _saved_choice(args: argparse.Namespace) -> RunConfig | None:
    """``--resume`` of a ``--time`` run with nothing named: what its checkpoint records
    (model, recipe, budget), which ``--time`` may have picked; None without a checkpoint,
    for the resume to say what is missing."""
    out = args.out or Path("runs") / f"{DEFAULT_MODEL}-seed{args.seed}"
    try:
        check_resumable(out)
        state = load_checkpoint(out)
        check_run_state(state, out)
        return RunConfig.from_dict(state["config"])
    except TinyCifarError:
        return None


def run(args: argparse.Namespace) -> int:
    from tinycifar.budget import parse_duration
    from tinycifar.summary import format_summary, summarize

    picking = _names_nothing(args) and not args.resume and distributed.world_size() == 1
    saved = _saved_choice(args) if _names_nothing(args) and args.resume else None
    args.model = saved.model if saved else args.model or DEFAULT_MODEL
    recipe = saved.recipe if saved else apply_overrides(load_recipe(args.recipe or model_recipe(args.model)), args)
    # Every option is checked before the data is loaded (or downloaded): fail fast.
    budget = parse_duration(args.time) if args.time is not None else None
    budget = saved.time_budget_s if saved else budget
    check_teacher(recipe.distill, args.teacher is not None)
    if args.plan and (budget is None or args.resume or distributed.world_size() > 1):
        raise TinyCifarError(
            "--plan shows the epochs a new run's --time budget buys: give --time "
            "(e.g. --time 1h), without --resume, and outside torchrun"
        )
    split_indices(train_size(), args.val_split)  # checks --val-split
    resolve_device(args.device)  # --device cuda without a GPU
    data = None
    if picking and budget is not None:
        if args.out is not None and not (args.overwrite or args.plan):
            refuse_existing_run(args.out)  # before the data is loaded and the models timed
        data = _load_data(args)
        budget = _pick_for_budget(args, budget, data)
        recipe = load_recipe(args.recipe)
    teacher: torch.Tensor | torch.nn.Module | None = None
    if args.teacher is not None and holds_model_weights(args.teacher):  # taught on each batch as it is
        from tinycifar.pretrained import load_model, resolve_model_name, weights_metadata

        teacher = load_model(resolve_model_name(None, args.teacher), args.teacher, resolve_device(args.device))
        check_held_out(f"teacher {args.teacher}", held_out(weights_metadata(args.teacher)), args.val_split)
    elif args.teacher is not None:  # the rows this run trains on, of the teacher's for the whole set
        probs, metadata = load_soft_labels(args.teacher, train_size())
        check_held_out(f"teacher file {args.teacher}", held_out(metadata), args.val_split)
        teacher = training_rows(probs, args.val_split)
    model_args = parse_model_args(args.model_args)
    out = args.out or Path("runs") / f"{args.model}-seed{args.seed}"
    say = print if distributed.is_main_process() else (lambda *_: None)
    say(format_summary(summarize(build_model(args.model, model_args))))  # also checks the arguments
    config = RunConfig(
        model=args.model,
        recipe=recipe,
        seed=args.seed,
        model_args=model_args or None,
        precision=args.precision,
        time_budget_s=budget,
        eval_on="val" if args.val_split else "test",
        device=args.device,
        compile=args.compile,
    )
    if args.plan:
        return _print_plan(args, config, data)
    if args.resume and args.overwrite:
        raise TinyCifarError("--resume continues the run in --out and --overwrite deletes it: give one of them")
    if args.resume:  # a checkpoint that cannot be resumed is refused before the data is loaded
        check_resumable(out)
        check_run_state(load_checkpoint(out), out)
    check_writable(out)
    with run_lock(out) if distributed.is_main_process() else contextlib.nullcontext():
        if args.overwrite and distributed.is_main_process():
            cleared = clear_run(out)
            if cleared:
                say(f"--overwrite: deleted {', '.join(cleared)} from {out}")
        elif not args.resume and distributed.is_main_process():
            refuse_existing_run(out)  # before the data is loaded: fail fast
        train, eval_data, _ = data or _load_data(args)
        metrics = fit(
            config,
            train,
            eval_data,
            out,
            [ConsoleLog(say, progress=not args.no_progress)],
            resume=args.resume,
            teacher=teacher,
        )
    say(json.dumps(metrics, indent=2))
    say(f"run folder: {out}")
    return 0
