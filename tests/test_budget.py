"""--time: durations, the plan of epochs a budget buys, and runs that keep it."""

import dataclasses
import json
import re
import time

import pytest
import torch
from conftest import synthetic_cifar

from tinycifar import cli
from tinycifar.budget import evaluations, parse_duration
from tinycifar.callbacks import ConsoleLog
from tinycifar.errors import TinyCifarError
from tinycifar.models import create_model
from tinycifar.optimizers import make_optimizer
from tinycifar.recipe import Recipe, load_recipe
from tinycifar.runconfig import RunConfig
from tinycifar.train import fit


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("45", 45), ("2.5m", 150)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-3m", "0s", "1m1h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(TinyCifarError, match="--time"):
        parse_duration(text)


def test_evaluations_count_the_last_epoch():
    assert [evaluations(e, 3) for e in (1, 3, 4, 6, 7)] == [1, 1, 2, 2, 3]


def test_time_budget_picks_the_epochs_and_ends_within_it(tmp_path, tiny_data):
    lines = []
    budget = 20.0
    t0 = time.perf_counter()
    metrics = fit(
        RunConfig("tinynet", Recipe(batch_size=32, epochs=1000), time_budget_s=budget, device="cpu"),
        *tiny_data,
        tmp_path,
        [ConsoleLog(lines.append, progress=False)],
    )
    took = time.perf_counter() - t0
    (plan,) = [line for line in lines if line.startswith("time budget")]
    epochs, expected = re.search(r"-> (\d+) epochs \(about (\d+) s\)", plan).groups()
    # The plan's epochs, or fewer where the first epoch showed the loop slower than the probe.
    shorter = [line for line in lines if line.startswith("the first epoch took")]
    assert metrics["epochs"] == int(epochs) if not shorter else metrics["epochs"] < int(epochs)
    # The budget, not the recipe's 1,000 epochs, set the length (about 0.5 s an epoch here:
    # a few dozen quiet, fewer under load).
    assert 1 <= metrics["epochs"] < 1000
    assert int(expected) <= budget
    # Within the budget, unless this shared machine got slower after the measurement: the
    # plan cannot foresee that, so any time the epochs took beyond their estimate is allowed.
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    slowdown = max(0.0, sum(r["seconds"] for r in rows) - int(expected))
    assert took <= budget + slowdown, (plan, took)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["epochs"] == metrics["epochs"] and config["time_budget_s"] == budget


def test_a_resumed_budgeted_run_keeps_its_schedule(tmp_path, tiny_data, monkeypatch):
    from tinycifar import budget

    plans = []

    def fixed_plan(seconds, *args, **kwargs):
        plans.append(seconds)
        return budget.Plan(epochs=2, budget_s=seconds, step_s=0.1, epoch_s=1.0, eval_s=0.1, evals=2)

    monkeypatch.setattr(budget, "epochs_within", fixed_plan)
    recipe = Recipe(batch_size=32, epochs=50)
    first = fit(RunConfig("tinynet", recipe, time_budget_s=60.0), *tiny_data, tmp_path)
    assert first["epochs"] == 2 and len(plans) == 1
    # Killed during epoch 2 and resumed with the same command: the saved schedule, no new plan.
    torch.save(torch.load(tmp_path / "previous.pt", weights_only=True), tmp_path / "last.pt")
    resumed = fit(RunConfig("tinynet", recipe, time_budget_s=60.0), *tiny_data, tmp_path, resume=True)
    assert resumed["epochs"] == 2 and len(plans) == 1
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["epochs"] == 2 and config["recipe"]["warmup_epochs"] == pytest.approx(2.0 * 2 / 50)


def test_time_budget_too_short_says_how_long_to_ask_for(tmp_path, tiny_data):
    with pytest.raises(TinyCifarError, match=r"too short.*give at least --time \d+s"):
        fit(RunConfig("tinynet", Recipe(batch_size=32), time_budget_s=0.5), *tiny_data, tmp_path)


