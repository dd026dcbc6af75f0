"""The bad-input catalogue of ``tinycifar sweep`` (issue #22), in the style of test_bad_input.py.

Each :class:`Case` runs the real command line in-process and must end with the expected exit
code, one line on stderr that says what is wrong and how to fix it, and no traceback. A
space that cannot succeed is refused before any worker starts (``before_data``: before the
data is even read). Where a case needs workers, ``_spawn`` starts :class:`FakeWorker`\\ s:
they record the command line and environment a real worker would get, and end as a real
one would (killed, done, or stopped because its trials keep failing).

Below the catalogue, two sweeps run as real processes on the fake data set (a
``sitecustomize`` shrinks the loader's batches, as the ``tiny`` fixture does in-process): one
whose every trial fails must stop, bounded in time, and the workers of one whose
coordinator is SIGKILLed must not outlive it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import N, write_batches
from test_bad_input import Case, env, fake_data, file_in_the_way, no_cuda_mark, run_cli  # noqa: F401 - env: fixture

optuna = pytest.importorskip("optuna", reason="the [sweep] extra is not installed")

from optuna.trial import TrialState  # noqa: E402

from tinycifar import sweep  # noqa: E402
from tinycifar.data import BATCHES_DIR  # noqa: E402
from tinycifar.errors import TinyCifarError  # noqa: E402
from tinycifar.sweep import coordinator  # noqa: E402

VAL = 20  # held-out images, of the fake set's 5 * N = 100 training images
PASSWORD = "Pa55-w0rd"
TIMEOUT_S = 120  # a sweep that does not stop fails the test instead of hanging it


# ---------------------------------------------------------------- builders


def space(
    e,
    fixed: str = "epochs = 1\nbatch_size = 16",
    search: str = "lr = {low = 0.05, high = 1.0, log = true}",
    model_args: str = "widths = {choices = [[8, 16, 16]]}",
    **top: str,
) -> Path:
    """A small good space, with top-level keys (TOML text) and the tables' lines replaced as given."""
    keys = {"model": '"fastnet"', "recipe": '"fast"', "val_split": str(VAL), **top}
    lines = [f"{k} = {v}" for k, v in keys.items()]
    for name, body in (("fixed", fixed), ("search", search), ("model_args", model_args)):
        lines += [f"[{name}]", body]
    return space_text(e, "\n".join(lines))


def space_text(e, text: str) -> Path:
    path = e.tmp / "space.toml"
    path.write_text(text + "\n")
    return path


def sweep_argv(e, space_path: Path | None = None, *extra: str, data_dir: Path | None = None) -> list[str]:
    return [
        "sweep",
        str(space_path or space(e)),
        "--out",
        str(e.tmp / "sweep"),
        "--device",
        "cpu",
        "--data-dir",
        str(data_dir or e.no_data),
        *extra,
    ]


def closed_port() -> int:
    with socket.socket() as s:  # free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_url(port: int | None = None) -> str:
    return f"postgresql://tinycifar:{PASSWORD}@127.0.0.1:{port or closed_port()}/sweeps"


class FakeWorker:
    """What ``_spawn`` starts in place of a worker process: its command line and environment
    are kept, and it ends at once with ``code`` (after ``act``, which does what that worker
    would have done to the study)."""

    pids = itertools.count(10**7)  # never a real pid: each fake is its own worker in the study

    def __init__(self, cmd: list[str], environ: dict[str, str], log, code: int, act=None):
        self.args, self.env, self.pid, self.code = cmd, environ, next(self.pids), code
        if act:
            act(self, log)

    def poll(self) -> int:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code

    def terminate(self) -> None:
        pass

    kill = send_signal = terminate


def fake_workers(e, code: int, act=None) -> list[FakeWorker]:
    """Workers started from now on are :class:`FakeWorker`\\ s; the list fills as they start."""
    started: list[FakeWorker] = []
    real = subprocess.Popen

    def popen(cmd, *args, **kwargs):
        if "--worker-index" not in cmd:
            return real(cmd, *args, **kwargs)
        started.append(FakeWorker(cmd, kwargs["env"], kwargs["stdout"], code, act))
        return started[-1]

    e.monkeypatch.setattr(coordinator.subprocess, "Popen", popen)
    e.monkeypatch.setattr(coordinator, "POLL_S", 0.01)
    e.workers = started
    return started


