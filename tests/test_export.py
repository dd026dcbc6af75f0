"""`tinycifar export`, the ONNX contract, int8, and `evaluate --onnx` / `predict --onnx`."""

import json

import numpy as np
import pytest
import torch
from conftest import needs_real_data, synthetic_cifar

onnx = pytest.importorskip("onnx", reason="the [export] extra is not installed")
pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")

from tinycifar import __version__, cli  # noqa: E402
from tinycifar.data import CLASSES  # noqa: E402
from tinycifar.errors import TinyCifarError  # noqa: E402
from tinycifar.export import calibration_sample, export_onnx, int8_path, quantize_int8  # noqa: E402
from tinycifar.inference import predict_logits  # noqa: E402
from tinycifar.models import create_model, list_models  # noqa: E402
from tinycifar.onnx_file import MAX_BYTES, OnnxClassifier, read_model  # noqa: E402
from tinycifar.pretrained import load_model  # noqa: E402
from tinycifar.train import init_from_data  # noqa: E402

CPU = torch.device("cpu")


def varied(name: str) -> torch.nn.Module:
    """A model whose outputs differ from image to image: random BatchNorm statistics and
    scales stand in for training, so a wrong operator shows in the logits."""
    torch.manual_seed(0)
    model = create_model(name)
    init_from_data(model, synthetic_cifar(200)[0], CPU)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        if isinstance(m, torch.nn.Linear):  # fastnet's starts near zero
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_and_matches_pytorch(tmp_path, name):
    model = varied(name)
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, name)
    images = synthetic_cifar(64, seed=2)[0]
    ours = predict_logits(model, images, CPU)
    clf = OnnxClassifier(path)
    theirs = clf.logits(images)
    assert ours.std(0).mean() > 1e-3  # the logits really vary, or the comparison means nothing
    assert (theirs - ours).abs().max() <= 1e-4 * ours.abs().max() + 1e-5
    assert (theirs.argmax(1) == ours.argmax(1)).all()
    # The batch axis is dynamic: one image at a time gives the same logits.
    one = torch.from_numpy(clf.run(images[:1].numpy().astype(np.float32) / 255))
    torch.testing.assert_close(one, theirs[:1], atol=1e-5, rtol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # self-contained: no side files


def test_the_file_keeps_the_contract_and_says_what_it_is(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(varied("tinynet"), path, "tinynet")
    model = read_model(path)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("images", "logits")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, 32, 32]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model"] == "tinynet" and meta["tinycifar_version"] == __version__
    assert json.loads(meta["classes"]) == list(CLASSES)
    assert all(not n.metadata_props for n in model.graph.node)  # no stack traces with local paths
    onnx.checker.check_model(model, full_check=True)


def test_normalisation_is_inside_the_graph(tmp_path):
    """[0, 1] pixels in, the same logits as PyTorch's uint8 path: a file that skipped the
    normalisation (or applied it twice) would be far off."""
    model = varied("fastnet")
    path = tmp_path / "m.onnx"
    export_onnx(model, path, "fastnet")
    images = synthetic_cifar(16, seed=3)[0]
    raw = OnnxClassifier(path).run(images.numpy().astype(np.float32) / 255)
    torch.testing.assert_close(torch.from_numpy(raw), predict_logits(model, images, CPU), atol=1e-4, rtol=1e-4)


@needs_real_data
@pytest.mark.parametrize("name", ["fastnet", "tinynet"])  # the models that ship weights
def test_int8_of_a_shipped_model_is_small_and_close_to_fp32(tmp_path, name):
    from conftest import REAL_DATA

    from tinycifar.data import load_cifar10

    model = load_model(name, None, CPU)
    fp32 = tmp_path / f"{name}.onnx"
    export_onnx(model, fp32, name)
    train, _ = load_cifar10("train", REAL_DATA)
    test_images, test_labels = load_cifar10("test", REAL_DATA)
    q = int8_path(fp32)
    quantize_int8(fp32, q, calibration_sample(train, 256))
    sample, labels = test_images[:1000], test_labels[:1000]
    ref, got = OnnxClassifier(fp32).logits(sample), OnnxClassifier(q).logits(sample)
    assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.95
    assert abs((got.argmax(1) == labels).float().mean() - (ref.argmax(1) == labels).float().mean()) <= 0.02
    assert q.stat().st_size <= 120_000  # issue #9: the default model's int8 file ≤ 120 KB (fastnet: 110 KB)
    assert "quantization" in {p.key for p in read_model(q).metadata_props}


def test_calibration_sample_is_fixed_and_drawn_from_what_it_is_given():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 32, 32)
    a, b = calibration_sample(images, 10), calibration_sample(images, 10)
    assert torch.equal(a, b) and len(a) == 10 and len(set(a[:, 0, 0, 0].tolist())) == 10


# ---------------------------------------------------------------- the commands


@pytest.fixture
def shipped_onnx(tmp_path):
    path = tmp_path / "fastnet.onnx"
    export_onnx(load_model("fastnet", None, CPU), path, "fastnet")
    return path


