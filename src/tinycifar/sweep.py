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

What cannot succeed stops. Before any worker starts, the recipe and the model are built
from the ends of every range and from every choice, and the data is loaded. A range of an
integer recipe field draws integers, of a float one floats. A worker whose
last ``FAILS_IN_A_ROW`` trials failed stops (exit ``EXIT_FAILING``) and this command stops
the others and fails with that error; so does a sweep in which no trial completed. A worker
ends with the command that started it, however that one ends (SIGKILL included). A
database password is never printed and never put in a worker's argv: workers read the
storage from ``TINYCIFAR_SWEEP_STORAGE``, which a user may set instead of ``--storage``.

At the end: the table of trials (``trials.csv``), Optuna's optimisation history and
parameter importances (``history.png``, ``importances.png``) and the best configuration
as a recipe, ``best.toml``, that ``tinycifar train --recipe best.toml`` takes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.summary import DEFAULT_BUDGET

HEARTBEAT_S, GRACE_S = 10, 60  # database storage: a trial silent for a minute is dead
MAX_RESTARTS = 4  # replacement workers one sweep may start (a crash loop ends here)
# MaxTrialsCallback counts complete and pruned trials only: without this a space whose
# every trial fails runs (and grows its journal and logs) for ever.
FAILS_IN_A_ROW = 3
EXIT_FAILING = 3  # a worker whose trials keep failing: stop the sweep, never replace it
EXIT_ORPHANED = 4  # a worker whose coordinator is gone (nobody reads it: for the log)
POLL_S = 1.0  # how often the coordinator looks at its workers
STORAGE_ENV = "TINYCIFAR_SWEEP_STORAGE"  # the storage URL, out of argv (ps shows argv to all)
COORDINATOR_ENV = "TINYCIFAR_SWEEP_COORDINATOR"  # the pid a worker must outlive no longer
MAX_SEED = 4_000_000  # the sampler's seed is seed * 1000 + worker: numpy takes < 2**32


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
    for handler in logging.getLogger("optuna").handlers:
        handler.addFilter(_without_known_traceback)  # adding the same filter twice is a no-op
    return optuna


def _without_known_traceback(record: logging.LogRecord) -> bool:
    # Optuna logs a failed trial with its traceback; a TinyCifarError's one line says it all.
    if record.exc_info and isinstance(record.exc_info[1], TinyCifarError):
        record.exc_info, record.exc_text = None, None
    return True


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


# What each top-level key of a space holds, and how to write it instead.
_TOP_LEVEL: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str, dict), 'a model name, e.g. model = "fastnet", or model = {choices = ["fastnet", "tinynet"]}'),
    "recipe": ((str,), 'a packaged recipe (classic, fast, long) or a recipe file, e.g. recipe = "fast"'),
    "val_split": ((int,), "a whole number of held-out training images, e.g. val_split = 5000"),
    "train_images": ((int,), "a whole number of training images (0: all), e.g. train_images = 10000"),
    "val_images": ((int,), "a whole number of validation images (0: all), e.g. val_images = 2000"),
    "seed": ((int,), f"a whole number from 0 to {MAX_SEED:,}, e.g. seed = 0"),
    "fixed": ((dict,), "a table of recipe fields: a line [fixed], then lines like epochs = 4"),
    "search": ((dict,), "a table of ranges or choices: a line [search], then lines like lr = {low = 0.1, high = 1.0}"),
    "model_args": ((dict,), ("a table of ranges or choices: a line [model_args], then lines like "
                             "widths = {choices = [[16, 32, 64]]}")),
}
_RANGE_HINT = ("use {low = A, high = B} (A < B; log = true needs A > 0; a step S > 0 draws A, A + S, ...) "
               "or {choices = [...]}")


def load_space(path: Path | str) -> Space:
    """The space in a TOML file, every name, type and range checked, and the recipe and
    the model built from the ends of every range and from every choice: one clear error
    otherwise, before any worker starts."""
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
    _check_top_level(path, values)
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
    if isinstance(space.model, dict):
        _check_spec(path, "model", space.model, choices_only=True)
    models = space.model["choices"] if isinstance(space.model, dict) else [space.model]
    for m in models:
        if m not in list_models():
            raise TinyCifarError(f"{path}: unknown model {_show(m)}; registered: {', '.join(list_models())}")
    for name, spec in space.search.items():
        _check_spec(path, f"[search] {name}", spec, whole=name in _whole_fields())
    for name, spec in space.model_args.items():
        _check_spec(path, f"[model_args] {name}", spec)
    _check_recipes(path, space)
    _check_models(path, space, models)
    return space


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range (TOML allows any size)
        return False


