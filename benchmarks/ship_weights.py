"""Ship a finished run's weights as a zoo model's pretrained file, with its records.

The run must have trained the model with its packaged recipe (field for field; fields added
since take their defaults) on all 50,000 training images and been scored once on the test
set. Writes ``MODEL.safetensors``, ``MODEL.run.json`` (config, environment, metrics with
``final_test_acc``, the command that made it) and ``MODEL.log.jsonl`` (one line an epoch)
into the package's ``weights/``::

    tinycifar train --seed 0 --out runs/fastnet-seed0
    python benchmarks/ship_weights.py runs/fastnet-seed0 --model fastnet --command "tinycifar train --seed 0"

``experiments/mcu/ship.py`` ships a run made under another name through :func:`write`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from tinycifar.models import model_recipe
from tinycifar.recipe import load_recipe, recipe_from_dict

WEIGHTS = Path(__file__).parents[1] / "src" / "tinycifar" / "weights"


def write(run: Path, name: str, command: str, into: Path = WEIGHTS) -> None:
    """The run's weights, config, environment, metrics and log under the zoo's ``name``
    (a run made as another model, e.g. ``fastnet`` with other widths, is renamed). Every
    file is read before any is written, so an unfinished run leaves the shipped ones as
    they were."""

    def test_names(row: dict) -> dict:
        return {k.replace("eval_", "test_"): v for k, v in row.items()}

    config = json.loads((run / "config.json").read_text())
    final = json.loads((run / "metrics.json").read_text())
    metrics = {k: v for k, v in final.items() if not k.startswith("eval_")}
    metrics.update(model=name, final_test_acc=final["eval_acc"], final_test_loss=final["eval_loss"])
    record = {
        "config": {**config, "model": name, "model_args": None},
        "environment": json.loads((run / "environment.json").read_text()),
        "metrics": metrics,
        "command": command,
    }
    log = [test_names(json.loads(line)) for line in (run / "log.jsonl").read_text().splitlines()]
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != "model_args"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(into / f"{name}.safetensors"), {**metadata, "model": name})
    (into / f"{name}.run.json").write_text(json.dumps(record, indent=2) + "\n")
    (into / f"{name}.log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))


def check_test_run(run: Path, config: dict) -> None:
    if config["eval_on"] != "test" or config["train_images"] != 50_000:
        raise SystemExit(f"{run} did not train on all 50,000 images and score on the test set")


def ship(run: Path, model: str, command: str, into: Path = WEIGHTS) -> None:
    config = json.loads((run / "config.json").read_text())
    if config["model"] != model or config.get("model_args"):
        raise SystemExit(f"{run} is not a run of the zoo's {model} (it trained {config['model']})")
    recipe = model_recipe(model)
    if recipe_from_dict(config["recipe"], str(run)) != load_recipe(recipe):
        raise SystemExit(f"{run}'s recipe is not the packaged {recipe} recipe, {model}'s own")
    check_test_run(run, config)
    write(run, model, command, into)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the run folder (`tinycifar train --out`)")
    p.add_argument("--model", required=True, help="the zoo model the weights ship as")
    p.add_argument("--command", required=True, help="the command that made the run, kept in MODEL.run.json")
    p.add_argument("--into", type=Path, default=WEIGHTS)
    args = p.parse_args()
    ship(args.run, args.model, args.command, args.into)