def with_workers(e, code: int, act=None, *extra: str) -> list[str]:
    """A sweep on the fake data whose workers are :class:`FakeWorker`\\ s ending with ``code``."""
    fake_workers(e, code, act)
    return sweep_argv(e, None, *extra, data_dir=fake_data(e))


def database_in_a_journal(e) -> list[str]:
    """A sweep told of a database with a password, its study kept in a journal instead:
    what is printed and passed on is under test, not the database."""
    real = sweep.open_storage
    e.monkeypatch.setattr(coordinator, "open_storage", lambda spec, out: real(None, out))
    return with_workers(e, 0, None, "--storage", db_url())


def storage_in_the_environment(e) -> list[str]:
    e.monkeypatch.setenv(sweep.STORAGE_ENV, db_url())
    return sweep_argv(e)


def fail_three_trials(worker: FakeWorker, log) -> None:
    """What a worker whose trials keep failing leaves: three failed trials with the reason."""
    storage = sweep.open_storage(None, Path(worker.args[worker.args.index("--out") + 1]))
    study_id = storage.get_study_id_from_name("sweep")
    for _ in range(sweep.FAILS_IN_A_ROW):
        trial_id = storage.create_new_trial(study_id)
        number = storage.get_trial_number_from_id(trial_id)
        storage.set_trial_user_attr(trial_id, "worker", sweep.worker_id(worker.pid))
        storage.set_trial_user_attr(
            trial_id, "failed_because", f"cannot write to --out trial-{number} (No space left on device)"
        )
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    log.write("tinycifar sweep: error: worker 0: 3 trials in a row failed; stopping\n")


# ---------------------------------------------------------------- extra checks


def no_worker_started(e) -> None:
    assert not list((e.tmp / "sweep").glob("worker-*.log")), "a worker was started"


def password_nowhere(e) -> None:
    out, err = e.output
    assert PASSWORD not in out + err
    for w in getattr(e, "workers", []):
        assert PASSWORD not in " ".join(w.args) and "--storage" not in w.args, w.args
        assert w.env[sweep.STORAGE_ENV].startswith(f"postgresql://tinycifar:{PASSWORD}@127.0.0.1:")
        assert w.env[sweep.COORDINATOR_ENV] == str(os.getpid())  # it knows whom to outlive no longer


def started_and_hidden(e) -> None:
    password_nowhere(e)
    assert len(e.workers) == 1
    assert re.search(r"study 'sweep' in postgresql://tinycifar:\*\*\*@127\.0\.0\.1:\d+/sweeps: ", e.output[0])


def five_workers_started(e) -> None:
    assert len(e.workers) == 1 + sweep.MAX_RESTARTS


def one_worker_started(e) -> None:
    assert len(e.workers) == 1


# ---------------------------------------------------------------- the catalogue

