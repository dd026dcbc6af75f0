"""``tinycifar sweep``: a recipe search on Optuna, scored on the validation split only.

    tinycifar sweep space.toml --trials 16 --workers 2 --out sweeps/lr
    tinycifar sweep space.toml --storage postgresql://user@host/db --study lr   # on every machine

The search space is a small TOML file (``docs/sweep-example.toml``)::

    model = "fastnet"                 # or {choices = ["fastnet", "tinynet"]}
    recipe = "fast"                   # the recipe trials start from
    val_split = 5000                  # held-out training images (the fixed split of --val-split)
    train_images = 0                  # train on this many of the rest (0: all): a small split
    val_images = 0                    # score on this many of the held-out ones (0: all)
    [fixed]                           # recipe fields set for every trial
    epochs = 4
    [search]                          # recipe fields searched: a range or choices
    lr = {low = 0.1, high = 1.0, log = true}
    batch_size = {choices = [128, 256]}
    [model_args]                      # constructor arguments, for a model that takes them
    widths = {choices = [[24, 40, 64], [32, 48, 64]]}

Each trial trains with ``fit`` and reports its validation accuracy after every epoch to
Optuna's median pruner, which stops the unpromising ones; a configuration over the
parameter budget is rejected (pruned, with the reason) before it trains. The study lives
in a journal file (``OUT/study.journal``, default) or any database URL Optuna takes
(``--storage postgresql://...``: workers on many machines join one study by name).

``--workers N`` starts N processes on this machine and splits the cores between them. A
worker that dies mid-trial (killed, out of memory) leaves the study consistent: this
command, watching its workers, marks the dead worker's trial failed, queues one retry of
its parameters and starts a replacement. On a database, Optuna's heartbeat does the same
for workers no one watches (another machine's): a trial whose heartbeat stops for
``GRACE_S`` is failed and retried once by the next worker that starts a trial.

At the end: the table of trials (``trials.csv``), Optuna's optimisation history and
parameter importances (``history.png``, ``importances.png``) and the best configuration
as a recipe, ``best.toml``, that ``tinycifar train --recipe best.toml`` takes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.summary import DEFAULT_BUDGET

HEARTBEAT_S, GRACE_S = 10, 60  # database storage: a trial silent for a minute is dead
MAX_RESTARTS = 4  # replacement workers one sweep may start (a crash loop ends here)


def _need_optuna():
    try:
        import optuna
    except ImportError:
        raise TinyCifarError("sweeps are an optional extra: pip install -e '.[sweep]' in the "
                             "checkout (make setup installs every extra)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeat and its retry callback are marked experimental (since Optuna 2.8, unchanged):
    # a warning per process that tells a user nothing to do.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --- the search space ----------------------------------------------------------------------


@dataclass
class Space:
    model: Any = "fastnet"
    recipe: str = "fast"
    val_split: int = 5000
    train_images: int = 0
    val_images: int = 0
    seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_args: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_space(path: Path | str) -> Space:
    """The space in a TOML file, every name and range checked; one clear error otherwise."""
    from tinycifar.models import list_models
    from tinycifar.recipe import Recipe, load_recipe

    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TinyCifarError(f"cannot read the search space {path} ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise TinyCifarError(f"{path} is not a valid TOML search space ({e})") from None
    known = {f.name for f in fields(Space)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TinyCifarError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    space = Space(**values)
    load_recipe(space.recipe)  # a TinyCifarError names a bad recipe
    recipe_fields = {f.name for f in fields(Recipe)}
    for section in ("fixed", "search"):
        bad = sorted(set(getattr(space, section)) - recipe_fields)
        if bad:
            raise TinyCifarError(f"{path}: [{section}] {', '.join(bad)} are not recipe fields "
                                 f"(they are: {', '.join(sorted(recipe_fields))})")
    if "distill" in {**space.fixed, **space.search}:
        raise TinyCifarError(f"{path}: distill needs a teacher, which a sweep does not take: "
                             "leave distill out of the search space")
    both = sorted(set(space.fixed) & set(space.search))
    if both:
        raise TinyCifarError(f"{path}: {', '.join(both)} both [fixed] and [search]: keep one")
    models = space.model["choices"] if isinstance(space.model, dict) else [space.model]
    for m in models:
        if m not in list_models():
            raise TinyCifarError(f"{path}: unknown model {m!r}; registered: {', '.join(list_models())}")
    for name, spec in {**space.search, **space.model_args,
                       **({"model": space.model} if isinstance(space.model, dict) else {})}.items():
        _check_spec(path, name, spec)
    return space


def _check_spec(path: Path, name: str, spec: Any) -> None:
    ok = isinstance(spec, dict) and (
        (set(spec) == {"choices"} and isinstance(spec["choices"], list) and spec["choices"])
        or ({"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}
            and all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool) for k in ("low", "high"))
            and spec["low"] < spec["high"] and not (spec.get("log") and spec["low"] <= 0)))
    if not ok:
        raise TinyCifarError(f"{path}: {name} = {spec!r} is not a search range: use {{low = A, high = B}} "
                             "(A < B; log = true needs A > 0) or {choices = [...]}")


def _suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    if "choices" in spec:  # Optuna stores scalars: lists (widths) travel as JSON text
        encoded = [json.dumps(c) if isinstance(c, list) else c for c in spec["choices"]]
        return _decode(trial.suggest_categorical(name, encoded))
    if all(isinstance(spec[k], int) for k in ("low", "high")) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1))
    return trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step"))


def _decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


def configure(trial: Any, space: Space) -> tuple[str, dict[str, Any], Any]:
    """A trial's model, constructor arguments and recipe."""
    from tinycifar.recipe import load_recipe, recipe_from_dict

    model = _suggest(trial, "model", space.model) if isinstance(space.model, dict) else space.model
    model_args = {k: _suggest(trial, f"model.{k}", spec) for k, spec in space.model_args.items()}
    values = {**vars(load_recipe(space.recipe)), "eval_every": 1, **space.fixed}  # every epoch: pruning
    values.update({k: _suggest(trial, k, spec) for k, spec in space.search.items()})
    if "epochs" in values and values.get("warmup_epochs", 0) > values["epochs"]:
        values["warmup_epochs"] = values["epochs"]
    return model, model_args, recipe_from_dict(values, f"trial {trial.number}")


