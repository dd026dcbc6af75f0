"""`tinycifar export --out FILE.tflite [--int8] [--c-array]`: every zoo model converts, the
int8 file keeps IC01's contract and runs in TFLM, and the memory estimate of `summary` and
`models` holds against the file's size and TFLM's own arena."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_DATA, needs_real_data, synthetic_cifar

pytest.importorskip("litert_torch", reason="the [tflite-export] extra is not installed")
pytest.importorskip("tflite_micro", reason="the [tflite] extra is not installed")

from test_export import varied  # noqa: E402  (a model whose logits vary from image to image)

from tinycifar import cli, memory, tflite_export  # noqa: E402
from tinycifar.errors import TinyCifarError  # noqa: E402
from tinycifar.inference import predict_logits  # noqa: E402
from tinycifar.models import list_models  # noqa: E402
from tinycifar.pretrained import load_model  # noqa: E402
from tinycifar.tflite_file import TfliteClassifier  # noqa: E402

CPU = torch.device("cpu")


def _metadata(data: bytes) -> dict:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    (entry,) = [m for m in model.metadata if m.name.decode() == tflite_export.METADATA_NAME]
    return json.loads(bytes(model.buffers[entry.buffer].data))


@pytest.mark.parametrize("name", list_models())
def test_every_model_converts_in_float_and_int8_and_its_memory_is_as_estimated(tmp_path, name):
    model = varied(name)
    images = synthetic_cifar(96, seed=3)[0]
    ours = predict_logits(model, images, CPU)

    fp32 = tmp_path / f"{name}.tflite"
    tflite_export.write(fp32, tflite_export.convert(model, name))
    theirs = TfliteClassifier(fp32).logits(images)
    assert ours.std(0).mean() > 1e-3  # the logits vary, or the comparison means nothing
    assert (theirs - ours).abs().max() <= 1e-3 * ours.abs().max() + 1e-4
    assert (theirs.argmax(1) == ours.argmax(1)).all()

    int8 = tmp_path / f"{name}.int8.tflite"
    data = tflite_export.convert(model, name, images[:64])  # refuses a file with float operators
    tflite_export.write(int8, data)
    micro = TfliteClassifier(int8, "tflm")
    assert micro.input["dtype"] == np.int8 and tuple(micro.input["quantization"]) == (1.0, -128)
    assert micro.output["dtype"] == np.int8
    scores = micro.logits(images[:16])
    assert torch.isfinite(scores).all() and scores.std(0).mean() > 0  # the kernels ran and tell images apart

    # The estimate `summary` and `models` print, against the file and TFLM's arena.
    estimate = memory.estimate(model)
    arena = micro.arena_bytes()
    assert arena is not None
    assert abs(estimate.flash_bytes - len(data)) <= memory.FLASH_TOLERANCE * len(data), (estimate, len(data))
    assert abs(estimate.ram_bytes - arena) <= memory.ARENA_TOLERANCE * arena, (estimate, arena)


def test_the_int8_file_says_what_it_is_and_strips_the_rest():
    model = varied("fastnet")
    data = tflite_export.convert(model, "fastnet", synthetic_cifar(32)[0])
    info = _metadata(data)
    assert info["model"] == "fastnet" and len(info["classes"]) == 10 and "32 training images" in info["quantization"]
    checkout = str(Path(tflite_export.__file__).resolve().parents[2]).encode()
    assert b"tinycifar.models" not in data and checkout not in data  # no module names, no paths of this machine


def test_a_batchnorm_after_a_pool_is_a_depthwise_convolution_and_pools_reduce():
    model = varied("fastnet")
    deployed = tflite_export.deployable(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert not any(isinstance(m, torch.nn.AdaptiveMaxPool2d) for m in deployed.modules())
    images = synthetic_cifar(16)[0]
    torch.testing.assert_close(predict_logits(deployed, images, CPU), predict_logits(model, images, CPU))
    assert all(p.is_contiguous() for p in deployed.parameters())


def test_an_unknown_observer_is_one_line():
    with pytest.raises(TinyCifarError, match="unknown calibration observer 'entropy'"):
        tflite_export.convert(varied("fastnet"), "fastnet", synthetic_cifar(8)[0], "entropy")


@needs_real_data
def test_the_shipped_model_in_int8_tflm_stays_close_to_pytorch(tmp_path):
    from tinycifar.data import load_cifar10

    model = load_model("fastnet", None, CPU)
    train, _ = load_cifar10("train", REAL_DATA)
    images, labels = load_cifar10("test", REAL_DATA)
    images, labels = images[:300], labels[:300]
    from tinycifar.export import calibration_sample

    path = tmp_path / "fastnet.int8.tflite"
    tflite_export.write(path, tflite_export.convert(model, "fastnet", calibration_sample(train, 256)))
    micro = TfliteClassifier(path, "tflm")
    ours = predict_logits(model, images, CPU).argmax(1)
    theirs = micro.logits(images).argmax(1)
    assert (ours == theirs).float().mean() >= 0.95
    assert (theirs == labels).float().mean() >= (ours == labels).float().mean() - 0.03


def test_cli_export_tflite_writes_checks_and_embeds(tmp_path, capsys, fake_root):
    from tinycifar.checkpoint import save_weights

    weights = tmp_path / "w.safetensors"
    save_weights(varied("fastnet"), weights, {"model": "fastnet"})
    out = tmp_path / "deploy" / "fastnet.tflite"
    argv = ["export", "--weights", str(weights), "--out", str(out), "--int8", "--calibration-images", "40"]
    assert cli.main([*argv, "--c-array", "--data-dir", str(fake_root)]) == 0
    text = capsys.readouterr().out
    int8 = tmp_path / "deploy" / "fastnet.int8.tflite"
    assert out.is_file() and int8.is_file()
    (fp32_row,) = [line for line in text.splitlines() if line.startswith("TFLite fp32")]
    assert fp32_row.split()[-1] == "100.00%"  # the float file agrees with PyTorch on every image
    assert any(line.startswith("TFLite int8") for line in text.splitlines())
    arena = TfliteClassifier(int8, "tflm")
    arena.logits(synthetic_cifar(1)[0])
    assert f"{arena.arena_bytes():,}" in text  # the arena printed is TFLM's own
    source = (tmp_path / "deploy" / "fastnet.int8.cc").read_text()
    assert f"fastnet_int8_tflite_len = {int8.stat().st_size};" in source
    assert "extern const uint8_t fastnet_int8_tflite[];" in source  # other files can link to it
    assert f"wrote {int8}, {int8.with_suffix('.cc')}" in text
    body = source[source.index("{") + 1 : source.index("}")]
    assert bytes(int(b, 16) for b in body.replace(",", " ").split()) == int8.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "fastnet.cc",
        "fastnet.int8.cc",
        "fastnet.int8.tflite",
        "fastnet.tflite",
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--out", "m.txt"], "name the file *.onnx or *.tflite"),
        (["--out", "m.onnx", "--c-array"], "--c-array writes TFLite files"),
        (["--out", "m.tflite", "--int8", "--calibration-method", "entropy"], "for TFLite choose one of"),
    ],
)
def test_cli_export_tflite_bad_options_are_one_line(tmp_path, capsys, fake_root, argv, says):
    argv = [a if not a.startswith("m.") else str(tmp_path / a) for a in argv]
    assert cli.main(["export", *argv, "--data-dir", str(fake_root)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("m.*"))


def test_a_model_that_keeps_float_operators_is_refused_in_int8():
    class GroupNormNet(torch.nn.Module):  # GroupNorm has no int8 kernel: it would stay float
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.norm = torch.nn.GroupNorm(2, 8)
            self.head = torch.nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.norm(self.conv(x)).mean((2, 3)))

    with pytest.raises(TinyCifarError, match="does not quantise to int8 throughout .* export it without --int8"):
        tflite_export.convert(GroupNormNet().eval(), "groupnormnet", synthetic_cifar(8)[0])


def test_a_converter_failure_is_one_line_naming_the_model(monkeypatch):
    import litert_torch

    def fail(*args, **kwargs):
        raise RuntimeError("an operator it does not know\nand a long trace")

    monkeypatch.setattr(litert_torch, "convert", fail)
    with pytest.raises(
        TinyCifarError, match=r"^model 'fastnet' does not convert to TFLite \(an operator it does not know\)$"
    ):
        tflite_export.convert(varied("fastnet"), "fastnet")


def test_the_c_array_names_a_symbol_c_accepts(tmp_path):
    path = tmp_path / "1st model.cc"
    tflite_export.write_c_array(path, b"\x01\x02\x03", "1st model.tflite")
    text = path.read_text()
    assert "const uint8_t model_1st_model_tflite[] = {\n  0x01, 0x02, 0x03\n};" in text
    assert "model_1st_model_tflite_len = 3;" in text


def test_summary_estimates_only_when_asked_and_only_at_32x32():
    from tinycifar.summary import format_summary, summarize

    model = varied("fastnet")
    assert summarize(model).mcu is None  # train prints the table too: no export there
    s = summarize(model, mcu=True)
    assert s.mcu == memory.estimate(model)
    assert f"flash {s.mcu.flash_bytes / 1000:,.1f} KB" in format_summary(s)
    assert summarize(model, input_size=(3, 64, 64), mcu=True).mcu is None
