import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinycifar.augment import Augmentation
from tinycifar.callbacks import Callback
from tinycifar.errors import TinyCifarError
from tinycifar.layers import freeze_stages, train_whitening_bias
from tinycifar.models import create_model
from tinycifar.recipe import Recipe
from tinycifar.runconfig import RunConfig
from tinycifar.splits import split_validation
from tinycifar.step import lr_factor
from tinycifar.summary import summarize
from tinycifar.train import fit

TINY = Recipe(epochs=2, batch_size=64, lr=0.2, warmup_epochs=0.5, translate=2, cutout=8, ssr=True)


def test_fit_writes_the_whole_run_folder_and_learns(tmp_path, tiny_data):
    train, test = tiny_data
    metrics = fit(
        RunConfig("tinynet", Recipe(epochs=4, batch_size=32, lr=0.1, warmup_epochs=1), device="cpu"),
        train,
        test,
        tmp_path,
    )
    for name in (
        "config.json",
        "environment.json",
        "log.jsonl",
        "metrics.json",
        "curves.png",
        "model.safetensors",
        "last.pt",
        "previous.pt",
    ):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) >= {"train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds"}
    assert metrics["eval_acc"] == rows[-1]["eval_acc"]
    assert metrics["params"] < 100_000
    assert rows[-1]["eval_acc"] > 0.5  # colour-coded classes: chance is 0.1
    # The logged rate is the one the epoch's last step used: 1/30 of the peak (40 steps, 10 warm-up).
    assert rows[-1]["lr"] == pytest.approx(0.1 / 30)
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"


def test_a_run_with_model_args_loads_wherever_weights_are_used(tmp_path, tiny_data):
    # evaluate, predict, export and soft-labels all build their network through load_model
    from tinycifar.pretrained import load_model

    fit(
        RunConfig(
            "fastnet",
            Recipe(epochs=1, batch_size=64, warmup_epochs=0.5),
            device="cpu",
            model_args={"widths": [8, 16, 24]},
        ),
        *tiny_data,
        tmp_path,
    )
    model = load_model("fastnet", tmp_path / "model.safetensors", "cpu")
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert model.state_dict().keys() == saved.keys()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    assert model.state_dict()["features.1.0.weight"].shape[0] == 8  # not fastnet's default 24