def _check_top_level(path: Path, values: dict[str, Any]) -> None:
    from tinycifar.data import train_size

    for key, value in values.items():
        kinds, hint = _TOP_LEVEL[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TinyCifarError(f"{path}: {key} = {_show(value)} is not {hint}")
    held_out = values.get("val_split", Space.val_split)
    if not 0 < held_out < train_size():
        raise TinyCifarError(f"{path}: val_split = {held_out} must be between 1 and {train_size() - 1:,}: "
                             "a sweep scores its trials on that many held-out training images")
    for key in ("train_images", "val_images"):
        if values.get(key, 0) < 0:
            raise TinyCifarError(f"{path}: {key} = {values[key]} must be >= 0 (0: all the images)")
    if not 0 <= values.get("seed", 0) <= MAX_SEED:
        raise TinyCifarError(f"{path}: seed = {values['seed']} must be between 0 and {MAX_SEED:,}")


def _check_spec(path: Path, name: str, spec: Any, whole: bool = False, choices_only: bool = False) -> None:
    """A search range or choices that Optuna takes as they are; ``whole``: the field takes
    integers, so the range must be one of integers."""
    where = f"{path}: {name} = {_show(spec)}"
    if isinstance(spec, dict) and "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise TinyCifarError(f"{where} is not a search range: choices take a non-empty list and nothing "
                                 "else, e.g. {choices = [128, 256]}")
        for choice in spec["choices"]:
            if not _storable(choice, top=True):
                raise TinyCifarError(f"{where}: Optuna cannot store the choice {_show(choice)}: a choice is a "
                                     "number, true/false, a string (not starting with '[') or a list of those")
        return
    if choices_only:
        raise TinyCifarError(f'{where} is not a search of models: use {{choices = ["fastnet", "tinynet"]}}')
    if not (isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}
            and _is_number(spec["low"]) and _is_number(spec["high"]) and spec["low"] < spec["high"]):
        raise TinyCifarError(f"{where} is not a search range: {_RANGE_HINT}")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise TinyCifarError(f"{where}: log = {_show(log)} is not true or false")
    if log and spec["low"] <= 0:
        raise TinyCifarError(f"{where} is not a search range: log = true needs low > 0")
    if step is not None:
        if log:
            raise TinyCifarError(f"{where}: a log range takes no step (Optuna refuses both): drop one of them")
        if not _is_number(step) or step <= 0:
            raise TinyCifarError(f"{where}: step = {_show(step)} must be a number > 0")
        if step > spec["high"] - spec["low"]:
            raise TinyCifarError(f"{where}: step = {step} is longer than the range, so only low could be "
                                 "drawn: make the step smaller or the range wider")
    if whole and not _whole_range(spec):
        raise TinyCifarError(f"{where}: {name.split()[-1]} takes whole numbers: give low, high and step "
                             "as integers, e.g. {low = 2, high = 8, step = 2}")


def _storable(value: Any, top: bool = False) -> bool:
    # Optuna stores scalars; a list travels as JSON text, so a string starting with "["
    # would come back as a list.
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, str):
        return not (top and value.startswith("["))
    return isinstance(value, bool) or _is_number(value)


def _whole_range(spec: dict[str, Any]) -> bool:
    return _is_int(spec.get("low")) and _is_int(spec.get("high")) and (spec.get("step") is None or _is_int(spec["step"]))


def _whole_fields() -> set[str]:
    """The recipe fields that take integers: a range of them draws integers."""
    from tinycifar.recipe import Recipe

    return {f.name for f in fields(Recipe) if f.type == "int"}


def _distribution(spec: dict[str, Any], whole: bool) -> Any:
    optuna = _need_optuna()
    log, step = spec.get("log", False), spec.get("step")
    with warnings.catch_warnings():  # a step that does not divide the range: Optuna lowers high
        warnings.simplefilter("ignore")
        if whole:
            return optuna.distributions.IntDistribution(spec["low"], spec["high"], log=log, step=step or 1)
        return optuna.distributions.FloatDistribution(float(spec["low"]), float(spec["high"]), log=log,
                                                      step=None if step is None else float(step))


def _ends(spec: dict[str, Any], whole: bool) -> list[tuple[Any, str]]:
    """The values at the edges of what the sampler draws, each with how to name it."""
    if "choices" in spec:
        return [(c, "one of its choices") for c in spec["choices"]]
    d = _distribution(spec, whole)
    return [(d.low, "the low end of its range"), (d.high, "the high end of its range")]