def test_plan_prints_the_epochs_a_budget_buys_and_trains_nothing(tmp_path, capsys, monkeypatch):
    from tinycifar.commands import train as train_command

    fake = {"train": synthetic_cifar(320, seed=0), "test": synthetic_cifar(100, seed=1)}
    monkeypatch.setattr(train_command, "load_cifar10", lambda split, data_dir=None: fake[split])
    out = tmp_path / "run"
    args = ["train", "--model", "tinynet", "--batch-size", "32", "--out", str(out), "--plan"]
    # --plan trains nothing, so a long budget costs no test time; the short one leaves room
    # for an epoch even on a loaded machine
    assert cli.main([*args, "--time", "1h"]) == 0
    long = capsys.readouterr().out
    assert cli.main([*args, "--time", "5m"]) == 0
    short = capsys.readouterr().out
    epochs = [int(re.search(r"^plan: (\d+) epochs$", text, re.M).group(1)) for text in (long, short)]
    # Real timings are noisy on a shared machine: how many epochs a budget buys exactly is
    # test_plan_buys_as_many_epochs_as_fit, on a clock of its own.
    assert epochs[1] >= 1 and epochs[0] > epochs[1], (long, short)
    assert "time budget 3600 s" in long and "threads" in long  # names the budget and the machine
    assert not out.exists()  # nothing trained, nothing written


@pytest.mark.parametrize("seconds", [7.3, 30.0, 120.0])
def test_plan_buys_as_many_epochs_as_fit(tiny_data, monkeypatch, seconds):
    """On a clock where everything timed takes 10 ms: the plan takes every epoch (and its
    evaluations) that fits the budget's usable share, and not one more."""
    from types import SimpleNamespace

    from tinycifar import budget

    ticks = iter(range(10**6))
    monkeypatch.setattr(budget, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.01))
    recipe = Recipe(batch_size=32, eval_every=3)
    model = create_model("tinynet")
    plan = budget.epochs_within(
        seconds, model, make_optimizer(model, recipe), recipe, *tiny_data, torch.device("cpu"), "fp32"
    )
    steps = len(tiny_data[0][0]) // 32
    assert plan.step_s == pytest.approx(0.01) and plan.epoch_s == pytest.approx(steps * 0.01 + 0.01)
    assert plan.eval_s == pytest.approx(0.01 * len(tiny_data[1][0]) / min(len(tiny_data[1][0]), 1000))
    # the clock as epochs_within last read it, before the measuring time it subtracts
    usable = (seconds - (next(ticks) - 1) * 0.01) * budget.MARGIN - budget.END_RESERVE_S

    def cost(epochs: int) -> float:
        return epochs * plan.epoch_s + evaluations(epochs, 3) * plan.eval_s

    assert cost(plan.epochs) <= usable < cost(plan.epochs + 1)
    assert plan.expected_s == pytest.approx(cost(plan.epochs))


