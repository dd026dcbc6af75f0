"""The pretrained weights that ship in the package: loadable, in budget, and as good as claimed."""

import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA, needs_real_data

from tinycifar.data import load_cifar10
from tinycifar.evaluate import evaluate
from tinycifar.models import DEFAULT_MODEL, list_models
from tinycifar.pretrained import load_model, pretrained_path

WEIGHTS = files("tinycifar") / "weights"
SHIPPED = [m for m in list_models() if (WEIGHTS / f"{m}.safetensors").is_file()]
README = Path(__file__).parents[1] / "README.md"


def run_record(model: str) -> dict:
    return json.loads((WEIGHTS / f"{model}.run.json").read_text())


def test_the_default_model_ships_weights():
    assert DEFAULT_MODEL in SHIPPED


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_weights_come_with_their_training_log(model):
    run = run_record(model)
    net = load_model(model, None, "cpu")  # strict load: every tensor fits
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) < 100_000
    log = [json.loads(x) for x in (WEIGHTS / f"{model}.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, run["config"]["recipe"]["epochs"] + 1))
    assert log[-1]["test_acc"] == run["metrics"]["final_test_acc"]
    assert run["config"]["model"] == model
    assert run["config"]["train_images"] == 50_000 and run["config"]["eval_on"] == "test"
    assert pretrained_path(model).stat().st_size < 1_000_000


@pytest.mark.parametrize("model", SHIPPED)
def test_readme_quotes_the_shipped_accuracy(model):
    assert f"{100 * run_record(model)['metrics']['final_test_acc']:.2f}%" in README.read_text()


@needs_real_data
@pytest.mark.slow
@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_weights_reproduce_their_test_accuracy(model):
    images, labels = load_cifar10("test", REAL_DATA, download=False)
    scores = evaluate(load_model(model, None, "cpu"), images, labels, torch.device("cpu"))
    assert scores["accuracy"] == pytest.approx(run_record(model)["metrics"]["final_test_acc"], abs=1e-4)
    assert scores["accuracy"] >= 0.87