BEFORE = {"before_data": True}
CASES = [
    # --- top-level keys of the wrong type or out of range ---
    Case(
        "sweep-model-a-number",
        lambda e: sweep_argv(e, space(e, model="3")),
        2,
        r"space\.toml: model = 3 is not a model name, e\.g\. model = \"fastnet\", or model = \{choices",
        **BEFORE,
    ),
    Case(
        "sweep-model-a-range",
        lambda e: sweep_argv(e, space(e, model="{low = 1, high = 2}")),
        2,
        r"space\.toml: model = \{'low': 1, 'high': 2\} is not a search of models: use \{choices = ",
        **BEFORE,
    ),
    Case(
        "sweep-recipe-a-number",
        lambda e: sweep_argv(e, space(e, recipe="5")),
        2,
        r"space\.toml: recipe = 5 is not a packaged recipe \(classic, fast, long, mcu\) or a recipe file",
        **BEFORE,
    ),
    Case(
        "sweep-recipe-distils",
        lambda e: sweep_argv(e, space(e, recipe='"mcu"')),
        2,
        r"space\.toml: recipe = 'mcu' distils from a teacher, which a sweep does not take: choose another recipe",
        **BEFORE,
    ),
    Case(
        "sweep-val-split-a-string",
        lambda e: sweep_argv(e, space(e, val_split='"x"')),
        2,
        r"space\.toml: val_split = 'x' is not a whole number of held-out training images",
        **BEFORE,
    ),
    Case(
        "sweep-val-split-zero",
        lambda e: sweep_argv(e, space(e, val_split="0")),
        2,
        r"space\.toml: val_split = 0 must be between 1 and 99: a sweep scores its trials on that many "
        r"held-out training images",
        **BEFORE,
    ),
    Case(
        "sweep-val-split-all-the-data",
        lambda e: sweep_argv(e, space(e, val_split=str(5 * N))),
        2,
        r"space\.toml: val_split = 100 must be between 1 and 99",
        **BEFORE,
    ),
    Case(
        "sweep-train-images-negative",
        lambda e: sweep_argv(e, space(e, train_images="-5")),
        2,
        r"space\.toml: train_images = -5 must be >= 0 \(0: all the images\)",
        **BEFORE,
    ),
    Case(
        "sweep-prune-from-negative",
        lambda e: sweep_argv(e, space(e, prune_from="-1")),
        2,
        r"space\.toml: prune_from = -1 must be >= 0 \(0: never prune\)",
        **BEFORE,
    ),
    Case(
        "sweep-seed-a-bool",
        lambda e: sweep_argv(e, space(e, seed="true")),
        2,
        r"space\.toml: seed = True is not a whole number from 0 to 4,000,000",
        **BEFORE,
    ),
    Case(
        "sweep-seed-negative",
        lambda e: sweep_argv(e, space(e, seed="-1")),
        2,
        r"space\.toml: seed = -1 must be between 0 and 4,000,000",
        **BEFORE,
    ),
    Case(
        "sweep-fixed-a-number",
        lambda e: sweep_argv(e, space_text(e, f"val_split = {VAL}\nfixed = 3")),
        2,
        r"space\.toml: fixed = 3 is not a table of recipe fields: a line \[fixed\], then lines like epochs = 4",
        **BEFORE,
    ),
    Case(
        "sweep-search-a-list",
        lambda e: sweep_argv(e, space_text(e, f"val_split = {VAL}\nsearch = [1]")),
        2,
        r"space\.toml: search = \[1\] is not a table of ranges or choices: a line \[search\]",
        **BEFORE,
    ),
    Case(
        "sweep-model-args-a-string",
        lambda e: sweep_argv(e, space_text(e, f'val_split = {VAL}\nmodel_args = "wide"')),
        2,
        r"space\.toml: model_args = 'wide' is not a table of ranges or choices",
        **BEFORE,
    ),
    # --- [fixed] values the recipe refuses ---
    Case(
        "sweep-fixed-lr-negative",
        lambda e: sweep_argv(e, space(e, fixed="lr = -1", search="")),
        2,
        r"space\.toml: \[fixed\] lr = -1: bad recipe: lr must be positive \(got -1\.0\)",
        **BEFORE,
    ),
    Case(
        "sweep-fixed-epochs-a-string",
        lambda e: sweep_argv(e, space(e, fixed='epochs = "ten"')),
        2,
        r"space\.toml: \[fixed\] epochs = 'ten': bad recipe: epochs must be int, got 'ten'",
        **BEFORE,
    ),
    Case(
        "sweep-fixed-ema-with-the-recipes-lookahead",
        lambda e: sweep_argv(e, space(e, fixed="ema_decay = 0.9")),
        2,
        r"space\.toml: \[fixed\] ema_decay = 0\.9: bad recipe: ema_decay and lookahead are two ways to average "
        r"weights: set one of them to 0",
        **BEFORE,
    ),
    # --- [search] values the sampler can draw and the recipe refuses ---
    Case(
        "sweep-search-high-end-refused",
        lambda e: sweep_argv(e, space(e, search="momentum = {low = 0.5, high = 1.0}")),
        2,
        r"space\.toml: \[search\] momentum = 1\.0, the high end of its range: bad recipe: momentum must be in "
        r"\[0, 1\) \(got 1\.0\)",
        **BEFORE,
    ),
    Case(
        "sweep-search-low-end-refused",
        lambda e: sweep_argv(e, space(e, search="weight_decay = {low = -0.1, high = 0.1}")),
        2,
        r"space\.toml: \[search\] weight_decay = -0\.1, the low end of its range: bad recipe: weight_decay must "
        r"be >= 0",
        **BEFORE,
    ),
    Case(
        "sweep-search-choice-refused",
        lambda e: sweep_argv(e, space(e, fixed="epochs = 1", search="batch_size = {choices = [64, 0]}")),
        2,
        r"space\.toml: \[search\] batch_size = 0, one of its choices: bad recipe: batch_size must be at least 1",
        **BEFORE,
    ),
    Case(
        "sweep-search-refused-together",
        lambda e: sweep_argv(
            e, space(e, search="ema_decay = {low = 0.0, high = 0.9}\nlookahead = {low = 0, high = 5}")
        ),
        2,
        r"space\.toml: \[search\] with every field at its high end \(\{'ema_decay': 0\.9, 'lookahead': 5\}\): "
        r"bad recipe: ema_decay and lookahead are two ways",
        **BEFORE,
    ),
    Case(
        "sweep-search-float-range-for-whole-numbers",
        lambda e: sweep_argv(e, space(e, search="epochs = {low = 1.5, high = 4}", fixed="batch_size = 16")),
        2,
        r"space\.toml: \[search\] epochs = \{'low': 1\.5, 'high': 4\}: epochs takes whole numbers: give low, high "
        r"and step as integers",
        **BEFORE,
    ),
    Case(
        "sweep-search-log-and-step",
        lambda e: sweep_argv(e, space(e, search="lr = {low = 0.1, high = 1.0, log = true, step = 0.1}")),
        2,
        r"space\.toml: \[search\] lr = .*: a log range takes no step \(Optuna refuses both\): drop one of them",
        **BEFORE,
    ),
    Case(
        "sweep-search-step-zero",
        lambda e: sweep_argv(e, space(e, search="lookahead = {low = 2, high = 8, step = 0}")),
        2,
        r"space\.toml: \[search\] lookahead = .*: step = 0 must be a number > 0",
        **BEFORE,
    ),
    Case(
        "sweep-search-step-negative",
        lambda e: sweep_argv(e, space(e, search="lr = {low = 0.1, high = 1.0, step = -0.1}")),
        2,
        r"space\.toml: \[search\] lr = .*: step = -0\.1 must be a number > 0",
        **BEFORE,
    ),
    Case(
        "sweep-search-step-longer-than-the-range",
        lambda e: sweep_argv(e, space(e, search="lookahead = {low = 2, high = 8, step = 10}")),
        2,
        r"space\.toml: \[search\] lookahead = .*: step = 10 is longer than the range, so only low could be drawn",
        **BEFORE,
    ),
    Case(
        "sweep-search-log-a-string",
        lambda e: sweep_argv(e, space(e, search='lr = {low = 0.1, high = 1.0, log = "yes"}')),
        2,
        r"space\.toml: \[search\] lr = .*: log = 'yes' is not true or false",
        **BEFORE,
    ),
    Case(
        "sweep-search-range-to-infinity",
        lambda e: sweep_argv(e, space(e, search="lr = {low = 0.1, high = inf}")),
        2,
        r"space\.toml: \[search\] lr = \{'low': 0\.1, 'high': inf\} is not a search range: use \{low = A, high = B\}",
        **BEFORE,
    ),
    # --- [model_args] ---
    Case(
        "sweep-model-args-not-a-range",
        lambda e: sweep_argv(e, space(e, model_args="widths = 3")),
        2,
        r"space\.toml: \[model_args\] widths = 3 is not a search range",
        **BEFORE,
    ),
    Case(
        "sweep-model-args-choice-a-table",
        lambda e: sweep_argv(e, space(e, model_args="widths = {choices = [{a = 1}]}")),
        2,
        r"space\.toml: \[model_args\] widths = .*: Optuna cannot store the choice \{'a': 1\}",
        **BEFORE,
    ),
    Case(
        "sweep-model-args-choice-like-json",
        lambda e: sweep_argv(e, space(e, model_args='act = {choices = ["[relu"]}')),
        2,
        r"space\.toml: \[model_args\] act = .*: Optuna cannot store the choice '\[relu'.*not starting with '\['",
        **BEFORE,
    ),
    Case(
        "sweep-model-args-the-model-refuses",
        lambda e: sweep_argv(e, space(e, model_args="widths = {choices = [[8, 16, 16], [16, 32]]}")),
        2,
        r"space\.toml: \[model_args\]: model fastnet does not take the arguments \{\"widths\": \[16, 32\]\}",
        **BEFORE,
    ),
    # --- the data and the device: checked once, before any worker ---
    Case(
        "sweep-data-dir-is-a-file",
        lambda e: sweep_argv(e, data_dir=file_in_the_way(e).parent),
        2,
        r"data dir \S+a-file is not a folder: pass a folder with --data-dir or TINYCIFAR_DATA",
        check=no_worker_started,
    ),
    Case(
        "sweep-data-missing-download-404",
        lambda e: sweep_argv(e),
        2,
        r"downloading http://127\.0\.0\.1:\d+/\S+ failed: the server answered HTTP 404",
        check=no_worker_started,
    ),
    Case(
        "sweep-device-cuda-without-gpu",
        lambda e: sweep_argv(e, None, "--device", "cuda"),
        2,
        r"--device cuda asked for, but this torch build sees no CUDA GPU; use --device cpu",
        marks=no_cuda_mark(),
        **BEFORE,
    ),
    # --- a database password: never printed, never in a worker's argv ---
    Case(
        "sweep-password-unreachable-database",
        lambda e: sweep_argv(e, None, "--storage", db_url()),
        2,
        r"cannot open the study storage postgresql://tinycifar:\*\*\*@127\.0\.0\.1:\d+/sweeps \(",
        check=password_nowhere,
        **BEFORE,
    ),
    Case(
        "sweep-password-from-the-environment",
        storage_in_the_environment,
        2,
        r"cannot open the study storage postgresql://tinycifar:\*\*\*@127\.0\.0\.1:\d+/sweeps \(",
        check=password_nowhere,
        **BEFORE,
    ),
    Case(
        "sweep-password-not-in-argv-or-start-up-line",
        database_in_a_journal,
        2,
        r"no trial completed, so there is no best configuration",
        check=started_and_hidden,
    ),
    # --- workers that end badly ---
    Case(
        "sweep-no-trial-completed",
        lambda e: with_workers(e, 0),
        2,
        r"no trial completed, so there is no best configuration: every trial was pruned, rejected or failed "
        r"\(their notes are in \S+trials\.csv\); widen the search space",
        check=one_worker_started,
    ),
    Case(
        "sweep-workers-keep-dying",
        lambda e: with_workers(e, -signal.SIGKILL),
        2,
        r"the sweep ended with 0 of 8 trials: worker 0 died \(signal 9\) and the 4 replacements a sweep may start "
        r"are used up; see \S+worker-4\.log: out of memory\? try fewer --workers",
        check=five_workers_started,
    ),
    Case(
        "sweep-trials-keep-failing",
        lambda e: with_workers(e, sweep.EXIT_FAILING, fail_three_trials),
        2,
        r"worker 0: 3 trials in a row failed, the last \(trial 2: cannot write to --out trial-2 \(No space left "
        r"on device\)\); fix that and run the sweep again \(worker log: \S+worker-0\.log\)",
        check=one_worker_started,
    ),  # never replaced: its replacement would fail the same way
]


