"""``tinycifar repeat``: one training command over several seeds, as parallel workers.

    tinycifar repeat --seeds 0 1 2 --workers 3 --out runs/fast -- --model fastnet --val-split 5000

Everything after ``--`` is a ``tinycifar train`` command line (checked before anything
starts). Each seed trains in its own process into ``OUT/seed-N`` (console in
``OUT/seed-N.log``); the cores are split between the workers. A seed whose folder already
holds a finished run is read, not trained again, and one with a checkpoint is resumed, so
a figure can be assembled over several sittings. The result is each seed's final accuracy
and time, their mean ± sample standard deviation, printed and written to
``OUT/summary.json``: the figure every accuracy claim in the docs comes from.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from tinycifar import records
from tinycifar.errors import TinyCifarError
from tinycifar.runfolder import run_files


def finished(out: Path, seed: int) -> bool:
    """Whether a seed's run is done (it is then only read)."""
    return (out / f"seed-{seed}" / "metrics.json").is_file()


def run_seed(seed: int, out: Path, extra: list[str], threads: int) -> dict[str, Any]:
    """Train (or resume, or just read) one seed; its metrics."""
    from tinycifar.checkpoint import check_resumable

    folder = out / f"seed-{seed}"
    if finished(out, seed):
        return read_run(folder, seed)
    try:
        check_resumable(folder)
        resume = ["--resume"]
    except TinyCifarError:
        # repeat's own seed folder, killed before its first checkpoint: nothing to keep
        resume = ["--overwrite"] if run_files(folder) else []
    cmd = [
        sys.executable,
        "-m",
        "tinycifar",
        "train",
        "--seed",
        str(seed),
        "--out",
        str(folder),
        "--no-progress",
        *resume,
        *extra,
    ]
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
    except (KeyError, TypeError, ValueError):
        raise TinyCifarError(f"{folder / 'metrics.json'} is not the record of a finished run: {fix}") from None
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return {**metrics, "config_fingerprint": digest}


def final_accuracy(metrics: dict[str, Any]) -> float:
    """A run's final accuracy, from metrics of any version (``TypeError``/``KeyError`` if none)."""
    acc = records.metrics(metrics)["eval_acc"]
    if type(acc) is not float:
        raise TypeError("eval_acc")
    return acc


def summarize(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of the seeds' final accuracy; refused when two
    seeds are one run (the same config fingerprint), which would fake a spread."""
    prints = [r["config_fingerprint"] for r in results.values() if "config_fingerprint" in r]
    if len(set(prints)) < len(prints):
        raise TinyCifarError(
            "two seeds hold the same run (one config fingerprint): their spread would not be "
            "a spread over seeds; delete the copies and run repeat again"
        )
    accs = [final_accuracy(results[s]) for s in sorted(results)]
    eval_on = records.metrics(next(iter(results.values()))).get("eval_on", "test")
    return {
        "metric": "eval_acc",
        "eval_on": eval_on,
        "seeds": sorted(results),
        "values": accs,
        "mean": statistics.mean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "train_seconds": [results[s]["train_seconds"] for s in sorted(results)],
        "runs": {str(s): results[s] for s in sorted(results)},
    }
