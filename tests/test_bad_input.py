"""The bad-input catalogue: every way a user can feed tinycifar something wrong.

Each :class:`Case` runs the real command line in-process (``tinycifar.cli.main``) and must
end with (1) the expected non-zero exit code, (2) a specific message on stderr that says
what is wrong and how to fix it, and (3) no traceback. One table, one parametrized test:
``pytest --collect-only -q tests/test_bad_input.py`` counts the catalogue.

No case touches the real network: ``tinycifar.data.CIFAR10_URL`` (read at call time by
``load_cifar10``) points at a loopback server that answers 404 unless a case says
otherwise. Cases marked ``before_data`` must be refused before the data is loaded or
downloaded: their ``--data-dir`` does not exist and must still not exist afterwards, and
the server must have seen no request.

Bad image files for ``predict`` (non-image, empty, truncated, 20000×20000) are already
asserted at command level in test_predict.py and are not repeated here.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import socket
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import (
    Evil,
    N,
    add_file,
    add_symlink,
    fake_archive_bytes,
    md5,
    set_batch_key,
    tar_bytes,
    write_batches,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tinycifar import cli, data
from tinycifar.checkpoint import LAST, PREVIOUS, load_checkpoint, save_checkpoint, save_weights
from tinycifar.data import ARCHIVE_NAME, BATCHES_DIR
from tinycifar.distill import save_soft_labels
from tinycifar.errors import TinyCifarError
from tinycifar.models import create_model
from tinycifar.recipe import Recipe, recipe_from_dict

TINYCIFAR_MD5 = data.CIFAR10_MD5
BY_HAND = r"Download the archive by hand from \S+ and save it as \S+cifar-10-python\.tar\.gz"


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[SimpleNamespace], list[str]]  # sets up files under env.tmp, returns the argv
    exit: int
    message: str  # regex, searched in stderr
    before_data: bool = False  # refused before loading (or downloading) CIFAR-10
    malicious: bool = False  # env.payload holds a live pickle payload: prove it did not run
    check: Callable[[SimpleNamespace], None] | None = None  # extra assertions afterwards
    marks: tuple = ()
    max_mb: float | None = None  # the most the command may allocate (tracemalloc: Python and numpy)


# ---------------------------------------------------------------- argv builders


def analyze(env, data_dir: Path) -> list[str]:
    return ["analyze", "--data-dir", str(data_dir), "--out", str(env.tmp / "analysis"), "--no-download"]


def train(env, *extra: str, data_dir: Path | None = None, out: Path | None = None) -> list[str]:
    return [
        "train",
        "--data-dir",
        str(data_dir or env.no_data),
        "--out",
        str(out or env.tmp / "run"),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def evaluate(env, *extra: str, data_dir: Path | None = None, weights: Path | None = None) -> list[str]:
    return [
        "evaluate",
        "--data-dir",
        str(data_dir or env.no_data),
        "--out",
        str(env.tmp / "eval"),
        "--device",
        "cpu",
        "--weights",
        str(weights or tinynet_weights(env)),
        *extra,
    ]


# ---------------------------------------------------------------- file builders


def fake_data(env, mutate=None, name: str = "data_batch_1") -> Path:
    """A good tiny CIFAR-10 folder; ``mutate(path)`` then spoils batch file ``name``."""
    root = env.tmp / "data"
    write_batches(root / BATCHES_DIR)
    if mutate:
        mutate(root / BATCHES_DIR / name)
    return root


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def truncated_copy(path: Path) -> Path:
    copy = path.with_name(path.stem + "-truncated" + path.suffix)
    copy.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return copy


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\x80\x02 this is not a pickle of anything")


def evil_batch(env):
    def mutate(path: Path):
        path.write_bytes(pickle.dumps({b"data": Evil(env.marker, "system"), b"labels": [0] * N}, protocol=2))
        env.payload = path

    return mutate


def with_archive(env, payload: bytes, trust_md5: bool = True) -> Path:
    """A data dir holding only ``cifar-10-python.tar.gz``; with ``trust_md5`` its MD5 is
    made the expected one, so the checks after the checksum are reached."""
    root = env.tmp / "data"
    root.mkdir()
    (root / ARCHIVE_NAME).write_bytes(payload)
    if trust_md5:
        env.monkeypatch.setattr(data, "CIFAR10_MD5", md5(payload))
    return root


def archive_with(env, extra) -> Path:
    return with_archive(env, fake_archive_bytes(env.tmp, extra=extra))


def serve(env, mode: str, body: bytes = b"") -> Path:
    env.server.mode, env.server.body = mode, body
    return env.no_data


def refused_port(env) -> Path:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        env.monkeypatch.setattr(data, "CIFAR10_URL", f"http://127.0.0.1:{s.getsockname()[1]}/{ARCHIVE_NAME}")
    return env.no_data


def tinynet_weights(env) -> Path:
    path = env.tmp / "tinynet.safetensors"
    if not path.exists():
        save_weights(create_model("tinynet"), path, {"model": "tinynet"})
    return path


def sparse_file(env, name: str, size: int) -> Path:
    """A file of ``size`` bytes made in an instant (sparse)."""
    path = env.tmp / name
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def teacher_file(env, probs: torch.Tensor | None = None, size: int | None = None) -> str:
    """A soft-labels file for the fake training set (N images a batch, 5 batches), or one
    spoilt: other ``probs``, or a file of ``size`` bytes."""
    if size is not None:
        return str(sparse_file(env, "teacher.safetensors", size))
    path = env.tmp / "teacher.safetensors"
    save_soft_labels(torch.full((5 * N, 10), 0.1) if probs is None else probs, path, {})
    return str(path)


def seed_weights(env, metadata: dict[str, str]) -> Path:
    path = env.tmp / "seed.safetensors"
    save_weights(create_model("seed"), path, metadata)
    return path


def fastnet_weights(env, metadata: dict[str, str]) -> Path:
    """fastnet's default weights under ``metadata`` (e.g. constructor arguments they do not fit)."""
    path = env.tmp / "fastnet.safetensors"
    save_weights(create_model("fastnet"), path, {"model": "fastnet", **metadata})
    return path


def recast_weights(env, name: str, floats: torch.dtype, integers: torch.dtype) -> Path:
    """tinynet's tensors of the right names and shapes, its float ones stored as ``floats``
    and its integer ones (BatchNorm's counters) as ``integers``."""
    path = env.tmp / f"{name}.safetensors"
    state = {
        k: v.to(floats if v.is_floating_point() else integers) for k, v in create_model("tinynet").state_dict().items()
    }
    save_file(state, str(path), metadata={"model": "tinynet"})
    return path


def evil_file(env, name: str, torch_format: bool) -> Path:
    """A pickle whose loading runs ``touch env.marker``: as ``torch.save`` writes it (zip)
    or as a bare pickle."""
    path = env.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": Evil(env.marker, "system"), "epoch": 0}
    if torch_format:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))
    env.payload = path
    return path


def run_dir(env, last: Callable[[Path], None] | None = None, previous: Callable[[Path], None] | None = None) -> Path:
    """A run folder with real checkpoints in last.pt / previous.pt, then spoiled."""
    out = env.tmp / "run"
    out.mkdir()
    for epoch in range(2):
        save_checkpoint({"model": {"w": torch.full((3,), float(epoch))}, "epoch": epoch}, out)
    for name, spoil in ((LAST, last), (PREVIOUS, previous)):
        if spoil:
            spoil(out / name)
    return out