def test_cli_export_writes_checks_and_quantises(tmp_path, capsys, fake_root):
    out = tmp_path / "deploy" / "tinynet.onnx"
    weights = tmp_path / "w.safetensors"
    from tinycifar.checkpoint import save_weights

    save_weights(varied("tinynet"), weights, {"model": "tinynet"})
    assert (
        cli.main(
            [
                "export",
                "--weights",
                str(weights),
                "--out",
                str(out),
                "--int8",
                "--calibration-images",
                "40",
                "--data-dir",
                str(fake_root),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "top-1 agreement 100.00%" in text
    assert out.is_file() and int8_path(out).is_file()
    assert "ONNX int8" in text and "KB" in text
    assert OnnxClassifier(int8_path(out)).metadata["model"] == "tinynet"


def test_cli_evaluate_onnx_matches_pytorch_evaluate(tmp_path, capsys, shipped_onnx, fake_root):
    assert (
        cli.main(["evaluate", "--onnx", str(shipped_onnx), "--out", str(tmp_path / "o"), "--data-dir", str(fake_root)])
        == 0
    )
    assert (
        cli.main(
            [
                "evaluate",
                "--model",
                "fastnet",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--out",
                str(tmp_path / "t"),
                "--data-dir",
                str(fake_root),
            ]
        )
        == 0
    )
    o = json.loads((tmp_path / "o" / "metrics.json").read_text())
    t = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert o["model"] == "fastnet" and "ONNX Runtime" in o["runs_as"]
    assert o["confusion_matrix"] == t["confusion_matrix"]


def test_cli_predict_onnx(tmp_path, capsys, shipped_onnx):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(img)
    assert cli.main(["predict", "--onnx", str(shipped_onnx), str(img)]) == 0
    onnx_line = capsys.readouterr().out
    assert cli.main(["predict", "--model", "fastnet", "--device", "cpu", "--precision", "fp32", str(img)]) == 0
    assert capsys.readouterr().out.split(": ")[1].split(",")[0] == onnx_line.split(": ")[1].split(",")[0]


# ---------------------------------------------------------------- bad input


def _contract_breaker(tmp_path, **changes):
    """A small valid ONNX model that breaks the contract in one way."""
    from onnx import TensorProto, helper

    name_in, name_out = changes.get("input", "images"), changes.get("output", "logits")
    dtype = changes.get("dtype", TensorProto.FLOAT)
    classes = changes.get("classes", 10)
    x = helper.make_tensor_value_info(name_in, dtype, ["n", 3, 32, 32])
    y = helper.make_tensor_value_info(name_out, TensorProto.FLOAT, ["n", classes])
    nodes = [
        helper.make_node("Cast", [name_in], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f", "axes"], ["m"], keepdims=0),
        helper.make_node("Tile", ["m", "reps"], [name_out]),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    reps = helper.make_tensor("reps", TensorProto.INT64, [2], [1, 4])
    graph = helper.make_graph(nodes, "g", [x], [y], [axes, reps])
    path = tmp_path / "breaker.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


@pytest.mark.parametrize(
    "change, says",
    [
        ({"input": "x"}, "inputs are ['x'], expected ['images']"),
        ({"output": "probs"}, "outputs are ['probs'], expected ['logits']"),
        ({"dtype": onnx.TensorProto.UINT8}, "'images' is uint8, expected float32"),
        ({"classes": 5}, "'logits' has shape (n?, 5)"),
    ],
)
def test_a_file_off_the_contract_is_one_line_exit_2(tmp_path, capsys, change, says):
    path = _contract_breaker(tmp_path, **change)
    assert cli.main(["evaluate", "--onnx", str(path), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not keep tinycifar's ONNX contract" in err
    assert says.replace("n?", "?") in err or says in err


def test_truncated_and_corrupt_files_are_one_line_exit_2(tmp_path, capsys, shipped_onnx):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(shipped_onnx.read_bytes()[:5000])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path in (truncated, garbage, empty, tmp_path / "missing.onnx"):
        assert cli.main(["predict", "--onnx", str(path), "x.png"]) == 2, path
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err


def test_external_data_and_oversized_files_are_refused(tmp_path, monkeypatch, shipped_onnx):
    model = onnx.load(shipped_onnx)
    onnx.save(
        model,
        tmp_path / "split.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    with pytest.raises(TinyCifarError, match="external files"):
        read_model(tmp_path / "split.onnx")
    monkeypatch.setattr("tinycifar.onnx_file.MAX_BYTES", 1000)
    with pytest.raises(TinyCifarError, match="more than tinycifar reads"):
        read_model(shipped_onnx)
    assert MAX_BYTES >= 2**20


def test_export_refuses_an_unwritable_out_and_a_non_onnx_name(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["export", "--out", str(blocker / "m.onnx")]) == 2
    assert "cannot write to --out folder" in capsys.readouterr().err
    assert cli.main(["export", "--out", str(tmp_path / "m.pt")]) == 2
    assert "*.onnx" in capsys.readouterr().err


def test_onnx_with_weights_is_refused(tmp_path, capsys, shipped_onnx):
    assert cli.main(["predict", "--onnx", str(shipped_onnx), "--model", "tinynet", "x.png"]) == 2
    assert "drop --model and --weights" in capsys.readouterr().err
