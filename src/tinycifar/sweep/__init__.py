"""A recipe search on Optuna, scored on the validation split only (``tinycifar sweep``).

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
worker that dies mid-trial (killed, out of memory) leaves the study consistent: the
coordinator, watching its workers, marks the dead worker's trial failed, queues one retry
of its parameters and starts a replacement. On a database, Optuna's heartbeat does the
same for workers no one watches (another machine's): a trial whose heartbeat stops for
``GRACE_S`` is failed and retried once by the next worker that starts a trial.

What cannot succeed stops. Before any worker starts, the recipe and the model are built
from the ends of every range and from every choice, and the data is loaded. A range of an
integer recipe field draws integers, of a float one floats. A worker whose last
``FAILS_IN_A_ROW`` trials failed stops (exit ``EXIT_FAILING``) and the coordinator stops
the others and fails with that error; so does a sweep in which no trial completed. A worker
ends with the coordinator that started it, however that one ends (SIGKILL included). A
database password is never printed and never put in a worker's argv: workers read the
storage from ``TINYCIFAR_SWEEP_STORAGE``, which a user may set instead of ``--storage``.

The modules, in the order a sweep meets them: :mod:`~tinycifar.sweep.options` (what was
asked), :mod:`~tinycifar.sweep.run` (the entry point), :mod:`~tinycifar.sweep.space` and
:mod:`~tinycifar.sweep.ranges` (the search space), :mod:`~tinycifar.sweep.data`,
:mod:`~tinycifar.sweep.storage` (the study, passwords), :mod:`~tinycifar.sweep.coordinator`,
:mod:`~tinycifar.sweep.worker` and :mod:`~tinycifar.sweep.report`.
"""

from tinycifar.sweep.coordinator import MAX_RESTARTS
from tinycifar.sweep.data import load_data
from tinycifar.sweep.options import SweepOptions
from tinycifar.sweep.report import write_best
from tinycifar.sweep.run import run_sweep
from tinycifar.sweep.space import MAX_SEED, Space, configure, load_space
from tinycifar.sweep.storage import (
    GRACE_S,
    HEARTBEAT_S,
    STORAGE_ENV,
    account_for_dead,
    hide_password,
    open_storage,
    scrub,
    worker_id,
)
from tinycifar.sweep.worker import COORDINATOR_ENV, EXIT_FAILING, EXIT_ORPHANED, FAILS_IN_A_ROW, optimize, work

__all__ = [
    "COORDINATOR_ENV",
    "EXIT_FAILING",
    "EXIT_ORPHANED",
    "FAILS_IN_A_ROW",
    "GRACE_S",
    "HEARTBEAT_S",
    "MAX_RESTARTS",
    "MAX_SEED",
    "STORAGE_ENV",
    "Space",
    "SweepOptions",
    "account_for_dead",
    "configure",
    "hide_password",
    "load_data",
    "load_space",
    "open_storage",
    "optimize",
    "run_sweep",
    "scrub",
    "work",
    "worker_id",
    "write_best",
]
