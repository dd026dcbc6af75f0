"""Time to accuracy: the fast recipe against the shipped 30-epoch one, side by side.

In one process, on the same CPU, with nothing else running:

1. the shipped recipe (``classic``, tinynet, fp32, evaluated every epoch) is timed for
   ``--baseline-epochs`` epochs and extrapolated to its 30 (an epoch costs the same
   whatever the schedule); its accuracy is the recorded 3-seed figure
   (``--baseline-acc``, from ``benchmarks/results/``), not re-run;
2. the fast recipe (``--model fastnet --recipe fast``, ``--precision auto``) runs whole
   for every seed on all 50,000 training images, and its final epoch is scored on the
   official test set. Nothing is selected on the test set.

Prints, per seed, accuracy, training time, whole-process wall time, training TMAC,
precision and CPU, then the ratio of training times; writes ``time_to_accuracy.json``
and a figure of accuracy against training time into ``--out``::

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data --out runs/tta
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from tinycifar.data import load_cifar10
from tinycifar.figures import new_figure, save_figure
from tinycifar.models import create_model
from tinycifar.precision import cpu_info, resolve_precision
from tinycifar.recipe import load_recipe
from tinycifar.runconfig import RunConfig
from tinycifar.summary import summarize
from tinycifar.train import fit

PROCESS_START = time.perf_counter()


def train_tmac(model: str, epochs: int, images: int, batch_size: int) -> float:
    """Training compute: forward + backward ≈ 3× the forward MACs, per image seen."""
    seen = epochs * (images // batch_size) * batch_size
    return 3 * summarize(create_model(model)).macs * seen / 1e12


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/time_to_accuracy"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--model", default="fastnet")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="a CPU benchmark: cpu, even where torch sees a GPU (default)")
    p.add_argument("--baseline-epochs", type=int, default=2, help="epochs of the shipped recipe to time")
    p.add_argument("--baseline-acc", type=float, nargs="+", default=[0.8815, 0.8761, 0.8771],
                   help="the shipped recipe's recorded test accuracies (3 seeds; docs/reproducing.md)")
    p.add_argument("--limit", type=int, default=None,
                   help="smoke test: train on the first N training images, 2 epochs each")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="DIR",
                   help="train nothing: merge the time_to_accuracy.json of processes run side by side, "
                        "each on cores of its own, into one summary and figure in --out")
    args = p.parse_args()
    if args.merge:
        return write(merge(args.merge), args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    cpu = cpu_info()
    torch.set_num_threads(torch.get_num_threads())
    train, test = load_cifar10("train", args.data_dir), load_cifar10("test", args.data_dir)
    if args.limit:
        train, test = (train[0][:args.limit], train[1][:args.limit]), (test[0][:1000], test[1][:1000])

    shipped = load_recipe("classic")
    t0 = time.perf_counter()
    timed = dataclasses.replace(shipped, epochs=args.baseline_epochs,
                                warmup_epochs=min(shipped.warmup_epochs, args.baseline_epochs))
    base = fit(RunConfig("tinynet", timed, device=args.device, precision="fp32"), train, test, args.out / "baseline")
    base_wall = time.perf_counter() - t0
    base_train_s = base["train_seconds"] * shipped.epochs / args.baseline_epochs
    print(f"shipped recipe (tinynet, {shipped.epochs} epochs, fp32): {base['train_seconds']:.0f} s for "
          f"{args.baseline_epochs} epochs -> {base_train_s / 60:.1f} min for {shipped.epochs} "
          f"(extrapolated), {train_tmac('tinynet', shipped.epochs, len(train[0]), shipped.batch_size):.1f} TMAC",
          flush=True)

    recipe = load_recipe(args.recipe)
    if args.limit:
        recipe = dataclasses.replace(recipe, epochs=2, warmup_epochs=0.4)
    precision = resolve_precision(args.precision, torch.device(args.device))
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        m = fit(RunConfig(args.model, recipe, seed=seed, device=args.device, precision=precision), train, test,
                args.out / f"{args.model}-seed{seed}")
        runs.append({"seed": seed, "test_acc": m["eval_acc"], "train_s": m["train_seconds"],
                     "wall_s": time.perf_counter() - t0, "epochs": m["epochs"], "precision": m["precision"],
                     "tmac": train_tmac(args.model, m["epochs"], len(train[0]), recipe.batch_size)})
        r = runs[-1]
        print(f"seed {seed}: test acc {r['test_acc']:.2%}  training {r['train_s']:.0f} s  "
              f"wall {r['wall_s']:.0f} s  {r['tmac']:.1f} TMAC  {r['precision']}  {cpu['model']}", flush=True)

    baseline = {"model": "tinynet", "recipe": "classic", "precision": "fp32",
                "timed_epochs": args.baseline_epochs, "timed_s": base["train_seconds"],
                "train_s_extrapolated": base_train_s, "wall_s_timed": base_wall,
                "recorded_acc": args.baseline_acc}
    summary = summarize_runs(runs, baseline, {
        "cpu": cpu["model"], "cpu_flags": cpu["flags"], "threads": torch.get_num_threads(),
        "torch": torch.__version__, "model": args.model, "recipe": args.recipe, "precision": precision,
        "process_wall_s": time.perf_counter() - PROCESS_START})
    write(summary, args.out)


def summarize_runs(runs: list[dict], baseline: dict, facts: dict) -> dict:
    accs = [100 * r["test_acc"] for r in runs]
    return {**facts, "fast": runs, "fast_acc_mean": statistics.mean(accs),
            "fast_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "baseline": baseline,
            "ratio": statistics.mean(r["train_s"] for r in runs) / baseline["train_s_extrapolated"]}


def merge(folders: list[Path]) -> dict:
    """One summary from processes that each timed the baseline beside some of the seeds
    (``bf16_host_session.sh`` runs one a seed, each on 2 cores of its own): the seeds
    together, the baseline's time their mean, and each process's own ratio kept."""
    parts = [json.loads((f / "time_to_accuracy.json").read_text()) for f in folders]
    facts = {k: parts[0][k] for k in ("cpu", "cpu_flags", "threads", "torch", "model", "recipe", "precision")}
    epochs = {(p["baseline"]["timed_epochs"], r["epochs"]) for p in parts for r in p["fast"]}
    if any({k: p[k] for k in facts} != facts for p in parts) or len(epochs) != 1:
        raise SystemExit("the summaries differ in CPU, threads, torch, model, recipe, precision or epochs "
                         "(a --limit smoke run among full ones?)")
    base_s = statistics.mean(p["baseline"]["train_s_extrapolated"] for p in parts)
    baseline = {**parts[0]["baseline"], "train_s_extrapolated": base_s,
                "timed_s": [p["baseline"]["timed_s"] for p in parts]}
    facts.update(process_wall_s=max(p["process_wall_s"] for p in parts),
                 processes=len(parts), process_ratios=[p["ratio"] for p in parts])
    return summarize_runs([r for p in parts for r in p["fast"]], baseline, facts)


def write(summary: dict, out: Path) -> None:
    accs = [100 * r["test_acc"] for r in summary["fast"]]
    fast_s = statistics.mean(r["train_s"] for r in summary["fast"])
    print(f"\nfast: {summary['fast_acc_mean']:.2f} ± {summary['fast_acc_std']:.2f} % "
          f"(min {min(accs):.2f}), {fast_s:.0f} s of training a run ({summary['precision']}); shipped: "
          f"{summary['baseline']['train_s_extrapolated']:.0f} s (fp32); ratio {summary['ratio']:.3f} "
          f"(1/{1 / summary['ratio']:.1f}) on {summary['cpu']} [{', '.join(summary['cpu_flags'])}], "
          f"{summary['threads']} threads; whole process {summary['process_wall_s'] / 60:.1f} min")
    out.mkdir(parents=True, exist_ok=True)
    (out / "time_to_accuracy.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, out / "time_to_accuracy.png")


def plot(s: dict, path: Path) -> None:
    fig = new_figure(6, 4)
    ax = fig.subplots()
    base_acc = [100 * a for a in s["baseline"]["recorded_acc"]]
    base_min = s["baseline"]["train_s_extrapolated"] / 60
    ax.scatter([base_min] * len(base_acc), base_acc, marker="s",
               label="classic: tinynet, 30 epochs, fp32 (time measured, accuracy recorded)")
    ax.scatter([r["train_s"] / 60 for r in s["fast"]], [100 * r["test_acc"] for r in s["fast"]],
               marker="o", label=f"fast: {s['model']}, {s['fast'][0]['epochs']} epochs, {s['precision']}")
    ax.axhline(87.0, color="grey", lw=0.8, ls="--", label="87% goal")
    ax.set(xlabel=f"training time (min), {s['cpu']}, {s['threads']} threads", ylabel="test accuracy (%)",
           title="time to accuracy (each point a seed)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="center", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