def test_catalogue_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_sweep_input(case: Case, env, capsys):  # noqa: F811 - env: test_bad_input's fixture
    argv = case.argv(env)
    code = run_cli(argv)
    out, err = capsys.readouterr()
    env.output = (out, err)
    assert "Traceback" not in out + err
    assert code == case.exit, err
    assert re.search(case.message, err), f"expected /{case.message}/ in stderr:\n{err}"
    assert err.strip().splitlines()[-1].startswith("tinycifar sweep: error: "), err  # one line, not a dump
    if case.before_data:
        assert env.server.requests == 0, "the data was downloaded before the space was checked"
        assert not env.no_data.exists(), "the data dir was touched before the space was checked"
        no_worker_started(env)
    if case.check:
        case.check(env)


# ---------------------------------------------------------------- the pieces, directly


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:s3cret@db:5432/tinycifar", "postgresql://u:***@db:5432/tinycifar"),
        ("postgresql://u:p@ss@db/tinycifar", "postgresql://u:***@db/tinycifar"),  # SQLAlchemy would show "ss"
        ("postgresql://u:p%40ss@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        ("postgresql://u@db/tinycifar", "postgresql://u@db/tinycifar"),
        ("sweeps/study.journal", "sweeps/study.journal"),
    ],
)
def test_a_password_is_hidden_wherever_a_url_is_shown(url, shown):
    assert sweep.hide_password(url) == shown
    said = f"connection to {url.replace('postgresql://', 'postgresql+psycopg://')} failed for {url}"
    for secret in ("s3cret", "p@ss", "p%40ss"):
        assert secret not in sweep.scrub(said, url)
    assert "s3cret" not in sweep.scrub("a driver saying password=s3cret", "postgresql://u:s3cret@db/x")


