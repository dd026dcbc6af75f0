import contextlib
import hashlib
import importlib.util
import io
import os
import pickle
import shlex
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tinycifar import data
from tinycifar.data import ARCHIVE_NAME, BATCHES_DIR, CLASSES

# Two cores here and in CI: pin threads so timings and bitwise results are repeatable.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# The seed task's network, as its table totals it: the one number the seed tests pin
# (test_models_seed asserts the model has it; the summary tests check how it is printed).
SEED_PARAMS = 112_966

# The real CIFAR-10, when the environment points at it (CI does: see .ci/run).
REAL_DATA = os.environ.get("TINYCIFAR_DATA")
needs_real_data = pytest.mark.skipif(
    not (REAL_DATA and (Path(REAL_DATA) / "cifar-10-batches-py").is_dir()),
    reason="real CIFAR-10 not found: set TINYCIFAR_DATA to a folder holding cifar-10-batches-py",
)


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake CIFAR: each class tints the image a different colour, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    palette = torch.randint(0, 256, (10, 3, 1, 1), generator=torch.Generator().manual_seed(99))
    noise = torch.randint(-60, 61, (n, 3, 32, 32), generator=g)
    images = (palette[labels] + noise).clamp(0, 255).to(torch.uint8)
    return images, labels


@pytest.fixture
def tiny_data():
    return synthetic_cifar(320, seed=0), synthetic_cifar(100, seed=1)


# --- fake CIFAR-10 on disk and a loopback HTTP server ---------------------------------
#
# Shared by test_data.py and test_bad_input.py (import the helpers with
# ``from conftest import ...``). Fake datasets use the official layout and pickle format
# with tiny batches: the loader's ``_BATCH_SIZE`` is monkeypatched to ``N`` (fixture
# ``tiny``) so every path runs in milliseconds.

N = 20  # images per fake batch: two of each class
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
ALL_FILES = [*TRAIN_FILES, "test_batch"]


def fake_batch(n: int, seed: int) -> dict:
    labels = [(i + seed) % 10 for i in range(n)]
    img = np.empty((n, 3, 1024), dtype=np.uint8)
    for i, label in enumerate(labels):
        img[i, 0] = 20 * label + 5
        img[i, 1] = np.arange(1024) % 251
        img[i, 2] = (37 * i + 11 * seed) % 256
    return {
        b"batch_label": f"fake batch {seed}".encode(),
        b"labels": labels,
        b"data": img.reshape(n, 3072),
        b"filenames": [f"{i}_{CLASSES[label]}.png".encode() for i, label in enumerate(labels)],
    }


def write_batches(folder: Path, n: int = N, protocol: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(ALL_FILES):
        (folder / name).write_bytes(pickle.dumps(fake_batch(n, seed), protocol=protocol))
    meta = {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def set_batch_key(key, value):
    """A mutator for a batch file: replace ``batch[key]`` with ``value`` (or ``value(old)``)."""

    def mutate(path: Path):
        batch = pickle.loads(path.read_bytes(), encoding="bytes")
        batch[key] = value(batch[key]) if callable(value) else value
        path.write_bytes(pickle.dumps(batch, protocol=2))

    return mutate


def tar_bytes(add_members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        add_members(tar)
    return buf.getvalue()


def add_file(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def add_symlink(tar: tarfile.TarFile, name: str = f"{BATCHES_DIR}/data_batch_1", target: str = "/etc/passwd") -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def fake_archive_bytes(tmp_path: Path, extra=None) -> bytes:
    src = write_batches(tmp_path / "archive-src" / BATCHES_DIR)

    def add(tar):
        tar.add(src, arcname=BATCHES_DIR)
        if extra:
            extra(tar)

    return tar_bytes(add)


def md5(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


class Evil:
    """Unpickling this runs a command or creates a file: what a poisoned pickle would do."""

    def __init__(self, marker: Path, how: str):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {shlex.quote(str(self.marker))}",))
        return (open, (str(self.marker), "w"))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(data, "_BATCH_SIZE", N)


@pytest.fixture
def fake_root(tmp_path, tiny) -> Path:
    root = tmp_path / "data"
    write_batches(root / BATCHES_DIR)
    return root


@pytest.fixture
def server():
    """A loopback HTTP server for the archive; ``mode`` picks how it (mis)behaves."""
    state = SimpleNamespace(mode="ok", body=b"", requests=0)
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state.requests += 1
            body = state.body
            if state.mode == "404":
                self.send_error(404)
                return
            if state.mode == "drop":  # close without any answer
                self.close_connection = True
                return
            if state.mode == "hang":  # accept, then never answer
                release.wait(10)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.mode == "truncate":  # promise the whole file, send half, close
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            elif state.mode == "stall":  # send half, then go silent
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                release.wait(10)
            else:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}/{ARCHIVE_NAME}"
    yield state
    release.set()
    srv.shutdown()
    srv.server_close()


@contextlib.contextmanager
def experiment_script(path: Path, name: str):
    """An experiment's script loaded as a module (it registers its models), its
    registrations undone afterwards: other tests list the zoo."""
    from tinycifar import models

    tables = (models._REGISTRY, models._DESCRIPTIONS, models._RECIPES)
    saved = [dict(d) for d in tables]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for d, old in zip(tables, saved):
            d.clear()
            d.update(old)
