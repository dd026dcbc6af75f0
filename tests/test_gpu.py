"""The GPU path. Skipped where torch sees no CUDA GPU (CI); run on a GPU machine with
``make test``. What it holds the loop to: the data stays on the device, a training step
never waits on the host, bf16 autocast is the default, and CPU and GPU training agree
closely (not bit for bit: cuDNN picks its own kernels)."""

import dataclasses

import pytest
import torch

from tinycifar.augment import Augmentation
from tinycifar.averaging import make_averager
from tinycifar.inference import resolve_device
from tinycifar.models import create_model
from tinycifar.optimizers import make_optimizer
from tinycifar.precision import resolve_precision
from tinycifar.recipe import load_recipe
from tinycifar.runconfig import RunConfig
from tinycifar.step import lr_factor
from tinycifar.train import fit, init_from_data, train_epoch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
CUDA = torch.device("cuda")


def test_auto_is_bf16_on_the_gpu():
    assert resolve_device("auto") == CUDA
    assert resolve_precision("auto", CUDA) == "bf16"


def _recipe(**changes):
    return dataclasses.replace(load_recipe("fast"), **changes)


def _epoch_parts(model_name, recipe, data, dev):
    torch.manual_seed(0)
    model = create_model(model_name)
    init_from_data(model, data[0].cpu(), torch.device("cpu"))  # the same whitening on both devices
    model = model.to(dev).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, recipe)
    steps = len(data[0]) // recipe.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 2 * steps, 2))
    averager = make_averager(model, recipe.ema_decay, recipe.lookahead, 2 * steps)
    augmentation = Augmentation.from_recipe(recipe, len(data[0]), seed=0)
    draws = augmentation.draw(0, torch.Generator().manual_seed(0), dev)
    return model, (model, optimizer, scheduler, averager, augmentation, draws), steps


@pytest.mark.parametrize("model_name", ["fastnet", "tinynet"])
def test_a_training_epoch_never_syncs_with_the_host(tiny_data, model_name):
    recipe = _recipe(batch_size=32, ssr=True, cutout=8)
    images, labels = tiny_data[0]
    data = images.to(CUDA), labels.to(CUDA)
    model, parts, steps = _epoch_parts(model_name, recipe, data, CUDA)
    train_epoch(*parts, data, recipe, "bf16", CUDA, range(1))  # cuDNN autotuning may sync: not counted
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync inside the epoch raises
    try:
        loss_sum, correct, _ = train_epoch(*parts, data, recipe, "bf16", CUDA, range(1, steps), first_step=1)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert loss_sum.device.type == "cuda" and torch.isfinite(loss_sum)
    assert all(p.device.type == "cuda" for p in model.parameters())


def test_gpu_and_cpu_training_agree_closely_in_fp32(tiny_data, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # true fp32 on both sides
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    recipe = _recipe(batch_size=64)
    images, labels = tiny_data[0]
    weights = {}
    for dev in (torch.device("cpu"), CUDA):
        data = images.to(dev), labels.to(dev)
        model, parts, steps = _epoch_parts("fastnet", recipe, data, dev)
        train_epoch(*parts, data, recipe, "fp32", dev, range(steps))
        weights[dev.type] = {k: v.float().cpu() for k, v in model.state_dict().items()}
    for k, v in weights["cpu"].items():
        # Per tensor, relative to its size: BatchNorm biases learn at 64× the rate (the fast
        # recipe), so their float rounding differences grow most; a wrong kernel is off by far more.
        diff = (weights["cuda"][k] - v).norm()
        assert diff <= 2e-2 * v.norm() + 1e-3, f"{k}: GPU and CPU differ by {diff:.3g} (norm {v.norm():.3g})"


@pytest.mark.parametrize("compile", [False, True])
def test_fit_on_the_gpu_writes_cpu_loadable_weights(tmp_path, tiny_data, compile):
    from tinycifar.checkpoint import load_weights

    train, test = tiny_data
    recipe = _recipe(batch_size=32, epochs=3, eval_every=1)
    metrics = fit(RunConfig("fastnet", recipe, device="cuda", compile=compile), train, test, tmp_path)
    assert metrics["precision"] == "bf16" and metrics["eval_acc"] > 0.3  # chance: 0.1
    model = create_model("fastnet")
    load_weights(model, tmp_path / "model.safetensors")  # a CPU model takes GPU-trained weights
