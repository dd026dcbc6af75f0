"""``train --time D`` with no model named: the recorded frontier, and the pick from it."""

import json
import re
import statistics
from pathlib import Path

import pytest
from conftest import synthetic_cifar

from tinycifar import cli
from tinycifar.budget import Plan
from tinycifar.errors import TinyCifarError
from tinycifar.frontier import FRONTIER, Entry, pick
from tinycifar.models import list_models
from tinycifar.recipe import load_recipe

ROOT = Path(__file__).parents[1]


def _accuracy(record: Path) -> float:
    data = json.loads(record.read_text())
    metrics = data.get("metrics", data)
    return metrics.get("final_test_acc", metrics.get("eval_acc"))


@pytest.mark.parametrize("entry", FRONTIER, ids=lambda e: f"{e.model}-{e.recipe}")
def test_each_figure_is_its_records_mean_and_spread(entry):
    assert entry.model in list_models() and load_recipe(entry.recipe).epochs == entry.epochs
    accs = [100 * _accuracy(ROOT / r) for r in entry.records]
    assert len(accs) >= 3
    for r in entry.records:  # the test set, all training images, the recipe's length
        config = json.loads((ROOT / r).read_text()).get("config") or json.loads(
            (ROOT / r).with_name("config.json").read_text()
        )
        assert config["model"] == entry.model and config["eval_on"] == "test" and config["train_images"] == 50_000
        assert config["recipe"]["epochs"] == entry.epochs
    assert entry.accuracy == pytest.approx(statistics.mean(accs), abs=0.005)
    assert entry.spread == pytest.approx(statistics.stdev(accs), abs=0.005)


def test_the_frontier_is_most_accurate_first():
    accs = [e.accuracy for e in FRONTIER]
    assert accs == sorted(accs, reverse=True)


def _plans(fits: dict[str, int | None]):
    """A plan_for that gives each recipe a number of epochs (None: not one fits), and the budgets it saw."""
    seen = []

    def plan_for(entry: Entry, seconds: float) -> Plan:
        seen.append(seconds)
        if fits[entry.recipe] is None:
            raise TinyCifarError("--time is too short")
        return Plan(fits[entry.recipe], seconds, 0.1, 1.0, 0.1, 1)

    return plan_for, seen


def test_the_most_accurate_entry_whose_recipe_fits_is_taken():
    ticks = iter(range(100))
    plan_for, seen = _plans({"long": 20, "classic": 31, "fast": 60})
    entry, why = pick(900.0, plan_for, lambda: float(next(ticks)))
    assert (entry.model, entry.recipe) == ("fastnet", "classic")
    assert "20 epochs fit, too few" in why[0] and why[1].endswith("31 epochs fit, taken") and len(why) == 2
    assert seen == [899.0, 898.0]  # each probe gets what the ones before it left
    entry, _ = pick(900.0, _plans({"long": 38, "classic": 99, "fast": 99})[0], lambda: 0.0)
    assert entry.recipe == "long"
    entry, _ = pick(900.0, _plans({"long": 37, "classic": 99, "fast": 99})[0], lambda: 0.0)
    assert entry.recipe == "classic"  # an epoch to spare: the run times itself again


def test_when_nothing_fits_whole_the_fastest_takes_what_fits():
    entry, why = pick(60.0, _plans({"long": None, "classic": 3, "fast": 5})[0], lambda: 0.0)
    assert entry.recipe == "fast"
    assert why[0].endswith("not one epoch fits") and why[-1].endswith(
        "5 epochs fit, the fastest, taken for the epochs that fit"
    )
    with pytest.raises(TinyCifarError, match="too short"):
        pick(1.0, _plans({"long": None, "classic": None, "fast": None})[0], lambda: 0.0)


def test_train_with_only_a_time_trains_the_pick(tmp_path, capsys, monkeypatch):
    from tinycifar.commands import train as train_command

    fake = {"train": synthetic_cifar(320, seed=0), "test": synthetic_cifar(100, seed=1)}
    monkeypatch.setattr(train_command, "load_cifar10", lambda split, data_dir=None: fake[split])
    fits = {"sepnet_g31": 10, "fastnet": 40, "tinynet": 5}  # by model: the run's own plan asks again

    def plan(config, train, eval_data, dev, seconds):
        return Plan(fits[config.model], seconds, 0.01, 0.1, 0.01, 1)

    monkeypatch.setattr(train_command, "plan_for_budget", plan)
    assert cli.main(["train", "--time", "10m", "--out", str(tmp_path / "run"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "--time 10m and no model named" in out
    assert "sepnet_g31 with the long recipe (90.61 ± 0.16 % in 37 epochs): 10 epochs fit, too few" in out
    assert "fastnet with the classic recipe (88.06 ± 0.16 % in 30 epochs): 40 epochs fit, taken" in out
    assert re.search(r"^fastnet, batch 512, 320 training images", out, re.M)  # classic's batch
    assert not (tmp_path / "run").exists()
    # a model, a recipe or a resumed run is the user's choice: no pick
    for given in (["--model", "tinynet"], ["--recipe", "fast"]):
        assert cli.main(["train", "--time", "10m", *given, "--out", str(tmp_path / "run"), "--plan"]) == 0
        assert "no model named" not in capsys.readouterr().out


def test_a_picked_run_resumes_with_the_same_command(tmp_path, capsys, monkeypatch):
    from tinycifar.commands import train as train_command
    from tinycifar.runconfig import RunConfig

    fake = {"train": synthetic_cifar(320, seed=0), "test": synthetic_cifar(100, seed=1)}
    monkeypatch.setattr(train_command, "load_cifar10", lambda split, data_dir=None: fake[split])
    fits = {"sepnet_g31": 3, "fastnet": 2, "tinynet": 2}  # nothing fits whole: fast, for 2 epochs

    def plan(config, train, eval_data, dev, seconds):
        return Plan(fits[config.model], seconds, 0.01, 0.1, 0.01, 1)

    monkeypatch.setattr(train_command, "plan_for_budget", plan)
    monkeypatch.setattr("tinycifar.train.plan_for_budget", plan)
    run = tmp_path / "run"
    argv = ["train", "--time", "10m", "--out", str(run), "--no-progress"]
    assert cli.main(argv) == 0
    config = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert (config.model, config.recipe.epochs) == ("fastnet", 2) and config.time_budget_s < 600
    # as if killed during epoch 2: the same command with --resume continues the picked run
    import torch

    state = torch.load(run / "previous.pt", weights_only=True)
    (run / "last.pt").unlink()
    torch.save(state, run / "last.pt")
    (run / "metrics.json").unlink()
    capsys.readouterr()
    assert cli.main([*argv, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "no model named" not in out
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    # --plan writes nothing, so a folder that holds a run does not stop it
    assert cli.main(["train", "--time", "10m", "--out", str(run), "--plan"]) == 0
