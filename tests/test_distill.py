"""Distillation from stored soft labels: the file (written, read back, refused when wrong),
the targets it makes, mixing them, and a student that learns what its teacher says."""

import json
import re

import pytest
import torch
import torch.nn.functional as F
from conftest import synthetic_cifar, write_batches

from tinycifar import cli, data, distill
from tinycifar.augment import Augmentation, mix
from tinycifar.checkpoint import save_weights
from tinycifar.commands import soft_labels
from tinycifar.data import BATCHES_DIR
from tinycifar.distill import blend, load_soft_labels, save_soft_labels
from tinycifar.errors import TinyCifarError
from tinycifar.inference import prepare
from tinycifar.models import create_model
from tinycifar.recipe import Recipe
from tinycifar.runconfig import RunConfig
from tinycifar.train import fit

STUDENT = Recipe(epochs=4, batch_size=32, lr=0.2, warmup_epochs=0.5, label_smoothing=0.0, eval_every=4)


def random_probs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 10, generator=torch.Generator().manual_seed(seed)).softmax(1)


def test_blend_weighs_the_teacher_against_the_label():
    probs, labels = random_probs(6), torch.tensor([0, 1, 2, 3, 4, 5])
    onehot = F.one_hot(labels, 10).float()
    assert torch.equal(blend(probs, labels, 0.0), onehot)
    assert torch.allclose(blend(probs, labels, 1.0), probs)
    assert torch.allclose(blend(probs, labels, 0.7), 0.7 * probs + 0.3 * onehot)


def test_soft_labels_round_trip_through_the_file(tmp_path):
    probs = random_probs(50)
    save_soft_labels(probs, tmp_path / "t.safetensors", {"teachers": '["a"]'})
    loaded, metadata = load_soft_labels(tmp_path / "t.safetensors", 50)
    assert loaded.dtype == torch.float32 and torch.allclose(loaded, probs, atol=1e-3)
    assert torch.allclose(loaded.sum(1), torch.ones(50))  # renormalised after float16 rounding
    assert metadata["teachers"] == '["a"]'


