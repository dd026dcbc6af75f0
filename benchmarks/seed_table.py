"""Seed tables assembled from recorded runs: the runs that share a configuration, whenever
and wherever they ran, with each seed's final accuracy, mean ± std, minutes per run and
the machine. A 3-seed figure can so be built from runs of different sessions::

    python benchmarks/seed_table.py benchmarks/results/validation
    python benchmarks/seed_table.py benchmarks/results/validation --model sepnet_g31

The files are those ``benchmarks/record.py`` (or ``train_variant.py --record-into``)
writes; other JSON files in the folder are skipped. Runs share a configuration when
everything in their config but the seed, the precision and a time budget is equal (teacher
and process count included); a recipe recorded before a field existed counts as having
that field's default, which is off for every field added since. Precision and machine are
shown per run, since an hour's schedule is run in bf16 on one machine and fp32 on another.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.recipe import RECIPE_NAMES, load_recipe
from tinycifar.repeat import summarize
from tinycifar.runconfig import RunConfig

NOT_THE_CONFIGURATION = ("seed", "precision", "time_budget_s", "device", "compile")


def configuration(config: dict[str, Any]) -> str:
    # old records lack the fields added since: completed as a resumed run's config is
    try:
        config = RunConfig.from_dict(config).to_dict()
    except TinyCifarError:  # not a configuration this version reads: compared as it stands
        pass
    rest = {k: v for k, v in config.items() if k not in NOT_THE_CONFIGURATION}
    return json.dumps(rest, sort_keys=True)


def describe(config: dict[str, Any]) -> str:
    """A configuration in a line: the packaged recipe nearest to its own and what differs."""
    recipe = config["recipe"]

    def changes(name: str) -> dict[str, Any]:
        base = asdict(load_recipe(name))
        return {k: v for k, v in recipe.items() if base.get(k) != v}

    base = min(RECIPE_NAMES, key=lambda name: len(changes(name)))
    changed = ", ".join(f"{k} {v}" for k, v in changes(base).items())
    parts = [config["model"] + (f" {json.dumps(config['model_args'])}" if config.get("model_args") else ""),
             f"recipe {base}" + (f" with {changed}" if changed else "")]
    if config.get("teacher"):
        parts.append(f"teacher {config['teacher']}")
    parts.append(f"{config['train_images']:,} training images, {config['eval_images']:,} {config['eval_on']}")
    return "; ".join(parts)


def machine(environment: dict[str, Any]) -> str:
    if environment.get("device") == "cuda":
        return environment.get("cuda") or "CUDA GPU"
    flags = ", ".join(environment.get("cpu_flags", []))
    return f"{environment.get('cpu', 'CPU')} ({flags}, {environment.get('threads')} threads)"


def groups(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records by configuration, each group in seed order; a seed recorded twice is an error."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by.setdefault(configuration(r["config"]), []).append(r)
    for runs in by.values():
        runs.sort(key=lambda r: r["config"]["seed"])
        seeds = [r["config"]["seed"] for r in runs]
        if len(set(seeds)) != len(seeds):
            names = ", ".join(r["run"] for r in runs)
            sys.exit(f"runs {names} repeat a seed of one configuration: move the one that should not count out of the folder")
    return by


def table(runs: list[dict[str, Any]]) -> list[str]:
    s = summarize({r["config"]["seed"]: r["metrics"] for r in runs})
    what = "validation" if s["eval_on"] == "val" else "test"
    lines = [f"| run | seed | {what} acc. | minutes | precision | machine |", "|---|---:|---:|---:|---|---|"]
    for r, acc, secs in zip(runs, s["values"], s["train_seconds"]):
        lines.append(f"| {r['run']} | {r['config']['seed']} | {100 * acc:.2f}% | {secs / 60:.1f} | "
                     f"{r['metrics'].get('precision', '?')} | {machine(r.get('environment', {}))} |")
    spread = f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}%" if len(runs) > 1 else "no spread from one seed"
    lines.append(f"| mean ± std ({len(runs)} seed{'s' if len(runs) > 1 else ''}) | | {spread} | | | |")
    return lines


def read(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except ValueError as e:
        sys.exit(f"{file} is not JSON ({e}): move it out of the folder or record the run again")


def is_run(record: Any) -> bool:
    return isinstance(record, dict) and {"run", "config", "metrics"} <= set(record)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="a folder of recorded runs (JSON)")
    p.add_argument("--model", help="only this model's runs")
    p.add_argument("--min-seeds", type=int, default=1, help="only configurations with at least this many seeds")
    args = p.parse_args(argv)
    files = sorted(args.folder.glob("*.json"))
    records = [r for r in map(read, files) if is_run(r)]
    if not records:
        sys.exit(f"no recorded runs in {args.folder}: pass a folder that benchmarks/record.py wrote into")
    records = [r for r in records if args.model in (None, r["config"]["model"])]
    if not records:
        sys.exit(f"no run of model {args.model} in {args.folder}")
    for config, runs in groups(records).items():
        if len(runs) < args.min_seeds:
            continue
        print(f"{describe(runs[0]['config'])}\n")
        print("\n".join(table(runs)) + "\n")


if __name__ == "__main__":
    main()
