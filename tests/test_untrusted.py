"""tinycifar.untrusted: the bounded reader, and the header-level parsers fuzzed.

Every parser here meets bytes a stranger chose before anything else does. Hypothesis feeds
each one random and mutated inputs; each must answer with its own error (``ValueError``
or a one-line :class:`TinyCifarError`), never another exception, and must not allocate
more than a bound (tracemalloc, which sees Python's and numpy's allocations).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from tinycifar.errors import TinyCifarError
from tinycifar.untrusted import check_checkpoint_zip, read_bytes, safetensors_header

MB = 2**20


def test_read_bytes_stops_at_the_cap_whatever_stat_says(tmp_path):
    # /proc files report a size of 0 and hold more: the cap is what the read sees
    with pytest.raises(TinyCifarError, match="holds more than 100 bytes"):
        read_bytes("/proc/self/maps", 100, "maps", "fix")
    assert read_bytes(_file(tmp_path, b"x" * 100), 100, "f", "fix") == b"x" * 100
    with pytest.raises(TinyCifarError, match=r"f is 101 bytes, more than tinycifar reads \(100\): fix"):
        read_bytes(_file(tmp_path, b"x" * 101), 100, "f", "fix")


def test_read_bytes_refuses_what_is_not_a_plain_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opened without blocking, refused before any read
    (tmp_path / "zero").symlink_to("/dev/zero")
    for name in ("fifo", "zero"):
        with pytest.raises(TinyCifarError, match="is not a regular file"):
            read_bytes(tmp_path / name, MB, name, "fix")
    with pytest.raises(TinyCifarError, match="is a folder, not a file"):
        read_bytes(tmp_path, MB, "dir", "fix")
    with pytest.raises(TinyCifarError, match="does not exist: fix"):
        read_bytes(tmp_path / "nope", MB, "nope", "fix")
    (tmp_path / "good").symlink_to(_file(tmp_path, b"abc"))  # a link to a plain file is followed
    assert read_bytes(tmp_path / "good", MB, "good", "fix") == b"abc"


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"f{len(data)}"
    path.write_bytes(data)
    return path


# --- fuzzing, with a memory bound -----------------------------------------------------------

SAFETENSORS = save({"w": torch.ones(3, 4), "n": torch.zeros((), dtype=torch.long)}, metadata={"model": "x"})


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the valid file with a few bytes flipped, cut or appended."""
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), max_size=8)
    return st.one_of(
        st.binary(max_size=512),
        flips.map(lambda fs: _flip(valid, fs)),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.binary(max_size=64).map(lambda tail: valid + tail),
    )


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for i, b in flips:
        out[i] = b
    return bytes(out)


def _bounded(parse, data: bytes, errors: tuple[type[BaseException], ...], most_mb: float = 16) -> None:
    tracemalloc.start()
    try:
        parse(data)
    except errors:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < most_mb * MB, f"{peak / MB:.0f} MB for {len(data)} bytes"


def _header(n: int, body: bytes) -> bytes:
    return struct.pack("<Q", n) + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _mutations(SAFETENSORS),
        # headers that claim huge lengths, shapes or nesting
        st.integers(0, 2**64 - 1).map(lambda n: _header(n, b"{}")),
        st.integers(1, 60).map(lambda d: _header(2 * d + 2, b"[" * d + b"]" * d + b"  ")),
        st.lists(st.integers(-1, 2**62), max_size=12).map(
            lambda shape: (lambda body: _header(len(body), body))(
                json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}).encode()
            )
        ),
    )
)
def test_safetensors_header_fuzzed(data):
    _bounded(safetensors_header, data, (ValueError,))


def test_safetensors_header_reads_what_safetensors_writes():
    header = safetensors_header(SAFETENSORS)
    assert header.shapes == {"w": (3, 4), "n": ()} and header.dtypes == {"w": "F32", "n": "I64"}
    assert header.metadata == {"model": "x"}


def _checkpoint_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.ones(4)}, "epoch": 0}, buf)
    return buf.getvalue()


CHECKPOINT = _checkpoint_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(CHECKPOINT))
def test_checkpoint_zip_directory_fuzzed(data):
    _bounded(lambda d: check_checkpoint_zip(d, 64 * MB), data, (ValueError,))


def test_checkpoint_zip_check_passes_torch_save_and_refuses_a_bomb():
    check_checkpoint_zip(CHECKPOINT, 64 * MB)
    with pytest.raises(ValueError, match="bytes before the archive"):  # torch would read a legacy pickle
        check_checkpoint_zip(pickle.dumps({"model": {}}) + CHECKPOINT, 64 * MB)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", bytes(8 * MB))
    with pytest.raises(ValueError, match="is compressed"):
        check_checkpoint_zip(bomb.getvalue(), 64 * MB)
    many = io.BytesIO()  # stored entries whose sizes add up past the cap
    with zipfile.ZipFile(many, "w") as z:
        for i in range(5):
            z.writestr(f"archive/data/{i}", bytes(1000))
    with pytest.raises(ValueError, match="add up to 5,000 bytes"):
        check_checkpoint_zip(many.getvalue(), 4000)


onnx = pytest.importorskip("onnx", reason="the [export] extra is not installed")


def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["p"]),
            helper.make_node("Flatten", ["p"], ["c"]),
            helper.make_node("MatMul", ["c", "w"], ["logits"]),
        ],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3, 10], [0.5] * 30)],
    )
    return helper.make_model(graph).SerializeToString()


ONNX = _onnx_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(ONNX))
def test_onnx_model_bytes_fuzzed(data):
    from tinycifar.onnx_file import model_from_bytes

    _bounded(lambda d: model_from_bytes(d, "fuzz.onnx"), data, (TinyCifarError,))


def test_onnx_model_bytes_keep_the_contract():
    from tinycifar.onnx_file import model_from_bytes

    assert [o.name for o in model_from_bytes(ONNX, "ok.onnx").graph.output] == ["logits"]
