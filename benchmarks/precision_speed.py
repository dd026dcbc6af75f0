"""fp32 against bf16 autocast: training-step images/s, side by side in one process.

bf16 is only fast where the hardware has it (``avx512_bf16``/``amx_bf16`` CPUs, recent
GPUs); elsewhere it is emulated. This says which case a machine is in, per model::

    python benchmarks/precision_speed.py --models fastnet,tinynet --threads 2
    python benchmarks/precision_speed.py --candidates --models sepnet_hires,mixernet

``--candidates`` also registers the candidate networks of the hour-recipe experiment
(``experiments/hour-recipe/train_variant.py``), which are not in the zoo.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tinycifar.models import create_model
from tinycifar.precision import autocast, cpu_info

CANDIDATES = Path(__file__).resolve().parents[1] / "experiments" / "hour-recipe" / "train_variant.py"


def step_rate(model_name: str, precision: str, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(model_name).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        with autocast(precision, torch.device("cpu")):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch_size / sorted(times[2:])[len(times[2:]) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="fastnet,tinynet")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--candidates", action="store_true",
                   help="also know the candidate networks of experiments/hour-recipe/train_variant.py "
                        "(sepnet_hires, mixernet, ...)")
    args = p.parse_args()
    if args.candidates:
        spec = importlib.util.spec_from_file_location("train_variant", CANDIDATES)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers the candidates
    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    print(f"{cpu['model']} [{', '.join(cpu['flags'])}], {args.threads} threads, batch {args.batch_size}, "
          f"torch {torch.__version__}")
    for name in args.models.split(","):
        fp32, bf16 = step_rate(name, "fp32", args.batch_size, args.steps), step_rate(name, "bf16", args.batch_size, args.steps)
        print(f"{name:12s} fp32 {fp32:7.0f} img/s   bf16 {bf16:7.0f} img/s   bf16/fp32 {bf16 / fp32:.2f}x", flush=True)


if __name__ == "__main__":
    main()
