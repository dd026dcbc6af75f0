"""The training step the fast-recipe step benchmarks time (widths, sconv, threads, compile).

One SGD step (Nesterov, momentum 0.85) of a model's trainable parameters under bf16
autocast with an fp32 loss, on a fixed random batch: the shape of `tinycifar.step.train_step`
without the data path, so the ratios isolate the network.
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def frozen_stem(model: nn.Module) -> nn.Module:
    """The model channels-last with its whitening stem frozen, as after the fast recipe's third epoch."""
    model = model.to(memory_format=torch.channels_last)
    for p in model.whiten.parameters():
        p.requires_grad_(False)
    return model


def bf16_step(model: nn.Module, batch: int = 128, channels_last: bool = True, run=None):
    """A callable taking one step; ``run`` is what the forward calls (default the model,
    e.g. ``torch.compile(model)``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.85, nesterov=True)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    forward = model if run is None else run

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def ms_per_step(step, steps: int, warmup: int = 0) -> float:
    """The mean milliseconds of ``steps`` steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1000


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
