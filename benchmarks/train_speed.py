"""Training and inference throughput of the model zoo, side by side, on this machine.

Every model runs in the same process on the same random batch: channels_last, one SGD
step (forward, cross-entropy, backward, update) per timed iteration, ``--warmup`` steps
discarded, then ``--steps`` timed; inference is the same batch through the model in eval
mode under ``torch.inference_mode``. MACs and parameters say what a model *should* cost;
this says what it costs here. Ratios against ``seed`` (the task's original network) are the
honest speed figure, because absolute images/s depend on the CPU and on what else runs.

Run it on a quiet machine (nothing else using the cores)::

    python benchmarks/train_speed.py                       # every registered model
    python benchmarks/train_speed.py --models tinynet,seed --batch-size 128 --json speed.json
    python benchmarks/train_speed.py --steps 2 --warmup 1  # smoke test

``--rounds N`` cycles through the models N times and keeps each model's best round, which
evens out drift (thermal, background load) between models measured at different times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn as nn

from tinycifar.models import create_model, list_models
from tinycifar.precision import autocast, cpu_info
from tinycifar.summary import summarize

REFERENCE = "seed"


def _batch(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), generator=g)
    return x, y


def train_throughput(model: nn.Module, x: torch.Tensor, y: torch.Tensor, warmup: int, steps: int,
                     precision: str = "fp32") -> float:
    """Images per second over ``steps`` SGD steps after ``warmup`` untimed ones, the forward
    pass under ``precision``'s autocast (the training loop's)."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, torch.device("cpu")):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.shape[0] / (time.perf_counter() - t0)


def infer_throughput(model: nn.Module, x: torch.Tensor, warmup: int, steps: int) -> float:
    model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        return steps * x.shape[0] / (time.perf_counter() - t0)


def measure(names: list[str], batch_size: int, warmup: int, steps: int, rounds: int,
            bf16: bool = False) -> list[dict]:
    x, y = _batch(batch_size)
    results: dict[str, dict] = {}
    for name in names:
        s = summarize(create_model(name))
        results[name] = {
            "model": name,
            "params": s.total_params,
            "macs": s.macs,
            "receptive_field": s.receptive_field,
            "train_img_s": 0.0,
            "infer_img_s": 0.0,
            **({"train_bf16_img_s": 0.0} if bf16 else {}),
        }
    for r in range(rounds):
        for name in names:
            torch.manual_seed(0)
            model = create_model(name).to(memory_format=torch.channels_last)
            train = train_throughput(model, x, y, warmup, steps)
            infer = infer_throughput(model, x, warmup, steps)
            res = results[name]
            res["train_img_s"] = max(res["train_img_s"], train)
            res["infer_img_s"] = max(res["infer_img_s"], infer)
            if bf16:
                res["train_bf16_img_s"] = max(res["train_bf16_img_s"],
                                              train_throughput(model, x, y, warmup, steps, "bf16"))
            print(f"  round {r + 1}/{rounds} {name}: train {train:,.0f} img/s, infer {infer:,.0f} img/s",
                  file=sys.stderr, flush=True)
            del model
    ref = results.get(REFERENCE)
    for res in results.values():
        for kind in ("train", "infer"):
            res[f"{kind}_vs_{REFERENCE}"] = (
                res[f"{kind}_img_s"] / ref[f"{kind}_img_s"] if ref and ref[f"{kind}_img_s"] else None
            )
    return [results[n] for n in names]


def environment(batch_size: int, warmup: int, steps: int, rounds: int) -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_info()["model"],
        "cpu_flags": cpu_info()["flags"],
        "cpu_count": os.cpu_count(),
        "batch_size": batch_size,
        "warmup": warmup,
        "steps": steps,
        "rounds": rounds,
        "channels_last": True,
    }


def _ratio(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def format_markdown(results: list[dict], env: dict) -> str:
    lines = [
        f"torch {env['torch']}, {env['threads']} threads, CPU: {env['cpu']} ({env['cpu_count']} logical cores); "
        f"batch {env['batch_size']}, channels_last, {env['warmup']} warm-up + {env['steps']} timed steps"
        + (f", best of {env['rounds']} rounds" if env["rounds"] > 1 else ""),
        "",
        "| model | params | MACs (M) | receptive field | train img/s | train img/s, bf16 | infer img/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rf = "-" if r["receptive_field"] is None else str(r["receptive_field"])
        bf16 = f"{r['train_bf16_img_s']:,.0f}" if "train_bf16_img_s" in r else "-"
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.2f} | {rf} | "
            f"{r['train_img_s']:,.0f} | {bf16} | {r['infer_img_s']:,.0f} |"
        )
    lines += ["", f"Relative to `{REFERENCE}` (higher is faster):", "",
              f"| model | train vs {REFERENCE} | infer vs {REFERENCE} |", "|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {_ratio(r[f'train_vs_{REFERENCE}'])} | "
                     f"{_ratio(r[f'infer_vs_{REFERENCE}'])} |")
    return "\n".join(lines)


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="", metavar="A,B",
                   help="comma-separated model names (default: every registered model); "
                        f"{REFERENCE!r} is added as the reference if missing")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default 3)")
    p.add_argument("--steps", type=_positive, default=10, help="timed steps (default 10)")
    p.add_argument("--rounds", type=_positive, default=1,
                   help="cycle through the models this many times, keep each one's best (default 1)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="torch.set_num_threads (default: leave torch's default)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--bf16", action="store_true",
                   help="also time training under bf16 autocast (slow where the CPU only emulates it)")
    args = p.parse_args(argv)

    known = list_models()
    names = [n.strip() for n in args.models.split(",") if n.strip()] or known
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from: {', '.join(known)}")
    if REFERENCE not in names:
        names.append(REFERENCE)
    if args.threads:
        torch.set_num_threads(args.threads)

    env = environment(args.batch_size, args.warmup, args.steps, args.rounds)
    results = measure(names, args.batch_size, args.warmup, args.steps, args.rounds, args.bf16)
    print(format_markdown(results, env))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "results": results}, f, indent=2)
            f.write("\n")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
