"""Shipping a test seed of the microcontroller model (``experiments/mcu/ship.py``): the
weights and records come out under the zoo's name, and only the right run ships."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import experiment_script

from tinycifar.checkpoint import save_weights
from tinycifar.models import create_model
from tinycifar.pretrained import load_model
from tinycifar.recipe import load_recipe

SCRIPT = Path(__file__).parents[1] / "experiments" / "mcu" / "ship.py"


@pytest.fixture
def ship():
    with experiment_script(SCRIPT, "mcu_ship") as module:
        yield module.ship


def _run(folder: Path, **recipe_changes) -> Path:
    """A finished seed's folder, as `tinycifar train` leaves it (its recipe as saved before
    the fields added since)."""
    folder.mkdir()
    recipe = dataclasses.asdict(dataclasses.replace(load_recipe("mcu"), **recipe_changes))
    del recipe["muon_lr"]  # a field the seeds' runs predate
    config = {
        "model": "fastnet",
        "model_args": {"widths": [24, 36, 56]},
        "recipe": recipe,
        "seed": 0,
        "eval_on": "test",
        "train_images": 50_000,
        "eval_images": 10_000,
        "teacher": "ab12",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "environment.json").write_text(json.dumps({"cpu": "test"}))
    (folder / "metrics.json").write_text(json.dumps({"model": "fastnet", "eval_acc": 0.9, "eval_loss": 0.3}))
    (folder / "log.jsonl").write_text(json.dumps({"epoch": 1, "eval_acc": 0.9, "eval_loss": 0.3}) + "\n")
    torch.manual_seed(0)
    net = create_model("fastnet", widths=(24, 36, 56))
    save_weights(net, folder / "model.safetensors", {"model": "fastnet", "model_args": '{"widths": [24, 36, 56]}'})
    return folder


def test_a_seed_ships_under_the_zoos_name(tmp_path, ship):
    run = _run(tmp_path / "seed-0")
    into = tmp_path / "weights"
    into.mkdir()
    ship(run, into)
    shipped = load_model("fastnet_mcu", into / "fastnet_mcu.safetensors", "cpu")
    original = load_model("fastnet", run / "model.safetensors", "cpu")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), original.state_dict().values()))
    record = json.loads((into / "fastnet_mcu.run.json").read_text())
    assert record["config"]["model"] == "fastnet_mcu" and record["config"]["model_args"] is None
    assert record["metrics"]["final_test_acc"] == 0.9 and "eval_acc" not in record["metrics"]
    assert json.loads((into / "fastnet_mcu.log.jsonl").read_text())["test_acc"] == 0.9


def test_another_recipe_does_not_ship(tmp_path, ship):
    with pytest.raises(SystemExit, match="not the packaged mcu recipe"):
        ship(_run(tmp_path / "seed-0", epochs=37), tmp_path)