def test_fit_with_ema_saves_the_averaged_weights(tmp_path, tiny_data):
    train, test = tiny_data
    recipe = Recipe(**{**TINY.__dict__, "ema_decay": 0.9})
    fit(RunConfig("tinynet", recipe, device="cpu"), train, test, tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    ema = {k.removeprefix("module."): v for k, v in state["averager"].items() if k.startswith("module.")}
    weight = "features.0.0.weight"
    assert torch.equal(saved[weight], ema[weight])
    assert not torch.equal(saved[weight], state["model"][weight])


def test_fit_with_mixup_and_cutmix_learns(tmp_path, tiny_data):
    recipe = Recipe(epochs=4, batch_size=32, lr=0.1, warmup_epochs=1, mixup=0.4, cutmix=1.0)
    metrics = fit(RunConfig("tinynet", recipe, device="cpu"), *tiny_data, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["recipe"]["mixup"] == 0.4
    assert metrics["eval_acc"] > 0.5  # colour-coded classes: chance is 0.1
    ramped = Recipe(epochs=4, batch_size=32, lr=0.1, warmup_epochs=1, mixup_ramp=0.5)
    aug = Augmentation.from_recipe(ramped, 100, seed=0)  # what fit builds: the ramp and its length
    assert aug.epochs == 4 and aug.draw(3, torch.Generator(), torch.device("cpu")).lams.min() < 1
    metrics = fit(RunConfig("tinynet", ramped, device="cpu"), *tiny_data, tmp_path / "ramp")
    assert metrics["eval_acc"] > 0.5


@pytest.mark.parametrize("older", [False, True], ids=["same-version", "recipe-field-added-since"])
def test_resume_rewrites_the_log_from_the_checkpoint(tmp_path, tiny_data, older):
    recipe = Recipe(epochs=2, batch_size=64)
    fit(RunConfig("tinynet", recipe), *tiny_data, tmp_path / "full")
    run = tmp_path / "run"
    fit(RunConfig("tinynet", recipe), *tiny_data, run)
    # As if killed after logging epoch 2 but before its checkpoint landed: only epoch 1's is left.
    (run / "last.pt").unlink()
    (run / "model.safetensors").unlink()
    if older:  # epoch 1's checkpoint as a tinycifar before mixup_ramp (off by default) wrote it
        state = torch.load(run / "previous.pt", weights_only=True)
        del state["config"]["recipe"]["mixup_ramp"]
        torch.save(state, run / "previous.pt")
    fit(RunConfig("tinynet", recipe), *tiny_data, run, resume=True)
    epochs = [json.loads(x)["epoch"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # not [1, 2, 2]
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lr_schedule_is_a_triangle():
    total, warmup = 100, 10
    lrs = [lr_factor(s, total, warmup) for s in range(total)]
    assert lrs[9] == 1.0 and lrs[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1 / 90)


def test_validation_split_is_fixed_and_disjoint():
    images = torch.arange(1000).view(1000, 1, 1, 1).expand(1000, 3, 32, 32).to(torch.uint8)
    labels = torch.arange(1000)
    (ti, tl), (vi, vl) = split_validation((images, labels), 100)
    (_, tl2), (_, vl2) = split_validation((images, labels), 100)
    assert len(vl) == 100 and len(tl) == 900
    assert set(tl.tolist()).isdisjoint(vl.tolist())
    assert torch.equal(vl, vl2)
    with pytest.raises(TinyCifarError, match="--val-split"):
        split_validation((images, labels), 1000)


def test_unwritable_out_is_refused_before_training(tmp_path, tiny_data):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TinyCifarError, match="cannot write to --out"):
        fit(RunConfig("tinynet", TINY), *tiny_data, blocker / "run")


def test_resume_with_other_settings_is_refused(tmp_path, tiny_data):
    fit(RunConfig("tinynet", Recipe(epochs=1, batch_size=64, warmup_epochs=0.5)), *tiny_data, tmp_path)
    with pytest.raises(TinyCifarError, match="different configuration"):
        fit(RunConfig("tinynet", Recipe(epochs=1, batch_size=32, warmup_epochs=0.5)), *tiny_data, tmp_path, resume=True)


# The kill/resume proof: a real process, killed with SIGKILL in the middle of an epoch.
SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from conftest import synthetic_cifar
    from tinycifar.recipe import Recipe
    from tinycifar.callbacks import ConsoleLog
    from tinycifar.runconfig import RunConfig
    from tinycifar.train import fit
    recipe = Recipe(epochs=3, batch_size=16, lr=0.2, warmup_epochs=1, translate=2, cutout=8, ssr=True,
                    ema_decay=0.9)
    fit(RunConfig("tinynet", recipe, device="cpu"), synthetic_cifar(1600), synthetic_cifar(50, seed=1),  # bit for bit: CPU only
        sys.argv[1], [ConsoleLog(progress=False)], resume=sys.argv[2] == "resume")
""")


def _train(script: Path, out: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _train(script, full, "fresh").wait(timeout=300) == 0

    proc = _train(script, killed, "fresh")
    deadline = time.time() + 240
    while not (killed / "last.pt").exists():  # epoch 1 done: now inside epoch 2
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists(), "run finished before the kill"
    assert len((killed / "log.jsonl").read_text().splitlines()) < 3

    resumed = _train(script, killed, "resume")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resuming" in output
    a, b = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-identical, not merely close
    log = [json.loads(x) for x in (killed / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


FAST_TINY = Recipe(
    epochs=3,
    batch_size=64,
    lr=0.3,
    momentum=0.85,
    warmup_epochs=0.6,
    label_smoothing=0.2,
    lookahead=5,
    bias_lr_scale=8.0,
    alt_flip=True,
    eval_every=2,
)


def test_fastnet_whitening_is_fitted_from_the_training_images_and_saved(tmp_path, tiny_data):
    metrics = fit(RunConfig("fastnet", FAST_TINY), *tiny_data, tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    untouched = create_model("fastnet").whiten.weight
    assert saved["whiten.weight"].shape == untouched.shape
    assert not torch.equal(saved["whiten.weight"], untouched)
    # The frozen filters are parameters all the same: the run reports the budget's count.
    assert metrics["params"] == summarize(create_model("fastnet")).total_params
    assert metrics["params"] - metrics["trainable_params"] == untouched.numel()


def test_fast_recipe_run_evaluates_every_k_epochs_and_resumes_identically(tmp_path, tiny_data):
    fit(RunConfig("fastnet", FAST_TINY), *tiny_data, tmp_path / "full")
    rows = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["eval_acc"] is not None for r in rows] == [False, True, True]  # every 2, and the last

    run = tmp_path / "run"
    fit(RunConfig("fastnet", FAST_TINY), *tiny_data, run)
    state = torch.load(run / "previous.pt", weights_only=True)  # as if killed during epoch 3
    (run / "last.pt").unlink()
    torch.save(state, run / "last.pt")
    fit(RunConfig("fastnet", FAST_TINY), *tiny_data, run, resume=True)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adamw_with_a_cosine_decay_to_a_floor_learns(tmp_path, tiny_data):
    recipe = Recipe(
        epochs=4,
        batch_size=32,
        optimizer="adamw",
        lr=0.01,
        weight_decay=0.01,
        warmup_epochs=1,
        schedule="cosine",
        lr_floor=0.1,
    )
    metrics = fit(RunConfig("tinynet", recipe, device="cpu"), *tiny_data, tmp_path)
    assert metrics["eval_acc"] > 0.5  # colour-coded classes: chance is 0.1
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == pytest.approx(0.01 * (0.1 + 0.9 * 0.5 * (1 - math.cos(math.pi / 30))), rel=1e-6)


def test_muon_learns_and_resumes_identically(tmp_path, tiny_data):
    recipe = dataclasses.replace(FAST_TINY, optimizer="muon")
    metrics = fit(RunConfig("fastnet", recipe), *tiny_data, tmp_path / "full")
    assert metrics["eval_acc"] > 0.5  # colour-coded classes: chance is 0.1
    run = tmp_path / "run"
    fit(RunConfig("fastnet", recipe), *tiny_data, run)
    state = torch.load(run / "previous.pt", weights_only=True)  # as if killed during the last epoch
    (run / "last.pt").unlink()
    torch.save(state, run / "last.pt")
    fit(RunConfig("fastnet", recipe), *tiny_data, run, resume=True)
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _killed_in_epoch_3_resumes_as(full: Path, recipe: Recipe, tiny_data, run: Path) -> None:
    """Train fastnet with ``recipe`` in ``run``, roll it back to its epoch-2 checkpoint as if
    killed during epoch 3, resume: its weights are ``full``'s, bit for bit."""
    fit(RunConfig("fastnet", recipe), *tiny_data, run)
    state = torch.load(run / "previous.pt", weights_only=True)
    (run / "last.pt").unlink()
    torch.save(state, run / "last.pt")
    fit(RunConfig("fastnet", recipe), *tiny_data, run, resume=True)
    a, b = load_file(full / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


class _StemBias(Callback):
    """The whitening stem's bias after every epoch, and whether it still trains."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, bool]] = []

    def on_epoch_end(self, run, row) -> None:
        bias = run.parts.model.whiten.bias
        self.seen.append((bias.detach().clone(), bias.requires_grad))


def test_whitening_bias_trains_its_epochs_then_stays_and_the_run_resumes_identically(tmp_path, tiny_data):
    recipe = dataclasses.replace(FAST_TINY, whiten_bias_epochs=1, lookahead=0)  # Lookahead would still pull it
    seen = _StemBias()
    fit(RunConfig("fastnet", recipe), *tiny_data, tmp_path / "full", [seen])
    (after_1, trains_1), (after_2, trains_2), (after_3, trains_3) = seen.seen
    assert (trains_1, trains_2, trains_3) == (True, False, False)  # frozen as epoch 2 starts
    assert not torch.equal(after_1, torch.zeros_like(after_1))  # it trained in epoch 1 (it starts at zero)
    assert torch.equal(after_1, after_2) and torch.equal(after_2, after_3)

    _killed_in_epoch_3_resumes_as(tmp_path / "full", recipe, tiny_data, tmp_path / "run")  # frozen on resume


def test_a_frozen_whitening_bias_spares_the_first_convolution_its_input_gradient():
    model = create_model("fastnet")
    first = model.features[1][0]  # the 3×3 convolution right after the stem
    grads: list[torch.Tensor | None] = []
    first.register_full_backward_hook(lambda m, grad_in, grad_out: grads.append(grad_in[0]))
    for train in (True, False):
        assert train_whitening_bias(model, train) is (not train)  # the first call changes nothing
        model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert grads[0] is not None and grads[1] is None


class _Stages(Callback):
    """fastnet's three groups' weights after every epoch."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, torch.Tensor]]] = []

    def on_epoch_end(self, run, row) -> None:
        self.seen.append([{k: v.detach().clone() for k, v in s.state_dict().items()} for s in run.parts.model.stages()])


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weights_only: bool = True) -> bool:
    # a frozen stage's BatchNorm still normalises by its batch, so its running statistics move
    return all(
        torch.equal(a[k], b[k])
        for k in a
        if not (weights_only and k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    )


def test_frozen_stages_stop_training_after_their_epochs_and_the_run_resumes_identically(tmp_path, tiny_data):
    recipe = dataclasses.replace(FAST_TINY, freeze="1,2", lookahead=0)  # Lookahead would still pull them
    seen = _Stages()
    fit(RunConfig("fastnet", recipe), *tiny_data, tmp_path / "full", [seen])
    e1, e2, e3 = seen.seen
    assert _same(e1[0], e2[0]) and _same(e2[0], e3[0])  # group 1 trained in epoch 1 only
    assert not _same(e1[1], e2[1]) and _same(e2[1], e3[1])  # group 2 in epochs 1 and 2
    assert not _same(e2[2], e3[2])  # group 3 throughout
    assert not _same(e1[0], e2[0], weights_only=False)  # its BatchNorm statistics still follow the data

    _killed_in_epoch_3_resumes_as(tmp_path / "full", recipe, tiny_data, tmp_path / "run")


def test_frozen_stages_spare_the_backward_pass_up_to_the_first_one_that_trains():
    model = create_model("fastnet")
    train_whitening_bias(model, False)
    second = model.features[2][0]  # the second group's first convolution
    grads: list[torch.Tensor | None] = []
    second.register_full_backward_hook(lambda m, grad_in, grad_out: grads.append(grad_in[0]))
    for count in (0, 1):
        freeze_stages(model, count)
        model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert grads[0] is not None and grads[1] is None  # nothing before it needs its input gradient
    assert freeze_stages(model, 1) is False and freeze_stages(model, 0) is True
    assert freeze_stages(create_model("tinynet"), 2) is False  # a model without stages: nothing to freeze
    assert len(create_model("sepnet_g31").stages()) == 3  # its first group, its two separable stages


def test_freezing_more_stages_than_the_model_has_is_refused_before_training_or_planning(tmp_path, tiny_data):
    from tinycifar.train import plan_for_budget

    with pytest.raises(TinyCifarError, match="tinynet has 0 to freeze"):
        fit(RunConfig("tinynet", dataclasses.replace(TINY, freeze="1")), *tiny_data, tmp_path / "run")
    assert not (tmp_path / "run" / "model.safetensors").exists()
    four = dataclasses.replace(FAST_TINY, freeze="1,1,2,2")
    with pytest.raises(TinyCifarError, match="names 4 stage.s. but fastnet has 3"):
        plan_for_budget(RunConfig("fastnet", four), *tiny_data, torch.device("cpu"), 60.0)
