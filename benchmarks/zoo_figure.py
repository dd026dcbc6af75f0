"""The zoo's accuracy against parameters and against training time, with published
figures for networks of this size drawn beside them and marked as such.

Reads the zoo runs (common `classic` recipe; ``results/gpu-h200-2026-11-26/zoo-*``), the
CPU training speed (``results/zoo/train_speed.json``, from ``train_speed.py --bf16``) and
the measured fast-recipe runs (``results/time_to_accuracy/``) and sepnet_g31's test runs
with its ``long`` recipe (``results/sepnet_g31/``, whole runs timed on the bf16 EPYC), and
writes ``docs/zoo-accuracy.png`` (``--out`` for another path). Trains nothing::

    python benchmarks/zoo_figure.py
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from tinycifar import records
from tinycifar.figures import new_figure, save_figure

HERE = Path(__file__).parent
ROOT = HERE.parent
CLASSIC_EPOCHS, TRAIN_IMAGES = 30, 50_000

# Published figures (label, parameters, accuracy %, minutes on the 2-core CPU or None);
# where each comes from: experiments/hour-recipe/README.md.
ANCHORS = [
    ("xvel/cifar10-tiniest (200 ep.)", 97_530, 94.4, 16 * 60),
    ("airbench94 ported, 60 ep. (bf16 CPU)", 94_776, 88.75, 11.7),
    ("MLPerf Tiny ResNet-8 target", 78_000, 85.0, None),
    ("course submissions, 100 ep.", 99_000, 87.2, None),
]


def zoo_accuracy() -> dict[str, list[float]]:
    acc: dict[str, list[float]] = defaultdict(list)
    for m in sorted((HERE / "results/gpu-h200-2026-11-26").glob("zoo-*-classic-s*/metrics.json")):
        metrics = json.loads(m.read_text())
        acc[metrics["model"]].append(100 * records.metrics(metrics)["eval_acc"])
    return acc


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs/zoo-accuracy.png", help="the figure's path")
    args = p.parse_args(argv)
    acc = zoo_accuracy()
    speed = {r["model"]: r for r in json.loads((HERE / "results/zoo/train_speed.json").read_text())["results"]}
    fig = new_figure(13, 5)
    by_params, by_time = fig.subplots(1, 2)
    for name, values in acc.items():
        mean = statistics.mean(values)
        params = speed[name]["params"]
        minutes = CLASSIC_EPOCHS * TRAIN_IMAGES / speed[name]["train_img_s"] / 60
        for ax, x in ((by_params, params), (by_time, minutes)):
            ax.errorbar(x, mean, yerr=statistics.stdev(values) if len(values) > 1 else None, fmt="o",
                        color="tab:blue", capsize=3)
            ax.annotate(name, (x, mean), textcoords="offset points", xytext=(5, 4), fontsize=8)
    runs = json.loads((HERE / "results/time_to_accuracy/time_to_accuracy.json").read_text())["fast"]
    if runs:
        mean_acc = statistics.mean(100 * r["test_acc"] for r in runs)
        mean_min = statistics.mean(r["train_s"] for r in runs) / 60
        by_time.plot(mean_min, mean_acc, "s", color="tab:green")
        by_time.annotate("fastnet, fast recipe (measured)", (mean_min, mean_acc), textcoords="offset points",
                         xytext=(5, -10), fontsize=8, color="tab:green")
    long = [json.loads(f.read_text()) for f in sorted((HERE / "results/sepnet_g31").glob("*.json"))]
    if long:
        values = [100 * records.metrics(r["metrics"])["eval_acc"] for r in long]
        mean_acc, mean_min = statistics.mean(values), statistics.mean(r["metrics"]["train_seconds"] for r in long) / 60
        err = statistics.stdev(values) if len(values) > 1 else None
        for ax, x in ((by_params, long[0]["metrics"]["params"]), (by_time, mean_min)):
            ax.errorbar(x, mean_acc, yerr=err, fmt="s", color="tab:green", capsize=3)
            ax.annotate("sepnet_g31, long recipe (measured, bf16 EPYC)", (x, mean_acc), textcoords="offset points",
                        xytext=(5, 4), fontsize=8, color="tab:green")
    for label, params, a, minutes in ANCHORS:
        by_params.plot(params, a, "D", color="tab:orange", mfc="none")
        by_params.annotate(label + " (published)", (params, a), textcoords="offset points", xytext=(-5, 5),
                           fontsize=7, color="tab:orange", ha="right")
        if minutes is not None:
            right = minutes > 100  # label toward the middle of the panel
            by_time.plot(minutes, a, "D", color="tab:orange", mfc="none")
            by_time.annotate(label + " (published)", (minutes, a), textcoords="offset points",
                             xytext=(-5 if right else 5, 5), fontsize=7, color="tab:orange",
                             ha="right" if right else "left")
    by_params.axvline(100_000, color="grey", ls="--", lw=1)
    by_params.set(xlabel="parameters", ylabel="test accuracy (%)",
                  title="Accuracy against parameters (ours: classic recipe, mean ± std)")
    by_time.set_xscale("log")
    by_time.set(xlabel="training time on the project's 2-core CPU (minutes, log)", ylabel="test accuracy (%)",
                title="Accuracy against training time")
    by_params.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:.0f}k")
    fig.text(0.5, 0.01, "Ours (blue): test accuracy of the classic recipe (trained on an H200, bf16); time = 30 epochs × "
             "50,000 images ÷ measured training img/s (fp32, AVX2 EPYC, 2 threads), a lower bound: a real run "
             "adds augmentation and evaluation. Green: whole runs with their own recipes, timed. Orange: published "
             "figures, not measured here.",
             ha="center", fontsize=7.5, wrap=True)
    for ax in (by_params, by_time):
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = save_figure(fig, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
