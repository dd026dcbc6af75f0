"""Copy finished runs' results into ``benchmarks/results/`` so figures can be assembled
across sessions and machines: one JSON per run with its config (model, recipe, seed, data,
precision), environment (CPU model and flags, threads, torch), final metrics and
per-epoch log. Scratch checkpoints and weights stay where they are::

    python benchmarks/record.py runs/fastnet-seed0 --into benchmarks/results/validation --note "why"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def record(run: Path, into: Path, note: str = "", name: str | None = None) -> Path:
    def read(file: str):
        return json.loads((run / file).read_text())

    entry = {"run": name or run.name, "note": note, "config": read("config.json"),
             "environment": read("environment.json"), "metrics": read("metrics.json"),
             "log": [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]}
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"{entry['run']}.json"
    path.write_text(json.dumps(entry, indent=1) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders written by `tinycifar train`")
    p.add_argument("--into", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--note", default="", help="what the run was for")
    p.add_argument("--name", default=None, help="file name (default: the run folder's name); one run only")
    args = p.parse_args()
    for run in args.runs:
        print(record(run, args.into, args.note, args.name if len(args.runs) == 1 else None))


if __name__ == "__main__":
    main()
