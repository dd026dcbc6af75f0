"""The port of the published sub-100k record (``experiments/record-recipe/xvel_port.py``): its
parameter and MAC counts are the published network's, and it trains in the loop."""

from pathlib import Path

import pytest
import torch
from conftest import experiment_script

from tinycifar import models
from tinycifar.recipe import Recipe
from tinycifar.runconfig import RunConfig
from tinycifar.summary import summarize
from tinycifar.train import fit

SCRIPT = Path(__file__).parents[1] / "experiments" / "record-recipe" / "xvel_port.py"


@pytest.fixture
def port():
    with experiment_script(SCRIPT, "xvel_port") as module:
        yield module


def test_the_port_has_the_published_parameter_count_and_its_macs(port):
    s = summarize(models.create_model("xvel_tiniest"))
    assert s.total_params == 97_530  # the README's figure, and `sum(p.numel())` of its train.py
    # Convolutions and the linear layer, counted by hand from the published shapes: stem
    # 1,327,104; each 48-channel block 8,392,704; the stride-2 conv 983,040; each 80-channel
    # block 5,463,040; the head 800.
    assert s.macs == 1_327_104 + 3 * 8_392_704 + 983_040 + 3 * 5_463_040 + 800 == 43_878_176
    assert not s.macs_not_counted


def test_the_block_splits_four_ways_and_gates(port):
    block = port.SplitMixBlock(48, 48)
    assert [c.kernel_size for c in (block.near, block.wide, block.far)] == [(3, 3), (7, 7), (7, 7)]
    assert block.far.dilation == (3, 3) and block.near.groups == 12
    x = torch.randn(2, 48, 8, 8)
    with torch.no_grad():
        block.project.weight.zero_()
        block.project.bias.zero_()
        block.skip_scale.fill_(2.0)
    torch.testing.assert_close(block(x), 2 * x)  # the branch off: only the scaled shortcut


def test_the_port_trains_in_the_loop(port, tmp_path, tiny_data):
    recipe = Recipe(
        epochs=3,
        batch_size=32,
        lr=0.02,
        optimizer="adamw",
        weight_decay=0.01,
        warmup_epochs=0.5,
        schedule="cosine",
        lr_floor=0.1,
        ema_decay=0.9,
        label_smoothing=0.0,
    )
    metrics = fit(RunConfig("xvel_tiniest", recipe, device="cpu", precision="fp32"), *tiny_data, tmp_path)
    assert metrics["model"] == "xvel_tiniest" and metrics["eval_acc"] > 0.2
