"""The coordinator: the process ``tinycifar sweep`` starts, which starts the workers on this
machine and watches them to the end.

A worker that dies mid-trial (killed, out of memory) would leave its trial RUNNING for
ever on a journal: the coordinator marks it failed, queues one retry of its parameters and
starts a replacement, up to ``MAX_RESTARTS`` of them. A worker that stops because its
trials keep failing is never replaced: its replacement would fail the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.sweep.data import load_data
from tinycifar.sweep.options import SweepOptions
from tinycifar.sweep.optuna_extra import need_optuna
from tinycifar.sweep.report import report
from tinycifar.sweep.space import Space
from tinycifar.sweep.storage import (
    STORAGE_ENV,
    account_for_dead,
    hide_password,
    open_storage,
    open_study,
    scrub,
    worker_id,
)
from tinycifar.sweep.worker import COORDINATOR_ENV, EXIT_FAILING, FAILS_IN_A_ROW

MAX_RESTARTS = 4  # replacement workers one sweep may start (a crash loop ends here)
POLL_S = 1.0  # how often the coordinator looks at its workers


def coordinate(options: SweepOptions, space: Space) -> int:
    """Check what every worker would meet, run the workers to the end, then report."""
    optuna = need_optuna()
    from tinycifar.inference import resolve_device

    resolve_device(options.device)
    storage = open_storage(options.storage, options.out)  # before the data, which may be a download
    load_data(space, options.data_dir)  # one error here, not one per worker and replacement
    study = open_study(
        options.storage,
        options.study,
        lambda: optuna.create_study(
            study_name=options.study, storage=storage, direction="maximize", load_if_exists=True
        ),
    )
    threads = max(1, (os.cpu_count() or 1) // options.workers)
    where = hide_password(options.storage) if options.storage else options.out / "study.journal"
    print(
        f"study {options.study!r} in {where}: {_counted(study)} of {options.trials} trials done; "
        f"{options.workers} worker(s), {threads} thread(s) each"
    )
    failure = _supervise(options, study, storage, threads)
    report(study, space, options.out)
    if failure:
        raise TinyCifarError(failure)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise TinyCifarError(
            f"no trial completed, so there is no best configuration: every trial was "
            f"pruned, rejected or failed (their notes are in {options.out / 'trials.csv'}); "
            "widen the search space or give the trials more epochs"
        )
    return 0


def _supervise(options: SweepOptions, study: Any, storage: Any, threads: int) -> str | None:
    """Start the workers and watch them to the end; a worker that dies (a signal, a crash)
    has its trial accounted for and is replaced. Returns why the sweep failed, or None."""
    crew = _Crew(options, study, storage, threads)
    try:
        failure = crew.watch()
    except KeyboardInterrupt:
        crew.interrupt()
        raise
    if failure:
        return failure
    if crew.lost_cause and _counted(study) < options.trials:
        return f"the sweep ended with {_counted(study)} of {options.trials} trials: {crew.lost_cause}"
    return None


class _Crew:
    """The running workers, by slot, and the replacements started so far."""

    def __init__(self, options: SweepOptions, study: Any, storage: Any, threads: int) -> None:
        self.options, self.study, self.storage, self.threads = options, study, storage, threads
        self.workers = {i: (i, spawn(options, i, threads)) for i in range(options.workers)}  # slot: (index, process)
        self.restarts = 0  # a replacement gets a new index: its sampler must not redraw the dead one's trials
        self.lost_cause: str | None = None  # why a slot stayed empty: the sweep may end short of its trials

    def watch(self) -> str | None:
        """Poll until every worker has ended. Returns why the sweep must stop, if a worker
        stopped because its trials keep failing."""
        while self.workers:
            time.sleep(POLL_S)
            for slot, (index, proc) in list(self.workers.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self.workers[slot]
                if code == EXIT_FAILING:
                    return self._failing(slot, index, proc)
                if code != 0:
                    self._replace(slot, index, proc, code)
        return None

    def _failing(self, slot: int, index: int, proc: subprocess.Popen) -> str:
        log = _log_path(self.options, index)
        why = _last_failure(self.study, worker_id(proc.pid)) or _last_line(log, self.options.storage)
        self._stop_all()  # one failing for good means the space or the data is wrong for all of them
        return (
            f"worker {slot}: {FAILS_IN_A_ROW} trials in a row failed, the last ({why}); "
            f"fix that and run the sweep again (worker log: {log})"
        )

    def _replace(self, slot: int, index: int, proc: subprocess.Popen, code: int) -> None:
        lost = account_for_dead(self.study, worker_id(proc.pid), self.storage)
        why = f"signal {-code}" if code < 0 else f"exit code {code}"
        print(f"worker {slot} died ({why}); trial(s) {lost or 'none'} marked failed and queued again")
        if _counted(self.study) >= self.options.trials:
            return
        if self.restarts == MAX_RESTARTS:
            self.lost_cause = self._given_up(slot, index, code, why)
            return
        self.restarts += 1
        index = self.options.workers - 1 + self.restarts
        self.workers[slot] = (index, spawn(self.options, index, self.threads))

    def _given_up(self, slot: int, index: int, code: int, why: str) -> str:
        log = _log_path(self.options, index)
        if code > 0:
            tail = _last_line(log, self.options.storage) or "an empty log"
        else:  # its log ends mid-trial; the kernel's out-of-memory killer is the usual culprit
            tail = "out of memory? try fewer --workers"
        return (
            f"worker {slot} died ({why}) and the {MAX_RESTARTS} replacements a sweep may "
            f"start are used up; see {log}: {tail}"
        )

    def _stop_all(self) -> None:
        for _, proc in self.workers.values():
            proc.terminate()
        for _, proc in self.workers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            account_for_dead(self.study, worker_id(proc.pid), self.storage)
        self.workers.clear()

    def interrupt(self) -> None:
        for _, proc in self.workers.values():
            proc.send_signal(signal.SIGINT)
        for _, proc in self.workers.values():  # each marks its trial failed: our exit would end it first
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def spawn(options: SweepOptions, index: int, threads: int) -> subprocess.Popen:
    """Start worker ``index``: this command again, with ``--worker-index``, its output in
    its own log."""
    cmd = [
        sys.executable,
        "-m",
        "tinycifar",
        "sweep",
        str(options.space),
        "--study",
        options.study,
        "--trials",
        str(options.trials),
        "--out",
        str(options.out),
        "--worker-index",
        str(index),
        "--device",
        options.device,
    ]
    if options.data_dir:
        cmd += ["--data-dir", str(options.data_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), COORDINATOR_ENV: str(os.getpid())}
    if options.storage:  # the environment, not argv: any user's ps shows argv, and a URL's password
        env[STORAGE_ENV] = options.storage
    with open(_log_path(options, index), "a") as log:  # the child holds its own copy
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _log_path(options: SweepOptions, index: int) -> Path:
    return Path(options.out) / f"worker-{index}.log"


def _counted(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _last_failure(study: Any, worker: str) -> str | None:
    from optuna.trial import TrialState

    failed = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("worker") == worker and "failed_because" in t.user_attrs
    ]
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
