"""Inference speed of one model four ways, side by side in one process: PyTorch fp32,
PyTorch bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (the files ``tinycifar
export --int8`` writes), on the same images and the same number of threads.

Batch-1 latency (median and p99 over ``--latency-runs`` single images, the device case)
and batch-256 throughput. Rounds alternate between the engines so that drift on a shared
machine hits all of them alike; each engine keeps its best round. Each input starts as
uint8 pixels and the time includes the normalisation (PyTorch's ``prepare``; inside the
ONNX graph).

    python benchmarks/inference_speed.py [--model fastnet] [--weights W] [--threads 2] \\
        [--json benchmarks/results/inference_speed.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version as _version
from pathlib import Path

import numpy as np
import torch

from tinycifar.data import load_cifar10
from tinycifar.export import calibration_sample, export_onnx, int8_path, quantize_int8
from tinycifar.inference import prepare
from tinycifar.onnx_file import OnnxClassifier
from tinycifar.precision import autocast, cpu_info
from tinycifar.pretrained import load_model, resolve_model_name

CPU = torch.device("cpu")


def torch_engine(model: torch.nn.Module, precision: str) -> Callable[[torch.Tensor], None]:
    @torch.inference_mode()
    def run(images: torch.Tensor) -> None:
        with autocast(precision, CPU):
            model(prepare(images, CPU))
    return run


def onnx_engine(path: Path, threads: int) -> Callable[[torch.Tensor], None]:
    clf = OnnxClassifier(path, threads=threads)
    return lambda images: clf.run(images.numpy().astype(np.float32) / 255.0)


def latencies(run: Callable[[torch.Tensor], None], images: torch.Tensor, n: int) -> list[float]:
    out = []
    for i in range(n):
        x = images[i % len(images)][None]
        t0 = time.perf_counter()
        run(x)
        out.append(time.perf_counter() - t0)
    return out


def throughput(run: Callable[[torch.Tensor], None], images: torch.Tensor, batches: int) -> float:
    t0 = time.perf_counter()
    for _ in range(batches):
        run(images)
    return batches * len(images) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--latency-runs", type=int, default=300)
    p.add_argument("--batches", type=int, default=10, help="batch-256 runs per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    name = resolve_model_name(args.model, args.weights)
    model = load_model(name, args.weights, CPU)
    train, _ = load_cifar10("train", args.data_dir)
    images = calibration_sample(train, 256, seed=1)  # real pixels; the batch for throughput
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / f"{name}.onnx"
        export_onnx(model, fp32, name)
        quantize_int8(fp32, int8_path(fp32), calibration_sample(train, 512))
        engines = {"PyTorch fp32": (torch_engine(model, "fp32"), None),
                   "PyTorch bf16": (torch_engine(model, "bf16"), None),
                   "ONNX Runtime fp32": (onnx_engine(fp32, args.threads), fp32.stat().st_size),
                   "ONNX Runtime int8": (onnx_engine(int8_path(fp32), args.threads), int8_path(fp32).stat().st_size)}
        for run, _ in engines.values():  # warm-up: allocators, kernels, thread pools
            latencies(run, images, 20)
            run(images)
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label in engines}
        for _ in range(args.rounds):
            for label, (run, _) in engines.items():
                lat = sorted(latencies(run, images, args.latency_runs))
                rounds[label].append({"median_ms": 1000 * statistics.median(lat),
                                      "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
                                      "img_per_s_256": throughput(run, images, args.batches)})
    # Each engine's best round for latency (median with its own p99), best for throughput.
    best = {label: {**min(rs, key=lambda r: r["median_ms"]),
                    "img_per_s_256": max(r["img_per_s_256"] for r in rs)} for label, rs in rounds.items()}
    cpu = cpu_info()
    print(f"{name}, {args.threads} threads, torch {torch.__version__}, {cpu['model']} "
          f"({', '.join(cpu['flags']) or 'no AVX flags'}); best of {args.rounds} rounds")
    print("| engine | file size | batch-1 latency, median | p99 | batch-256 img/s |\n|---|---:|---:|---:|---:|")
    for label, (_, size) in engines.items():
        r = best[label]
        shown = "—" if size is None else f"{size / 1000:.1f} KB"
        print(f"| {label} | {shown} | {r['median_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['img_per_s_256']:,.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": name, "weights": str(args.weights or "shipped"), "threads": args.threads, "cpu": cpu,
            "torch": torch.__version__, "onnxruntime": _version("onnxruntime"),
            "rows": {k: {**best[k], "bytes": engines[k][1]} for k in engines}},
            indent=2) + "\n")


if __name__ == "__main__":
    main()
