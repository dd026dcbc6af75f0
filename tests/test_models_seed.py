"""The `seed` model: the seed task's network, layer for layer."""

from __future__ import annotations

import torch
import torch.nn as nn
from conftest import SEED_PARAMS

from tinycifar.models import create_model, describe_model, list_models


def _leaf_calls(model: nn.Module) -> list[nn.Module]:
    calls: list[nn.Module] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, i, o: calls.append(m)) for m in leaves]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, 3, 32, 32))
    finally:
        for h in handles:
            h.remove()
    return calls


def test_seed_is_registered_and_over_budget_in_its_description():
    assert "seed" in list_models()
    assert "over budget" in describe_model("seed")


def test_seed_has_the_seed_tables_parameter_count():
    model = create_model("seed")
    assert sum(p.numel() for p in model.parameters()) == SEED_PARAMS
    assert all(p.requires_grad for p in model.parameters())


def test_seed_layer_type_sequence_matches_the_table():
    expected = (
        "Conv2d ReLU BatchNorm2d Dropout Conv2d ReLU BatchNorm2d Dropout MaxPool2d "
        "Conv2d Conv2d ReLU BatchNorm2d Dropout MaxPool2d "
        "Conv2d Conv2d ReLU BatchNorm2d Dropout Conv2d Conv2d ReLU BatchNorm2d Dropout MaxPool2d "
        "Conv2d ReLU BatchNorm2d Dropout AdaptiveAvgPool2d Linear"
    ).split()
    assert [type(m).__name__ for m in _leaf_calls(create_model("seed"))] == expected


def test_seed_convolutions_have_the_seed_geometry():
    convs = [m for m in create_model("seed").modules() if isinstance(m, nn.Conv2d)]
    got = [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0], c.groups) for c in convs]
    assert got == [
        (3, 10, 3, 1, 1),
        (10, 16, 5, 1, 1),
        (16, 32, 1, 0, 1),
        (32, 32, 3, 1, 1),
        (32, 64, 3, 0, 1),
        (64, 64, 3, 1, 1),
        (64, 64, 3, 1, 32),  # 1,216 params = 64 * (64/32) * 9 + 64
        (64, 64, 1, 0, 1),
        (64, 64, 3, 1, 1),
    ]


def test_seed_forward_shape_and_constructor_arguments():
    model = create_model("seed", num_classes=7, dropout=0.3)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 6 and set(drops) == {0.3}
    default_drops = {m.p for m in create_model("seed").modules() if isinstance(m, nn.Dropout)}
    assert default_drops == {0.05}
