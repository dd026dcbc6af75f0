"""One worker of a sweep: trials from the shared study until it holds enough, each trained
with ``fit`` and scored on the held-out images.

A worker stops on its own when ``FAILS_IN_A_ROW`` of its trials in a row failed, since
``MaxTrialsCallback`` counts complete and pruned trials only: a space whose every trial
fails would otherwise run (and grow its journal and logs) for ever. A worker the
coordinator started also ends with that coordinator, however it ends.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
import time
from typing import Any

from tinycifar.callbacks import Callback
from tinycifar.errors import TinyCifarError
from tinycifar.models import DEFAULT_BUDGET
from tinycifar.sweep.data import load_data
from tinycifar.sweep.options import SweepOptions
from tinycifar.sweep.optuna_extra import need_optuna
from tinycifar.sweep.space import Space, configure, count_params
from tinycifar.sweep.storage import open_storage, open_study, scrub, worker_id

FAILS_IN_A_ROW = 3
EXIT_FAILING = 3  # a worker whose trials keep failing: stop the sweep, never replace it
EXIT_ORPHANED = 4  # a worker whose coordinator is gone (nobody reads it: for the log)
COORDINATOR_ENV = "TINYCIFAR_SWEEP_COORDINATOR"  # the pid a worker must outlive no longer

Data = tuple[tuple[Any, Any], tuple[Any, Any]]


def make_pruner(space: Space) -> Any:
    """Optuna's median pruner, judging a trial from epoch ``space.prune_from`` on; none at 0."""
    optuna = need_optuna()
    if not space.prune_from:
        return optuna.pruners.NopPruner()
    # epochs report as steps from 1; the pruner judges steps from n_warmup_steps on
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=space.prune_from)


def work(options: SweepOptions, space: Space) -> int:
    """One worker: trials from the shared study until it holds ``options.trials`` finished
    ones, or until ``FAILS_IN_A_ROW`` of its trials in a row failed (then ``EXIT_FAILING``)."""
    optuna = need_optuna()
    follow_coordinator()
    data = load_data(space, options.data_dir)
    storage = open_storage(options.storage, options.out)
    study = open_study(
        options.storage,
        options.study,
        lambda: optuna.load_study(
            study_name=options.study,
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=space.seed * 1000 + (options.worker_index or 0)),
            pruner=make_pruner(space),
        ),
    )
    print(f"worker {options.worker_index} ({worker_id()}) joined study {options.study!r}", flush=True)
    objective = functools.partial(_objective, space=space, options=options, data=data)
    last_failure = optimize(study, objective, options.trials)
    if last_failure is None:
        return 0
    print(
        f"tinycifar sweep: error: worker {options.worker_index}: {FAILS_IN_A_ROW} trials in a row failed, "
        f"the last ({last_failure}); stopping",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_FAILING


def _objective(trial: Any, space: Space, options: SweepOptions, data: Data) -> float:
    trial.set_user_attr("worker", worker_id())
    try:
        return _train(trial, space, options, data)
    except TinyCifarError as e:  # the reason, for the table, the coordinator and the stop
        why = scrub(" ".join(str(e).split()), options.storage)
        trial.set_user_attr("failed_because", why)
        raise TinyCifarError(why) from None  # as Optuna logs it too


def _train(trial: Any, space: Space, options: SweepOptions, data: Data) -> float:
    """A trial's validation accuracy; a configuration over the parameter budget is pruned
    before it trains, with the reason."""
    optuna = need_optuna()
    from tinycifar.runconfig import RunConfig
    from tinycifar.train import fit

    model, model_args, recipe = configure(trial, space)
    params = count_params(model, model_args)
    trial.set_user_attr("params", params)
    if params >= DEFAULT_BUDGET:
        trial.set_user_attr("rejected", f"{params:,} parameters, over the {DEFAULT_BUDGET:,} budget")
        raise optuna.TrialPruned(f"{params:,} parameters: over budget")
    train, val = data
    config = RunConfig(
        model=model, recipe=recipe, seed=space.seed, model_args=model_args, eval_on="val", device=options.device
    )
    metrics = fit(config, train, val, options.out / f"trial-{trial.number}", [Pruning(trial)])
    return metrics["eval_acc"]


class Pruning(Callback):
    """The median pruner sees every epoch's score and may stop the trial."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def on_epoch_end(self, run: Any, row: dict[str, Any]) -> None:
        if row["eval_acc"] is not None:
            self.trial.report(row["eval_acc"], row["epoch"])
            if self.trial.should_prune():
                raise need_optuna().TrialPruned(f"pruned after epoch {row['epoch']}")


def optimize(study: Any, objective: Any, trials: int) -> str | None:
    """``study.optimize`` until the study holds ``trials`` complete or pruned trials; a
    TinyCifarError fails the trial alone, but ``FAILS_IN_A_ROW`` of them in a row stop it.
    Returns the last failure (``trial N: why``) if that stopped it, else None."""
    optuna = need_optuna()
    streak = _FailStreak()
    study.optimize(
        objective,
        catch=(TinyCifarError,),
        callbacks=[
            optuna.study.MaxTrialsCallback(
                trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            ),
            streak,
        ],
    )
    return streak.last_failure


class _FailStreak:
    """An Optuna callback: stop after this worker's ``FAILS_IN_A_ROW`` last trials failed.

    It counts this worker's trials, not the study's: on a shared database another
    machine's failures (its disk full, its GPU gone) must not stop a healthy worker."""

    def __init__(self) -> None:
        self.run: int = 0
        self.last_failure: str | None = None

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.run = self.run + 1 if trial.state == TrialState.FAIL else 0
        if self.run >= FAILS_IN_A_ROW:
            self.last_failure = f"trial {trial.number}: {trial.user_attrs.get('failed_because', 'see the log')}"
            study.stop()


def follow_coordinator() -> None:
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