def test_failed_trials_in_a_row_stop_a_worker_and_a_success_resets_the_count():
    outcomes = iter(["fail", "fail", "ok", "fail", "fail", "fail"] + ["runaway"] * 20)

    def objective(trial):
        what = next(outcomes)
        if what == "runaway":  # bounded: a regression fails here instead of running for ever
            raise RuntimeError("the study was not stopped")
        if what == "fail":
            trial.set_user_attr("failed_because", f"disk full at trial {trial.number}")
            raise TinyCifarError("disk full")
        return 0.5

    study = optuna.create_study(direction="maximize")
    assert sweep.optimize(study, objective, trials=10) == "trial 5: disk full at trial 5"
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] + [TrialState.FAIL] * 3


def test_a_space_refused_by_the_recipe_never_reaches_a_trial(tmp_path):
    """What issue #22 saw: every trial of a space with [fixed] lr = -1 failed, for ever."""
    path = tmp_path / "space.toml"
    path.write_text('model = "fastnet"\nrecipe = "fast"\n[fixed]\nlr = -1\n')
    with pytest.raises(TinyCifarError, match=r"\[fixed\] lr = -1: bad recipe: lr must be positive"):
        sweep.load_space(path)


# ---------------------------------------------------------------- real processes


@pytest.fixture
def proc_env(tmp_path) -> SimpleNamespace:
    """A folder with the fake data set and an environment in which every Python process
    (the coordinator, its workers) reads it as CIFAR-10."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import tinycifar.data\ntinycifar.data._BATCH_SIZE = {N}\n")
    write_batches(tmp_path / "data" / BATCHES_DIR)
    environ = {k: v for k, v in os.environ.items() if k not in (sweep.STORAGE_ENV, sweep.COORDINATOR_ENV)}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [environ.get("PYTHONPATH")])])
    text = (
        f'model = "fastnet"\nrecipe = "fast"\nval_split = {VAL}\n[fixed]\nepochs = 1\nbatch_size = 16\n'
        "[search]\nlr = {low = 0.05, high = 1.0, log = true}\n[model_args]\nwidths = {choices = [[8, 16, 16]]}\n"
    )
    (tmp_path / "space.toml").write_text(text)
    return SimpleNamespace(tmp=tmp_path, env=environ, out=tmp_path / "sweep")


def start_sweep(p: SimpleNamespace, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "tinycifar",
        "sweep",
        str(p.tmp / "space.toml"),
        "--out",
        str(p.out),
        "--data-dir",
        str(p.tmp / "data"),
        "--device",
        "cpu",
        *extra,
    ]
    # Its own session, so that whatever it left behind can be killed as a group.
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=p.env, start_new_session=True
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended; only its parent reaps it


def worker_pids(coordinator: int) -> list[int]:
    """The coordinator's children that are sweep workers."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == coordinator and b"--worker-index" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def kill_all(proc: subprocess.Popen, pids: list[int] = ()) -> None:
    for pid in [proc.pid, *pids]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sweep_whose_every_trial_fails_stops_and_says_why(proc_env):
    """Issue #22: such a sweep ran 2,718 failed trials in 30 s and never stopped. Here every
    trial's folder is taken by a file, so every trial fails when it starts to train."""
    proc_env.out.mkdir()
    for n in range(200):
        (proc_env.out / f"trial-{n}").write_text("a file where a trial's folder goes")
    sweep_proc = start_sweep(proc_env, "--workers", "2", "--trials", "4")
    try:
        out, err = sweep_proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_all(sweep_proc)
        pytest.fail(f"a sweep whose every trial fails ran for {TIMEOUT_S} s without stopping")
    logs = "".join(p.read_text() for p in proc_env.out.glob("worker-*.log"))
    assert sweep_proc.returncode == 2, err
    assert "Traceback" not in out + err + logs
    assert re.fullmatch(
        r"tinycifar sweep: error: worker \d: 3 trials in a row failed, the last \(trial \d+: cannot write to --out "
        r"\S+/trial-\d+ \(File exists\): choose a folder you can write to\); fix that and run the sweep again "
        r"\(worker log: \S+worker-\d\.log\)",
        err.strip().splitlines()[-1],
    ), err
    study = optuna.load_study(study_name="sweep", storage=sweep.open_storage(None, proc_env.out))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert sweep.FAILS_IN_A_ROW <= len(failed) <= 2 * sweep.FAILS_IN_A_ROW  # each worker stops after 3
    assert not study.get_trials(states=(TrialState.RUNNING,))  # the other worker's trial is accounted for
    assert "3 trials in a row failed" in logs  # the worker said why it stopped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_do_not_outlive_a_killed_coordinator(proc_env):
    """Issue #22: an orphan worker kept a core busy and wrote 46 MB in 15 minutes."""
    journal = proc_env.tmp / "elsewhere.journal"
    sweep_proc = start_sweep(proc_env, "--trials", "1000", "--storage", str(journal))
    workers: list[int] = []
    try:
        deadline = time.time() + TIMEOUT_S
        while not workers and time.time() < deadline and sweep_proc.poll() is None:
            time.sleep(0.2)
            workers = worker_pids(sweep_proc.pid)
        assert workers, f"no worker started: {sweep_proc.poll()=}"
        (worker,) = workers
        cmdline = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")
        assert b"--storage" not in cmdline and str(journal).encode() not in cmdline  # passed in the environment
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert f"{sweep.STORAGE_ENV}={journal}".encode() in environ
        log = proc_env.out / "worker-0.log"
        while time.time() < deadline and "joined" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.2)  # training by now, or about to: a worker well under way
        os.kill(sweep_proc.pid, signal.SIGKILL)
        sweep_proc.wait()
        gone_by = time.time() + 5
        while alive(worker) and time.time() < gone_by:
            time.sleep(0.1)
        assert not alive(worker), "a worker outlived its SIGKILLed coordinator"
    finally:
        kill_all(sweep_proc, workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_without_prctl_still_follows_its_coordinator(tmp_path):
    """The portable fallback: the thread that watches the parent's pid."""
    child = (
        "import ctypes, time\n"
        "from tinycifar.sweep import worker\n"
        "def no_prctl(*a, **k): raise OSError('no prctl here')\n"
        "ctypes.CDLL = no_prctl\n"
        "worker.follow_coordinator()\n"
        "print('following', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = (
        "import os, subprocess, sys\n"
        f"env = {{**os.environ, {sweep.COORDINATOR_ENV!r}: str(os.getpid())}}\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env=env)\n"
        "print(p.pid, flush=True)\n"
        "p.wait()\n"
    )  # a child that failed ends this, and the test's wait for its line
    coordinator = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    worker = int(coordinator.stdout.readline())
    try:
        assert coordinator.stdout.readline() == "following\n"  # its watch has started
        assert alive(worker)
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.wait()
        gone_by = time.time() + 5
        while alive(worker) and time.time() < gone_by:
            time.sleep(0.1)
        assert not alive(worker), "the watching thread did not end the orphan"
    finally:
        kill_all(coordinator, [worker])
