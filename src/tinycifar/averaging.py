"""Weight averaging for training: an EMA of the weights, or Lookahead, or neither.

The loop calls ``update(model, step)`` after every optimizer step and evaluates and saves
``final(model)``; each scheme is a small object so the loop has no branch for it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class NoAveraging:
    def update(self, model: nn.Module, step: int) -> None:
        pass

    def final(self, model: nn.Module) -> nn.Module:
        return model

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        pass

    def set_total_steps(self, model: nn.Module, total: int, done: int) -> None:
        """The run's length changed to ``total`` steps (a time budget shortened it) after
        ``done`` of them."""


class EMA(NoAveraging):
    """Per-step exponential moving average of weights and buffers, evaluated instead."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(self, model: nn.Module, step: int) -> None:
        self.ema.update_parameters(model)

    def final(self, model: nn.Module) -> nn.Module:
        return self.ema.module

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        assert state is not None  # only NoAveraging saves None, and a resume's recipe is the checkpoint's
        self.ema.load_state_dict(state)


class Lookahead(NoAveraging):
    """Lookahead as airbench uses it: every ``every`` steps the slow copy moves toward the
    fast weights and the fast weights are reset to it.

    The pull ``decay`` grows as ``0.95**every * (step/total)**3``: nothing early, when the
    weights must move fast, and a strong average at the end, where it acts like an EMA
    without keeping a second model for evaluation. On the last step the model becomes the
    slow copy, so ``final`` is the model itself. Buffers (BN statistics) are averaged too.
    """

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5) -> None:
        self.total, self.every = total_steps, every
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        done = step + 1
        if done == self.total:
            decay = 1.0  # hand over the slow weights
        elif done % self.every == 0:
            decay = 0.95**self.every * (done / self.total) ** 3
        else:
            return
        current = model.state_dict()
        for k, slow in self.slow.items():
            slow.lerp_(current[k], 1 - decay)
            current[k].copy_(slow)

    def set_total_steps(self, model: nn.Module, total: int, done: int) -> None:
        self.total = total
        if done >= total:  # the run ends now: hand over the slow weights, as its last step would have
            self.update(model, total - 1)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        assert state is not None  # only NoAveraging saves None, and a resume's recipe is the checkpoint's
        for k, v in state["slow"].items():
            self.slow[k].copy_(v)


def make_averager(model: nn.Module, ema_decay: float, lookahead_every: int, total_steps: int) -> NoAveraging:
    if ema_decay and lookahead_every:
        raise ValueError("EMA and Lookahead are exclusive")  # the recipe validates this first
    if ema_decay:
        return EMA(model, ema_decay)
    if lookahead_every:
        return Lookahead(model, total_steps, lookahead_every)
    return NoAveraging()
