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
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tinycifar.atomic import write_json
from tinycifar.errors import TinyCifarError
from tinycifar.paths import writable_dir
from tinycifar.runfolder import run_lock


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.cli import whole_number

    p.add_argument("--seeds", type=whole_number(0, 2**32 - 1), nargs="+", default=[0, 1, 2], metavar="N",
                   help="seeds to train (default: 0 1 2)")
    p.add_argument("--workers", type=whole_number(1), default=None, metavar="N",
                   help="seeds trained at once; the cores are split between them (default: one per core)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and summary.json")
    p.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN OPTIONS",
                   help="the tinycifar train options every seed runs with")


# Options of `tinycifar train` that repeat sets itself, with what to use instead.
_OWN = {"seed": "use --seeds", "out": "use repeat's --out", "resume": "repeat resumes by itself",
        "plan": "ask `tinycifar train --time ... --plan` for the plan", "overwrite": "use another --out"}


def train_argv(extra: list[str]) -> list[str]:
    """The train options after ``--``, checked by train's own parser: any spelling of an
    option repeat sets itself (``--seed=5``, the abbreviation ``--see 5``) is refused, since
    argparse would take the last one and every "seed" would train the same run."""
    from tinycifar import train

    extra = extra[1:] if extra[:1] == ["--"] else extra
    parser = argparse.ArgumentParser(prog="tinycifar repeat -- ", add_help=False)
    train.configure_parser(parser)
    unset = object()
    parser.set_defaults(**{name: unset for name in _OWN})
    try:
        parsed = parser.parse_args(extra)
    except SystemExit:
        raise TinyCifarError(f"bad train options after --: {' '.join(extra)} (see tinycifar train --help)") from None
    taken = [name for name in _OWN if getattr(parsed, name) is not unset]
    if taken:
        flags = ", ".join(f"--{name}" for name in taken)
        raise TinyCifarError(f"{flags} after --: repeat sets them itself ({'; '.join(_OWN[n] for n in taken)})")
    return extra


def run_seed(seed: int, out: Path, extra: list[str], threads: int) -> dict[str, Any]:
    """Train (or resume, or just read) one seed; its metrics."""
    from tinycifar.checkpoint import check_resumable

    folder = out / f"seed-{seed}"
    if (folder / "metrics.json").is_file():
        return read_run(folder, seed)
    try:
        check_resumable(folder)
        resume = ["--resume"]
    except TinyCifarError:
        resume = []
    cmd = [sys.executable, "-m", "tinycifar", "train", "--seed", str(seed), "--out", str(folder),
           "--no-progress", *resume, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log = out / f"seed-{seed}.log"
    try:  # appended as it comes, so never through a symlink planted in its place
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        raise TinyCifarError(f"cannot write {log} ({e.strerror or e}): remove it, or choose another --out") from None
    with os.fdopen(fd, "a") as console:
        done = subprocess.run(cmd, stdout=console, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0 or not (folder / "metrics.json").is_file():
        raise TinyCifarError(f"seed {seed} failed (exit code {done.returncode}): see {log}")
    return read_run(folder, seed)


def read_run(folder: Path, seed: int) -> dict[str, Any]:
    """A finished run's metrics, with the fingerprint of its config; one clear error for a
    file that is missing, empty, corrupt, or of another seed."""
    from tinycifar.untrusted import read_bytes

    fix = f"delete {folder} to train seed {seed} again"
    values = {}
    for name in ("metrics.json", "config.json"):
        data = read_bytes(folder / name, 1 << 20, f"{folder / name}", fix)
        try:
            values[name] = json.loads(data)
        except (ValueError, RecursionError):
            values[name] = None
        if not isinstance(values[name], dict):
            raise TinyCifarError(f"{folder / name} is empty or not a JSON record: {fix}")
    metrics, config = values["metrics.json"], values["config.json"]
    if config.get("seed") != seed or metrics.get("seed") != seed:
        raise TinyCifarError(f"{folder} holds a run of seed {config.get('seed')!r}, not {seed}: {fix}")
    try:
        final_accuracy(metrics)
        float(metrics["train_seconds"])
    except (StopIteration, KeyError, TypeError, ValueError):
        raise TinyCifarError(f"{folder / 'metrics.json'} is not the record of a finished run: {fix}") from None
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return {**metrics, "config_fingerprint": digest}


def final_accuracy(metrics: dict[str, Any]) -> tuple[str, float]:
    """A run's final accuracy and its key (``final_test_acc`` or ``final_val_acc``)."""
    key = next(k for k in metrics if k.startswith("final_") and k.endswith("_acc"))
    if type(metrics[key]) is not float:
        raise TypeError(key)
    return key, metrics[key]


def summarize(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of the seeds' final accuracy; refused when two
    seeds are one run (the same config fingerprint), which would fake a spread."""
    prints = [r["config_fingerprint"] for r in results.values() if "config_fingerprint" in r]
    if len(set(prints)) < len(prints):
        raise TinyCifarError("two seeds hold the same run (one config fingerprint): their spread would not be "
                             "a spread over seeds; delete the copies and run repeat again")
    key = final_accuracy(next(iter(results.values())))[0]
    accs = [results[s][key] for s in sorted(results)]
    return {"metric": key, "seeds": sorted(results), "values": accs,
            "mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_seconds": [results[s]["train_seconds"] for s in sorted(results)],
            "runs": {str(s): results[s] for s in sorted(results)}}


def run(args: argparse.Namespace) -> int:
    extra = train_argv(args.train_args)
    out = writable_dir(args.out, "--out", "choose a folder you can write to")
    with run_lock(out):  # a second repeat in this folder would train the same seeds again
        return _repeat(args, extra, out)


def _repeat(args: argparse.Namespace, extra: list[str], out: Path) -> int:
    seeds = list(dict.fromkeys(args.seeds))  # in order, once each
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
    write_json(out / "summary.json", summary)
    values = ", ".join(f"{v:.2%}" for v in summary["values"])
    print(f"{summary['metric']}: {100 * summary['mean']:.2f} ± {100 * summary['std']:.2f} % "
          f"(seeds {', '.join(map(str, summary['seeds']))}: {values})")
    print(f"wrote {out / 'summary.json'}")
    return 0
