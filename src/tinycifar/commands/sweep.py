"""``tinycifar sweep``: the command line of the coordinator, and of the workers it starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tinycifar.commands.flags import add_data_flag, add_device_flag, whole_number
from tinycifar.sweep import STORAGE_ENV, SweepOptions, run_sweep


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", type=Path, help="the search space, a TOML file (see docs/sweep-example.toml)")
    p.add_argument(
        "--study", default=SweepOptions.study, help="study name: workers with the same storage and name join it"
    )
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL|FILE",
        help="a journal file (default OUT/study.journal) or a database URL, e.g. "
        f"postgresql://user@host/db (default: ${STORAGE_ENV}, which keeps a password out of ps)",
    )
    p.add_argument(
        "--trials",
        type=whole_number(1),
        default=SweepOptions.trials,
        metavar="N",
        help=f"finished trials (complete or pruned) the study should hold; each worker "
        f"checks after its trial, so up to workers-1 more may finish (default: {SweepOptions.trials})",
    )
    p.add_argument(
        "--workers",
        type=whole_number(1),
        default=SweepOptions.workers,
        metavar="N",
        help=f"worker processes on this machine; the cores are split between them (default: {SweepOptions.workers})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=SweepOptions.out,
        metavar="DIR",
        help=f"trial runs, worker logs, the table, plots and best.toml (default: {SweepOptions.out})",
    )
    add_device_flag(p)
    add_data_flag(p)
    # Set by the coordinator for the workers it starts; a user never gives it.
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)


def options(args: argparse.Namespace) -> SweepOptions:
    """The parsed command line as the library takes it."""
    return SweepOptions(
        space=args.space,
        study=args.study,
        # A worker's only way to get the storage: the coordinator keeps it out of argv.
        storage=args.storage or os.environ.get(STORAGE_ENV) or None,
        trials=args.trials,
        workers=args.workers,
        out=args.out,
        device=args.device,
        data_dir=args.data_dir,
        worker_index=args.worker_index,
    )


def run(args: argparse.Namespace) -> int:
    return run_sweep(options(args))
