"""``tinycifar repeat``."""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinycifar.atomic import write_json
from tinycifar.errors import TinyCifarError
from tinycifar.paths import writable_dir
from tinycifar.repeat import final_accuracy, finished, run_seed, summarize
from tinycifar.runfolder import run_lock


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.commands.flags import whole_number

    p.add_argument(
        "--seeds",
        type=whole_number(0, 2**32 - 1),
        nargs="+",
        default=[0, 1, 2],
        metavar="N",
        help="seeds to train (default: 0 1 2)",
    )
    p.add_argument(
        "--workers",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="seeds trained at once; the cores are split between them (default: one per core)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and summary.json")
    p.add_argument(
        "train_args",
        nargs=argparse.REMAINDER,
        metavar="-- TRAIN OPTIONS",
        help="the tinycifar train options every seed runs with",
    )


# Options of `tinycifar train` that repeat sets itself, with what to use instead.
_OWN = {
    "seed": "use --seeds",
    "out": "use repeat's --out",
    "resume": "repeat resumes by itself",
    "plan": "ask `tinycifar train --time ... --plan` for the plan",
    "overwrite": "use another --out",
}


def train_argv(extra: list[str]) -> list[str]:
    """The train options after ``--``, checked by train's own parser: any spelling of an
    option repeat sets itself (``--seed=5``, the abbreviation ``--see 5``) is refused, since
    argparse would take the last one and every "seed" would train the same run."""
    from tinycifar.commands import train

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
    if parsed.time is not None and parsed.model is None:
        raise TinyCifarError(
            "--time after -- needs --model: each seed would pick a model for itself, by its own timing"
        )
    return extra


def run(args: argparse.Namespace) -> int:
    extra = train_argv(args.train_args)
    out = writable_dir(args.out, "--out", "choose a folder you can write to")
    with run_lock(out):  # a second repeat in this folder would train the same seeds again
        return _repeat(args, extra, out)


def _repeat(args: argparse.Namespace, extra: list[str], out: Path) -> int:
    seeds = list(dict.fromkeys(args.seeds))  # in order, once each
    cores = os.cpu_count() or 1
    # On a CPU more workers than cores only share them; on a GPU small models share it well.
    # Seeds already finished are only read: the cores go to those left to train.
    left = [s for s in seeds if not finished(out, s)]
    workers = max(1, min(args.workers or cores, len(left)))
    threads = max(1, cores // workers)
    print(
        f"{len(seeds)} seeds ({len(left)} to train), {workers} at a time, {threads} thread(s) each: "
        f"tinycifar train {' '.join(extra)}"
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # threads only wait on the training processes
        futures = {s: pool.submit(run_seed, s, out, extra, threads) for s in seeds}
        failures, results = [], {}
        for s, f in futures.items():
            try:
                results[s] = f.result()
                print(f"seed {s}: {final_accuracy(results[s]):.2%} in {results[s]['train_seconds']:.0f} s of training")
            except TinyCifarError as e:
                failures.append(str(e))
    if failures:
        raise TinyCifarError("; ".join(failures))
    summary = summarize(results)
    summary.update(command=extra, workers=workers, threads_each=threads, wall_seconds=time.perf_counter() - started)
    write_json(out / "summary.json", summary)
    values = ", ".join(f"{v:.2%}" for v in summary["values"])
    print(
        f"{summary['eval_on']} accuracy: {100 * summary['mean']:.2f} ± {100 * summary['std']:.2f} % "
        f"(seeds {', '.join(map(str, summary['seeds']))}: {values})"
    )
    print(f"wrote {out / 'summary.json'}")
    return 0