def _check_recipes(path: Path, space: Space) -> None:
    """Build the recipe of each [fixed] value, then of every range's ends and every choice
    (the other searched fields at their low ends), then of every high end together."""
    base = _base_values(space)
    for key, value in space.fixed.items():
        _try_recipe(base, {key: value}, {}, f"{path}: [fixed] {key} = {_show(value)}")
    _try_recipe(base, space.fixed, {}, f"{path}: [fixed] {', '.join(space.fixed)} together")
    ends = {k: _ends(spec, k in _whole_fields()) for k, spec in space.search.items()}
    lows = {k: e[0][0] for k, e in ends.items()}
    for key, values in ends.items():
        for value, what in values:
            others = " (the other searched fields at their low ends)" if len(ends) > 1 else ""
            _try_recipe(base, space.fixed, {**lows, key: value},
                        f"{path}: [search] {key} = {_show(value)}, {what}{others}")
    if len(ends) > 1:
        highs = {k: e[-1][0] for k, e in ends.items()}
        _try_recipe(base, space.fixed, highs, f"{path}: [search] with every field at its high end ({_show(highs)})")


def _try_recipe(base: dict[str, Any], fixed: dict[str, Any], drawn: dict[str, Any], where: str) -> None:
    from tinycifar.recipe import recipe_from_dict

    try:
        recipe_from_dict(_trial_values(base, fixed, drawn), "bad recipe")
    except TinyCifarError as e:
        raise TinyCifarError(f"{where}: {e}") from None


def _trial_values(base: dict[str, Any], fixed: dict[str, Any], drawn: dict[str, Any]) -> dict[str, Any]:
    """A trial's recipe fields: the base recipe's, then the fixed ones, then those drawn;
    warm-up no longer than the run (a short fixed ``epochs`` must not fail every trial)."""
    values = {**base, **fixed, **drawn}
    warmup, epochs = values.get("warmup_epochs"), values.get("epochs")
    if _is_number(warmup) and _is_number(epochs) and warmup > epochs:
        values["warmup_epochs"] = epochs
    return values


def _check_models(path: Path, space: Space, models: list[str]) -> None:
    """Build each model with the constructor arguments at their ends (on the meta device:
    nothing is allocated, however wide)."""
    if not space.model_args:
        return
    ends = {k: _ends(spec, _whole_range(spec)) for k, spec in space.model_args.items()}
    lows = {k: e[0][0] for k, e in ends.items()}
    points = [{**lows, k: v} for k, values in ends.items() for v, _ in values]
    points.append({k: e[-1][0] for k, e in ends.items()})
    for model in models:
        for model_args in points:
            try:
                _params(model, model_args)
            except TinyCifarError as e:
                raise TinyCifarError(f"{path}: [model_args]: {e}") from None
            except Exception as e:  # noqa: BLE001 - whatever a constructor raises: one line
                raise TinyCifarError(f"{path}: [model_args]: model {model} cannot be built with "
                                     f"{_show(model_args)} ({type(e).__name__}: {str(e)[:200]})") from None


def _suggest(trial: Any, name: str, spec: dict[str, Any], whole: bool | None = None) -> Any:
    """A value for ``name``; ``whole``: draw integers (None: when low, high and step are)."""
    if "choices" in spec:  # Optuna stores scalars: lists (widths) travel as JSON text
        encoded = [json.dumps(c) if isinstance(c, list) else c for c in spec["choices"]]
        return _decode(trial.suggest_categorical(name, encoded))
    if whole is None:
        whole = _whole_range(spec)
    if whole:
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step") or 1,
                                 log=spec.get("log", False))
    step = spec.get("step")
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=spec.get("log", False),
                               step=None if step is None else float(step))


def _decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


def configure(trial: Any, space: Space) -> tuple[str, dict[str, Any], Any]:
    """A trial's model, constructor arguments and recipe."""
    from tinycifar.recipe import recipe_from_dict

    model = _suggest(trial, "model", space.model) if isinstance(space.model, dict) else space.model
    model_args = {k: _suggest(trial, f"model.{k}", spec) for k, spec in space.model_args.items()}
    drawn = {k: _suggest(trial, k, spec, whole=k in _whole_fields()) for k, spec in space.search.items()}
    values = _trial_values(_base_values(space), space.fixed, drawn)
    return model, model_args, recipe_from_dict(values, f"trial {trial.number}")


