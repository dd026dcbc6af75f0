"""`tinycifar summary`: torchsummary-format table, MACs, receptive field, budget line."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
from conftest import SEED_PARAMS

from tinycifar import cli
from tinycifar.errors import TinyCifarError
from tinycifar.models import create_model, list_models
from tinycifar.summary import format_summary, summarize

# Copied from the seed task's model table (the markdown indentation is stripped per line).
SEED_TABLE = """
	----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
	================================================================
            Conv2d-1           [-1, 10, 32, 32]             280
              ReLU-2           [-1, 10, 32, 32]               0
       BatchNorm2d-3           [-1, 10, 32, 32]              20
           Dropout-4           [-1, 10, 32, 32]               0
            Conv2d-5           [-1, 16, 30, 30]           4,016
              ReLU-6           [-1, 16, 30, 30]               0
       BatchNorm2d-7           [-1, 16, 30, 30]              32
           Dropout-8           [-1, 16, 30, 30]               0
         MaxPool2d-9           [-1, 16, 15, 15]               0
           Conv2d-10           [-1, 32, 15, 15]             544
           Conv2d-11           [-1, 32, 15, 15]           9,248
             ReLU-12           [-1, 32, 15, 15]               0
      BatchNorm2d-13           [-1, 32, 15, 15]              64
          Dropout-14           [-1, 32, 15, 15]               0
        MaxPool2d-15             [-1, 32, 7, 7]               0
           Conv2d-16             [-1, 64, 5, 5]          18,496
           Conv2d-17             [-1, 64, 5, 5]          36,928
             ReLU-18             [-1, 64, 5, 5]               0
      BatchNorm2d-19             [-1, 64, 5, 5]             128
          Dropout-20             [-1, 64, 5, 5]               0
           Conv2d-21             [-1, 64, 5, 5]           1,216
           Conv2d-22             [-1, 64, 5, 5]           4,160
             ReLU-23             [-1, 64, 5, 5]               0
      BatchNorm2d-24             [-1, 64, 5, 5]             128
          Dropout-25             [-1, 64, 5, 5]               0
        MaxPool2d-26             [-1, 64, 2, 2]               0
           Conv2d-27             [-1, 64, 2, 2]          36,928
             ReLU-28             [-1, 64, 2, 2]               0
      BatchNorm2d-29             [-1, 64, 2, 2]             128
          Dropout-30             [-1, 64, 2, 2]               0
	AdaptiveAvgPool2d-31             [-1, 64, 1, 1]               0
           Linear-32                   [-1, 10]             650
	================================================================