def recipe_file(env, text: str | bytes) -> str:
    path = env.tmp / "recipe.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def file_in_the_way(env) -> Path:
    blocker = env.tmp / "a-file"
    blocker.write_text("a file where a folder should be")
    return blocker / "run"


# ---------------------------------------------------------------- files from a stranger, run folders


def png(env) -> str:
    from PIL import Image

    path = env.tmp / "cat.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(path)
    return str(path)


def onnx_reading_a_file(env, where: str) -> Path:
    """A contract-keeping ONNX classifier (mean colour times a 3×10 matrix) whose matrix is
    external data in ``secret.bin`` beside it, kept in a ``Constant`` node, in a subgraph's
    initializer or as a sparse initializer: ONNX Runtime would read the file."""
    from onnx import TensorProto, helper

    (env.tmp / "secret.bin").write_bytes(np.arange(30, dtype=np.float32).tobytes())

    def external(name: str, dims: list[int]) -> TensorProto:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "secret.bin"), ("offset", "0"), ("length", str(4 * math.prod(dims)))):
            t.external_data.add(key=key, value=value)
        return t

    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["colour"]),
    ]
    initializers, sparse = [], []
    if where == "constant":
        nodes.append(helper.make_node("Constant", [], ["w"], value=external("w_value", [3, 10])))
    elif where == "subgraph":
        branch = helper.make_graph(
            [helper.make_node("Identity", ["w_sub"], ["w"])],
            "branch",
            [],
            [helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 10])],
            initializer=[external("w_sub", [3, 10])],
        )
        nodes += [
            helper.make_node("Constant", [], ["yes"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
            helper.make_node("If", ["yes"], ["w"], then_branch=branch, else_branch=branch),
        ]
    else:
        indices = helper.make_tensor("idx", TensorProto.INT64, [30], list(range(30)))
        sparse.append(helper.make_sparse_tensor(external("w", [30]), indices, [3, 10]))
    nodes.append(helper.make_node("MatMul", ["colour", "w"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "reads-a-file",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=initializers,
        sparse_initializer=sparse,
    )
    path = env.tmp / "reads-a-file.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def link_to(env, target: str, name: str = "model.onnx") -> Path:
    path = env.tmp / name
    path.symlink_to(target)
    return path


def fifo(env, name: str = "model.onnx") -> Path:
    path = env.tmp / name
    os.mkfifo(path)
    return path


def deflated_checkpoint(env) -> Path:
    """A real checkpoint whose 64 MB tensor is re-zipped deflated: ~64 KB on disk."""
    out = env.tmp / "run"
    out.mkdir()
    plain = env.tmp / "plain.pt"
    torch.save({"model": {"w": torch.zeros(16 << 20)}, "epoch": 0}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out / LAST, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    plain.unlink()
    return out


def checkpoint_of(env, state: dict) -> Path:
    out = env.tmp / "run"
    out.mkdir()
    torch.save(state, out / LAST)
    return out


def shared_history(env) -> Path:
    """A checkpoint whose history rows nest one list by shared reference, 10^12 items once
    expanded (a few hundred bytes in the pickle): a resume writes history to the log."""
    bomb: list = [0.0] * 100
    for _ in range(5):
        bomb = [bomb] * 100
    return checkpoint_of(
        env,
        {
            "model": {},
            "optimizer": {},
            "scheduler": {},
            "averager": {},
            "epoch": 0,
            "config": {},
            "history": [{"train_loss": bomb}],
        },
    )


def finished_run(env) -> Path:
    """A folder holding a finished run's files, their bytes kept in ``env.before``."""
    out = env.tmp / "run"
    out.mkdir()
    for name in ("config.json", "log.jsonl", "metrics.json", "last.pt", "previous.pt", "model.safetensors"):
        (out / name).write_bytes(f"the first run's {name}".encode())
    env.before = {p.name: p.read_bytes() for p in out.iterdir()}
    return out


def unchanged(env) -> None:
    """The first run's files, byte for byte, and no lock left behind by the refused command."""
    same_bytes(env)
    assert not (env.tmp / "run" / ".tinycifar.lock").exists()


def same_bytes(env) -> None:
    out = env.tmp / "run"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in env.before} == env.before


def locked(env) -> Path:
    """A run folder whose lock a live writer holds (another open file of this process)."""
    import fcntl

    out = finished_run(env)
    fd = os.open(out / ".tinycifar.lock", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"host pid 4242 since then\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    env.monkeypatch.setattr(env, "lock_fd", fd, raising=False)
    return out


def still_locked(env) -> None:
    assert (env.tmp / "run" / ".tinycifar.lock").read_bytes() == b"host pid 4242 since then\n"
    os.close(env.lock_fd)


def disk_full_at_epoch(env, epoch: int) -> Path:
    """torch.save fails as on a full disk (torch's own error) when epoch ``epoch``'s
    checkpoint is written; the epochs before it were saved."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            Path(f).write_bytes(b"PK half a file")
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                "file data/0: file write failed"
            )
        return real(obj, f, *args, **kwargs)

    env.monkeypatch.setattr(torch, "save", save)
    return fake_data(env)


def first_epoch_kept(env) -> None:
    state = load_checkpoint(env.tmp / "run")
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert not list((env.tmp / "run").glob("*.tmp"))


def repeat(env, *train_options: str, seeds: tuple[str, ...] = ("0",)) -> list[str]:
    return [
        "repeat",
        "--seeds",
        *seeds,
        "--out",
        str(env.tmp / "rep"),
        "--",
        "--data-dir",
        str(env.no_data),
        *train_options,
    ]


def repeat_runs(env, metrics: dict[int, str], config_seed: dict[int, int] | None = None) -> list[str]:
    """Seed folders holding finished runs: ``metrics`` text for each, and configs whose seed
    is ``config_seed`` (as a copied folder would have)."""
    for seed, text in metrics.items():
        folder = env.tmp / "rep" / f"seed-{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(text)
        own = (config_seed or {}).get(seed, seed)
        (folder / "config.json").write_text(json.dumps({"model": "fastnet", "seed": own}))
    return repeat(env, seeds=tuple(map(str, metrics)))


def finished(seed: int) -> str:
    return json.dumps({"model": "fastnet", "seed": seed, "final_test_acc": 0.5, "train_seconds": 1.0})


def with_env(env, name: str, value: str) -> None:
    env.monkeypatch.setenv(name, value)


def nested_labels(env):
    """Labels as a list nested by shared reference: 10^10 integers once np.asarray
    expands them, a few hundred bytes in the pickle."""

    def mutate(path: Path):
        bomb: list = [0] * 100
        for _ in range(4):
            bomb = [bomb] * 100
        set_batch_key(b"labels", bomb)(path)

    return mutate


REFERENCE_TFLITE = Path(__file__).resolve().parents[2] / "shared/peers/mlperf-tiny-ic01/pretrainedResnet_quant.tflite"


def converter_marks() -> tuple:
    """Export cases that reach the converter's import need the [tflite-export] extra."""
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return (pytest.mark.skip(reason="the [tflite-export] extra is not installed"),)
    return ()


def tflite_marks() -> tuple:
    """TFLite cases need the [tflite] extra and the IC01 file beside the checkout."""
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return (pytest.mark.skip(reason="the [tflite] extra is not installed"),)
    return (pytest.mark.skipif(not REFERENCE_TFLITE.is_file(), reason="no IC01 reference beside the checkout"),)


def spoilt_tflite(env, how: str) -> Path:
    path = env.tmp / "model.tflite"
    data = REFERENCE_TFLITE.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 40}[how])
    return path


# ---------------------------------------------------------------- extra checks


def nothing_named_evil(env) -> None:
    assert not list(env.tmp.rglob("*evil*")), "an archive member escaped"


def no_partial_download(env) -> None:
    assert not env.no_data.exists() or not any(env.no_data.iterdir()), list(env.no_data.iterdir())


def no_cuda_mark():
    return (pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),)


# ---------------------------------------------------------------- the catalogue

CASES = [
    # --- CIFAR-10 folder: missing, empty, wrong layout ---
    Case(
        "data-dir-missing-no-download",
        lambda e: analyze(e, e.no_data),
        2,
        rf"CIFAR-10 not found in \S+no-data and downloading is off\. {BY_HAND}",
    ),
    Case(
        "data-dir-empty-no-download",
        lambda e: analyze(e, mkdir(e.tmp / "empty")),
        2,
        rf"CIFAR-10 not found in \S+empty and downloading is off\. {BY_HAND}",
    ),
    Case(
        "data-dir-missing-download-404",
        lambda e: train(e),
        2,
        rf"downloading http://127\.0\.0\.1:\d+/\S+ failed: the server answered HTTP 404 .*{BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "data-dir-is-a-file",
        lambda e: train(e, data_dir=file_in_the_way(e).parent),
        2,
        r"data dir \S+a-file is not a folder: pass a folder with --data-dir or TINYCIFAR_DATA",
    ),
    Case(
        "layout-batches-one-folder-too-deep",
        lambda e: analyze(e, write_batches(e.tmp / "data" / "extra" / BATCHES_DIR).parent.parent),
        2,
        rf"CIFAR-10 not found in \S+data, but one folder further down there is \S+data/extra/{BATCHES_DIR}: "
        r"point --data-dir / TINYCIFAR_DATA at it",
    ),
    Case(
        "layout-extracted-twice",
        lambda e: analyze(e, write_batches(e.tmp / "data" / BATCHES_DIR / BATCHES_DIR).parent.parent),
        2,
        rf"missing file \S+data/{BATCHES_DIR}/data_batch_1: the batch files are one folder further down, in "
        rf"\S+/{BATCHES_DIR}/{BATCHES_DIR}\. Point --data-dir / TINYCIFAR_DATA there",
    ),
    Case(
        "layout-batch-file-missing",
        lambda e: analyze(e, fake_data(e, Path.unlink, "data_batch_3")),
        2,
        r"missing file \S+data_batch_3: the CIFAR-10 folder \S+ is incomplete",
    ),
    # --- CIFAR-10 batch files ---
    Case(
        "batch-truncated",
        lambda e: train(e, data_dir=fake_data(e, truncate)),
        2,
        r"data_batch_1 is not a valid CIFAR-10 batch: truncated or corrupt pickle .*Delete \S+ to download "
        r"a fresh copy, or point --data-dir / TINYCIFAR_DATA at a good one",
    ),
    Case(
        "batch-corrupt",
        lambda e: analyze(e, fake_data(e, garbage, "data_batch_4")),
        2,
        r"data_batch_4 is not a valid CIFAR-10 batch: truncated or corrupt pickle",
    ),
    Case(
        "batch-wrong-shape",
        lambda e: analyze(e, fake_data(e, set_batch_key(b"data", lambda d: d[:, :3071]))),
        2,
        r"data_batch_1 is not a valid CIFAR-10 batch: data has shape \(20, 3071\), expected \(20, 3072\)",
    ),
    Case(
        "batch-labels-out-of-range",
        lambda e: analyze(e, fake_data(e, set_batch_key(b"labels", lambda lab: [*lab[:-1], 10]), "data_batch_5")),
        2,
        r"data_batch_5 is not a valid CIFAR-10 batch: labels out of range: found 0\.\.10, expected 0\.\.9",
    ),
    Case(
        "test-batch-corrupt",
        lambda e: evaluate(e, data_dir=fake_data(e, garbage, "test_batch")),
        2,
        r"test_batch is not a valid CIFAR-10 batch: truncated or corrupt pickle",
    ),
    Case(
        "batch-malicious-pickle",
        lambda e: analyze(e, fake_data(e, evil_batch(e))),
        2,
        r"data_batch_1: tinycifar refuses to unpickle posix\.system: a CIFAR-10 batch only holds numpy arrays",
        malicious=True,
    ),
    # --- the archive ---
    Case(
        "archive-wrong-checksum",
        lambda e: analyze(e, with_archive(e, fake_archive_bytes(e.tmp), trust_md5=False)),
        2,
        rf"{ARCHIVE_NAME} is corrupt or not the CIFAR-10 archive \(MD5 [0-9a-f]{{32}}, expected "
        rf"{TINYCIFAR_MD5}\): delete it and run again\. {BY_HAND}",
    ),
    Case(
        "archive-truncated",
        lambda e: analyze(e, with_archive(e, fake_archive_bytes(e.tmp)[:-300])),
        2,
        rf"could not unpack \S+{ARCHIVE_NAME} \(.*\): delete it and run again",
    ),
    Case(
        "archive-member-dotdot",
        lambda e: analyze(e, archive_with(e, lambda t: add_file(t, "../evil", b"x"))),
        2,
        r"refusing to extract '\.\./evil': it would land outside",
        check=nothing_named_evil,
    ),
    Case(
        "archive-member-nested-dotdot",
        lambda e: analyze(e, archive_with(e, lambda t: add_file(t, f"{BATCHES_DIR}/../../evil", b"x"))),
        2,
        r"refusing to extract '\S+/\.\./\.\./evil': it would land outside",
        check=nothing_named_evil,
    ),
    Case(
        "archive-member-absolute",
        lambda e: analyze(e, archive_with(e, lambda t: add_file(t, str(e.tmp / "abs-evil"), b"x"))),
        2,
        r"refusing to extract '/\S+abs-evil': absolute path in the archive",
        check=nothing_named_evil,
    ),
    Case(
        "archive-member-symlink",
        lambda e: analyze(e, archive_with(e, add_symlink)),
        2,
        rf"refusing to extract '{BATCHES_DIR}/data_batch_1': the archive contains a link, "
        r"which CIFAR-10 never does",
    ),
    Case(
        "archive-without-batches-folder",
        lambda e: analyze(e, with_archive(e, tar_bytes(lambda t: add_file(t, "readme.txt", b"hi")))),
        2,
        rf"{ARCHIVE_NAME} does not contain a {BATCHES_DIR}/ folder: it is not the CIFAR-10 archive",
    ),
    # --- downloading (loopback server only) ---
    Case(
        "download-connection-dropped",
        lambda e: train(e, data_dir=serve(e, "drop")),
        2,
        rf"downloading \S+ failed: .*{BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "download-times-out",
        lambda e: train(e, data_dir=serve(e, "hang")),
        2,
        rf"downloading \S+ failed: the server did not answer in time\. {BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "download-stalls-midway",
        lambda e: train(e, data_dir=serve(e, "stall", fake_archive_bytes(e.tmp))),
        2,
        rf"downloading \S+ failed: the server did not answer in time\. {BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "download-truncated",
        lambda e: train(e, data_dir=serve(e, "truncate", fake_archive_bytes(e.tmp))),
        2,
        rf"downloading \S+ failed: the connection closed before the whole file arrived\. {BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "download-wrong-checksum",
        lambda e: train(e, data_dir=serve(e, "ok", fake_archive_bytes(e.tmp))),
        2,
        rf"the file downloaded from \S+ is corrupt \(MD5 [0-9a-f]{{32}}, expected {TINYCIFAR_MD5}\)\. {BY_HAND}",
        check=no_partial_download,
    ),
    Case(
        "download-connection-refused",
        lambda e: train(e, data_dir=refused_port(e)),
        2,
        rf"downloading \S+ failed: .*refused.*{BY_HAND}",
        check=no_partial_download,
    ),
    # --- weights (evaluate; checked before the data) ---
    Case(
        "weights-of-another-model",
        lambda e: evaluate(e, "--model", "tinynet", weights=seed_weights(e, {"model": "seed"})),
        2,
        r"seed\.safetensors holds weights for model 'seed', not 'tinynet': pass --model seed",
        before_data=True,
    ),
    Case(
        "weights-of-another-model-no-metadata",
        lambda e: evaluate(e, weights=seed_weights(e, {})),
        2,
        r"seed\.safetensors holds weights \(with no model name in the file\) that do not fit this architecture "
        r"\(.*tensor.*\): pass --model seed$",
        before_data=True,
    ),
    Case(
        "weights-malicious-pickle",
        lambda e: evaluate(e, weights=evil_file(e, "model.safetensors", False)),
        2,
        r"model\.safetensors is not a readable safetensors weights file",
        before_data=True,
        malicious=True,
    ),
    Case(
        "weights-malicious-torch-file",
        lambda e: evaluate(e, weights=evil_file(e, "model.pt", True)),
        2,
        r"model\.pt is not a readable safetensors weights file",
        before_data=True,
        malicious=True,
    ),
    Case(
        "weights-truncated",
        lambda e: evaluate(e, weights=truncated_copy(tinynet_weights(e))),
        2,
        r"tinynet-truncated\.safetensors is not a readable safetensors weights file",
        before_data=True,
    ),
    Case(
        "weights-missing",
        lambda e: evaluate(e, weights=e.tmp / "nope.safetensors"),
        2,
        r"weights file \S+nope\.safetensors does not exist",
        before_data=True,
    ),
    Case(
        "weights-too-large",
        lambda e: evaluate(e, weights=sparse_file(e, "big.safetensors", (64 << 20) + 1)),
        2,
        r"big\.safetensors is 67,108,865 bytes, more than tinycifar reads \(67,108,864\): "
        r"pass the model\.safetensors of a `tinycifar train` run",
        before_data=True,
    ),
    # arguments of 4,096 channels (GBs) are checked on the meta device, unallocated
    Case(
        "weights-model-args-that-do-not-fit",
        lambda e: evaluate(e, weights=fastnet_weights(e, {"model_args": '{"widths": [4096, 4096, 4096]}'})),
        2,
        r"fastnet\.safetensors: model fastnet built with the arguments it records \(\{\"widths\": "
        r"\[4096, 4096, 4096\]\}\) does not fit its tensors; the file was not written by `tinycifar train`",
        before_data=True,
    ),
    Case(
        "weights-model-args-not-json",
        lambda e: evaluate(e, weights=fastnet_weights(e, {"model_args": "[1, 2"})),
        2,
        r"fastnet\.safetensors: its model_args metadata is not a JSON object of small constructor arguments",
        before_data=True,
    ),
    Case(
        "weights-model-args-unknown",
        lambda e: evaluate(e, weights=fastnet_weights(e, {"model_args": '{"colour": 3}'})),
        2,
        r"fastnet\.safetensors: model fastnet does not take the arguments \{\"colour\": 3\} \(.*colour.*\); "
        r"the file was not written by `tinycifar train`",
        before_data=True,
    ),
    Case(
        "weights-model-args-negative",
        lambda e: evaluate(e, weights=fastnet_weights(e, {"model_args": '{"widths": [-1, 8, 8]}'})),
        2,
        r"fastnet\.safetensors: model fastnet does not take the arguments \{\"widths\": \[-1, 8, 8\]\}",
        before_data=True,
    ),
    # a depth of millions would build millions of modules before any shape is compared
    Case(
        "weights-model-args-too-big",
        lambda e: evaluate(e, weights=fastnet_weights(e, {"model_args": '{"widths": [8, 8, 100000000]}'})),
        2,
        r"fastnet\.safetensors: its model_args metadata is not a JSON object of small constructor arguments",
        before_data=True,
    ),
    # load_state_dict would cast int8 (or fp8) to float silently: a model at chance, no error
    Case(
        "weights-int8-tensors",
        lambda e: evaluate(e, weights=recast_weights(e, "int8", torch.int8, torch.int64)),
        2,
        r"int8\.safetensors: tensor \S+ is stored as I8 where the network holds float32: "
        r"pass the model\.safetensors of a `tinycifar train` run",
        before_data=True,
    ),
    Case(
        "weights-fp8-tensors",
        lambda e: evaluate(e, weights=recast_weights(e, "fp8", torch.float8_e4m3fn, torch.int64)),
        2,
        r"fp8\.safetensors: tensor \S+ is stored as F8_E4M3 where the network holds float32",
        before_data=True,
    ),
    Case(
        "weights-float-counters",
        lambda e: evaluate(e, weights=recast_weights(e, "counters", torch.float32, torch.float32)),
        2,
        r"counters\.safetensors: tensor \S+num_batches_tracked is stored as F32 where the network holds int64",
        before_data=True,
    ),
    # --- resuming a run ---
    Case(
        "resume-without-checkpoint",
        lambda e: train(e, "--resume"),
        2,
        r"nothing to resume: no checkpoint \(last\.pt\) in \S+run; start the run without --resume",
        before_data=True,
    ),
    Case(
        "resume-malicious-last-pt-torch-format",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=evil_file(e, f"run/{LAST}", True).parent),
        2,
        r"no usable checkpoint in \S+run: \S+last\.pt is not a safe tinycifar checkpoint \(refused to unpickle: "
        r".*GLOBAL posix\.system.*\); nothing in it was run",
        malicious=True,
    ),
    Case(
        "resume-malicious-last-pt-bare-pickle",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=evil_file(e, f"run/{LAST}", False).parent),
        2,
        r"\S+last\.pt is corrupt or not a tinycifar checkpoint \(not a torch\.save zip .*\); nothing in it was "
        r"read or run",
        malicious=True,
    ),
    Case(
        "resume-last-and-previous-corrupt",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=run_dir(e, last=garbage, previous=truncate)),
        2,
        r"no usable checkpoint in \S+run: \S+last\.pt is corrupt or not a tinycifar checkpoint \(.*; "
        r"\S+previous\.pt is corrupt",
    ),
    # --- nonsense train options: refused before any data is read ---
    Case(
        "train-epochs-negative",
        lambda e: train(e, "--epochs", "-1"),
        2,
        r"bad recipe: epochs must be at least 1 \(got -1\)",
        before_data=True,
    ),
    Case(
        "train-batch-size-zero",
        lambda e: train(e, "--batch-size", "0"),
        2,
        r"bad recipe: batch_size must be at least 1 \(got 0\)",
        before_data=True,
    ),
    Case(
        "train-lr-zero",
        lambda e: train(e, "--lr", "0"),
        2,
        r"bad recipe: lr must be positive \(got 0\.0\)",
        before_data=True,
    ),
    Case(
        "train-lr-inf",
        lambda e: train(e, "--lr", "inf"),
        2,
        r"bad recipe: lr must be a finite number \(got inf\)",
        before_data=True,
    ),
    Case(
        "train-weight-decay-nan",
        lambda e: train(e, "--weight-decay", "nan"),
        2,
        r"bad recipe: weight_decay must be a finite number \(got nan\)",
        before_data=True,
    ),
    Case(
        "train-momentum-one",
        lambda e: train(e, "--momentum", "1"),
        2,
        r"bad recipe: momentum must be in \[0, 1\) \(got 1\.0\)",
        before_data=True,
    ),
    Case(
        "train-warmup-longer-than-run",
        lambda e: train(e, "--epochs", "2", "--warmup-epochs", "5"),
        2,
        r"bad recipe: warmup_epochs must be in \[0, epochs\] \(got 5\.0\)",
        before_data=True,
    ),
    Case(
        "train-model-unknown",
        lambda e: train(e, "--model", "nope"),
        2,
        r"unknown model 'nope'; choose one of: .*tinynet",
        before_data=True,
    ),
    Case(
        "train-val-split-negative",
        lambda e: train(e, "--val-split", "-5"),
        2,
        r"--val-split must be between 0 and \d+ \(got -5\)",
        before_data=True,
    ),
    Case(
        "train-val-split-too-large",
        lambda e: train(e, "--val-split", "60000"),
        2,
        r"--val-split must be between 0 and \d+ \(got 60000\)",
        before_data=True,
    ),
    Case(
        "train-out-under-a-file",
        lambda e: train(e, out=file_in_the_way(e)),
        2,
        r"cannot write to --out \S+a-file/run \(.*\): choose a folder you can write to",
        before_data=True,
    ),
    Case(
        "train-device-cuda-without-gpu",
        lambda e: train(e, "--device", "cuda"),
        2,
        r"--device cuda asked for, but this torch build sees no CUDA GPU; use --device cpu",
        before_data=True,
        marks=no_cuda_mark(),
    ),
    Case(
        "train-time-not-a-duration",
        lambda e: train(e, "--time", "soon"),
        2,
        r"--time 'soon' is not a duration; write it like 90s, 5m, 1h or 1h30m",
        before_data=True,
    ),
    Case(
        "train-time-zero", lambda e: train(e, "--time", "0s"), 2, r"--time must be longer than zero", before_data=True
    ),
    Case(
        "train-ema-and-lookahead",
        lambda e: train(e, "--ema-decay", "0.99", "--lookahead", "5"),
        2,
        r"bad recipe: ema_decay and lookahead are two ways to average weights: set one of them to 0",
        before_data=True,
    ),
    Case(
        "train-mixup-negative",
        lambda e: train(e, "--mixup", "-0.2"),
        2,
        r"bad recipe: mixup must be a Beta parameter >= 0, 0 for off \(got -0\.2\)",
        before_data=True,
    ),
    Case(
        "train-mixup-twice",
        lambda e: train(e, "--mixup", "0.2", "--mixup-ramp", "0.5"),
        2,
        r"bad recipe: mixup and mixup_ramp are two ways to draw mixup's share: set one of them to 0",
        before_data=True,
    ),
    Case(
        "train-mixup-ramp-past-half",
        lambda e: train(e, "--mixup-ramp", "0.8"),
        2,
        r"bad recipe: mixup_ramp must be in \[0, 0\.5\], the partner's largest share \(got 0\.8\)",
        before_data=True,
    ),
    Case(
        "train-plan-without-time",
        lambda e: train(e, "--plan"),
        2,
        r"--plan shows the epochs a new run's --time budget buys: give --time \(e\.g\. --time 1h\), "
        r"without --resume, and outside torchrun",
        before_data=True,
    ),
    Case(
        "train-plan-resume",
        lambda e: train(e, "--plan", "--time", "1h", "--resume"),
        2,
        r"--plan shows the epochs .* without --resume",
        before_data=True,
    ),
    Case(
        "train-distill-without-teacher",
        lambda e: train(e, "--distill", "0.5"),
        2,
        r"the recipe's distill is 0\.5, but no teacher was given: pass --teacher FILE",
        before_data=True,
    ),
    Case(
        "train-teacher-without-distill",
        lambda e: train(e, "--teacher", teacher_file(e)),
        2,
        r"--teacher needs a share for it: give --distill between 0 and 1",
        before_data=True,
    ),
    Case(
        "train-distill-past-one",
        lambda e: train(e, "--teacher", teacher_file(e), "--distill", "1.5"),
        2,
        r"bad recipe: distill must be in \[0, 1\], the teacher's share of each target \(got 1\.5\)",
        before_data=True,
    ),
    Case(
        "train-teacher-missing",
        lambda e: train(e, "--teacher", str(e.tmp / "nope.safetensors"), "--distill", "0.5"),
        2,
        r"teacher file \S+nope\.safetensors does not exist: write one with `tinycifar soft-labels`",
        before_data=True,
    ),
    Case(
        "train-teacher-other-data",
        lambda e: train(e, "--teacher", teacher_file(e, torch.full((7, 10), 0.1)), "--distill", "0.5"),
        2,
        r"has labels of shape \(7, 10\), not \(100, 10\) for this training set",
        before_data=True,
    ),
    Case(
        "train-teacher-not-probabilities",
        lambda e: train(e, "--teacher", teacher_file(e, torch.full((5 * N, 10), -0.1)), "--distill", "0.5"),
        2,
        r"holds rows that are not probabilities",
        before_data=True,
    ),
    Case(
        "train-teacher-huge",
        lambda e: train(e, "--teacher", teacher_file(e, size=(64 << 20) + 1), "--distill", "0.5"),
        2,
        r"is 67,108,865 bytes, more than tinycifar reads \(67,108,864\): write one with `tinycifar soft-labels`",
        before_data=True,
    ),
    Case(
        "train-teacher-garbage",
        lambda e: train(e, "--teacher", teacher_file(e, size=100), "--distill", "0.5"),
        2,
        r"is not a readable safetensors soft-labels file",
        before_data=True,
    ),
    Case(
        "soft-labels-weights-missing",
        lambda e: [
            "soft-labels",
            "--weights",
            str(e.tmp / "nope.safetensors"),
            "--out",
            str(e.tmp / "t.safetensors"),
            "--data-dir",
            str(e.no_data),
        ],
        2,
        r"weights file \S+nope\.safetensors does not exist",
        before_data=True,
    ),
    Case(
        "soft-labels-no-teacher",
        lambda e: ["soft-labels", "--out", str(e.tmp / "t.safetensors"), "--data-dir", str(e.no_data)],
        2,
        r"name the teacher: --weights FILE \(a run's model\.safetensors\) or --model NAME \(shipped\)",
        before_data=True,
    ),
    Case(
        "soft-labels-model-without-weights",
        lambda e: [
            "soft-labels",
            "--model",
            "senet",
            "--out",
            str(e.tmp / "t.safetensors"),
            "--data-dir",
            str(e.no_data),
        ],
        2,
        r"no pretrained weights ship for model 'senet': pass --weights PATH",
        before_data=True,
    ),
    Case(
        "soft-labels-temperature-zero",
        lambda e: [
            "soft-labels",
            "--weights",
            str(tinynet_weights(e)),
            "--out",
            str(e.tmp / "t.safetensors"),
            "--temperature",
            "0",
            "--data-dir",
            str(e.no_data),
        ],
        2,
        r"--temperature must be positive \(got 0\.0\)",
        before_data=True,
    ),
    Case(
        "train-eval-every-zero",
        lambda e: train(e, "--eval-every", "0"),
        2,
        r"bad recipe: eval_every must be at least 1 \(got 0\)",
        before_data=True,
    ),
    Case(
        "train-precision-unknown",
        lambda e: train(e, "--precision", "fp8"),
        2,
        r"argument --precision: invalid choice: 'fp8'",
        before_data=True,
    ),
    # argparse's own errors: exit 2 and the option named
    Case(
        "train-epochs-not-a-number",
        lambda e: train(e, "--epochs", "ten"),
        2,
        r"argument --epochs: invalid int value: 'ten'",
        before_data=True,
    ),
    Case(
        "train-lr-not-a-number",
        lambda e: train(e, "--lr", "fast"),
        2,
        r"argument --lr: invalid float value: 'fast'",
        before_data=True,
    ),
    Case(
        "train-device-unknown",
        lambda e: train(e, "--device", "tpu"),
        2,
        r"argument --device: invalid choice: 'tpu'",
        before_data=True,
    ),
    # --- recipes ---
    Case(
        "recipe-missing",
        lambda e: train(e, "--recipe", "missing.toml"),
        2,
        r"recipe 'missing\.toml' is neither a packaged recipe \(classic, fast, long, mcu\) nor an existing TOML file",
        before_data=True,
    ),
    Case(
        "recipe-unknown-key",
        lambda e: train(e, "--recipe", recipe_file(e, "learning_rate = 0.1\n")),
        2,
        r"recipe\.toml: unknown key\(s\) learning_rate; known keys: epochs, batch_size, lr",
        before_data=True,
    ),
    Case(
        "recipe-wrong-type",
        lambda e: train(e, "--recipe", recipe_file(e, 'epochs = "ten"\n')),
        2,
        r"recipe\.toml: epochs must be int, got 'ten'",
        before_data=True,
    ),
    Case(
        "recipe-int-for-bool",
        lambda e: train(e, "--recipe", recipe_file(e, "flip = 1\n")),
        2,
        r"recipe\.toml: flip must be bool, got 1",
        before_data=True,
    ),
    Case(
        "recipe-not-toml",
        lambda e: train(e, "--recipe", recipe_file(e, "epochs = = 3\n")),
        2,
        r"recipe\.toml is not valid TOML: ",
        before_data=True,
    ),
    Case(
        "recipe-nan",
        lambda e: train(e, "--recipe", recipe_file(e, "weight_decay = nan\n")),
        2,
        r"bad recipe: weight_decay must be a finite number \(got nan\)",
        before_data=True,
    ),
    Case(
        "recipe-inf",
        lambda e: train(e, "--recipe", recipe_file(e, "lr = inf\n")),
        2,
        r"bad recipe: lr must be a finite number \(got inf\)",
        before_data=True,
    ),
    Case(
        "recipe-int-beyond-float",
        lambda e: train(e, "--recipe", recipe_file(e, f"lr = 1{'0' * 400}\n")),
        2,
        r"recipe\.toml: lr is too large to be a number",
        before_data=True,
    ),
    Case(
        "recipe-int-of-5000-digits",
        lambda e: train(e, "--recipe", recipe_file(e, f"epochs = {'9' * 5000}\n")),
        2,
        r"recipe\.toml is not valid TOML: Exceeds the limit",
        before_data=True,
    ),
    Case(
        "recipe-binary-file",
        lambda e: train(e, "--recipe", recipe_file(e, b"\x89PNG\r\n\x1a\n\xff\xfe")),
        2,
        r"cannot read recipe \S+recipe\.toml: .*; a recipe is a UTF-8 TOML text file",
        before_data=True,
    ),
    # --- files from a stranger: every read is bounded and stays in its file ---
    Case(
        "onnx-constant-reads-a-local-file",
        lambda e: ["predict", "--onnx", str(onnx_reading_a_file(e, "constant")), png(e)],
        2,
        r"reads-a-file\.onnx: keeps tensors in external files \('w_value'.*tinycifar reads only self-contained files",
    ),
    Case(
        "onnx-subgraph-reads-a-local-file",
        lambda e: ["predict", "--onnx", str(onnx_reading_a_file(e, "subgraph")), png(e)],
        2,
        r"reads-a-file\.onnx: keeps tensors in external files \('w_sub'",
    ),
    Case(
        "onnx-sparse-initializer-reads-a-local-file",
        lambda e: ["predict", "--onnx", str(onnx_reading_a_file(e, "sparse")), png(e)],
        2,
        r"reads-a-file\.onnx: keeps tensors in external files \('w'",
    ),
    Case(
        "onnx-symlink-to-dev-zero",
        lambda e: ["predict", "--onnx", str(link_to(e, "/dev/zero")), png(e)],
        2,
        r"ONNX file \S+model\.onnx is not a regular file \(a device, FIFO or socket\)",
        max_mb=50,
    ),
    Case(
        "onnx-fifo",
        lambda e: ["predict", "--onnx", str(fifo(e)), png(e)],
        2,
        r"ONNX file \S+model\.onnx is not a regular file",
    ),
    Case(
        "weights-symlink-to-dev-zero",
        lambda e: evaluate(e, weights=link_to(e, "/dev/zero", "w.safetensors")),
        2,
        r"weights file \S+w\.safetensors is not a regular file",
        before_data=True,
        max_mb=50,
    ),
    Case(
        "teacher-fifo",
        lambda e: train(e, "--teacher", str(fifo(e, "t.safetensors")), "--distill", "0.5"),
        2,
        r"teacher file \S+t\.safetensors is not a regular file",
        before_data=True,
    ),
    Case(
        "image-symlink-to-dev-zero",
        lambda e: ["predict", str(link_to(e, "/dev/zero", "cat.png"))],
        1,
        r"image file \S+cat\.png is not a regular file",
        max_mb=50,
    ),
    Case(
        "resume-deflated-checkpoint",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=deflated_checkpoint(e)),
        2,
        r"last\.pt is corrupt or not a tinycifar checkpoint \(entry '\S+' is compressed; torch\.save stores "
        r"entries as they are\); nothing in it was read or run",
        max_mb=40,
    ),
    Case(
        "resume-checkpoint-without-config",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=checkpoint_of(e, {"model": {}, "epoch": 0})),
        2,
        r"the checkpoint in \S+run is not a resumable tinycifar run \(it lacks optimizer, scheduler, averager, "
        r"config, history\): start a new run with --overwrite or another --out",
    ),
    Case(
        "resume-checkpoint-history-shared-references",
        lambda e: train(e, "--resume", data_dir=fake_data(e), out=shared_history(e)),
        2,
        r"is not a resumable tinycifar run \(its history rows are not records of numbers\)",
        max_mb=50,
    ),
    Case(
        "batch-labels-nested-by-reference",
        lambda e: analyze(e, fake_data(e, nested_labels(e))),
        2,
        r"data_batch_1 is not a valid CIFAR-10 batch: labels are not a flat list of integers\. Delete",
        max_mb=50,
    ),
    # --- run folders: a second command never loses the first one's files ---
    Case(
        "train-into-a-finished-run",
        lambda e: train(e, out=finished_run(e)),
        2,
        r"\S+run already holds a run \(config\.json, environment\.json|log\.jsonl.*\): continue it with --resume, "
        r"choose another --out, or pass --overwrite to delete it and start again",
        before_data=True,
        check=unchanged,
    ),
    Case(
        "train-into-a-live-run",
        lambda e: train(e, "--overwrite", out=locked(e)),
        2,
        r"\S+run is in use by another tinycifar process \(host pid 4242 since then\): wait for it to end, or "
        r"choose another --out",
        before_data=True,
        check=lambda e: (still_locked(e), same_bytes(e)),
    ),
    Case(
        "train-resume-and-overwrite",
        lambda e: train(e, "--resume", "--overwrite", out=finished_run(e)),
        2,
        r"--resume continues the run in --out and --overwrite deletes it: give one of them",
        before_data=True,
        check=unchanged,
    ),
    Case(
        "train-disk-full-during-a-checkpoint",
        lambda e: train(
            e, "--epochs", "2", "--warmup-epochs", "0", "--batch-size", "50", data_dir=disk_full_at_epoch(e, 2)
        ),
        2,
        r"cannot write \S+last\.pt\.new \(.*PytorchStreamWriter failed writing file data/0: file write failed\); "
        r"the last complete file there is kept",
        check=first_epoch_kept,
    ),
    Case(
        "train-diverges",
        lambda e: train(
            e,
            "--lr",
            "10",
            "--weight-decay",
            "1",
            "--batch-size",
            "10",
            "--epochs",
            "8",
            "--warmup-epochs",
            "0",
            data_dir=fake_data(e),
        ),
        2,
        r"training diverged: the loss of epoch \d is nan at learning rate \S+; \S+run keeps the last finite "
        r"checkpoint\. Lower --lr",
    ),
    # --- repeat: every seed a different run ---
    Case(
        "repeat-seed-with-equals",
        lambda e: repeat(e, "--seed=5"),
        2,
        r"--seed after --: repeat sets them itself \(use --seeds\)",
        before_data=True,
    ),
    Case(
        "repeat-seed-abbreviated",
        lambda e: repeat(e, "--see", "7"),
        2,
        r"--seed after --: repeat sets them itself",
        before_data=True,
    ),
    Case(
        "repeat-out-with-equals",
        lambda e: repeat(e, f"--out={e.tmp / 'x'}"),
        2,
        r"--out after --: repeat sets them itself \(use repeat's --out\)",
        before_data=True,
    ),
    Case(
        "repeat-overwrite",
        lambda e: repeat(e, "--overwrite"),
        2,
        r"--overwrite after --: repeat sets them itself",
        before_data=True,
    ),
    Case(
        "repeat-metrics-empty",
        lambda e: repeat_runs(e, {0: ""}),
        2,
        r"seed-0/metrics\.json is empty or not a JSON record: delete \S+seed-0 to train seed 0 again",
        before_data=True,
    ),
    Case(
        "repeat-metrics-corrupt",
        lambda e: repeat_runs(e, {0: '{"final_test_acc": "high"'}),
        2,
        r"seed-0/metrics\.json is empty or not a JSON record",
        before_data=True,
    ),
    Case(
        "repeat-a-seed-copied",
        lambda e: repeat_runs(e, {0: finished(0), 1: finished(0)}, {1: 0}),
        2,
        r"seed-1 holds a run of seed 0, not 1: delete \S+seed-1 to train seed 1 again",
        before_data=True,
    ),
    # --- tracebacks where one line belongs ---
    Case(
        "train-seed-huge",
        lambda e: train(e, "--seed", "20000000000000"),
        2,
        r"argument --seed: must be <= 4294967295, got 20000000000000",
        before_data=True,
    ),
    Case(
        "train-rank-not-a-number",
        lambda e: (with_env(e, "RANK", "abc"), train(e))[1],
        2,
        r"RANK='abc' is not a whole number: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; unset them",
        before_data=True,
    ),
    Case(
        "train-world-size-not-a-number",
        lambda e: (with_env(e, "WORLD_SIZE", "x"), train(e, data_dir=fake_data(e)))[1],
        2,
        r"WORLD_SIZE='x' is not a whole number",
    ),
    Case(
        "train-epochs-absurd",
        lambda e: train(e, "--epochs", "1000000"),
        2,
        r"bad recipe: epochs must be at most 10,000 \(got 1,000,000\)",
        before_data=True,
    ),
    Case(
        "train-batch-size-absurd",
        lambda e: train(e, "--batch-size", "10000000"),
        2,
        r"bad recipe: batch_size must be at most 65,536",
        before_data=True,
    ),
    Case(
        "train-optimizer-unknown",
        lambda e: train(e, "--optimizer", "adam"),
        2,
        r"argument --optimizer: invalid choice: 'adam'",
        before_data=True,
    ),
    Case(
        "recipe-optimizer-unknown",
        lambda e: train(e, "--recipe", recipe_file(e, 'optimizer = "lion"\n')),
        2,
        r"bad recipe: optimizer must be one of sgd, adamw, muon \(got 'lion'\)",
        before_data=True,
    ),
    Case(
        "train-lr-floor-one",
        lambda e: train(e, "--lr-floor", "1"),
        2,
        r"bad recipe: lr_floor must be in \[0, 1\), a share of the peak learning rate \(got 1\.0\)",
        before_data=True,
    ),
    Case(
        "train-lr-absurd",
        lambda e: train(e, "--lr", "1e6"),
        2,
        r"bad recipe: lr must be at most 10 \(got 1000000\.0\)",
        before_data=True,
    ),
    # --- TFLite files: verified before any runtime uses them ---
    Case(
        "tflite-truncated",
        lambda e: ["predict", "--tflite", str(spoilt_tflite(e, "truncated")), png(e)],
        2,
        r"model\.tflite: not a valid TFLite file \(The model is not a valid Flatbuffer buffer\); export it again",
        marks=tflite_marks(),
    ),
    Case(
        "tflite-garbage-on-tflm",
        lambda e: ["predict", "--tflite", str(spoilt_tflite(e, "garbage")), "--runtime", "tflm", png(e)],
        2,
        r"model\.tflite: not a valid TFLite file",
        marks=tflite_marks(),
    ),
    Case(
        "tflite-symlink-to-dev-zero",
        lambda e: ["predict", "--tflite", str(link_to(e, "/dev/zero", "zero.tflite")), png(e)],
        2,
        r"TFLite file \S+zero\.tflite is not a regular file",
        marks=tflite_marks(),
        max_mb=50,
    ),
    Case(
        "tflite-an-onnx-file",
        lambda e: ["predict", "--tflite", str(onnx_reading_a_file(e, "constant")), png(e)],
        2,
        r"reads-a-file\.onnx: not a valid TFLite file",
        marks=tflite_marks(),
    ),
    Case(
        "tflite-with-weights",
        lambda e: evaluate(e, "--tflite", str(REFERENCE_TFLITE)),
        2,
        r"--tflite runs the TFLite file alone: drop --model, --weights and --onnx",
        before_data=True,
        marks=tflite_marks(),
    ),
    Case(
        "tflite-runtime-unknown",
        lambda e: ["predict", "--tflite", "x.tflite", "--runtime", "cmsis", "x.png"],
        2,
        r"argument --runtime: invalid choice: 'cmsis'",
    ),
    Case(
        "export-suffix-unknown",
        lambda e: ["export", "--out", str(e.tmp / "model.tfl")],
        2,
        r"--out \S+model\.tfl: name the file \*\.onnx or \*\.tflite \(the format follows the suffix\)",
        before_data=True,
    ),
    Case(
        "export-c-array-of-onnx",
        lambda e: ["export", "--out", str(e.tmp / "model.onnx"), "--c-array"],
        2,
        r"--c-array writes TFLite files as C arrays: name the --out file \*\.tflite",
        before_data=True,
    ),
    Case(
        "export-tflite-calibration-method-of-onnx",
        lambda e: ["export", "--out", str(e.tmp / "m.tflite"), "--int8", "--calibration-method", "entropy"],
        2,
        r"--calibration-method 'entropy': for TFLite choose one of histogram, minmax",
        before_data=True,
        marks=converter_marks(),
    ),
    Case(
        "export-calibration-without-int8",
        lambda e: ["export", "--out", str(e.tmp / "model.onnx"), "--calibration-images", "64"],
        2,
        r"--calibration-images and --calibration-method set up the int8 file: add --int8",
        before_data=True,
    ),
    # --- other commands ---
    Case(
        "summary-model-unknown",
        lambda e: ["summary", "--model", "nope"],
        2,
        r"unknown model 'nope'; choose one of: .*tinynet",
    ),
    Case(
        "evaluate-model-unknown",
        lambda e: evaluate(e, "--model", "nope"),
        2,
        r"unknown model 'nope'; choose one of: .*tinynet",
        before_data=True,
    ),
    Case(
        "evaluate-batch-size-zero",
        lambda e: evaluate(e, "--batch-size", "0"),
        2,
        r"argument --batch-size: must be >= 1, got 0",
        before_data=True,
    ),
    Case(
        "evaluate-out-under-a-file",
        lambda e: [*evaluate(e), "--out", str(file_in_the_way(e))],
        2,
        r"cannot write to --out \S+a-file/run \(.*\): choose another folder with --out",
        before_data=True,
    ),
    Case(
        "predict-model-unknown",
        lambda e: ["predict", str(e.tmp / "x.png"), "--model", "nope"],
        2,
        r"unknown model 'nope'; choose one of: .*tinynet",
    ),
]


