"""One process of a sweep, from its options: the coordinator, or a worker it started."""

from __future__ import annotations

from tinycifar.errors import TinyCifarError
from tinycifar.sweep.coordinator import coordinate
from tinycifar.sweep.options import SweepOptions
from tinycifar.sweep.optuna_extra import need_optuna
from tinycifar.sweep.space import load_space
from tinycifar.sweep.storage import scrub
from tinycifar.sweep.worker import work


def run_sweep(options: SweepOptions) -> int:
    """Run the sweep ``options`` describe (a worker's part if ``options.worker_index`` is
    set); the exit code. What cannot succeed raises one :class:`TinyCifarError`."""
    try:
        return _run(options)
    except TinyCifarError as e:  # a driver's message may echo the URL it was given
        raise TinyCifarError(scrub(str(e), options.storage)) from None


def _run(options: SweepOptions) -> int:
    from tinycifar.paths import writable_dir

    need_optuna()
    space = load_space(options.space)  # fail before any process starts
    writable_dir(options.out, "--out", "choose a folder you can write to")
    if options.worker_index is not None:
        return work(options, space)
    return coordinate(options, space)