def _base_values(space: Space) -> dict[str, Any]:
    from tinycifar.recipe import load_recipe

    return {**vars(load_recipe(space.recipe)), "eval_every": 1}  # every epoch: the pruner sees each


# --- storage and workers ---------------------------------------------------------------------

# scheme://user:PASSWORD@rest: the password runs to the last "@" (one may hold an "@"
# unescaped, which SQLAlchemy's parser cuts short and would half show).
_URL_WITH_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*):(?P<password>.*)@(?P<tail>[^@]*)$")
_ANY_URL_PASSWORD = re.compile(r"\b([A-Za-z][\w+.-]*://[^:/@\s]*):[^@\s/]*@")


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``, for every line a sweep prints."""
    m = _URL_WITH_PASSWORD.match(url)
    if not m or not m["password"]:
        return url
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: the pattern still masks it
        shown = None
    if shown is None or any(secret in shown for secret in _secrets(url)):
        shown = f"{m['head']}:***@{m['tail']}"
    return shown


def _secrets(url: str | None) -> set[str]:
    """A storage URL's password, as written and decoded (a driver's error may show either)."""
    m = _URL_WITH_PASSWORD.match(url or "")
    if not m or not m["password"]:
        return set()
    found = {m["password"], urllib.parse.unquote(m["password"])}
    with contextlib.suppress(Exception):  # not a URL SQLAlchemy parses: the pattern's reading is enough
        from sqlalchemy.engine import make_url

        found.add(make_url(url).password or "")
    return {s for s in found if s}


def scrub(text: str, url: str | None) -> str:
    """``text`` (an error, a log line) with the storage URL's password, and any other URL's
    password, shown as ``***``."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _ANY_URL_PASSWORD.sub(r"\1:***@", text)


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
        why = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise TinyCifarError(scrub(f"cannot open the study storage {hide_password(spec)} ({why})", spec)) from None


def _open_study(spec: str | None, name: str, open_it: Callable[[], Any]) -> Any:
    """``open_it()`` (Optuna's create_study or load_study), a database's error as one line
    without its password."""
    try:
        return open_it()
    except Exception as e:  # noqa: BLE001 - a lost connection, a missing study: one line either way
        why = (str(e).splitlines() or [""])[0][:200]
        where = hide_password(spec) if spec else "the journal"
        raise TinyCifarError(scrub(f"cannot open study {name!r} in {where} ({type(e).__name__}: {why})", spec)) from None


def _worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def account_for_dead(study: Any, worker: str, storage: Any) -> list[int]:
    """Mark the RUNNING trials of a dead ``worker`` failed and queue one retry of each
    (never a retry of a retry). ``storage`` is the one the study was opened on. Returns the
    trial numbers accounted for."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") != worker:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "failed_because", f"worker {worker} died")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if "retry_of" not in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        done.append(t.number)
    return done


def _spawn(args: argparse.Namespace, index: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tinycifar", "sweep", str(args.space), "--study", args.study,
           "--trials", str(args.trials), "--out", str(args.out), "--worker-index", str(index),
           "--device", args.device]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), COORDINATOR_ENV: str(os.getpid())}
    if args.storage:  # the environment, not argv: any user's ps shows argv, and a URL's password
        env[STORAGE_ENV] = args.storage
    with open(_log_path(args, index), "a") as log:  # the child holds its own copy
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _log_path(args: argparse.Namespace, index: int) -> Path:
    return Path(args.out) / f"worker-{index}.log"


def _counted(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# --- a worker ---------------------------------------------------------------------------------


def work(args: argparse.Namespace, space: Space) -> int:
    """One worker: trials from the shared study until it holds ``--trials`` finished ones,
    or until ``FAILS_IN_A_ROW`` of its trials in a row failed (then ``EXIT_FAILING``)."""
    optuna = _need_optuna()
    from tinycifar.train import fit

    _follow_coordinator()
    train, val = load_data(space, args.data_dir)
    out = Path(args.out)
    storage = open_storage(args.storage, out)
    study = _open_study(args.storage, args.study, lambda: optuna.load_study(
        study_name=args.study, storage=storage,
        sampler=optuna.samplers.TPESampler(seed=space.seed * 1000 + args.worker_index),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)))
    print(f"worker {args.worker_index} ({_worker_id()}) joined study {args.study!r}", flush=True)

    def trial_run(trial: Any) -> float:
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

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", _worker_id())
        try:
            return trial_run(trial)
        except TinyCifarError as e:  # the reason, for the table, the coordinator and the stop
            why = scrub(" ".join(str(e).split()), args.storage)
            trial.set_user_attr("failed_because", why)
            raise TinyCifarError(why) from None  # as Optuna logs it too

    last_failure = optimize(study, objective, args.trials)
    if last_failure is None:
        return 0
    print(f"tinycifar sweep: error: worker {args.worker_index}: {FAILS_IN_A_ROW} trials in a row failed, "
          f"the last ({last_failure}); stopping", file=sys.stderr, flush=True)
    return EXIT_FAILING


def optimize(study: Any, objective: Any, trials: int) -> str | None:
    """``study.optimize`` until the study holds ``trials`` complete or pruned trials; a
    TinyCifarError fails the trial alone, but ``FAILS_IN_A_ROW`` of them in a row stop it.
    Returns the last failure (``trial N: why``) if that stopped it, else None."""
    optuna = _need_optuna()
    streak = _FailStreak()
    study.optimize(objective, catch=(TinyCifarError,),
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=(
                       optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)), streak])
    return streak.last_failure


class _FailStreak:
    """An Optuna callback: stop after this worker's ``FAILS_IN_A_ROW`` last trials failed.

    It counts this worker's trials, not the study's: on a shared database another
    machine's failures (its disk full, its GPU gone) must not stop a healthy worker."""

    def __init__(self) -> None:
        self.run, self.last_failure = 0, None

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.run = self.run + 1 if trial.state == TrialState.FAIL else 0
        if self.run >= FAILS_IN_A_ROW:
            self.last_failure = f"trial {trial.number}: {trial.user_attrs.get('failed_because', 'see the log')}"
            study.stop()