# --- storage and workers ---------------------------------------------------------------------


def open_storage(spec: str | None, out: Path) -> Any:
    """A journal file (default: ``OUT/study.journal``) or a database URL (with heartbeat)."""
    optuna = _need_optuna()
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if spec is None or "://" not in spec:
        path = Path(spec) if spec else out / "study.journal"
        return JournalStorage(JournalFileBackend(str(path)))
    url = spec.replace("postgresql://", "postgresql+psycopg://", 1)  # the driver the extra installs
    try:
        return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                          heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    except Exception as e:  # noqa: BLE001 - connection refused, bad URL, missing driver: all one line
        raise TinyCifarError(f"cannot open the study storage {spec} ({str(e).splitlines()[0][:200]})") from None


def _worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def account_for_dead(study: Any, worker: str) -> list[int]:
    """Mark the RUNNING trials of a dead ``worker`` failed and queue one retry of each
    (never a retry of a retry). Returns the trial numbers accounted for."""
    from optuna.trial import TrialState

    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") != worker:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "failed_because", f"worker {worker} died")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if "retry_of" not in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        done.append(t.number)
    return done


def _spawn(args: argparse.Namespace, index: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tinycifar", "sweep", str(args.space), "--study", args.study,
           "--trials", str(args.trials), "--out", str(args.out), "--worker-index", str(index),
           "--device", args.device]
    if args.storage:
        cmd += ["--storage", args.storage]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    log = open(Path(args.out) / f"worker-{index}.log", "a")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def _counted(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# --- a worker ---------------------------------------------------------------------------------


def work(args: argparse.Namespace) -> int:
    """One worker: trials from the shared study until it holds ``--trials`` finished ones."""
    optuna = _need_optuna()
    from tinycifar.data import load_cifar10
    from tinycifar.train import fit, split_validation

    space = load_space(args.space)
    train, val = split_validation(load_cifar10("train", args.data_dir), space.val_split)
    train = _subset(train, space.train_images, seed=1)
    val = _subset(val, space.val_images, seed=2)
    out = Path(args.out)
    storage = open_storage(args.storage, out)
    study = optuna.load_study(study_name=args.study, storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=space.seed * 1000 + args.worker_index),
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", _worker_id())
        model, model_args, recipe = configure(trial, space)
        params = _params(model, model_args)
        trial.set_user_attr("params", params)
        if params >= DEFAULT_BUDGET:
            trial.set_user_attr("rejected", f"{params:,} parameters, over the {DEFAULT_BUDGET:,} budget")
            raise optuna.TrialPruned(f"{params:,} parameters: over budget")

        def report(row: dict[str, Any]) -> None:
            if row["val_acc"] is not None:
                trial.report(row["val_acc"], row["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")

        metrics = fit(model, recipe, out / f"trial-{trial.number}", train, val, "val", seed=space.seed,
                      device=args.device, progress=False, log=lambda *_: None, model_args=model_args,
                      on_epoch=report)
        return metrics["final_val_acc"]

    study.optimize(objective, catch=(TinyCifarError,),
                   callbacks=[optuna.study.MaxTrialsCallback(args.trials, states=(
                       optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))])
    return 0


def _subset(data: tuple[Any, Any], n: int, seed: int) -> tuple[Any, Any]:
    import torch

    if not n or n >= len(data[0]):
        return data
    pick = torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return data[0][pick], data[1][pick]


def _params(model: str, model_args: dict[str, Any]) -> int:
    import torch

    from tinycifar.models import build_model

    with torch.device("meta"):  # counted, not allocated: a search space may hold huge widths
        return sum(p.numel() for p in build_model(model, model_args).parameters())


# --- the command ------------------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.cli import add_data_flag, add_device_flag, whole_number

    p.add_argument("space", type=Path, help="the search space, a TOML file (see docs/sweep-example.toml)")
    p.add_argument("--study", default="sweep", help="study name: workers with the same storage and name join it")
    p.add_argument("--storage", default=None, metavar="URL|FILE",
                   help="a journal file (default OUT/study.journal) or a database URL, e.g. postgresql://user@host/db")
    p.add_argument("--trials", type=whole_number(1), default=8, metavar="N",
                   help="finished trials (complete or pruned) the study should hold; each worker "
                        "checks after its trial, so up to workers-1 more may finish (default: 8)")
    p.add_argument("--workers", type=whole_number(1), default=1, metavar="N",
                   help="worker processes on this machine; the cores are split between them (default: 1)")
    p.add_argument("--out", type=Path, default=Path("sweeps/sweep"), metavar="DIR",
                   help="trial runs, worker logs, the table, plots and best.toml (default: sweeps/sweep)")
    add_device_flag(p)
    add_data_flag(p)
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)  # set for workers


def run(args: argparse.Namespace) -> int:
    optuna = _need_optuna()
    from tinycifar.paths import writable_dir

    space = load_space(args.space)  # fail before any process starts
    writable_dir(args.out, "--out", "choose a folder you can write to")
    if args.worker_index is not None:
        return work(args)
    storage = open_storage(args.storage, Path(args.out))
    study = optuna.create_study(study_name=args.study, storage=storage, direction="maximize", load_if_exists=True)
    cores = os.cpu_count() or 1
    threads = max(1, cores // args.workers)
    print(f"study {args.study!r} in {args.storage or Path(args.out) / 'study.journal'}: "
          f"{_counted(study)} of {args.trials} trials done; {args.workers} worker(s), {threads} thread(s) each")
    workers = {i: _spawn(args, i, threads) for i in range(args.workers)}
    restarts = 0  # a replacement gets a new number: its sampler must not redraw the dead one's trials
    try:
        while workers:
            time.sleep(1)
            for i, proc in list(workers.items()):
                code = proc.poll()
                if code is None:
                    continue
                del workers[i]
                if code != 0:
                    lost = account_for_dead(study, _worker_id(proc.pid))
                    why = f"signal {-code}" if code < 0 else f"exit code {code}"
                    print(f"worker {i} died ({why}); trial(s) {lost or 'none'} marked failed and queued again")
                    if _counted(study) < args.trials and restarts < MAX_RESTARTS:
                        restarts += 1
                        workers[i] = _spawn(args, args.workers - 1 + restarts, threads)
    except KeyboardInterrupt:
        for proc in workers.values():
            proc.send_signal(signal.SIGINT)
        raise
    report(study, space, Path(args.out))
    return 0


def report(study: Any, space: Space, out: Path) -> None:
    """The trial table, the plots and the best recipe."""
    optuna = _need_optuna()
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    rows = [{"trial": t.number, "state": t.state.name.lower(),
             "val_acc": None if t.value is None else round(t.value, 4),
             "epochs_run": len(t.intermediate_values), "params": t.user_attrs.get("params"),
             **{n: t.params.get(n) for n in names},
             "note": t.user_attrs.get("rejected") or t.user_attrs.get("failed_because")
             or (f"retry of {t.user_attrs['retry_of']}" if "retry_of" in t.user_attrs else "")}
            for t in trials]
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        w.writeheader()
        w.writerows(rows)
    header = list(rows[0]) if rows else []
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                                for v in r.values()) + " |")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        print("no trial completed: no best configuration")
        return
    from tinycifar.figures import save_figure

    for name, plot in (("history", optuna.visualization.matplotlib.plot_optimization_history),
                       ("importances", optuna.visualization.matplotlib.plot_param_importances)):
        try:
            fig = plot(study).figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()  # Optuna's layout clips long parameter names
            save_figure(fig, out / f"{name}.png")
        except (ValueError, RuntimeError) as e:  # importances need 2+ complete trials and a varied param
            print(f"no {name}.png: {e}")
    best = study.best_trial
    write_best(best, space, out / "best.toml")
    print(f"best: trial {best.number}, val accuracy {best.value:.2%}; wrote {out / 'best.toml'}, "
          f"{out / 'trials.csv'}, plots in {out}")


def write_best(best: Any, space: Space, path: Path) -> None:
    """The best trial's recipe as a TOML file for ``tinycifar train --recipe``."""
    from tinycifar.recipe import load_recipe, recipe_to_toml

    model = best.params.get("model", space.model)
    model_args = {k.removeprefix("model."): _decode(v) for k, v in best.params.items() if k.startswith("model.")}
    recipe = replace(load_recipe(space.recipe), **space.fixed,
                     **{k: v for k, v in best.params.items() if k != "model" and not k.startswith("model.")})
    lines = ["# tinycifar sweep: the best trial's recipe",
             f"# trial {best.number}, validation accuracy {best.value:.4f}, model {model}"
             + (f" {json.dumps(model_args)}" if model_args else ""),
             f"# train it: tinycifar train --model {model} --recipe {path.name}"
             + (f" --model-args '{json.dumps(model_args)}'" if model_args else ""), ""]
    path.write_text("\n".join(lines) + "\n" + recipe_to_toml(recipe))
