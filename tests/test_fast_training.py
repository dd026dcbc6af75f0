"""The fast recipe's pieces: whitening stem, alternating flip, Lookahead, bias learning
rate, evaluation every k epochs, precision, and the time budget."""

import json
import re
import time

import pytest
import torch
import torch.nn as nn
from conftest import synthetic_cifar
from safetensors.torch import load_file

from tinycifar import cli
from tinycifar.averaging import Lookahead
from tinycifar.budget import evaluations, parse_duration
from tinycifar.errors import TinyCifarError
from tinycifar.models import create_model
from tinycifar.precision import autocast, cpu_info, resolve_precision
from tinycifar.recipe import Recipe, load_recipe
from tinycifar.step import make_optimizer
from tinycifar.summary import summarize
from tinycifar.train import fit

QUIET = {"progress": False, "log": lambda *_: None}
FAST_TINY = Recipe(epochs=3, batch_size=64, lr=0.3, momentum=0.85, warmup_epochs=0.6, label_smoothing=0.2,
                   lookahead=5, bias_lr_scale=8.0, alt_flip=True, eval_every=2)


def test_fastnet_whitening_is_fitted_from_the_training_images_and_saved(tmp_path, tiny_data):
    metrics = fit("fastnet", FAST_TINY, tmp_path, *tiny_data, **QUIET)
    saved = load_file(tmp_path / "model.safetensors")
    untouched = create_model("fastnet").whiten.weight
    assert saved["whiten.weight"].shape == untouched.shape
    assert not torch.equal(saved["whiten.weight"], untouched)
    # The frozen filters are parameters all the same: the run reports the budget's count.
    assert metrics["params"] == summarize(create_model("fastnet")).total_params
    assert metrics["params"] - metrics["trainable_params"] == untouched.numel()


def test_lookahead_pulls_back_and_hands_over_the_slow_weights():
    model = nn.Linear(2, 1, bias=False)
    look = Lookahead(model, total_steps=10, every=5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    look.update(model, 4)  # step 5 of 10: decay = 0.95**5 * 0.5**3
    decay = 0.95 ** 5 * 0.125
    expected = start * decay + (start + 1) * (1 - decay)
    assert torch.allclose(model.weight, expected) and torch.allclose(look.slow["weight"], expected)
    with torch.no_grad():
        model.weight.add_(5.0)
    look.update(model, 9)  # the last step: the model becomes the slow copy
    assert torch.allclose(model.weight, expected)


def test_norm_biases_get_their_own_learning_rate():
    model = create_model("fastnet")
    opt = make_optimizer(model, Recipe(lr=0.5, bias_lr_scale=64.0))
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    (group,) = [g for g in opt.param_groups if {id(p) for p in g["params"]} == bn_biases]
    assert group["lr"] == 32.0 and group["weight_decay"] == 0.0
    frozen = id(model.whiten.weight)
    assert all(frozen != id(p) for g in opt.param_groups for p in g["params"])


def test_fast_recipe_run_evaluates_every_k_epochs_and_resumes_identically(tmp_path, tiny_data):
    fit("fastnet", FAST_TINY, tmp_path / "full", *tiny_data, **QUIET)
    rows = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["test_acc"] is not None for r in rows] == [False, True, True]  # every 2, and the last

    run = tmp_path / "run"
    fit("fastnet", FAST_TINY, run, *tiny_data, **QUIET)
    state = torch.load(run / "previous.pt", weights_only=True)  # as if killed during epoch 3
    (run / "last.pt").unlink()
    torch.save(state, run / "last.pt")
    fit("fastnet", FAST_TINY, run, *tiny_data, resume=True, **QUIET)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_refuses_two_kinds_of_averaging_and_bad_new_fields():
    with pytest.raises(TinyCifarError, match="ema_decay and lookahead"):
        Recipe(ema_decay=0.99, lookahead=5)
    with pytest.raises(TinyCifarError, match="eval_every must be at least 1"):
        Recipe(eval_every=0)
    with pytest.raises(TinyCifarError, match="bias_lr_scale must be positive"):
        Recipe(bias_lr_scale=0.0)


def test_long_recipe_is_the_fast_one_for_37_epochs():
    """What long.toml says of itself: only the schedule's length differs (warm-up too stays)."""
    import dataclasses

    assert load_recipe("long") == dataclasses.replace(load_recipe("fast"), epochs=37)


def test_packaged_fast_recipe_loads():
    r = load_recipe("fast")
    assert r.alt_flip and r.lookahead and r.epochs < Recipe().epochs


# --- precision ---------------------------------------------------------------------------

