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
import sys
from pathlib import Path

from tinycifar.recipe import load_recipe, recipe_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from ship_weights import WEIGHTS, check_test_run, write  # noqa: E402  benchmarks/ship_weights.py

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
    check_test_run(run, config)
    if not config["teacher"]:
        raise SystemExit(f"{run} did not train with a teacher")
    write(run, NAME, COMMAND, into)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the seed's run folder")
    ship(p.parse_args().run)