def _follow_coordinator() -> None:
    """End this worker when the coordinator that started it ends, however it ends: an
    orphan would go on training, and growing the journal and its log, for no one."""
    expected = os.environ.get(COORDINATOR_ENV, "")
    if not expected.isdigit():
        return  # started by hand (another machine's worker): nobody to follow
    parent = int(expected)
    if sys.platform.startswith("linux"):
        try:  # the kernel sends SIGTERM the moment the parent dies, even of SIGKILL
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the thread below still notices, within a second
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(EXIT_ORPHANED)
    threading.Thread(target=_watch_parent, args=(parent,), name="follow-coordinator", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    print("the sweep that started this worker is gone: stopping", file=sys.stderr, flush=True)
    os._exit(EXIT_ORPHANED)


def load_data(space: Space, data_dir: str | None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The training images and the held-out ones a space's trials train and score on."""
    from tinycifar.data import load_cifar10
    from tinycifar.train import split_validation

    train, val = split_validation(load_cifar10("train", data_dir), space.val_split)
    return _subset(train, space.train_images, seed=1), _subset(val, space.val_images, seed=2)


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
                   help="a journal file (default OUT/study.journal) or a database URL, e.g. "
                        f"postgresql://user@host/db (default: ${STORAGE_ENV}, which keeps a password out of ps)")
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
    args.storage = args.storage or os.environ.get(STORAGE_ENV) or None
    try:
        return _run(args)
    except TinyCifarError as e:  # a driver's message may echo the URL it was given
        raise TinyCifarError(scrub(str(e), args.storage)) from None


def _run(args: argparse.Namespace) -> int:
    optuna = _need_optuna()
    from tinycifar.inference import resolve_device
    from tinycifar.paths import writable_dir

    space = load_space(args.space)  # fail before any process starts
    writable_dir(args.out, "--out", "choose a folder you can write to")
    if args.worker_index is not None:
        return work(args, space)
    resolve_device(args.device)
    out = Path(args.out)
    storage = open_storage(args.storage, out)  # before the data, which may be a download
    load_data(space, args.data_dir)  # one error here, not one per worker and replacement
    study = _open_study(args.storage, args.study, lambda: optuna.create_study(
        study_name=args.study, storage=storage, direction="maximize", load_if_exists=True))
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    print(f"study {args.study!r} in {hide_password(args.storage) if args.storage else out / 'study.journal'}: "
          f"{_counted(study)} of {args.trials} trials done; {args.workers} worker(s), {threads} thread(s) each")
    failure = _supervise(args, study, storage, threads)
    report(study, space, out)
    if failure:
        raise TinyCifarError(failure)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise TinyCifarError(f"no trial completed, so there is no best configuration: every trial was "
                             f"pruned, rejected or failed (their notes are in {out / 'trials.csv'}); widen "
                             "the search space or give the trials more epochs")
    return 0


def _supervise(args: argparse.Namespace, study: Any, storage: Any, threads: int) -> str | None:
    """Start the workers and watch them to the end; a worker that dies (a signal, a crash)
    has its trial accounted for and is replaced. Returns why the sweep failed, or None."""
    workers = {i: (i, _spawn(args, i, threads)) for i in range(args.workers)}  # slot: (index, process)
    restarts = 0  # a replacement gets a new index: its sampler must not redraw the dead one's trials
    lost_cause = None
    try:
        while workers:
            time.sleep(POLL_S)
            for slot, (index, proc) in list(workers.items()):
                code = proc.poll()
                if code is None:
                    continue
                del workers[slot]
                if code == 0:
                    continue
                log = _log_path(args, index)
                if code == EXIT_FAILING:
                    why = _last_failure(study, _worker_id(proc.pid)) or _last_line(log, args.storage)
                    _stop(workers, study, storage)
                    return (f"worker {slot}: {FAILS_IN_A_ROW} trials in a row failed, the last ({why}); "
                            f"fix that and run the sweep again (worker log: {log})")
                lost = account_for_dead(study, _worker_id(proc.pid), storage)
                why = f"signal {-code}" if code < 0 else f"exit code {code}"
                print(f"worker {slot} died ({why}); trial(s) {lost or 'none'} marked failed and queued again")
                if _counted(study) >= args.trials:
                    continue
                if restarts == MAX_RESTARTS:
                    if code > 0:
                        tail = _last_line(log, args.storage) or "an empty log"
                    else:  # its log ends mid-trial; the kernel's out-of-memory killer is the usual culprit
                        tail = "out of memory? try fewer --workers"
                    lost_cause = (f"worker {slot} died ({why}) and the {MAX_RESTARTS} replacements a sweep may "
                                  f"start are used up; see {log}: {tail}")
                    continue
                restarts += 1
                index = args.workers - 1 + restarts
                workers[slot] = (index, _spawn(args, index, threads))
    except KeyboardInterrupt:
        for _, proc in workers.values():
            proc.send_signal(signal.SIGINT)
        for _, proc in workers.values():  # each marks its trial failed: our exit would end it first
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        raise
    if lost_cause and _counted(study) < args.trials:
        return f"the sweep ended with {_counted(study)} of {args.trials} trials: {lost_cause}"
    return None


def _stop(workers: dict[int, tuple[int, subprocess.Popen]], study: Any, storage: Any) -> None:
    """Stop the other workers (one failing for good means the space or the data is wrong
    for all of them) and account for their trials."""
    for _, proc in workers.values():
        proc.terminate()
    for _, proc in workers.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        account_for_dead(study, _worker_id(proc.pid), storage)
    workers.clear()


def _last_failure(study: Any, worker: str) -> str | None:
    from optuna.trial import TrialState

    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.user_attrs.get("worker") == worker and "failed_because" in t.user_attrs]
    if not failed:
        return None
    last = max(failed, key=lambda t: t.number)
    return f"trial {last.number}: {last.user_attrs['failed_because']}"