"""


def _stripped(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()]


@pytest.fixture(scope="module")
def seed_text() -> str:
    return format_summary(summarize(create_model("seed")))


# ---------------------------------------------------------------- the seed's table


def test_seed_table_reproduces_the_seed_line_for_line(seed_text):
    expected = _stripped(SEED_TABLE)
    got = _stripped(seed_text)[: len(expected)]
    assert got == expected


def test_seed_rows_structured():
    s = summarize(create_model("seed"))
    expected = []
    for line in _stripped(SEED_TABLE)[3:-1]:
        m = re.fullmatch(r"(\S+)\s+(\[.*\])\s+([\d,]+)", line)
        assert m, line
        expected.append((m[1], m[2], int(m[3].replace(",", ""))))
    assert [(r.name, str(r.output_shape), r.params) for r in s.rows] == expected
    assert s.total_params == s.trainable_params == SEED_PARAMS
    assert s.non_trainable_params == 0


def test_seed_totals_macs_rf_and_sizes(seed_text):
    lines = _stripped(seed_text)
    assert f"Total params: {SEED_PARAMS:,}" in lines
    assert f"Trainable params: {SEED_PARAMS:,}" in lines
    assert "Non-trainable params: 0" in lines
    s = summarize(create_model("seed"))
    # sum over the nine convs and the linear layer, worked out by hand
    assert s.macs == (
        32 * 32 * 10 * 27
        + 30 * 30 * 16 * 250
        + 15 * 15 * 32 * 16
        + 15 * 15 * 32 * 288
        + 25 * 64 * 288
        + 25 * 64 * 576
        + 25 * 64 * 18
        + 25 * 64 * 64
        + 4 * 64 * 576
        + 640
    )
    assert "MACs per image: 7,726,976" in seed_text
    # 3 ->7 (5x5) ->8 (pool, j2) ->12 ->14 (pool, j4) ->22 ->30 ->38 ->42 (pool, j8) ->58
    assert s.receptive_field == 58
    assert s.receptive_field_layer == "Dropout-30"
    assert "Receptive field: 58 px" in seed_text
    assert s.size_kb_fp32 == pytest.approx(SEED_PARAMS * 4 / 1024)
    assert s.size_kb_int8 == pytest.approx(SEED_PARAMS / 1024)
    assert "441.3 KB as fp32, 110.3 KB as int8" in seed_text


# ---------------------------------------------------------------- budget line


def test_seed_is_flagged_over_budget(seed_text):
    assert "OVER the 100,000-parameter budget by 12,966 parameters" in seed_text
    assert "within" not in seed_text


def test_bigger_budget_removes_the_flag():
    text = format_summary(summarize(create_model("seed"), budget=200_000))
    assert "OVER" not in text
    assert "within the 200,000-parameter budget (87,034 to spare)" in text


def test_budget_exactly_met_is_within():
    s = summarize(nn.Linear(9, 1), input_size=(9,))  # 10 params
    s.budget = 10
    assert not s.over_budget
    assert "(0 to spare)" in format_summary(s)
    s.budget = 9
    assert s.over_budget


# ---------------------------------------------------------------- MACs


@pytest.mark.parametrize(
    "layer, input_size, macs",
    [
        (nn.Conv2d(3, 8, 3, padding=1), (3, 32, 32), 32 * 32 * 8 * 27),
        (nn.Conv2d(3, 8, 3, stride=2, padding=1), (3, 32, 32), 16 * 16 * 8 * 27),
        (nn.Conv2d(3, 4, 3, dilation=2), (3, 32, 32), 28 * 28 * 4 * 27),
        (nn.Conv2d(8, 8, 3, padding=1, groups=4), (8, 8, 8), 8 * 8 * 8 * 2 * 9),
        (nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (8, 8, 8), 8 * 8 * 8 * 9),
        (nn.ConvTranspose2d(4, 2, 2, stride=2), (4, 8, 8), 4 * 8 * 8 * 2 * 4),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (4, 5, 5), 4 * 5 * 5 * 3 * 9),
        (nn.Linear(64, 10), (64,), 640),
    ],
)
def test_macs_of_single_layers(layer, input_size, macs):
    assert summarize(layer, input_size=input_size).macs == macs


def test_bn_activation_pooling_dropout_cost_no_macs():
    body = [nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1), nn.AdaptiveAvgPool2d(1)]
    with_extras = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *body)
    s = summarize(with_extras)
    assert s.macs == 32 * 32 * 8 * 27
    assert [r.macs for r in s.rows[1:]] == [0] * len(body)
    assert s.macs_not_counted == []


class _Scale(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x):
        return x * self.gain


def test_unknown_leaf_with_params_does_not_crash_and_is_reported():
    s = summarize(nn.Sequential(nn.Conv2d(3, 4, 1), _Scale(4)))
    assert [r.name for r in s.rows] == ["Conv2d-1", "_Scale-2"]
    assert s.rows[1].params == 4
    assert s.macs == 32 * 32 * 4 * 3
    assert s.macs_not_counted == ["_Scale-2"]
    assert "not counted, unknown layer type: _Scale-2" in format_summary(s)


# ---------------------------------------------------------------- receptive field


def _rf(*layers, input_size=(3, 32, 32)):
    return summarize(nn.Sequential(*layers), input_size=input_size).receptive_field


def test_rf_two_3x3_convs_is_5():
    assert _rf(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)) == 5


def test_rf_strided_then_3x3_is_7():
    assert _rf(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1)) == 7


def test_rf_dilated_3x3_is_5():
    assert _rf(nn.Conv2d(3, 4, 3, padding=2, dilation=2)) == 5


def test_rf_maxpool_and_avgpool():
    assert _rf(nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1)) == 6
    assert _rf(nn.AvgPool2d(3, stride=2), nn.Conv2d(3, 4, 3)) == 7
    assert _rf(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, stride=1, dilation=2)) == 7


def test_rf_pixel_unshuffle_and_shuffle():
    # PixelUnshuffle(2) acts like a 2x2 stride-2 op: 2, then 3x3 at jump 2 -> 6
    assert _rf(nn.PixelUnshuffle(2), nn.Conv2d(12, 4, 3, padding=1)) == 6
    # 3x3 -> 3; PixelShuffle halves the jump; 3x3 at jump 1/2 adds 1 -> 4
    assert _rf(nn.Conv2d(3, 16, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(4, 4, 3, padding=1)) == 4


def test_rf_transposed_conv():
    # stride 2 halves the jump first, then (k-1) * 1/2 = 1 -> rf 2
    assert _rf(nn.ConvTranspose2d(3, 4, 3, stride=2)) == 2
    # 3x3 s2 (rf 3, jump 2); transposed k2 s2 (jump 1, rf 4); 3x3 (rf 6)
    assert (
        _rf(
            nn.Conv2d(3, 4, 3, stride=2, padding=1),
            nn.ConvTranspose2d(4, 4, 2, stride=2),
            nn.Conv2d(4, 4, 3, padding=1),
        )
        == 6
    )


def test_rf_non_square_kernel_is_shown_per_axis():
    s = summarize(nn.Conv2d(3, 4, (3, 5)))
    assert s.receptive_field_hw == (3, 5)
    assert s.receptive_field == 5
    assert "Receptive field: 3x5 px" in format_summary(s)


def test_rf_stops_at_global_pooling_and_ignores_1x1_maps():
    s = summarize(
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(4, 4, 3, padding=1),  # on a 1x1 map: only padding around it
            nn.Flatten(),
            nn.Linear(4, 2),
        )
    )
    assert s.receptive_field == 3
    assert s.receptive_field_layer == "ReLU-2"


def test_rf_not_available_without_spatial_layers():
    s = summarize(nn.Sequential(nn.Linear(6, 3), nn.ReLU()), input_size=(6,))
    assert s.receptive_field is None
    assert "Receptive field: n/a" in format_summary(s)


# ---------------------------------------------------------------- walker behaviour


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.conv(self.act(self.conv(x)))


def test_module_called_twice_appears_twice():
    s = summarize(_Twice(), input_size=(3, 8, 8))
    assert [r.name for r in s.rows] == ["Conv2d-1", "ReLU-2", "Conv2d-3"]
    assert [r.params for r in s.rows] == [84, 0, 84]
    assert s.total_params == 84  # shared weights counted once in the totals
    assert s.macs == 2 * 8 * 8 * 3 * 27
    assert s.receptive_field == 5


def test_training_flags_restored_and_hooks_removed():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    summarize(model)
    assert [m.training for m in model.modules()] == [True, True, True, False]
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_removed_even_when_forward_fails():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 2))
    with pytest.raises(TinyCifarError, match="input size"):
        summarize(model)
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_params_not_in_rows_are_reported():
    class WithOwnParam(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(5))
            self.lin = nn.Linear(3, 5)

        def forward(self, x):
            return self.lin(x) + self.bias

    s = summarize(WithOwnParam(), input_size=(3,))
    assert s.total_params == 25 and s.params_not_in_rows == 5
    assert "5 params belong to non-leaf or uncalled modules" in format_summary(s)


def test_non_trainable_params_counted():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1))
    for p in model[0].parameters():
        p.requires_grad_(False)
    s = summarize(model)
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (26, 10, 16)
    assert "Non-trainable params: 16" in format_summary(s)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_summarizes(name):
    model = create_model(name)
    s = summarize(model)
    assert s.rows
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.macs > 0
    assert "Total params:" in format_summary(s)


# ---------------------------------------------------------------- CLI


def test_cli_summary_seed(capsys):
    assert cli.main(["summary", "--model", "seed"]) == 0
    out = capsys.readouterr().out
    assert f"Total params: {SEED_PARAMS:,}" in out
    assert "OVER the 100,000-parameter budget" in out


def test_cli_budget_flag(capsys):
    assert cli.main(["summary", "--model", "seed", "--budget", "200000"]) == 0
    out = capsys.readouterr().out
    assert "OVER" not in out
    assert "within the 200,000-parameter budget" in out


def test_cli_input_size(capsys):
    assert cli.main(["summary", "--model", "seed", "--input-size", "3", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "[-1, 10, 64, 64]" in out


def test_cli_unknown_model_is_a_clean_error(capsys):
    assert cli.main(["summary", "--model", "no-such-net"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-net'" in err