def test_bad_time_option_is_one_line_exit_2(capsys):
    assert cli.main(["train", "--time", "soon"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a duration" in err


def test_a_loop_slower_than_the_probe_still_ends_in_time(tmp_path, tiny_data, monkeypatch):
    """The probe times bare steps; here each of the loop's steps costs 40 ms more (as data
    gathering, logging and a busy machine make it). The first epoch shows it, and the run
    shortens its schedule then: without that it would run about three times its budget."""
    import tinycifar.train as train

    real_step = train.train_step

    def slow_step(*args, **kwargs):
        time.sleep(0.04)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", slow_step)  # the loop's step, not the probe's
    lines: list[str] = []
    budget = 12.0
    t0 = time.perf_counter()
    metrics = fit(
        RunConfig("tinynet", Recipe(batch_size=32, epochs=1000), time_budget_s=budget, device="cpu"),
        *tiny_data,
        tmp_path,
        [ConsoleLog(lines.append, progress=False)],
    )
    took = time.perf_counter() - t0
    (plan,) = [line for line in lines if line.startswith("time budget")]
    planned = int(re.search(r"-> (\d+) epochs", plan).group(1))
    (shorter,) = [line for line in lines if line.startswith("the first epoch took")]
    assert f"{metrics['epochs']} epochs fit the budget, not {planned}" in shorter
    assert metrics["epochs"] < planned
    assert took <= budget, (plan, shorter, took)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["epochs"] == metrics["epochs"]  # the schedule the run kept, for --resume
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["config"]["recipe"]["epochs"] == metrics["epochs"]
    # every parameter group's schedule was shortened, not only the first: all end at zero
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == [0.0] * len(saved["optimizer"]["param_groups"])


def test_epochs_after_the_first_fit_what_is_left_and_never_grow():
    from tinycifar.budget import END_RESERVE_S, MARGIN, Plan, epochs_after_first

    plan = Plan(epochs=20, budget_s=100.0, step_s=0.01, epoch_s=4.0, eval_s=1.0, evals=20)
    # 10 s spent, a first epoch of 6 s (its evaluation included), evaluated every epoch:
    # each further epoch costs 6 s, and (100 - 10) * MARGIN - END_RESERVE_S must hold them.
    left = 90 * MARGIN - END_RESERVE_S
    assert epochs_after_first(plan, 10.0, 6.0, True, 1) == 1 + int(left // 6)
    assert epochs_after_first(plan, 10.0, 1.0, True, 1) == 20  # faster than planned: the plan stands
    assert epochs_after_first(plan, 99.0, 6.0, True, 1) == 1  # nothing left: the epoch done


def test_epochs_after_the_stem_bias_freezes_cost_their_measured_share():
    from tinycifar.budget import END_RESERVE_S, MARGIN, Plan, epochs_after_first

    # a 12-epoch plan whose bias trains for a quarter of the run; frozen epochs save 2 s
    recipe = dataclasses.replace(load_recipe("fast"), epochs=12, whiten_bias_epochs=3)
    plan = Plan(12, 100.0, 0.01, 4.0, 1.0, 1, savings_s={(True, 0): 2.0}, frozen_by=recipe)
    assert plan.epochs_s(12) == 12 * 4.0 - 9 * 2.0
    assert plan.epochs_s(40) == 40 * 4.0 - 30 * 2.0  # scaled: the bias trains for 10 of 40
    assert plan.expected_s == 30.0 + 1.0
    assert Plan(12, 100.0, 0.01, 4.0, 1.0, 1).epochs_s(12) == 48.0  # nothing freezes
    # 45 s spent, a first epoch of 8 s, unevaluated, one evaluation at the end: 44.75 s left.
    # 7 epochs cost 8 * 7 - 5 * 2 - 8 + 1 = 39 s, 8 cost 45 s. Every epoch at the first's cost
    # would allow 6, and so would forgetting that the first is already paid for.
    assert (100 - 45) * MARGIN - END_RESERVE_S == pytest.approx(44.75)
    assert epochs_after_first(plan, 45.0, 8.0, False, 12) == 7


def test_epochs_with_frozen_stages_cost_each_its_own_share():
    from tinycifar.budget import Plan

    # bias frozen after 3 of 14, the first stage after 5, the second after 9
    recipe = dataclasses.replace(load_recipe("fast"), epochs=14, whiten_bias_epochs=3, freeze="5,9")
    savings = {(True, 0): 1.0, (True, 1): 2.0, (True, 2): 3.0}
    plan = Plan(14, 100.0, 0.01, 4.0, 1.0, 1, savings_s=savings, frozen_by=recipe)
    assert plan.epochs_s(14) == 14 * 4.0 - (2 * 1.0 + 4 * 2.0 + 5 * 3.0)
    assert "3.0 s once the stem's bias freezes, 2.0 s with 1 stage(s) frozen" in plan.describe()
    assert plan.epochs_s(28) == 28 * 4.0 - (4 * 1.0 + 8 * 2.0 + 10 * 3.0)  # scaled: 6, 10, 18
    early = dataclasses.replace(recipe, whiten_bias_epochs=0, freeze="2")  # a stage frozen, the bias trains
    plan = Plan(14, 100.0, 0.01, 4.0, 1.0, 1, savings_s={(False, 1): 1.5}, frozen_by=early)
    assert plan.epochs_s(14) == 14 * 4.0 - 12 * 1.5
    assert "2.5 s with 1 stage(s) frozen, the stem's bias training" in plan.describe()


def test_the_probe_times_steps_with_the_stem_bias_frozen_too(tiny_data, monkeypatch):
    from tinycifar import budget, step

    frozen_in_steps = []
    real_step = step.train_step

    def watched(model, *args):
        frozen_in_steps.append(not model.whiten.bias.requires_grad)
        return real_step(model, *args)

    monkeypatch.setattr(step, "train_step", watched)
    recipe = dataclasses.replace(load_recipe("fast"), batch_size=32, epochs=12, whiten_bias_epochs=3)
    model = create_model("fastnet").to(memory_format=torch.channels_last)
    plan = budget.epochs_within(
        600.0, model, make_optimizer(model, recipe), recipe, *tiny_data, torch.device("cpu"), "fp32"
    )
    assert plan.frozen_by == recipe and set(plan.savings_s) == {(True, 0)}
    assert True in frozen_in_steps and False in frozen_in_steps  # timed both ways
    assert model.whiten.bias.requires_grad  # the probe leaves the model as it found it
    assert "once the stem's bias freezes" in plan.describe()
    frozen_in_steps.clear()
    plain = dataclasses.replace(recipe, whiten_bias_epochs=0)
    plan = budget.epochs_within(
        600.0, model, make_optimizer(model, plain), plain, *tiny_data, torch.device("cpu"), "fp32"
    )
    assert (plan.frozen_by, plan.savings_s) == (None, {}) and "freezes" not in plan.describe()
    assert True not in frozen_in_steps


def test_a_shortened_run_counts_its_bias_epochs_as_it_will_train_them(tiny_data, monkeypatch):
    """The plan holds the recipe as scaled to the planned epochs: when the first epoch
    shortens the run, the frozen-bias epochs it counts are those Run.shorten will train."""
    from tinycifar import distributed, train
    from tinycifar.budget import Plan, epochs_after_first
    from tinycifar.runconfig import RunConfig

    fast = load_recipe("fast")  # 14 epochs, the bias frozen after 3

    def plan(config, *args):
        return Plan(17, 600.0, 0.01, 4.0, 1.0, 3, savings_s={(True, 0): 1.0}, frozen_by=config.recipe)

    monkeypatch.setattr(train, "plan_for_budget", plan)
    config = RunConfig("fastnet", fast, time_budget_s=600.0, device="cpu")
    resolved, _, (keep,) = train.resolve(
        config, *tiny_data, torch.device("cpu"), distributed.Single(), None, None, time.perf_counter()
    )
    assert resolved.recipe.epochs == 17 and resolved.recipe.whiten_bias_epochs == 4
    trained = resolved.recipe.scaled_to(15).whiten_bias_epochs  # what Run.shorten(15) trains
    assert keep.plan.epochs_s(15) == 15 * 4.0 - (15 - trained) * 1.0 and trained == 4  # from 14 epochs: 3
    assert fast.scaled_to(15).whiten_bias_epochs == 3
    assert epochs_after_first(keep.plan, 0.0, 4.0, False, fast.eval_every) == 17


def test_the_probe_times_each_way_the_recipe_freezes_and_leaves_the_model_training(tiny_data, monkeypatch):
    from tinycifar import budget, step
    from tinycifar.layers import model_stages

    frozen_in_steps = set()
    real_step = step.train_step

    def watched(model, *args):
        frozen_in_steps.add(sum(not p.requires_grad for s in model_stages(model) for p in s.parameters()))
        return real_step(model, *args)

    monkeypatch.setattr(step, "train_step", watched)
    recipe = dataclasses.replace(load_recipe("fast"), batch_size=32, epochs=12, whiten_bias_epochs=3, freeze="6,9")
    model = create_model("fastnet").to(memory_format=torch.channels_last)
    plan = budget.epochs_within(
        600.0, model, make_optimizer(model, recipe), recipe, *tiny_data, torch.device("cpu"), "fp32"
    )
    assert set(plan.savings_s) == {(True, 0), (True, 1), (True, 2)} and plan.frozen_by == recipe
    group1, group2 = (len(list(s.parameters())) for s in model.stages()[:2])
    assert frozen_in_steps == {0, group1, group1 + group2}  # no stage, the first, the first two
    assert all(p.requires_grad for stage in model.stages() for p in stage.parameters())
    assert "with 2 stage(s) frozen" in plan.describe()
    tinynet = create_model("tinynet")  # nothing to freeze: nothing timed
    plan = budget.epochs_within(
        600.0, tinynet, make_optimizer(tinynet, recipe), recipe, *tiny_data, torch.device("cpu"), "fp32"
    )
    assert (plan.savings_s, plan.frozen_by) == ({}, None)
