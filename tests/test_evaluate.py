"""`tinycifar evaluate`: metrics, per-class table, confusion matrix, figures, metrics.json.

Runs on ~50 synthetic images with a randomly initialised tinynet whose head is re-drawn so
its predictions spread over several classes (a fresh init predicts one class for all).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import tinycifar.commands.evaluate as evaluate_command
import tinycifar.evaluate as ev
from tinycifar import cli
from tinycifar.checkpoint import save_weights
from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.inference import predict_logits, prepare
from tinycifar.models import create_model
from tinycifar.pretrained import load_model

N = 50
CPU = torch.device("cpu")


def _varied_tinynet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tinynet")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1, generator=g)
        # Random features share a large common part: centre it out so predictions vary.
        model.eval()
        feats = model.pool(model.features(prepare(_synthetic_images(N), CPU))).flatten(1)
        model.classifier.bias.copy_(-model.classifier.weight @ feats.mean(0))
    return model


def _synthetic_images(n: int, seed: int = 1) -> torch.Tensor:
    # Colour ramps plus noise: pure noise all looks alike to a random network.
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (n, 3, 1, 1), generator=g)
    amp = torch.randint(-128, 128, (n, 3, 1, 1), generator=g)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32)
    noise = torch.randint(-20, 20, (n, 3, 32, 32), generator=g)
    return (base + amp * ramp + noise).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_weights(_varied_tinynet(), path, {"model": "tinynet"})
    return path


@pytest.fixture(scope="module")
def model(weights):
    return load_model("tinynet", weights, CPU)


@pytest.fixture(scope="module")
def data(model):
    images = _synthetic_images(N)
    preds = predict_logits(model, images, CPU).argmax(1)
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, len(CLASSES), (N,), generator=g)
    labels[::3] = preds[::3]  # a good share right, the rest mostly wrong
    return images, labels


@pytest.fixture(scope="module")
def hand(model, data):
    """Accuracies computed directly from predict_logits, independent of evaluate()."""
    images, labels = data
    plain = predict_logits(model, images, CPU)
    tta = (plain + predict_logits(model, images.flip(3), CPU)) / 2
    return {
        "plain_logits": plain,
        "correct": int((plain.argmax(1) == labels).sum()),
        "tta_correct": int((tta.argmax(1) == labels).sum()),
    }


def test_model_fixture_is_not_degenerate(hand, data):
    # Guards the other tests: with one predicted class, or all right or all wrong, the
    # confusion-matrix and per-class checks would prove little.
    preds = hand["plain_logits"].argmax(1)
    assert len(preds.unique()) >= 3
    assert 0 < hand["correct"] < N


# ---------------------------------------------------------------- library


def test_evaluate_matches_hand_computation(model, data, hand):
    images, labels = data
    m = ev.evaluate(model, images, labels, CPU, tta=True)
    assert m["n_images"] == N
    assert m["correct"] == hand["correct"]
    assert m["accuracy"] == pytest.approx(hand["correct"] / N)
    assert m["tta_correct"] == hand["tta_correct"]
    assert m["tta_accuracy"] == pytest.approx(hand["tta_correct"] / N)


def test_evaluate_without_tta_has_no_tta_keys(model, data):
    m = ev.evaluate(model, *data, CPU)
    assert "tta_accuracy" not in m and "tta_correct" not in m


def test_confusion_matrix_and_per_class_are_consistent(model, data, hand):
    images, labels = data
    m = ev.evaluate(model, images, labels, CPU)
    cm = torch.tensor(m["confusion_matrix"])
    preds = hand["plain_logits"].argmax(1)
    assert cm.shape == (10, 10)
    assert int(cm.sum()) == N
    assert int(cm.diagonal().sum()) == hand["correct"]
    assert cm.sum(1).tolist() == torch.bincount(labels, minlength=10).tolist()  # rows: true
    assert cm.sum(0).tolist() == torch.bincount(preds, minlength=10).tolist()  # columns: predicted
    per_class = m["per_class"]
    assert list(per_class) == list(CLASSES)
    assert sum(r["total"] for r in per_class.values()) == N
    assert sum(r["correct"] for r in per_class.values()) == hand["correct"]
    for i, name in enumerate(CLASSES):
        row = per_class[name]
        assert row["correct"] == int(((labels == i) & (preds == i)).sum())
        assert row["total"] == int((labels == i).sum())
        if row["total"]:
            assert row["accuracy"] == pytest.approx(row["correct"] / row["total"])
    json.dumps(m)  # JSON-ready as documented


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=60))
def test_confusion_matrix_matches_a_loop(pairs):
    labels = torch.tensor([a for a, _ in pairs], dtype=torch.long)
    preds = torch.tensor([b for _, b in pairs], dtype=torch.long)
    expected = [[0] * 10 for _ in range(10)]
    for a, b in pairs:
        expected[a][b] += 1
    assert ev.confusion_matrix(labels, preds).tolist() == expected


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(TinyCifarError, match="out of range"):
        ev.confusion_matrix(torch.tensor([0, 10]), torch.tensor([0, 1]))


def test_class_without_images_reports_na():
    labels = torch.tensor([0, 0, 1])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1]), 10).float()
    m = ev.metrics_from_logits(logits, labels)
    assert m["per_class"]["airplane"] == {"correct": 1, "total": 2, "accuracy": 0.5}
    assert m["per_class"]["truck"] == {"correct": 0, "total": 0, "accuracy": None}
    table = ev.format_per_class(m)
    assert re.search(r"^truck\s+0/0\s+n/a$", table, re.M)
    assert re.search(r"^total\s+2/3\s+66\.67%$", table, re.M)


def test_evaluate_rejects_mismatched_lengths(model, data):
    images, labels = data
    with pytest.raises(TinyCifarError, match="labels"):
        ev.evaluate(model, images, labels[:-1], CPU)


# ---------------------------------------------------------------- figures


def test_misclassified_gallery_titles_and_count(data, hand):
    images, labels = data
    logits = hand["plain_logits"]
    preds = logits.argmax(1)
    wrong = (preds != labels).nonzero().flatten().tolist()
    fig = ev.misclassified_figure(images, labels, logits, limit=8)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == min(8, len(wrong))
    first = wrong[0]
    p = logits.softmax(1)[first].max().item()
    assert axes[0].get_title() == f"{CLASSES[labels[first]]} → {CLASSES[preds[first]]} (p={p:.2f})"
    for ax in axes:
        assert re.fullmatch(r"\w+ → \w+ \(p=[01]\.\d\d\)", ax.get_title())
        assert ax.images[0].get_interpolation() == "nearest"


def test_misclassified_gallery_with_no_mistakes(data, hand):
    images, _ = data
    preds = hand["plain_logits"].argmax(1)
    fig = ev.misclassified_figure(images, preds, hand["plain_logits"])
    assert not any(ax.images for ax in fig.axes)
    assert any("no misclassified" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_confusion_figure_writes_every_count():
    cm = torch.arange(100).view(10, 10)
    fig = ev.confusion_figure(cm)
    ax = fig.axes[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == list(range(100))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)


# ---------------------------------------------------------------- the command


@pytest.fixture
def fake_test_set(monkeypatch, data):
    calls = []

    def fake_load(split, data_dir=None, download=True, **kwargs):
        calls.append((split, data_dir))
        return data

    monkeypatch.setattr(evaluate_command, "load_cifar10", fake_load)
    return calls


def _pct(correct: int) -> str:
    return f"{100 * correct / N:.2f}%"


def test_cli_evaluate_with_tta(tmp_path, capsys, weights, data, hand, fake_test_set):
    out = tmp_path / "eval"
    rc = cli.main(
        [
            "evaluate",
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--tta",
            "--data-dir",
            "somewhere",
            "--batch-size",
            "7",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert fake_test_set == [("test", "somewhere")]
    text = captured.out
    assert f"accuracy: {_pct(hand['correct'])} ({hand['correct']}/{N})" in text
    assert f"accuracy with flip TTA: {_pct(hand['tta_correct'])} ({hand['tta_correct']}/{N})" in text

    rows = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^(\w+)\s+(\d+)/(\d+)\s+(?:[\d.]+%|n/a)$", text, re.M)}
    _, labels = data
    for i, name in enumerate(CLASSES):
        if (labels == i).any():
            assert rows[name][1] == int((labels == i).sum())
    assert sum(rows[c][0] for c in CLASSES if c in rows) == hand["correct"]
    assert sum(rows[c][1] for c in CLASSES if c in rows) == N
    assert rows["total"] == (hand["correct"], N)

    for name in ("confusion_matrix.png", "misclassified.png", "metrics.json"):
        assert f"wrote {out / name}" in text
    for name in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"
            assert im.width > 300 and im.height > 300
            im.verify()

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tinynet"
    assert metrics["weights"] == str(weights)
    assert metrics["accuracy"] == pytest.approx(hand["correct"] / N)
    assert metrics["tta_accuracy"] == pytest.approx(hand["tta_correct"] / N)
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == N
    assert sum(cm[i][i] for i in range(10)) == hand["correct"]
    assert set(metrics["per_class"]) == set(CLASSES)


def test_cli_evaluate_without_tta(tmp_path, capsys, weights, hand, fake_test_set):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--weights", str(weights), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "TTA:" not in text
    assert f"accuracy: {_pct(hand['correct'])}" in text
    assert "tta_accuracy" not in json.loads((out / "metrics.json").read_text())


def test_cli_evaluate_wrong_architecture(tmp_path, capsys, fake_test_set):
    path = tmp_path / "seed.safetensors"
    save_weights(create_model("seed"), path, {})
    rc = cli.main(["evaluate", "--weights", str(path), "--out", str(tmp_path / "e"), "--device", "cpu"])
    assert rc == 2
    assert "do not fit" in capsys.readouterr().err
    assert fake_test_set == []  # failed before loading the test set


def test_cli_evaluate_unwritable_out(tmp_path, capsys, weights, fake_test_set):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc = cli.main(["evaluate", "--weights", str(weights), "--out", str(blocker / "sub"), "--device", "cpu"])
    assert rc == 2
    assert "--out" in capsys.readouterr().err
    assert fake_test_set == []


def test_cli_evaluate_rejects_bad_batch_size(capsys, weights, fake_test_set):
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "--weights", str(weights), "--batch-size", "0"])
    assert e.value.code == 2