def unsafe_unpickle(path: Path) -> None:
    """What a careless loader would do: plain ``pickle.loads`` of the file (for a
    ``torch.save`` zip, of its ``data.pkl``)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            payload = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    else:
        payload = path.read_bytes()
    pickle.loads(payload, encoding="bytes")


# ---------------------------------------------------------------- the test


@pytest.fixture
def env(tmp_path, monkeypatch, server, tiny):
    monkeypatch.chdir(tmp_path)  # default output folders (runs/, evaluation/) land here
    monkeypatch.delenv("TINYCIFAR_DATA", raising=False)
    server.mode = "404"
    monkeypatch.setattr(data, "CIFAR10_URL", server.url)  # never the real network
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 0.5)
    return SimpleNamespace(
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        server=server,
        no_data=tmp_path / "no-data",
        marker=tmp_path / "PWNED",
        payload=None,
    )


def run_cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse errors
        return e.code


def test_catalogue_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, env, capsys):
    argv = case.argv(env)
    if case.max_mb is not None:
        tracemalloc.start()
    try:
        code = run_cli(argv)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == case.exit, err
    assert re.search(case.message, err, re.S), f"expected /{case.message}/ in stderr:\n{err}"
    if code == 2 and "usage:" not in err:
        # One clean line from cli.main (warnings aside), not a dump.
        assert err.strip().splitlines()[-1].startswith(f"tinycifar {argv[0]}: error: "), err
    if case.before_data:
        assert env.server.requests == 0, "the data was downloaded before the option was checked"
        assert not env.no_data.exists(), "the data dir was touched before the option was checked"
        assert "CIFAR-10" not in err
    if case.check:
        case.check(env)
    if case.max_mb is not None:
        assert peak < case.max_mb, f"allocated {peak:.0f} MB"
    assert not env.marker.exists(), "a pickle payload ran"
    if case.malicious:
        # The payload was live: a plain unpickling of the very file we fed runs it.
        unsafe_unpickle(env.payload)
        assert env.marker.exists()


# ---------------------------------------------------------------- checkpoints, library level


def test_corrupt_last_checkpoint_falls_back_to_previous_with_a_warning(tmp_path):
    for epoch in range(2):
        save_checkpoint({"model": {"w": torch.full((3,), float(epoch))}, "epoch": epoch}, tmp_path)
    (tmp_path / LAST).write_bytes(b"this is not a checkpoint at all")  # not a zip: refused before torch reads it
    with pytest.warns(
        UserWarning, match=r"last\.pt is corrupt or not a tinycifar checkpoint.*resuming from previous\.pt instead"
    ):
        state = load_checkpoint(tmp_path)
    assert state["epoch"] == 0 and torch.equal(state["model"]["w"], torch.zeros(3))

    truncate(tmp_path / PREVIOUS)
    with pytest.raises(TinyCifarError, match=r"no usable checkpoint in .*last\.pt is corrupt.*previous\.pt is corrupt"):
        load_checkpoint(tmp_path)


# ---------------------------------------------------------------- recipes, any values

RECIPE_KEYS = [f.name for f in fields(Recipe)]
ANY_VALUE = st.one_of(
    st.integers(-3, 40),
    st.integers(),
    st.integers(2**1024, 2**1100),  # beyond float range
    st.floats(-2, 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
    st.text(max_size=4),
    st.sampled_from(["sgd", "adamw", "linear", "cosine", "Adam"]),
    st.booleans(),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(RECIPE_KEYS + ["learning_rate"]), ANY_VALUE, max_size=6))
def test_recipe_from_dict_gives_a_valid_recipe_or_a_clean_error(values):
    try:
        r = recipe_from_dict(values, "fuzz.toml")
    except TinyCifarError as e:
        assert str(e)
        return
    for f in fields(Recipe):
        v = getattr(r, f.name)
        want = {"int": int, "float": float, "bool": bool, "str": str}[f.type]
        assert type(v) is want, (f.name, v)
        if want is float:
            assert math.isfinite(v), (f.name, v)
    assert 1 <= r.epochs <= 10_000 and 1 <= r.batch_size <= 65_536 and 0 < r.lr <= 10 and 0 <= r.weight_decay <= 1
    assert 0 <= r.momentum < 1 and 0 <= r.label_smoothing < 1 and 0 <= r.ema_decay < 1
    assert 0 <= r.warmup_epochs <= r.epochs and 0 <= r.translate <= 16 and 0 <= r.cutout <= 32
    assert r.mixup >= 0 and r.cutmix >= 0 and 0 <= r.mixup_ramp <= 0.5 and not (r.mixup and r.mixup_ramp)
    assert r.optimizer in ("sgd", "adamw", "muon") and r.schedule in ("linear", "cosine") and 0 <= r.lr_floor < 1
