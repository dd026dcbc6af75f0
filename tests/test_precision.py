"""Precision: auto follows the CPU, bf16 keeps what must stay fp32, and a run records it."""

import json

import pytest
import torch
import torch.nn as nn

from tinycifar.errors import TinyCifarError
from tinycifar.models import create_model
from tinycifar.optimizers import make_optimizer
from tinycifar.precision import autocast, cpu_info, resolve_precision
from tinycifar.recipe import Recipe
from tinycifar.runconfig import RunConfig
from tinycifar.train import fit


@pytest.mark.parametrize(
    "flags, expected", [(["avx2"], "fp32"), (["avx2", "avx512f", "avx512_bf16"], "bf16"), (["amx_bf16"], "bf16")]
)
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr("tinycifar.precision.cpu_info", lambda: {"model": "test", "flags": flags})
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_unknown_precision_is_refused():
    with pytest.raises(TinyCifarError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_cpu_info_names_the_cpu():
    info = cpu_info()
    assert info["model"] and isinstance(info["flags"], list)


def test_bf16_keeps_weights_optimizer_state_bn_statistics_and_loss_in_fp32(tiny_data):
    model = create_model("tinynet").to(memory_format=torch.channels_last)
    opt = make_optimizer(model, Recipe())
    images, labels = tiny_data[0]
    x = images[:32].float().contiguous(memory_format=torch.channels_last) / 255
    with autocast("bf16", torch.device("cpu")):
        logits = model(x)
    assert logits.dtype == torch.bfloat16  # the forward pass did run in bf16
    loss = nn.functional.cross_entropy(logits.float(), labels[:32])
    loss.backward()
    opt.step()
    assert loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())
    assert all(v.dtype == torch.float32 for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


def test_bf16_run_records_its_precision(tmp_path, tiny_data):
    (images, labels), (test_images, test_labels) = tiny_data  # bf16 is emulated on most CPUs: keep it tiny
    metrics = fit(
        RunConfig("tinynet", Recipe(epochs=1, batch_size=64, warmup_epochs=0.5), precision="bf16"),
        (images[:128], labels[:128]),
        (test_images[:20], test_labels[:20]),
        tmp_path,
    )
    env = json.loads((tmp_path / "environment.json").read_text())
    assert metrics["precision"] == env["precision"] == "bf16"
    assert env["cpu"] and "cpu_flags" in env
    # the run evaluated in fp32, as `tinycifar evaluate` does: its figures are the weights'
    # own on any machine (a bf16 forward moves the loss by far more than this tolerance)
    from tinycifar.inference import predict_logits
    from tinycifar.pretrained import load_model

    logits = predict_logits(load_model("tinynet", tmp_path / "model.safetensors", "cpu"), test_images[:20], "cpu")
    assert nn.functional.cross_entropy(logits, test_labels[:20]).item() == pytest.approx(metrics["eval_loss"], abs=1e-6)
    assert (logits.argmax(1) == test_labels[:20]).float().mean().item() == pytest.approx(metrics["eval_acc"])
