"""The optimizer's parameter groups."""

import pytest
import torch
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


def test_the_decay_is_linear_or_cosine_down_to_its_floor():
    from tinycifar.step import lr_factor

    total, warmup = 100, 10
    assert lr_factor(4, total, warmup) == lr_factor(4, total, warmup, "cosine", 0.1) == 0.5  # warm-up alike
    for shape in ("linear", "cosine"):
        assert lr_factor(warmup, total, warmup, shape) == 1.0
        assert lr_factor(total, total, warmup, shape) == 0.0
        assert lr_factor(total, total, warmup, shape, floor=0.1) == pytest.approx(0.1)
    middle = warmup + (total - warmup) // 2
    assert lr_factor(middle, total, warmup, "cosine") == pytest.approx(0.5)
    assert lr_factor(warmup + 10, total, warmup, "cosine") > lr_factor(warmup + 10, total, warmup, "linear")


def test_adamw_decays_the_weights_alone_and_sgd_stays_the_default():
    model = create_model("tinynet")
    sgd = make_optimizer(model, Recipe())
    adamw = make_optimizer(model, Recipe(optimizer="adamw", lr=0.02, weight_decay=0.01))
    assert type(sgd) is torch.optim.SGD and type(adamw) is torch.optim.AdamW
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.01, 0.0, 0.0]
    assert all(g["lr"] == 0.02 for g in adamw.param_groups)
