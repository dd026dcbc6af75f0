"""One optimisation step and what it needs: the optimizer's parameter groups, the step
itself (forward under autocast, fp32 loss, backward, update) and the schedule's factor.

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
from tinycifar.recipe import Recipe


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only: decaying BatchNorm scales and biases only
    # fights the normalisation. BatchNorm biases may learn faster (airbench's bias scaler):
    # they set where each ReLU cuts, and with normalised inputs their gradients are small.
    norm_biases = {
        id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None
    }
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": recipe.weight_decay},
        {"params": [p for p in params if p.ndim <= 1 and id(p) not in norm_biases], "weight_decay": 0.0},
        {
            "params": [p for p in params if id(p) in norm_biases],
            "weight_decay": 0.0,
            "lr": recipe.lr * recipe.bias_lr_scale,
        },
    ]
    kept = [g for g in groups if g["params"]]
    if recipe.optimizer == "adamw":  # decoupled decay: the groups' weight_decay is AdamW's own
        return torch.optim.AdamW(kept, lr=recipe.lr)
    return torch.optim.SGD(kept, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)


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