@pytest.mark.parametrize("flags, expected", [(["avx2"], "fp32"), (["avx2", "avx512f", "avx512_bf16"], "bf16"),
                                             (["amx_bf16"], "bf16")])
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr("tinycifar.precision.cpu_info", lambda: {"model": "test", "flags": flags})
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_unknown_precision_is_refused():
    with pytest.raises(TinyCifarError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_cpu_info_names_the_cpu():
    info = cpu_info()
    assert info["model"] and isinstance(info["flags"], list)


def test_bf16_keeps_weights_optimizer_state_bn_statistics_and_loss_in_fp32(tiny_data):
    model = create_model("tinynet").to(memory_format=torch.channels_last)
    opt = make_optimizer(model, Recipe())
    images, labels = tiny_data[0]
    x = images[:32].float().contiguous(memory_format=torch.channels_last) / 255
    with autocast("bf16", torch.device("cpu")):
        logits = model(x)
    assert logits.dtype == torch.bfloat16  # the forward pass did run in bf16
    loss = nn.functional.cross_entropy(logits.float(), labels[:32])
    loss.backward()
    opt.step()
    assert loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())
    assert all(v.dtype == torch.float32 for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


def test_bf16_run_records_its_precision(tmp_path, tiny_data):
    (images, labels), (test_images, test_labels) = tiny_data  # bf16 is emulated on most CPUs: keep it tiny
    metrics = fit("tinynet", Recipe(epochs=1, batch_size=64, warmup_epochs=0.5), tmp_path,
                  (images[:128], labels[:128]), (test_images[:20], test_labels[:20]), precision="bf16", **QUIET)
    env = json.loads((tmp_path / "environment.json").read_text())
    assert metrics["precision"] == env["precision"] == "bf16"
    assert env["cpu"] and "cpu_flags" in env
    # the run evaluated in fp32, as `tinycifar evaluate` does: its figures are the weights'
    # own on any machine (a bf16 forward moves the loss by far more than this tolerance)
    from tinycifar.inference import predict_logits
    from tinycifar.pretrained import load_model

    logits = predict_logits(load_model("tinynet", tmp_path / "model.safetensors", "cpu"), test_images[:20], "cpu")
    assert nn.functional.cross_entropy(logits, test_labels[:20]).item() == pytest.approx(
        metrics["final_test_loss"], abs=1e-6)
    assert (logits.argmax(1) == test_labels[:20]).float().mean().item() == pytest.approx(metrics["final_test_acc"])


# --- time budget -------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400),
                                           ("45", 45), ("2.5m", 150)])
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
    metrics = fit("tinynet", Recipe(batch_size=32, epochs=1000), tmp_path, *tiny_data, time_budget=budget,
                  device="cpu", progress=False, log=lines.append)
    took = time.perf_counter() - t0
    (plan,) = [line for line in lines if line.startswith("time budget")]
    epochs, expected = re.search(r"-> (\d+) epochs \(about (\d+) s\)", plan).groups()
    assert int(epochs) == metrics["epochs"]
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
    first = fit("tinynet", recipe, tmp_path, *tiny_data, time_budget=60.0, **QUIET)
    assert first["epochs"] == 2 and len(plans) == 1
    # Killed during epoch 2 and resumed with the same command: the saved schedule, no new plan.
    torch.save(torch.load(tmp_path / "previous.pt", weights_only=True), tmp_path / "last.pt")
    resumed = fit("tinynet", recipe, tmp_path, *tiny_data, time_budget=60.0, resume=True, **QUIET)
    assert resumed["epochs"] == 2 and len(plans) == 1
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["epochs"] == 2 and config["recipe"]["warmup_epochs"] == pytest.approx(2.0 * 2 / 50)


def test_time_budget_too_short_says_how_long_to_ask_for(tmp_path, tiny_data):
    with pytest.raises(TinyCifarError, match=r"too short.*give at least --time \d+s"):
        fit("tinynet", Recipe(batch_size=32), tmp_path, *tiny_data, time_budget=0.5, **QUIET)


def test_plan_prints_the_epochs_a_budget_buys_and_trains_nothing(tmp_path, capsys, monkeypatch):
    import tinycifar.data

    fake = {"train": synthetic_cifar(320, seed=0), "test": synthetic_cifar(100, seed=1)}
    monkeypatch.setattr(tinycifar.data, "load_cifar10", lambda split, data_dir=None: fake[split])
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
    plan = budget.epochs_within(seconds, model, make_optimizer(model, recipe), recipe, *tiny_data,
                                torch.device("cpu"), "fp32")
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


def test_each_model_trains_with_its_own_packaged_recipe():
    from tinycifar.models import list_models, model_recipe
    from tinycifar.recipe import RECIPE_NAMES

    assert model_recipe("fastnet") == "fast" and model_recipe("tinynet") == "classic"
    assert model_recipe("sepnet_g31") == "long"
    assert all(model_recipe(m) in RECIPE_NAMES for m in list_models())


def test_the_model_comes_from_the_weights_file_when_not_given(tmp_path):
    from tinycifar.checkpoint import save_weights
    from tinycifar.models import DEFAULT_MODEL
    from tinycifar.pretrained import resolve_model_name

    named, unnamed = tmp_path / "named.safetensors", tmp_path / "unnamed.safetensors"
    save_weights(create_model("seed"), named, {"model": "seed"})
    save_weights(create_model("seed"), unnamed, {})
    assert resolve_model_name(None, named) == "seed"
    assert resolve_model_name("tinynet", named) == "tinynet"  # an explicit --model wins
    assert resolve_model_name(None, unnamed) == DEFAULT_MODEL
    assert resolve_model_name(None, None) == DEFAULT_MODEL
