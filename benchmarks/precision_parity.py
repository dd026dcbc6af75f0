"""fp32 against bf16 autocast, the same recipe and seeds: does bf16 cost accuracy?

Reads finished run folders (``tinycifar train --precision fp32|bf16 --val-split 5000``, the
same recipe and seeds for both) and prints the table that docs/precision-and-time.md
quotes: each seed's final validation accuracy in each precision, their difference, and
mean ± std::

    # runs/parity-P-sN from: tinycifar train --precision P --seed N --val-split 5000 --out DIR
    python benchmarks/precision_parity.py runs/parity-*
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def read_runs(folders: list[Path]) -> dict[str, dict[int, float]]:
    """precision → seed → final accuracy (in %), checking that all runs share one recipe."""
    table: dict[str, dict[int, float]] = {"fp32": {}, "bf16": {}}
    recipes = set()
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        acc = next(v for k, v in metrics.items() if k.startswith("final_") and k.endswith("_acc"))
        if config["seed"] in table[metrics["precision"]]:
            raise SystemExit(f"{folder}: a second {metrics['precision']} run of seed {config['seed']}")
        table[metrics["precision"]][config["seed"]] = 100 * acc
        recipes.add(json.dumps([config["model"], config["recipe"], config["eval_on"]], sort_keys=True))
    if len(recipes) != 1:
        raise SystemExit("the runs differ in model, recipe or evaluation split: not a parity table")
    if set(table["fp32"]) != set(table["bf16"]) or not table["fp32"]:
        raise SystemExit(f"each seed needs one run in each precision: fp32 has seeds {sorted(table['fp32'])}, "
                         f"bf16 {sorted(table['bf16'])}")
    return table


def mean_std(values: list[float], sign: str = "") -> str:
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values) if len(values) > 1 else 0:.2f}"


def parity_table(table: dict[str, dict[int, float]]) -> str:
    seeds = sorted(table["fp32"])
    rows = ["| seed | fp32 | bf16 | bf16 − fp32 |", "|---:|---:|---:|---:|"]
    rows += [f"| {s} | {table['fp32'][s]:.2f} | {table['bf16'][s]:.2f} | {table['bf16'][s] - table['fp32'][s]:+.2f} |"
             for s in seeds]
    fp32, bf16 = [table["fp32"][s] for s in seeds], [table["bf16"][s] for s in seeds]
    rows.append(f"| mean ± std | {mean_std(fp32)} | {mean_std(bf16)} | "
                f"{mean_std([b - f for b, f in zip(bf16, fp32)], '+')} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders, fp32 and bf16")
    print(parity_table(read_runs(p.parse_args().runs)))


if __name__ == "__main__":
    main()
