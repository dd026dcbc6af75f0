"""The pretrained weights that ship in the package: loadable, in budget, and as good as claimed."""

import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA, needs_real_data

from tinycifar.data import load_cifar10
from tinycifar.evaluate import evaluate
from tinycifar.models import DEFAULT_MODEL
from tinycifar.pretrained import load_model, pretrained_path

WEIGHTS = files("tinycifar") / "weights"
RUN = json.loads((WEIGHTS / f"{DEFAULT_MODEL}.run.json").read_text())
README = Path(__file__).parents[1] / "README.md"


def test_default_model_ships_weights_with_their_training_log():
    model = load_model(DEFAULT_MODEL, None, "cpu")  # strict load: every tensor fits
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < 100_000
    log = [json.loads(x) for x in (WEIGHTS / f"{DEFAULT_MODEL}.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, RUN["config"]["recipe"]["epochs"] + 1))
    assert log[-1]["test_acc"] == RUN["metrics"]["final_test_acc"]
    assert RUN["config"]["train_images"] == 50_000 and RUN["config"]["eval_on"] == "test"
    assert pretrained_path(DEFAULT_MODEL).stat().st_size < 1_000_000


def test_readme_quotes_the_shipped_accuracy():
    assert f"{100 * RUN['metrics']['final_test_acc']:.2f}%" in README.read_text()


@needs_real_data
@pytest.mark.slow
def test_shipped_weights_reproduce_their_test_accuracy():
    images, labels = load_cifar10("test", REAL_DATA, download=False)
    scores = evaluate(load_model(DEFAULT_MODEL, None, "cpu"), images, labels, torch.device("cpu"))
    assert scores["accuracy"] == pytest.approx(RUN["metrics"]["final_test_acc"], abs=1e-4)
    assert scores["accuracy"] >= 0.87