def _last_line(log: Path, storage: str | None) -> str:
    """The last line a worker wrote (its error, usually), without a password."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode("utf-8", "replace").split("\n")
    except OSError:
        return ""
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return scrub(last[:300], storage)


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
        return  # the caller says so, as an error
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
    from tinycifar.recipe import load_recipe, recipe_from_dict, recipe_to_toml

    model = best.params.get("model", space.model)
    model_args = {k.removeprefix("model."): _decode(v) for k, v in best.params.items() if k.startswith("model.")}
    drawn = {k: v for k, v in best.params.items() if k != "model" and not k.startswith("model.")}
    # As the trial built it (warm-up clamped), but evaluated as often as the base recipe says.
    recipe = recipe_from_dict(_trial_values(vars(load_recipe(space.recipe)), space.fixed, drawn), str(path))
    lines = ["# tinycifar sweep: the best trial's recipe",
             f"# trial {best.number}, validation accuracy {best.value:.4f}, model {model}"
             + (f" {json.dumps(model_args)}" if model_args else ""),
             f"# train it: tinycifar train --model {model} --recipe {path.name}"
             + (f" --model-args '{json.dumps(model_args)}'" if model_args else ""), ""]
    path.write_text("\n".join(lines) + "\n" + recipe_to_toml(recipe))