def write_tensors(path, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, r"does not exist"),
        (lambda p: write_tensors(p, {"probs": random_probs(7)}), r"shape \(7, 10\), not \(50, 10\)"),
        (lambda p: write_tensors(p, {"probs": random_probs(50), "x": torch.zeros(1)}), r"not one tensor 'probs'"),
        (lambda p: write_tensors(p, {"probs": -random_probs(50)}), r"not probabilities"),
        (lambda p: write_tensors(p, {"probs": random_probs(50) * 2}), r"not probabilities"),
        (lambda p: write_tensors(p, {"probs": torch.full((50, 10), float("nan"))}), r"not probabilities"),
        (lambda p: write_tensors(p, {"probs": torch.ones(50, 10, dtype=torch.uint8)}), r"holds U8 numbers"),
        (lambda p: (p.write_bytes(b"\x00" * 8 + b"garbage"), p)[1], r"not a readable safetensors"),
    ],
    ids=["missing", "shape", "extra-key", "negative", "sums", "nan", "integers", "garbage"],
)
def test_a_bad_soft_labels_file_is_one_clear_error(tmp_path, make, message):
    path = make(tmp_path / "t.safetensors")
    with pytest.raises(TinyCifarError, match=message) as e:
        load_soft_labels(path, 50)
    assert "\n" not in str(e.value) and "tinycifar soft-labels" in str(e.value)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = write_tensors(tmp_path / "t.safetensors", {"probs": random_probs(50)})
    monkeypatch.setattr(distill, "MAX_FILE_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr("safetensors.safe_open", None)  # would fail if it got that far
    with pytest.raises(TinyCifarError, match="more than tinycifar reads"):
        load_soft_labels(path, 50)


def test_mixing_blends_probability_targets_as_it_blends_labels():
    x = torch.rand(4, 3, 8, 8)
    labels = torch.tensor([1, 2, 3, 4])
    lams = torch.tensor([0.9, 0.6, 0.6, 0.9])
    _, from_labels = mix(x, labels, lams)
    _, from_onehot = mix(x, F.one_hot(labels, 10).float(), lams)
    assert torch.allclose(from_labels, from_onehot)
    probs = random_probs(4)
    _, mixed = mix(x, probs, lams)
    assert torch.allclose(mixed, lams[:, None] * probs + (1 - lams[:, None]) * probs.flip(0))


def test_mixed_batches_blend_the_teacher_s_targets():
    images, labels = synthetic_cifar(64)
    targets = random_probs(64)
    aug = Augmentation.from_recipe(Recipe(mixup=0.4, cutmix=1.0), 64, seed=0)
    d = aug.draw(0, torch.Generator().manual_seed(0), torch.device("cpu"))[torch.arange(16)]
    x, target, y = aug.batch(images, labels, d, torch.device("cpu"), targets)
    assert d.cut.any() and (~d.cut).any()  # both kinds of mixing in the batch
    own = targets[d.order]
    kept = target.sub(own.flip(0)).div(own.sub(own.flip(0)))  # each row's own share, recovered
    assert torch.allclose(kept, kept[:, :1].expand_as(kept), atol=1e-4)  # one share a row
    assert torch.allclose(target.sum(1), torch.ones(16)) and torch.equal(y, labels[d.order])
    assert not torch.allclose(target, own)  # mixed, not passed through


def test_a_batch_carries_each_image_s_own_target():
    images, labels = synthetic_cifar(64)
    targets = random_probs(64)
    aug = Augmentation.from_recipe(Recipe(), 64, seed=0)
    d = aug.draw(0, torch.Generator().manual_seed(0), torch.device("cpu"))[torch.arange(16)]
    _, target, y = aug.batch(images, labels, d, torch.device("cpu"), targets)
    assert torch.equal(target, targets[d.order]) and torch.equal(y, labels[d.order])


def test_a_student_learns_what_its_teacher_says(tmp_path):
    """A teacher that names every class by the next one: with distill 1 the student follows
    it, and without a teacher it learns the labels."""
    train, (eval_images, eval_labels) = synthetic_cifar(320, seed=0), synthetic_cifar(100, seed=1)
    shifted = F.one_hot((train[1] + 1) % 10, 10).float()
    plain = fit(RunConfig("tinynet", STUDENT), train, (eval_images, eval_labels), tmp_path / "plain")
    # scored against the teacher's naming: agreement with what it was taught
    taught = fit(
        RunConfig("tinynet", Recipe(**{**STUDENT.__dict__, "distill": 1.0})),
        train,
        (eval_images, (eval_labels + 1) % 10),
        tmp_path / "taught",
        teacher=shifted,
    )
    assert plain["eval_acc"] > 0.8
    assert taught["eval_acc"] > 0.8
    config = json.loads((tmp_path / "taught" / "config.json").read_text())
    assert config["recipe"]["distill"] == 1.0 and re.fullmatch(r"[0-9a-f]{16}", config["teacher"])


def test_a_teacher_with_a_row_per_image_or_none(tmp_path):
    train, eval_data = synthetic_cifar(64), synthetic_cifar(32)
    with pytest.raises(TinyCifarError, match=r"the teacher has \(50, 10\) probabilities for 64 training images"):
        fit(
            RunConfig("tinynet", Recipe(epochs=1, batch_size=32, warmup_epochs=0, distill=0.5)),
            train,
            eval_data,
            tmp_path,
            teacher=random_probs(50),
        )


def test_a_resumed_run_must_have_the_same_teacher(tmp_path):
    train, eval_data = synthetic_cifar(64, seed=0), synthetic_cifar(32, seed=1)
    recipe = Recipe(epochs=1, batch_size=32, warmup_epochs=0, distill=0.5)
    fit(RunConfig("tinynet", recipe), train, eval_data, tmp_path, teacher=random_probs(64, seed=0))
    with pytest.raises(TinyCifarError, match="different configuration"):
        fit(RunConfig("tinynet", recipe), train, eval_data, tmp_path, teacher=random_probs(64, seed=1), resume=True)


@pytest.mark.parametrize(
    "distill_share, teacher, message",
    [
        (0.5, False, r"distill is 0\.5, but no teacher was given"),
        (0.0, True, r"--teacher needs a share for it"),
    ],
)
def test_a_teacher_and_its_share_come_together(tmp_path, distill_share, teacher, message):
    train, eval_data = synthetic_cifar(64), synthetic_cifar(32)
    with pytest.raises(TinyCifarError, match=message):
        fit(
            RunConfig("tinynet", Recipe(epochs=1, batch_size=32, warmup_epochs=0, distill=distill_share)),
            train,
            eval_data,
            tmp_path,
            teacher=random_probs(64) if teacher else None,
        )


def test_soft_labels_command_writes_the_ensemble_and_ranks_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_BATCH_SIZE", 20)
    root = tmp_path / "data"
    write_batches(root / BATCHES_DIR, 20)
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_weights(create_model("tinynet").eval(), tmp_path / f"w{seed}.safetensors", {"model": "tinynet"})
        weights += ["--weights", str(tmp_path / f"w{seed}.safetensors")]
    out = tmp_path / "teacher.safetensors"
    assert (
        cli.main(
            [
                "soft-labels",
                *weights,
                "--out",
                str(out),
                "--data-dir",
                str(root),
                "--val-split",
                "30",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--temperature",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert len(re.findall(r"\(tinynet\): \d+\.\d\d% on the 30 held-out images", printed)) == 2
    assert "the ensemble of 2:" in printed and "wrote" in printed
    probs, metadata = load_soft_labels(out, 100)
    assert json.loads(metadata["teachers"]) == ["w0.safetensors (tinynet)", "w1.safetensors (tinynet)"]
    assert metadata["temperature"] == "2.0"
    # the file is the mean of the two models' softened probabilities, in file order
    from tinycifar.pretrained import load_model

    images, _ = data.load_cifar10("train", root)
    models = [load_model("tinynet", tmp_path / f"w{seed}.safetensors", "cpu") for seed in (0, 1)]
    with torch.no_grad():
        expected = sum((m(prepare(images, torch.device("cpu"))) / 2).softmax(1) for m in models) / 2
    assert torch.allclose(probs, expected, atol=2e-3)


def test_soft_labels_says_how_soft_its_targets_are(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_BATCH_SIZE", 20)
    root = tmp_path / "data"
    write_batches(root / BATCHES_DIR, 20)
    _, labels = data.load_cifar10("train", root)
    # two teachers that give the true label 0.8 and 0.6: their ensemble gives it 0.7
    sure = [torch.full((100, 10), (1 - p) / 9).scatter(1, labels.long()[:, None], p) for p in (0.8, 0.6)]
    monkeypatch.setattr(soft_labels, "model_probs", lambda *args, **kwargs: torch.stack(sure))
    weights = tmp_path / "w.safetensors"
    save_weights(create_model("tinynet"), weights, {"model": "tinynet"})
    assert (
        cli.main(
            [
                "soft-labels",
                "--weights",
                str(weights),
                "--out",
                str(tmp_path / "t.safetensors"),
                "--data-dir",
                str(root),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "true label for 100.00%, mean probability of the true label 70.0%" in printed


def test_soft_labels_of_a_shipped_model_mix_with_a_runs_weights(tmp_path, monkeypatch, capsys):
    # the mcu recipe's teacher is `--model sepnet_g31`: the shipped file, named as such
    monkeypatch.setattr(data, "_BATCH_SIZE", 20)
    root = tmp_path / "data"
    write_batches(root / BATCHES_DIR, 20)
    save_weights(create_model("tinynet"), tmp_path / "w.safetensors", {"model": "tinynet", "held_out": "0"})
    out = tmp_path / "t.safetensors"
    base = ["soft-labels", "--data-dir", str(root), "--device", "cpu", "--precision", "fp32", "--out", str(out)]
    assert cli.main([*base, "--model", "tinynet", "--weights", str(tmp_path / "w.safetensors")]) == 0
    probs, metadata = load_soft_labels(out, 100)
    assert json.loads(metadata["teachers"]) == ["w.safetensors (tinynet)", "tinynet.safetensors (tinynet)"]
    assert metadata["held_out"] == "0"  # shipped weights saw every training image
    from tinycifar.pretrained import load_model

    images, _ = data.load_cifar10("train", root)
    with torch.no_grad():
        shipped = load_model("tinynet", None, "cpu")(prepare(images, torch.device("cpu"))).softmax(1)
    assert not torch.allclose(probs, shipped, atol=1e-2)  # the mean of two, not the shipped one alone
    assert cli.main([*base, "--model", "tinynet"]) == 0
    assert torch.allclose(load_soft_labels(out, 100)[0], shipped, atol=2e-3)
    # so they may not teach against a validation split
    assert cli.main([*base, "--model", "tinynet", "--val-split", "10"]) == 2
    assert "trained on all of the 10 validation images (it held out 0)" in capsys.readouterr().err


def test_models_that_saw_the_validation_images_cannot_teach_against_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_BATCH_SIZE", 20)
    root = tmp_path / "data"
    write_batches(root / BATCHES_DIR, 20)
    for held, name in ((0, "all"), (10, "ten")):
        save_weights(
            create_model("tinynet"), tmp_path / f"{name}.safetensors", {"model": "tinynet", "held_out": str(held)}
        )
    save_weights(create_model("tinynet"), tmp_path / "old.safetensors", {"model": "tinynet"})
    base = ["soft-labels", "--data-dir", str(root), "--device", "cpu", "--out", str(tmp_path / "t.safetensors")]
    assert cli.main([*base, "--weights", str(tmp_path / "all.safetensors"), "--val-split", "10"]) == 2
    assert "trained on all of the 10 validation images (it held out 0)" in capsys.readouterr().err
    assert cli.main([*base, "--weights", str(tmp_path / "ten.safetensors"), "--val-split", "20"]) == 2
    assert "trained on some of the 20 validation images (it held out 10)" in capsys.readouterr().err
    # a model that held out 10 may be ranked on a 10 split; one that does not say gets a note
    assert (
        cli.main(
            [
                *base,
                "--weights",
                str(tmp_path / "ten.safetensors"),
                "--weights",
                str(tmp_path / "old.safetensors"),
                "--val-split",
                "10",
            ]
        )
        == 0
    )
    assert "old.safetensors does not record which images it held out" in capsys.readouterr().out
    assert "held_out" not in load_soft_labels(tmp_path / "t.safetensors", 100)[1]  # one unknown: unknown
    assert cli.main([*base, "--weights", str(tmp_path / "ten.safetensors")]) == 0
    assert load_soft_labels(tmp_path / "t.safetensors", 100)[1]["held_out"] == "10"
    # and a student may not be judged on images its teacher saw
    train = [
        "train",
        "--data-dir",
        str(root),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
        "--teacher",
        str(tmp_path / "t.safetensors"),
        "--distill",
        "0.5",
        "--val-split",
        "20",
    ]
    assert cli.main(train) == 2
    assert "teacher file" in capsys.readouterr().err


def test_a_run_s_weights_say_which_images_it_held_out(tmp_path):
    from tinycifar.pretrained import weights_metadata

    train, eval_data = synthetic_cifar(64), synthetic_cifar(32)
    recipe = Recipe(epochs=1, batch_size=32, warmup_epochs=0)
    fit(RunConfig("tinynet", recipe, eval_on="val"), train, eval_data, tmp_path / "val")
    fit(RunConfig("tinynet", recipe), train, eval_data, tmp_path / "test")
    assert weights_metadata(tmp_path / "val" / "model.safetensors")["held_out"] == "32"
    assert weights_metadata(tmp_path / "test" / "model.safetensors")["held_out"] == "0"


def test_sweeps_and_repeats_refuse_what_they_cannot_do(tmp_path):
    from tinycifar.commands.repeat import train_argv
    from tinycifar.sweep import load_space

    space = tmp_path / "space.toml"
    space.write_text('model = "tinynet"\n[fixed]\ndistill = 0.5\n')
    with pytest.raises(TinyCifarError, match="distill needs a teacher, which a sweep does not take"):
        load_space(space)
    with pytest.raises(
        TinyCifarError, match="--plan after --: repeat sets them itself .*ask `tinycifar train --time ... --plan`"
    ):
        train_argv(["--", "--time", "1m", "--plan"])


class _Shifted(torch.nn.Module):
    """A teacher that names every class by the next one."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * self.model(x).softmax(1).roll(1, dims=1)


def test_a_consistent_teacher_blends_its_probabilities_for_the_batch_as_it_is():
    from tinycifar.distill import ConsistentTeacher

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
    teach = ConsistentTeacher(model, 0.7, "fp32", torch.device("cpu"))
    x, labels = torch.randn(5, 3, 4, 4), torch.tensor([0, 1, 2, 3, 4])
    probs = model(x).softmax(1).detach()
    assert torch.allclose(teach(x, labels), 0.7 * probs + 0.3 * F.one_hot(labels, 10).float(), atol=1e-6)
    mixed = random_probs(5)  # a mixed batch's targets are blended as they are
    assert torch.allclose(teach(x, mixed), 0.7 * probs + 0.3 * mixed, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_a_student_learns_from_a_teacher_model_that_sees_its_batches(tmp_path):
    from tinycifar.distill import fingerprint

    train, (eval_images, eval_labels) = synthetic_cifar(320, seed=0), synthetic_cifar(100, seed=1)
    fit(RunConfig("tinynet", STUDENT), train, (eval_images, eval_labels), tmp_path / "plain")
    from tinycifar.pretrained import load_model

    teacher = _Shifted(load_model("tinynet", tmp_path / "plain" / "model.safetensors", "cpu"))
    recipe = Recipe(**{**STUDENT.__dict__, "distill": 1.0, "mixup": 0.4})  # mixed images, taught as mixed
    taught = fit(
        RunConfig("tinynet", recipe), train, (eval_images, (eval_labels + 1) % 10), tmp_path / "t", teacher=teacher
    )
    assert taught["eval_acc"] > 0.8  # it names classes as its teacher does
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["teacher"] == fingerprint(teacher) != fingerprint(_Shifted(create_model("tinynet")))


def test_train_takes_a_models_weights_as_a_consistent_teacher(tmp_path, monkeypatch, capsys):
    from tinycifar.commands import train as train_command
    from tinycifar.distill import fingerprint
    from tinycifar.pretrained import load_model

    fake = {"train": synthetic_cifar(320, seed=0), "test": synthetic_cifar(100, seed=1)}
    monkeypatch.setattr(train_command, "load_cifar10", lambda split, data_dir=None: fake[split])
    torch.manual_seed(0)
    save_weights(create_model("tinynet"), tmp_path / "t.safetensors", {"model": "tinynet", "held_out": "0"})
    base = [
        "train",
        "--model",
        "fastnet",
        "--epochs",
        "1",
        "--warmup-epochs",
        "0.5",
        "--batch-size",
        "64",
        "--no-progress",
    ]
    assert (
        cli.main(
            [*base, "--teacher", str(tmp_path / "t.safetensors"), "--distill", "0.5", "--out", str(tmp_path / "run")]
        )
        == 0
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["teacher"] == fingerprint(load_model("tinynet", tmp_path / "t.safetensors", "cpu"))
    # a teacher that trained on the validation images may not judge against them
    args = [*base, "--teacher", str(tmp_path / "t.safetensors"), "--distill", "0.5", "--val-split", "20"]
    assert cli.main([*args, "--out", str(tmp_path / "val")]) == 2
    assert "trained on all of the 20 validation images" in capsys.readouterr().err
