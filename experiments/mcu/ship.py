"""Ship a test seed of the microcontroller model as the zoo's ``fastnet_mcu`` weights.

The seeds trained as ``--model fastnet --model-args '{"widths": [24, 36, 56]}' --recipe long
--epochs 74 --distill 0.7 --label-smoothing 0`` (``seeds.sh``), before the zoo had the name:
the same network (``fastnet_mcu`` builds ``FastNet`` with those widths) and, field for field,
the packaged ``mcu`` recipe (checked below). This writes the run's weights under the zoo's
name, and its config, environment, metrics and per-epoch log in the shape of the other
shipped records (``final_test_acc``, ``test_acc``)::

    python experiments/mcu/ship.py runs/mcu-seeds/seed-0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from tinycifar.recipe import load_recipe, recipe_from_dict

WEIGHTS = Path(__file__).parents[2] / "src" / "tinycifar" / "weights"
NAME, WIDTHS = "fastnet_mcu", [24, 36, 56]
COMMAND = (
    "tinycifar soft-labels --model sepnet_g31 --out soft.safetensors && tinycifar train --model "
    "fastnet_mcu --teacher soft.safetensors --seed 0 (packaged recipe `mcu`; run as `--model fastnet "
    "--model-args '{\"widths\": [24, 36, 56]}' --recipe long --epochs 74 --distill 0.7 "
    "--label-smoothing 0`, the same network and recipe, by experiments/mcu/seeds.sh; issue #24)"
)


def ship(run: Path, into: Path = WEIGHTS) -> None:
    config = json.loads((run / "config.json").read_text())
    if config["model"] != "fastnet" or config["model_args"] != {"widths": WIDTHS}:
        raise SystemExit(f"{run} is not a fastnet {WIDTHS} run")
    # fields added since the run take their defaults, as a resumed run's do
    if recipe_from_dict(config["recipe"], str(run)) != load_recipe("mcu"):
        raise SystemExit(f"{run}'s recipe is not the packaged mcu recipe")
    if config["eval_on"] != "test" or config["train_images"] != 50_000 or not config["teacher"]:
        raise SystemExit(f"{run} did not train on all 50,000 images with a teacher and score on the test set")
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != "model_args"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(into / f"{NAME}.safetensors"), {**metadata, "model": NAME})

    def test_names(row: dict) -> dict:
        return {k.replace("eval_", "test_"): v for k, v in row.items()}

    final = json.loads((run / "metrics.json").read_text())
    metrics = {k: v for k, v in final.items() if not k.startswith("eval_")}
    metrics.update(model=NAME, final_test_acc=final["eval_acc"], final_test_loss=final["eval_loss"])
    record = {
        "config": {**config, "model": NAME, "model_args": None},
        "environment": json.loads((run / "environment.json").read_text()),
        "metrics": metrics,
        "command": COMMAND,
    }
    (into / f"{NAME}.run.json").write_text(json.dumps(record, indent=2) + "\n")
    log = [test_names(json.loads(line)) for line in (run / "log.jsonl").read_text().splitlines()]
    (into / f"{NAME}.log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in log))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the seed's run folder")
    ship(p.parse_args().run)
