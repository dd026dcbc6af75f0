"""What one process of a sweep was asked to do, as :mod:`tinycifar.commands.sweep` read it
from the command line: the coordinator's options, or those of a worker it started."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SweepOptions:
    space: Path  # the search space, a TOML file
    study: str = "sweep"  # workers with the same storage and study name join one study
    storage: str | None = None  # a journal file or a database URL; None: OUT/study.journal
    trials: int = 8  # finished (complete or pruned) trials the study should hold
    workers: int = 1  # worker processes on this machine
    out: Path = Path("sweeps/sweep")  # trial runs, worker logs, the table, plots and best.toml
    device: str = "auto"
    data_dir: str | None = None  # None: $TINYCIFAR_DATA, else the user cache dir
    worker_index: int | None = None  # set only in a worker: which one it is (its sampler's seed)
