"""`tinycifar sweep`: the search space, the budget, workers, a killed worker, both storages."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import REAL_DATA, needs_real_data

optuna = pytest.importorskip("optuna", reason="the [sweep] extra is not installed")

from optuna.trial import TrialState  # noqa: E402

from tinycifar.errors import TinyCifarError  # noqa: E402
from tinycifar.models import parse_model_args  # noqa: E402
from tinycifar.recipe import load_recipe  # noqa: E402
from tinycifar.sweep import account_for_dead, configure, load_space, open_storage  # noqa: E402

# A tiny split: 256 training images, scored on 200 held-out ones, 3 epochs a trial; one
# width choice is over the parameter budget (116,728 parameters) and must be rejected.
SPACE = """
model = "fastnet"
recipe = "fast"
val_split = 5000
train_images = 256
val_images = 200
[fixed]
epochs = 3
warmup_epochs = 0.5
batch_size = 64
[search]
lr = {low = 0.05, high = 1.0, log = true}
label_smoothing = {choices = [0.0, 0.2]}
[model_args]
widths = {choices = [[16, 24, 32], [32, 48, 64]]}
"""


@pytest.fixture
def postgres_url():
    """The PostgreSQL that .ci/run starts on loopback. In CI this test may not skip."""
    url = os.environ.get("TINYCIFAR_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL sweep test: .ci/run sets TINYCIFAR_TEST_POSTGRES")
        pytest.skip("no PostgreSQL: set TINYCIFAR_TEST_POSTGRES=postgresql://user@127.0.0.1:PORT/db")
    return url


def _space(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_a_space_becomes_a_recipe_model_and_widths(tmp_path):
    space = load_space(_space(tmp_path))
    trial = optuna.trial.FixedTrial({"lr": 0.3, "label_smoothing": 0.2, "model.widths": "[16, 24, 32]"})
    model, model_args, recipe = configure(trial, space)
    assert (model, model_args) == ("fastnet", {"widths": [16, 24, 32]})
    assert (recipe.lr, recipe.label_smoothing, recipe.epochs, recipe.batch_size) == (0.3, 0.2, 3, 64)
    assert recipe.eval_every == 1  # the pruner sees every epoch
    assert recipe.lookahead == load_recipe("fast").lookahead  # the rest is the base recipe


def test_prune_from_sets_the_first_epoch_the_median_pruner_may_stop_a_trial_at(tmp_path):
    from tinycifar.sweep.worker import make_pruner

    def verdicts(prune_from: int) -> list[bool]:
        """At each epoch of a trial scoring below two finished ones: does the pruner stop it?"""
        space = load_space(_space(tmp_path, SPACE.replace("[fixed]", f"prune_from = {prune_from}\n[fixed]", 1)))
        study = optuna.create_study(direction="maximize", pruner=make_pruner(space))
        for _ in range(2):
            done = study.ask()
            for epoch in range(1, 4):
                done.report(0.9, epoch)
            study.tell(done, 0.9)
        trial = study.ask()
        out = []
        for epoch in range(1, 4):
            trial.report(0.1, epoch)
            out.append(trial.should_prune())
        return out

    assert verdicts(1) == [True, True, True]  # the default: from the first epoch
    assert verdicts(3) == [False, False, True]
    assert verdicts(0) == [False, False, False]  # never
    assert load_space(_space(tmp_path)).prune_from == 1


def test_the_documented_example_space_is_valid_and_its_step_draws_on_a_grid(tmp_path):
    example = Path(__file__).parents[1] / "docs" / "sweep-example.toml"
    space = load_space(example)
    assert space.model == "fastnet" and space.seed == 0 and space.train_images == 10000
    assert {"lr", "label_smoothing", "weight_decay", "batch_size"} <= set(space.search)
    # the step the example's comment documents
    stepped = (
        _space(tmp_path).read_text().replace("[search]\n", "[search]\nlookahead = {low = 2, high = 8, step = 2}\n")
    )
    path = tmp_path / "stepped.toml"
    path.write_text(stepped)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {configure(study.ask(), load_space(path))[2].lookahead for _ in range(20)}
    assert drawn <= {2, 4, 6, 8} and len(drawn) > 1


@pytest.mark.parametrize(
    "text, says",
    [
        ('model = "nosuchnet"', "unknown model 'nosuchnet'"),
        ('colour = "red"', "unknown key(s) colour"),
        ("[search]\nlrate = {low = 0.1, high = 1.0}", "lrate are not recipe fields"),
        ("[search]\nlr = {low = 1.0, high = 0.1}", "is not a search range"),
        ("[search]\nlr = {low = 0, high = 1, log = true}", "is not a search range"),
        ("[fixed]\nlr = 0.1\n[search]\nlr = {low = 0.1, high = 1.0}", "both [fixed] and [search]"),
        ('recipe = "nosuch"', "neither a packaged recipe"),
        ("model = [", "not a valid TOML"),
    ],
)
def test_a_bad_space_is_one_clear_error(tmp_path, text, says):
    with pytest.raises(TinyCifarError, match=None) as e:
        load_space(_space(tmp_path, text))
    assert says in str(e.value)


def test_a_dead_workers_trial_is_failed_and_retried_once(tmp_path):
    study_storage = open_storage(None, tmp_path)
    study = optuna.create_study(storage=study_storage, study_name="s", direction="maximize")
    t = study.ask({"lr": optuna.distributions.FloatDistribution(0.1, 1.0)})
    t.set_user_attr("worker", "host:123")
    other = study.ask({"lr": optuna.distributions.FloatDistribution(0.1, 1.0)})
    other.set_user_attr("worker", "host:456")
    assert account_for_dead(study, "host:123", study_storage) == [t.number]
    trials = study.get_trials()
    assert trials[t.number].state == TrialState.FAIL
    assert trials[other.number].state == TrialState.RUNNING  # another worker's: untouched
    (queued,) = [x for x in trials if x.state == TrialState.WAITING]
    assert queued.system_attrs["fixed_params"] == trials[t.number].params  # what it will run
    assert queued.user_attrs["retry_of"] == t.number


def _sweep_and_kill(tmp_path: Path, storage: str | None, study: str) -> Path:
    """A 2-worker sweep of 8 trials; SIGKILL the worker of the first trial seen running."""
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "tinycifar",
        "sweep",
        str(_space(tmp_path)),
        "--study",
        study,
        "--trials",
        "8",
        "--workers",
        "2",
        "--out",
        str(out),
        "--data-dir",
        REAL_DATA,
        "--device",
        "cpu",
    ]
    if storage:
        cmd += ["--storage", storage]
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    killed = None
    while killed is None:
        assert sweep.poll() is None and time.time() < deadline, sweep.stdout.read()
        time.sleep(0.2)
        if not (storage or (out / "study.journal").exists()):
            continue
        try:
            seen = optuna.load_study(study_name=study, storage=open_storage(storage, out))
        except KeyError:  # the study is not created yet
            continue
        running = [
            t
            for t in seen.get_trials(states=(TrialState.RUNNING,))
            # only a trial past its budget check: one killed before it could still be rejected
            if "worker" in t.user_attrs and t.user_attrs.get("params", 100_000) < 100_000
        ]
        if running:
            pid = int(running[0].user_attrs["worker"].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed = running[0].number
    output = sweep.communicate(timeout=600)[0]
    assert sweep.returncode == 0, output
    assert "died (signal 9)" in output and f"trial(s) [{killed}] marked failed" in output

    final = optuna.load_study(study_name=study, storage=open_storage(storage, out))
    trials = final.get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]  # none left hanging
    assert trials[killed].state == TrialState.FAIL
    assert any(t.user_attrs.get("retry_of") == killed for t in trials)  # its parameters ran again
    drawn = [tuple(sorted(t.params.items())) for t in trials if "retry_of" not in t.user_attrs]
    assert len(set(drawn)) == len(drawn)  # the replacement worker did not redraw the dead one's trials
    counted = len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)])
    assert 8 <= counted <= 9  # a worker checks the count after its trial: the other may be mid-way
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    assert all(t.state == TrialState.PRUNED and t.params["model.widths"] == "[32, 48, 64]" for t in rejected)
    assert all(not (out / f"trial-{t.number}").exists() for t in rejected)  # never trained
    return out


def _check_results(out: Path) -> None:
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,val_acc") and len(rows) >= 10  # header, 8 counted, the failure
    assert (out / "history.png").stat().st_size > 1000
    recipe = load_recipe(out / "best.toml")  # what `tinycifar train --recipe best.toml` reads
    assert recipe.epochs == 3 and recipe.batch_size == 64 and 0.05 <= recipe.lr <= 1.0
    header = (out / "best.toml").read_text()
    assert "--model fastnet" in header and "--model-args" in header  # widths were searched
    model_args = json.loads(re.search(r"--model-args '(.*)'", header).group(1))
    assert parse_model_args(json.dumps(model_args)) == {"widths": [16, 24, 32]}  # as train reads it


def test_workers_run_where_and_on_what_the_sweep_was_told(tmp_path, monkeypatch):
    from tinycifar import cli, sweep
    from tinycifar.commands.sweep import options
    from tinycifar.sweep import coordinator

    spawned = []
    monkeypatch.setattr(coordinator.subprocess, "Popen", lambda cmd, **kwargs: spawned.append((cmd, kwargs["env"])))
    url = "postgresql://user:s3cret@db/sweeps"
    args = cli.build_parser().parse_args(
        [
            "sweep",
            "docs/sweep-example.toml",
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--data-dir",
            "/data/cifar",
            "--storage",
            url,
        ]
    )
    coordinator.spawn(options(args), 1, threads=1)
    ((cmd, env),) = spawned
    assert cmd[cmd.index("--device") + 1] == "cpu"  # before, a worker took auto: the GPU if one was there
    assert cmd[cmd.index("--data-dir") + 1] == "/data/cifar"
    assert cmd[cmd.index("--worker-index") + 1] == "1"
    assert "--storage" not in cmd and not any("s3cret" in c for c in cmd)  # ps shows argv to every user
    assert env[sweep.STORAGE_ENV] == url and env[sweep.COORDINATOR_ENV] == str(os.getpid())


def test_a_trial_is_built_as_the_space_was_checked(tmp_path):
    """The corners load_space checks are the values configure builds: warm-up clamped to a
    short run, integers for an integer field (a log range too), floats for a float one."""
    path = _space(
        tmp_path,
        SPACE.replace("warmup_epochs = 0.5\n", "")
        .replace("epochs = 3\n", "warmup_epochs = 5\n")
        .replace(
            "[search]\n",
            "[search]\nepochs = {low = 1, high = 3}\nlookahead = {low = 1, high = 8, log = true}\n"
            "momentum = {low = 0, high = 0.9}\n",
        ),
    )
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        recipe = configure(study.ask(), space)[2]
        assert recipe.warmup_epochs == min(5, recipe.epochs)
        assert type(recipe.lookahead) is int and 1 <= recipe.lookahead <= 8
        assert type(recipe.momentum) is float


def test_the_best_recipe_is_the_trial_it_ran(tmp_path):
    """A [fixed] epochs shorter than the base recipe's warm-up: the trials clamp it, and so
    must best.toml (it failed the sweep at the very end)."""
    from tinycifar.sweep import write_best

    space = load_space(_space(tmp_path, SPACE.replace("warmup_epochs = 0.5\n", "").replace("epochs = 3", "epochs = 1")))
    assert load_recipe(space.recipe).warmup_epochs > 1
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    configure(trial, space)
    study.tell(trial, 0.5)
    write_best(study.best_trial, space, tmp_path / "best.toml")
    recipe = load_recipe(tmp_path / "best.toml")
    assert (recipe.epochs, recipe.warmup_epochs) == (1, 1.0)
    assert recipe.eval_every == load_recipe(space.recipe).eval_every  # as the base recipe says, not every epoch


@pytest.mark.slow
@needs_real_data
def test_sweep_on_a_journal_survives_a_killed_worker(tmp_path):
    _check_results(_sweep_and_kill(tmp_path, None, "journal"))


@pytest.mark.slow
@needs_real_data
def test_sweep_on_postgresql_survives_a_killed_worker(tmp_path, postgres_url):
    study = f"test-{uuid.uuid4().hex[:8]}"
    storage = open_storage(postgres_url, tmp_path)
    assert storage.heartbeat_interval is not None  # a database study also has Optuna's heartbeat
    _check_results(_sweep_and_kill(tmp_path, postgres_url, study))


def test_an_unreachable_database_is_one_line(tmp_path, capsys):
    from tinycifar import cli

    rc = cli.main(
        [
            "sweep",
            str(_space(tmp_path)),
            "--storage",
            "postgresql://nobody@127.0.0.1:1/none",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the study storage" in err


def test_train_takes_the_model_args_a_sweep_names(tmp_path, capsys):
    from tinycifar import cli
    from tinycifar.models import parse_model_args

    assert parse_model_args('{"widths": [16, 24, 32]}') == {"widths": [16, 24, 32]}
    for bad, says in (
        ('{"widths": [16, 24', "is not JSON"),
        ("[16]", "JSON object"),
        ('{"depth": 3}', "does not take"),
    ):
        assert cli.main(["train", "--model-args", bad, "--out", str(tmp_path / "r")]) == 2
        assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    "model, freeze, says",
    [
        ('{choices = ["fastnet", "tinynet"]}', '[fixed]\nfreeze = "1"', "tinynet has 0 to freeze"),
        ('"fastnet"', '[search]\nfreeze = {choices = ["1", "1,2,2,3"]}', "names 4 stage(s) but fastnet has 3"),
    ],
)
def test_a_freeze_the_models_cannot_take_is_refused_before_any_trial(tmp_path, model, freeze, says):
    text = f'model = {model}\nrecipe = "fast"\ntrain_images = 256\nval_images = 200\n{freeze}\nepochs = 3\n'
    text = text.replace("\nepochs = 3\n", "\n") if freeze.startswith("[search]") else text
    with pytest.raises(TinyCifarError) as e:
        load_space(_space(tmp_path, text))
    assert says in str(e.value)
    assert load_space(_space(tmp_path, text.replace("tinynet", "fastnet_mcu").replace(', "1,2,2,3"', "")))
