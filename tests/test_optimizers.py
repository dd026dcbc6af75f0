"""The optimisers a recipe names, their parameter groups, and the schedule's factor."""

import copy

import pytest
import torch
import torch.nn as nn

from tinycifar.models import create_model
from tinycifar.optimizers import make_optimizer
from tinycifar.recipe import Recipe


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


def _filters(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad and p.ndim == 4]


def test_muon_steps_the_filters_and_sgd_the_rest():
    model = create_model("fastnet")
    opt = make_optimizer(model, Recipe(optimizer="muon", muon_lr=0.2, muon_momentum=0.5))
    sgd, muon = opt.optimizers
    assert type(sgd) is torch.optim.SGD and isinstance(muon, torch.optim.Muon)
    assert {id(p) for p in muon.filters} == {id(p) for p in _filters(model)}
    in_sgd = {id(p) for g in sgd.param_groups for p in g["params"]}
    assert in_sgd.isdisjoint(id(p) for p in muon.filters)
    assert in_sgd | {id(p) for p in muon.filters} == {id(p) for p in model.parameters() if p.requires_grad}
    assert opt.param_groups[0] is sgd.param_groups[0]  # the log's learning rate is the weights' SGD rate
    assert muon.param_groups[0]["lr"] == 0.2 and muon.param_groups[0]["momentum"] == 0.5
    # depthwise banks (C, 1, k, k) stay with SGD: only full convolutions are matrices Muon orthogonalises
    sepnet = create_model("sepnet_g31")
    _, muon = make_optimizer(sepnet, Recipe(optimizer="muon")).optimizers
    convs = [m for m in sepnet.modules() if isinstance(m, nn.Conv2d) and m.weight.requires_grad]
    assert any(m.groups > 1 for m in convs)
    assert {id(p) for p in muon.filters} == {id(m.weight) for m in convs if m.groups == 1}


@pytest.mark.parametrize("channels_last", [False, True])
def test_muons_step_is_an_orthogonal_update_of_the_normalised_filters(channels_last):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 6, 3, bias=False), nn.BatchNorm2d(6))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    weight = model[0].weight
    opt = make_optimizer(model, Recipe(optimizer="muon", muon_lr=0.1, muon_momentum=0.0))
    before = weight.detach().clone()
    model(torch.randn(4, 8, 10, 10)).square().mean().backward()
    grad = weight.grad.clone()
    opt.step()
    # the step is the library's Muon on the filter bank read as a (6, 72) matrix, rows kept
    reference = nn.Parameter(before.reshape(6, -1) * 6**0.5 / before.norm())
    reference.grad = grad.reshape(6, -1)
    torch.optim.Muon([reference], lr=0.1, momentum=0.0, nesterov=True, weight_decay=0.0).step()
    assert torch.allclose(weight.detach().reshape(6, -1), reference.detach(), atol=1e-5)
    # an orthogonalised update: its singular values are all close to one another
    update = (weight.detach() - before * 6**0.5 / before.norm()).reshape(6, -1) / -0.1
    s = torch.linalg.svdvals(update)
    assert s.min() > 0.5 * s.max()
    opt.zero_grad()
    assert weight.grad is None


def test_muon_resumes_from_its_state_and_follows_the_schedule():
    def run(steps, opt, model):
        torch.manual_seed(1)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(8, 3, 32, 32)).logsumexp(1).mean().backward()
            opt.step()

    recipe = Recipe(optimizer="muon")
    torch.manual_seed(0)
    a = create_model("fastnet")
    b = create_model("fastnet")
    b.load_state_dict(a.state_dict())
    opt_a = make_optimizer(a, recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt_a, lambda s: 0.5)
    assert {g["lr"] for g in opt_a.optimizers[1].param_groups} == {recipe.muon_lr * 0.5}
    run(2, opt_a, a)
    opt_b = make_optimizer(b, recipe)
    run(2, opt_b, b)  # the same two steps at the full rates: other weights, other buffers
    b.load_state_dict(a.state_dict())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as read from a file: no buffer shared
    assert [g["lr"] for g in opt_b.param_groups] == [g["lr"] for g in opt_a.param_groups]
    scheduler_b = torch.optim.lr_scheduler.LambdaLR(opt_b, lambda s: 0.5)
    scheduler_b.load_state_dict(scheduler.state_dict())
    run(1, opt_a, a)
    run(1, opt_b, b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="not that of 2 chained optimisers"):
        opt_b.load_state_dict(torch.optim.SGD(a.parameters(), lr=0.1).state_dict())


def test_muon_leaves_the_filters_of_a_frozen_stage_as_they_are():
    from tinycifar.layers import freeze_stages

    model = create_model("fastnet")
    opt = make_optimizer(model, Recipe(optimizer="muon"))
    freeze_stages(model, 1)  # as the recipe's freeze does, after the optimizer was made
    frozen = model.stages()[0][0].weight
    before, trained = frozen.detach().clone(), model.stages()[1][0].weight.detach().clone()
    model(torch.randn(8, 3, 32, 32)).logsumexp(1).sum().backward()
    opt.step()
    assert torch.equal(frozen, before)  # neither stepped nor rescaled to norm √out
    assert not torch.equal(model.stages()[1][0].weight, trained)
