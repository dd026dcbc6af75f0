"""The model zoo: every model builds, runs, trains, fits the budget; `tinycifar models`."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

from tinycifar import cli, layers
from tinycifar.errors import TinyCifarError
from tinycifar.models import DEFAULT_MODEL, create_model, describe_model, list_models
from tinycifar.models.resnet8 import RESNET8_PARAMS
from tinycifar.summary import summarize

BUDGET = 100_000
BLOCKS = [
    layers.Residual,
    layers.ConvBNAct,
    layers.DepthwiseSeparableConv,
    layers.TransposedConvUp,
    layers.PixelShuffleUp,
    layers.PixelUnshuffleDown,
    layers.SqueezeExcite,
    layers.ECA,
    layers.PatchWhitening,
    layers.ConvPoolGroup,
]


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_every_block_of_layers_py_is_in_the_list_above():
    defined = {
        obj
        for obj in vars(layers).values()
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == layers.__name__
    }
    assert defined == set(BLOCKS)


def test_registry_order():
    names = list_models()
    # the default, the most accurate, the microcontroller's, then by accuracy
    assert names[:4] == ["fastnet", "sepnet_g31", "fastnet_mcu", "tinynet"]
    assert names[-2:] == ["resnet8", "seed"]
    for name in ("dilatednet", "senet", "unshufflenet"):
        assert 0 < names.index(name) < names.index("resnet8")


@pytest.mark.parametrize("name", list_models())
def test_model_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    loss = nn.functional.cross_entropy(out, torch.tensor([1, 7]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 10)


@pytest.mark.parametrize("name", list_models())
def test_model_num_classes(name):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize("name", [n for n in list_models() if n != "seed"])
def test_model_is_under_budget(name):
    assert trainable(create_model(name)) < BUDGET


def test_resnet8_param_count():
    # Keras reference: 77,706 conv/dense weights incl. biases; minus the 7 biases in front of
    # BN (16+16+16+32+32+64+64 = 240), plus BN gamma/beta (2*240 = 480) = 77,946.
    keras_weights = (
        3 * 16 * 9
        + 16
        + 2 * (16 * 16 * 9 + 16)
        + 16 * 32 * 9
        + 32
        + 32 * 32 * 9
        + 32
        + 16 * 32
        + 32
        + 32 * 64 * 9
        + 64
        + 64 * 64 * 9
        + 64
        + 32 * 64
        + 64
        + 64 * 10
        + 10
    )
    assert keras_weights == 77_706
    assert RESNET8_PARAMS == keras_weights - 240 + 480 == 77_946
    model = create_model("resnet8")
    assert trainable(model) == RESNET8_PARAMS
    assert sum(p.numel() for p in model.parameters()) == RESNET8_PARAMS


def test_resnet8_structure():
    model = create_model("resnet8")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 16, 3, 1),
        (16, 16, 3, 1),
        (16, 16, 3, 1),
        (16, 32, 3, 2),
        (32, 32, 3, 1),
        (16, 32, 1, 2),
        (32, 64, 3, 2),
        (64, 64, 3, 1),
        (32, 64, 1, 2),
    ]
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_default_model_registered_and_under_budget():
    assert DEFAULT_MODEL in list_models()
    assert trainable(create_model(DEFAULT_MODEL)) < BUDGET


def test_every_block_is_used_somewhere_in_the_zoo():
    used = {type(m) for name in list_models() for m in create_model(name).modules()}
    missing = [b.__name__ for b in BLOCKS if b not in used]
    assert not missing, f"blocks no model uses: {missing}"


@pytest.mark.parametrize(
    "name, blocks",
    [
        ("dilatednet", {layers.ConvBNAct, layers.DepthwiseSeparableConv}),
        ("senet", {layers.ConvBNAct, layers.SqueezeExcite}),
        (
            "unshufflenet",
            {layers.PixelUnshuffleDown, layers.DepthwiseSeparableConv, layers.PixelShuffleUp, layers.TransposedConvUp},
        ),
    ],
)
def test_our_models_use_their_blocks(name, blocks):
    used = {type(m) for m in create_model(name).modules()}
    assert blocks <= used


def test_dilatednet_has_no_pooling_but_dilation():
    model = create_model("dilatednet")
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    assert any(isinstance(m, nn.Conv2d) and m.dilation[0] > 1 and m.groups == 1 for m in model.modules())
    assert any(isinstance(m, nn.Conv2d) and m.dilation[0] > 1 and m.groups > 1 for m in model.modules())
    assert summarize(model).receptive_field >= 32


@pytest.fixture(scope="module")
def summaries():
    return {name: summarize(create_model(name), mcu=True) for name in list_models()}


@pytest.mark.parametrize("name", [n for n in list_models() if n != "seed"])
def test_model_macs_moderate(name, summaries):
    # sepnet_g31's 26.6 M train for 37 epochs in about 22 min on a 2-core bf16 CPU; much
    # more and a model leaves the project's niche (an hour on a laptop CPU)
    s = summaries[name]
    assert 5e6 < s.macs <= 30e6
    assert s.macs_not_counted == []


def test_unknown_model_names_the_choices():
    with pytest.raises(TinyCifarError) as err:
        create_model("nope")
    msg = str(err.value)
    assert "'nope'" in msg
    for name in list_models():
        assert name in msg


# ---------------------------------------------------------------- tinycifar models


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)( \*)?\s+([\d,]+)\s+([\d.]+)\s+([\d.]+|-)\s+([\d.]+|-)\s+(\d+|-)\s+(yes|NO)\s+(.*)", line)
        if m:
            rows[m[1]] = [m[2] or "", m[3], m[4], m[7], m[8], m[9], m[5], m[6]]
    return rows


def test_cli_models_table(capsys, summaries):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["model", "params"] and "RF" in header and "description" in header
    rows = _rows(out)
    assert list(rows) == list_models()
    for name, (default, params, macs, rf, budget, desc, flash, ram) in rows.items():
        s = summaries[name]
        assert s.mcu is not None  # every zoo model traces: the estimate is there, and printed
        assert flash == f"{s.mcu.flash_bytes / 1000:.1f}" and ram == f"{s.mcu.ram_bytes / 1000:.1f}"
        assert int(params.replace(",", "")) == s.total_params
        assert float(macs) == pytest.approx(s.macs / 1e6, abs=0.006)
        assert rf == str(s.receptive_field)
        assert budget == ("NO" if name == "seed" else "yes")
        assert desc == describe_model(name)
        assert (default == " *") == (name == DEFAULT_MODEL)
    assert rows["resnet8"][1] == f"{RESNET8_PARAMS:,}"


def test_cli_models_budget(capsys):
    assert cli.main(["models", "--budget", "90,000"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["resnet8"][4] == "yes" and rows["dilatednet"][4] == "NO" and rows["seed"][4] == "NO"
    assert "budget: 90,000 parameters" in out


def test_cli_models_bad_budget(capsys):
    with pytest.raises(SystemExit):
        cli.main(["models", "--budget", "lots"])
    assert "not a whole number" in capsys.readouterr().err
