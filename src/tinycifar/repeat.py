"""``tinycifar repeat``: one training command over several seeds, as parallel workers.

    tinycifar repeat --seeds 0 1 2 --workers 3 --out runs/fast -- --model fastnet --val-split 5000

Everything after ``--`` is a ``tinycifar train`` command line (checked before anything
starts). Each seed trains in its own process into ``OUT/seed-N`` (console in
``OUT/seed-N.log``); the cores are split between the workers. A seed whose folder already
holds a finished run is read, not trained again, and one with a checkpoint is resumed, so
a figure can be assembled over several sittings. The result is each seed's final accuracy
and time, their mean ± sample standard deviation, printed and written to
``OUT/summary.json``: the figure every accuracy claim in the README comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.paths import writable_dir


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.cli import whole_number

    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="N",
                   help="seeds to train (default: 0 1 2)")
    p.add_argument("--workers", type=whole_number(1), default=None, metavar="N",
                   help="seeds trained at once; the cores are split between them (default: one per core)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and summary.json")
    p.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN OPTIONS",
                   help="the tinycifar train options every seed runs with")


def train_argv(extra: list[str]) -> list[str]:
    """The train options after ``--``, checked by train's own parser (no --seed, --out)."""
    from tinycifar import train

    extra = extra[1:] if extra[:1] == ["--"] else extra
    parser = argparse.ArgumentParser(prog="tinycifar repeat -- ", add_help=False)
    train.configure_parser(parser)
    try:
        parser.parse_args(extra)
    except SystemExit:
        raise TinyCifarError(f"bad train options after --: {' '.join(extra)} (see tinycifar train --help)") from None
    taken = [flag for flag in ("--seed", "--out", "--resume") if flag in extra]
    if taken:
        raise TinyCifarError(f"{', '.join(taken)} after --: repeat sets them itself (use --seeds, --out)")
    if "--plan" in extra:
        raise TinyCifarError("--plan after --: repeat trains; ask `tinycifar train --time ... --plan` for the plan")
    return extra


def run_seed(seed: int, out: Path, extra: list[str], threads: int) -> dict[str, Any]:
    """Train (or resume, or just read) one seed; its metrics."""
    from tinycifar.checkpoint import check_resumable

    folder = out / f"seed-{seed}"
    if (folder / "metrics.json").is_file():
        return json.loads((folder / "metrics.json").read_text())
    try:
        check_resumable(folder)
        resume = ["--resume"]
    except TinyCifarError:
        resume = []
    cmd = [sys.executable, "-m", "tinycifar", "train", "--seed", str(seed), "--out", str(folder),
           "--no-progress", *resume, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(out / f"seed-{seed}.log", "a") as console:
        done = subprocess.run(cmd, stdout=console, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0 or not (folder / "metrics.json").is_file():
        raise TinyCifarError(f"seed {seed} failed (exit code {done.returncode}): see {out / f'seed-{seed}.log'}")
    return json.loads((folder / "metrics.json").read_text())


def final_accuracy(metrics: dict[str, Any]) -> tuple[str, float]:
    """A run's final accuracy and its key (``final_test_acc`` or ``final_val_acc``)."""
    key = next(k for k in metrics if k.startswith("final_") and k.endswith("_acc"))
    return key, metrics[key]


def summarize(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of the seeds' final accuracy."""
    key = final_accuracy(next(iter(results.values())))[0]
    accs = [results[s][key] for s in sorted(results)]
    return {"metric": key, "seeds": sorted(results), "values": accs,
            "mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_seconds": [results[s]["train_seconds"] for s in sorted(results)],
            "runs": {str(s): results[s] for s in sorted(results)}}


def run(args: argparse.Namespace) -> int:
    extra = train_argv(args.train_args)
    seeds = list(dict.fromkeys(args.seeds))  # in order, once each
    out = writable_dir(args.out, "--out", "choose a folder you can write to")
    cores = os.cpu_count() or 1
    # On a CPU more workers than cores only share them; on a GPU small models share it well.
    workers = min(args.workers or cores, len(seeds))
    threads = max(1, cores // workers)
    print(f"{len(seeds)} seeds, {workers} at a time, {threads} thread(s) each: tinycifar train {' '.join(extra)}")
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # threads only wait on the training processes
        futures = {s: pool.submit(run_seed, s, out, extra, threads) for s in seeds}
        failures, results = [], {}
        for s, f in futures.items():
            try:
                results[s] = f.result()
                print(f"seed {s}: {final_accuracy(results[s])[1]:.2%} in "
                      f"{results[s]['train_seconds']:.0f} s of training")
            except TinyCifarError as e:
                failures.append(str(e))
    if failures:
        raise TinyCifarError("; ".join(failures))
    summary = summarize(results)
    summary.update(command=extra, workers=workers, threads_each=threads,
                   wall_seconds=time.perf_counter() - started)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    values = ", ".join(f"{v:.2%}" for v in summary["values"])
    print(f"{summary['metric']}: {100 * summary['mean']:.2f} ± {100 * summary['std']:.2f} % "
          f"(seeds {', '.join(map(str, summary['seeds']))}: {values})")
    print(f"wrote {out / 'summary.json'}")
    return 0
