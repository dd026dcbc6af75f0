"""The optimizer's parameter groups."""

import torch.nn as nn

from tinycifar.models import create_model
from tinycifar.recipe import Recipe
from tinycifar.step import make_optimizer


def test_norm_biases_get_their_own_learning_rate():
    model = create_model("fastnet")
    opt = make_optimizer(model, Recipe(lr=0.5, bias_lr_scale=64.0))
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    (group,) = [g for g in opt.param_groups if {id(p) for p in g["params"]} == bn_biases]
    assert group["lr"] == 32.0 and group["weight_decay"] == 0.0
    frozen = id(model.whiten.weight)
    assert all(frozen != id(p) for g in opt.param_groups for p in g["params"])
