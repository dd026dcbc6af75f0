"""Numeric precision: fp32, or bf16 autocast where the hardware runs it natively.

Only the forward pass's matmuls and convolutions run in bf16 under autocast; weights,
optimizer state, BatchNorm statistics and the loss stay fp32
(``tests/test_fast_training.py`` checks it). On a CPU without native bf16 (no
``avx512_bf16`` / ``amx_bf16``) bf16 is emulated: 7–14× slower than fp32 on an AVX2
EPYC (``benchmarks/precision_speed.py``), so ``auto`` never picks it there.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
from functools import lru_cache
from pathlib import Path

import torch

from tinycifar.errors import TinyCifarError

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, object]:
    """CPU model name and the flags that decide kernel speed (Linux; best effort elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "flags": [f for f in _REPORTED_FLAGS if f in flags]}


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(f in cpu_info()["flags"] for f in BF16_CPU_FLAGS)


# On a CPU, `auto` may pick bf16 only once a side-by-side table (3 seeds each, validation
# split) shows it costs no accuracy. No session has had a bf16 CPU to measure it on yet
# (README, "Precision"): until then `auto` is fp32 there and bf16 is there to be asked for.
# On a GPU bf16 autocast is the field's default (airbench, timm) and `auto` takes it.
BF16_PARITY_SHOWN = False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` where it is native to ``device`` and shown to cost no accuracy,
    else ``fp32``; ``fp32`` and ``bf16`` are taken as asked."""
    if name not in PRECISIONS:
        raise TinyCifarError(f"unknown precision {name!r}; use {', '.join(PRECISIONS)}")
    if name == "auto":
        shown = BF16_PARITY_SHOWN or device.type == "cuda"
        return "bf16" if shown and native_bf16(device) else "fp32"
    return name


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    """``--precision``, the same for train, evaluate and predict."""
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="fp32, or bf16 autocast (fast only where the CPU or GPU runs bf16 "
                             "natively); auto: bf16 on a GPU, fp32 on a CPU until bf16 is shown to cost no "
                             "accuracy there (default)")


def describe(precision: str, device: torch.device) -> str:
    """One line for the console: the precision and, for bf16 without hardware support, why it is slow."""
    if precision == "bf16" and not native_bf16(device):
        return "bf16 (emulated: this CPU has no avx512_bf16 or amx_bf16, expect it slower than fp32)"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the forward pass runs in: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
