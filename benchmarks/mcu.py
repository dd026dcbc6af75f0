"""Every zoo model with weights and MLPerf Tiny's IC01 reference, side by side in TFLM.

For each model: its int8 ``.tflite`` (``tinycifar export --int8``'s conversion, calibrated
as shipped), flash (the file's bytes) and RAM (TFLM's arena, its own report) against the
estimate ``tinycifar models`` prints, MACs, int8 accuracy in TFLM on the official test set,
fp32 accuracy in PyTorch, top-1 agreement of TFLM with LiteRT and with PyTorch, and TFLM's
milliseconds an image on this CPU (x86 reference kernels: a ranking, not a microcontroller's
latency). Models without shipped weights take ``--weights NAME=FILE``; the rest are skipped.
Writes a JSON, a Markdown table and a figure (accuracy against arena, bubble area flash).

    python benchmarks/mcu.py --data-dir ../shared/data \\
        --reference ../shared/peers/mlperf-tiny-ic01/pretrainedResnet_quant.tflite \\
        --out benchmarks/results/mcu [--images 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tinycifar import memory, tflite_export
from tinycifar.data import load_cifar10
from tinycifar.export import calibration_sample
from tinycifar.inference import predict_logits
from tinycifar.models import list_models
from tinycifar.precision import cpu_info
from tinycifar.pretrained import load_model, pretrained_path
from tinycifar.summary import summarize
from tinycifar.tflite_file import TfliteClassifier

CPU = torch.device("cpu")


def measure(path: Path, images: torch.Tensor, labels: torch.Tensor) -> dict:
    micro = TfliteClassifier(path, "tflm")
    t0 = time.perf_counter()
    scores = micro.logits(images)
    ms = 1000 * (time.perf_counter() - t0) / len(images)
    lite = TfliteClassifier(path, "litert").logits(images)
    return {
        "flash_bytes": path.stat().st_size,
        "arena_bytes": micro.arena_bytes(),
        "int8_acc": float((scores.argmax(1) == labels).float().mean()),
        "tflm_litert_agreement": float((scores.argmax(1) == lite.argmax(1)).float().mean()),
        "tflm_ms": ms,
        "_scores": scores,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--reference", type=Path, default=None, help="IC01's pretrainedResnet_quant.tflite")
    p.add_argument("--weights", nargs="*", default=[], metavar="NAME=FILE", help="weights for models without shipped")
    p.add_argument("--images", type=int, default=10_000, help="test images (the first N)")
    p.add_argument("--models", default=None, help="comma-separated subset of the zoo (default: every model)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    given = dict(w.split("=", 1) for w in args.weights)
    train, _ = load_cifar10("train", args.data_dir)
    images, labels = load_cifar10("test", args.data_dir)
    images, labels = images[: args.images], labels[: args.images]
    calibration = calibration_sample(train, tflite_export.CALIBRATION_IMAGES)
    rows = []
    if args.reference:
        row = {"model": "IC01 reference (MLPerf Tiny)", "params": 78_666, "macs": 12_500_000}
        row.update(measure(args.reference, images, labels))
        rows.append(row)
        print(_line(row), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(",") if args.models else list_models():
            weights = given.get(name)
            if weights is None and not pretrained_path(name).exists():
                continue
            model = load_model(name, weights, CPU)
            s = summarize(model)
            path = Path(scratch) / f"{name}.int8.tflite"
            tflite_export.write(path, tflite_export.convert(model, name, calibration))
            ours = predict_logits(model, images, CPU)
            row = {"model": name, "weights": weights or "shipped", "params": s.total_params, "macs": s.macs}
            row.update(measure(path, images, labels))
            estimate = memory.estimate(model)
            row.update(
                fp32_acc=float((ours.argmax(1) == labels).float().mean()),
                pytorch_agreement=float((row["_scores"].argmax(1) == ours.argmax(1)).float().mean()),
                flash_estimate=estimate.flash_bytes,
                ram_estimate=estimate.ram_bytes,
            )
            rows.append(row)
            print(_line(row), flush=True)
    for row in rows:
        row.pop("_scores")
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"cpu": cpu_info(), "torch": torch.__version__, "images": len(images), "rows": rows}
    (args.out / "mcu.json").write_text(json.dumps(info, indent=2) + "\n")
    (args.out / "mcu.md").write_text(_table(info))
    _figure(rows, args.out / "mcu.png")
    print(_table(info))


def _line(row: dict) -> str:
    return f"{row['model']}: int8 {row['int8_acc']:.2%}, flash {row['flash_bytes']:,}, arena {row['arena_bytes']:,}"


def _table(info: dict) -> str:
    out = [
        f"TFLM on {info['images']:,} official test images; CPU {info['cpu']['model']} "
        f"({', '.join(info['cpu']['flags'])}), torch {info['torch']}; ms: x86 reference kernels, not MCU latency.",
        "",
        "| model | params | MACs (M) | flash B | arena B | est. flash | est. RAM | int8 TFLM | fp32 | "
        "TFLM = LiteRT | TFLM = PyTorch | TFLM ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in info["rows"]:
        out.append(
            f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.2f} | {r['flash_bytes']:,} | "
            f"{_cell(r, 'arena_bytes', ',')} | {_cell(r, 'flash_estimate', ',')} | {_cell(r, 'ram_estimate', ',')} | "
            f"{r['int8_acc']:.2%} | {_cell(r, 'fp32_acc', '.2%')} | {r['tflm_litert_agreement']:.2%} | "
            f"{_cell(r, 'pytorch_agreement', '.2%')} | {r['tflm_ms']:.2f} |"
        )
    return "\n".join(out) + "\n"


def _cell(row: dict, key: str, fmt: str) -> str:
    return "—" if row.get(key) is None else format(row[key], fmt)


def _figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        reference = r["model"].startswith("IC01")
        ax.scatter(
            r["arena_bytes"] / 1000,
            100 * r["int8_acc"],
            s=r["flash_bytes"] / 300,
            alpha=0.6,
            color="tab:red" if reference else "tab:blue",
        )
        ax.annotate(
            r["model"],
            (r["arena_bytes"] / 1000, 100 * r["int8_acc"]),
            fontsize=8,
            xytext=(6, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("RAM: TFLM arena (KB)")
    ax.set_ylabel("int8 top-1 in TFLM, official test set (%)")
    ax.set_title("tinycifar on a microcontroller (bubble area: flash)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
