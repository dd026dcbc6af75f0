"""Numeric precision: fp32, or bf16 autocast where the hardware runs it natively.

Only the forward pass's matmuls and convolutions run in bf16 under autocast; weights,
optimizer state, BatchNorm statistics and the loss stay fp32
(``tests/test_precision.py`` checks it). On a CPU without native bf16 (no
``avx512_bf16`` / ``amx_bf16``) bf16 is emulated: 7–14× slower than fp32 on an AVX2
EPYC (``benchmarks/precision_speed.py``), so ``auto`` never picks it there.
"""

from __future__ import annotations

import contextlib
import platform
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

import torch

from tinycifar.errors import TinyCifarError

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


class CpuInfo(TypedDict):
    model: str
    flags: list[str]


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
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


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` where it is native to ``device``, else ``fp32``; ``fp32`` and
    ``bf16`` are taken as asked. On a CPU, bf16 was shown to cost no accuracy (fp32 against
    bf16, 3 seeds each, validation split: docs/precision-and-time.md); on a GPU it is the field's
    default (airbench, timm)."""
    if name not in PRECISIONS:
        raise TinyCifarError(f"unknown precision {name!r}; use {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


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
