"""One optimisation step (forward under autocast, fp32 loss, backward, update) and the
schedule's factor; the optimisers are in :mod:`tinycifar.optimizers`.

The training loop (:mod:`tinycifar.train`) and the time planner (:mod:`tinycifar.budget`)
both take steps; keeping the step here lets the planner time the very step the loop runs
without importing the loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinycifar.precision import autocast


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float,
    precision: str,
    dev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step: forward (under the precision's autocast), fp32 loss, backward, update.
    ``target`` holds class indices, or class probabilities for mixed images.
    Returns the loss and the logits, still on the device."""
    with autocast(precision, dev):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def lr_factor(step: int, total: int, warmup: int, shape: str = "linear", floor: float = 0.0) -> float:
    """The learning rate's share of its peak at ``step``: a linear warm-up from 0 to 1, then a
    linear or cosine decay to ``floor`` at the end (linear to 0 is the triangle of airbench)."""
    if step < warmup:
        return (step + 1) / warmup
    left = max(0.0, (total - step) / max(1, total - warmup))  # 1 down to 0
    if shape == "cosine":
        left = 0.5 * (1 - math.cos(math.pi * left))
    return floor + (1 - floor) * left if floor else left
