"""MLPerf Tiny's IC01 reference (int8 ResNet-8, TFLite) on the official CIFAR-10 test set,
in TFLM's interpreter and in LiteRT, before tinycifar has a TFLite path of its own.

    python experiments/mcu/reference_ic01.py --model ../shared/peers/mlperf-tiny-ic01/pretrainedResnet_quant.tflite \
        --data-dir ../shared/data

Needs `pip install ai-edge-litert tflite-micro` (a venv of its own is enough: no torch).
The input convention is the benchmark's: int8 NHWC, an 8-bit RGB pixel p goes in as p - 128.
Prints top-1 accuracy in each runtime, their agreement, TFLM's arena and the time per image
(x86 reference kernels, not microcontroller latency).
"""

from __future__ import annotations

import argparse
import pickle
import platform
import time
from pathlib import Path

import numpy as np


def test_set(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    # The local copy of the official archive, trusted here (tinycifar's own loader refuses
    # anything but numpy arrays; this script runs without tinycifar).
    with open(data_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # NHWC, uint8
    return images, np.asarray(batch[b"labels"])


def run_litert(model: bytes, images: np.ndarray) -> tuple[np.ndarray, float]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds, t0 = [], time.perf_counter()
    for img in images:
        interp.set_tensor(inp["index"], (img.astype(np.int16) - 128).astype(np.int8)[None])
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return np.array(preds), (time.perf_counter() - t0) / len(images)


def run_tflm(model: bytes, images: np.ndarray) -> tuple[np.ndarray, float, int]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    preds, t0 = [], time.perf_counter()
    for img in images:
        interp.set_input((img.astype(np.int16) - 128).astype(np.int8)[None], 0)
        interp.invoke()
        preds.append(int(np.argmax(interp.get_output(0)[0])))
    seconds = (time.perf_counter() - t0) / len(images)
    return np.array(preds), seconds, arena_used(interp)


def arena_used(interp) -> int:
    """The arena TFLM allocated, from its allocation report (which C++ prints to stderr)."""
    import os
    import re
    import tempfile

    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        report = tmp.read().decode(errors="replace")
    found = re.search(r"Arena allocation total (\d+) bytes", report)
    return int(found.group(1)) if found else -1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--limit", type=int, default=0, help="first N test images only (0: all 10,000)")
    args = p.parse_args()
    model = args.model.read_bytes()
    images, labels = test_set(args.data_dir)
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    print(f"{args.model.name}: {len(model):,} bytes; {len(images):,} test images; {platform.processor() or platform.machine()}")
    lite, lite_s = run_litert(model, images)
    print(f"LiteRT: top-1 {np.mean(lite == labels):.2%}, {1000 * lite_s:.2f} ms an image (1 thread)")
    micro, micro_s, arena = run_tflm(model, images)
    print(f"TFLM:   top-1 {np.mean(micro == labels):.2%}, {1000 * micro_s:.2f} ms an image (x86 reference kernels), "
          f"arena {arena:,} bytes")
    print(f"TFLM and LiteRT agree on {np.mean(lite == micro):.2%} of the images")


if __name__ == "__main__":
    main()
