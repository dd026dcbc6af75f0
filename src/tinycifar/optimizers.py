"""The optimisers a recipe names: SGD, AdamW, and Muon for the convolution filters.

``make_optimizer`` splits the parameters into groups: weights (decayed), other
parameters, and BatchNorm biases (their own learning rate). ``optimizer = "muon"`` hands the
convolution filters to ``torch.optim.Muon`` and the rest to Nesterov SGD, as airbench's
Muon variant does: an orthogonalised update suits a filter bank read as a matrix (each
output channel a row), while biases, BatchNorm parameters and the classifier stay with SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from tinycifar.errors import TinyCifarError
from tinycifar.recipe import Recipe


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only: decaying BatchNorm scales and biases only
    # fights the normalisation. BatchNorm biases may learn faster (airbench's bias scaler):
    # they set where each ReLU cuts, and with normalised inputs their gradients are small.
    norm_biases = {
        id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None
    }
    params = [p for p in model.parameters() if p.requires_grad]
    # Full convolutions only: a depthwise bank (C, 1, k, k) is a tall matrix, whose
    # orthogonalisation means little and which Muon's rate scaling would step √(C/k²) faster.
    filters = [
        m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1 and m.weight.requires_grad
    ]
    filters = filters if recipe.optimizer == "muon" else []
    rest = [p for p in params if not any(p is f for f in filters)]
    groups = [
        {"params": [p for p in rest if p.ndim > 1], "weight_decay": recipe.weight_decay},
        {"params": [p for p in rest if p.ndim <= 1 and id(p) not in norm_biases], "weight_decay": 0.0},
        {
            "params": [p for p in rest if id(p) in norm_biases],
            "weight_decay": 0.0,
            "lr": recipe.lr * recipe.bias_lr_scale,
        },
    ]
    kept = [g for g in groups if g["params"]]
    if recipe.optimizer == "adamw":  # decoupled decay: the groups' weight_decay is AdamW's own
        return torch.optim.AdamW(kept, lr=recipe.lr)
    sgd = torch.optim.SGD(kept, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    if not filters:
        return sgd
    if not hasattr(torch.optim, "Muon"):
        raise TinyCifarError(
            f"optimizer muon needs torch 2.9 or later (torch.optim.Muon); this is torch {torch.__version__}"
        )
    # SGD first: the log's learning rate is the first group's, the weights' as without Muon
    return Chain(sgd, FilterMuon(filters, lr=recipe.muon_lr, momentum=recipe.muon_momentum))


def _as_matrix(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (out, in·kh·kw) view of a filter bank or its gradient, its columns in the order of
    ``like``'s memory (channels-last or not), so weight and gradient columns match and the
    weight's matrix shares its storage."""
    if like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return t.permute(0, 2, 3, 1).reshape(len(t), -1)
    return t.reshape(len(t), -1)


if hasattr(torch.optim, "Muon"):  # torch 2.9 and later; older ones train without it

    class FilterMuon(torch.optim.Muon):
        """``torch.optim.Muon`` (2-D parameters only) for 4-D convolution filters: it steps on a
        matrix view of each filter bank, which shares the filter's storage.

        Each step first rescales every filter bank to norm √out, that of a matrix with
        orthonormal rows (a full convolution has out ≤ in·kh·kw), as airbench's Muon does:
        BatchNorm follows every convolution, so a filter's scale means nothing, and Muon's
        fixed-size updates would shrink against a growing weight."""

        def __init__(self, filters: Sequence[torch.Tensor], lr: float, momentum: float) -> None:
            self.filters = list(filters)
            matrices = [_as_matrix(f.detach(), f) for f in filters]
            if any(m.data_ptr() != f.data_ptr() for m, f in zip(matrices, filters)):
                raise ValueError("a filter bank is neither contiguous nor channels-last: Muon cannot step on it")
            super().__init__(matrices, lr=lr, momentum=momentum, nesterov=True, weight_decay=0.0)

        @torch.no_grad()
        def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
            matrices = self.param_groups[0]["params"]
            for f, m in zip(self.filters, matrices):
                if f.grad is None:  # frozen (the recipe's freeze): Muon skips it, and so does the rescale
                    m.grad = None
                    continue
                m.grad = _as_matrix(f.grad, f)
                m.mul_(len(m) ** 0.5 / m.norm().clamp_min(1e-12))
            return super().step(closure)

        def zero_grad(self, set_to_none: bool = True) -> None:
            super().zero_grad(set_to_none)
            for f in self.filters:
                f.grad = None


class Chain(torch.optim.Optimizer):
    """Several optimisers as one, for the loop, its scheduler and its checkpoint: the param
    groups are the children's own dicts, so the scheduler's learning rates reach them."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers
        super().__init__([g for o in optimizers for g in o.param_groups], {})

    def _regroup(self) -> None:
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        for o in self.optimizers:
            o.step()
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"param_groups": groups, "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("optimizers")
        if not isinstance(saved, list) or len(saved) != len(self.optimizers):
            raise ValueError(f"the saved optimizer state is not that of {len(self.optimizers)} chained optimisers")
        for o, s in zip(self.optimizers, saved):
            o.load_state_dict(s)
        self._regroup()  # loading gives each child new group dicts
