"""tinycifar.data: finding, downloading, unpacking and validating CIFAR-10.

Fake datasets use the official layout and pickle format with tiny batches: the loader's
``_BATCH_SIZE`` is monkeypatched to ``N`` so every path runs in milliseconds. The download
tests talk only to a loopback HTTP server; the real data (read-only) is used only when
``TINYCIFAR_DATA`` is set. The builders and the ``tiny``, ``fake_root`` and ``server``
fixtures live in conftest.py, shared with test_bad_input.py.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import (
    ALL_FILES,
    TRAIN_FILES,
    Evil,
    N,
    add_file,
    add_symlink,
    fake_archive_bytes,
    fake_batch,
    md5,
    set_batch_key,
    tar_bytes,
    write_batches,
)
from conftest import REAL_DATA as REAL
from conftest import needs_real_data as needs_real

from tinycifar import data
from tinycifar.data import (
    ARCHIVE_NAME,
    BATCHES_DIR,
    CLASSES,
    channel_stats,
    load_cifar10,
    resolve_data_dir,
)
from tinycifar.errors import TinyCifarError

# --- helpers (the fake-dataset builders and the fixtures tiny, fake_root and server are in conftest.py)


def snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under folder, with size and mtime for files (a folder's mtime changes
    whenever a temp file comes and goes, which is allowed)."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".download-", ".extract-")))


# --- constants and data dir resolution ----------------------------------------------------


def test_classes_are_the_official_order():
    assert CLASSES == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    assert data.CIFAR10_URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert data.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"


def test_resolve_data_dir_order(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("TINYCIFAR_DATA", raising=False)
    assert resolve_data_dir(None) == Path(platformdirs.user_cache_dir("tinycifar"))
    monkeypatch.setenv("TINYCIFAR_DATA", str(tmp_path / "from-env"))
    assert resolve_data_dir(None) == tmp_path / "from-env"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_resolve_data_dir_accepts_the_batches_folder_and_tilde(monkeypatch, tmp_path):
    assert resolve_data_dir(tmp_path / BATCHES_DIR) == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/cifar") == tmp_path / "cifar"


# --- loading a local folder -------------------------------------------------------------


def test_load_local_folder(fake_root):
    before = snapshot(fake_root)
    x, y = load_cifar10("train", fake_root, download=False)
    assert x.dtype == torch.uint8 and x.shape == (5 * N, 3, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (5 * N,)
    # Batches in order, each row reshaped as 3 planes of 32x32, row-major.
    for k in range(len(TRAIN_FILES)):
        raw = fake_batch(N, k)
        rows = slice(k * N, (k + 1) * N)
        assert y[rows].tolist() == raw[b"labels"]
        expected = torch.from_numpy(raw[b"data"].reshape(N, 3, 32, 32))
        assert torch.equal(x[rows], expected)
    assert x[0, 1, 0, 5].item() == 5 and x[0, 1, 1, 0].item() == 32  # green plane is a ramp
    xt, yt = load_cifar10("test", fake_root / BATCHES_DIR, download=False)
    assert xt.shape == (N, 3, 32, 32) and yt.tolist() == fake_batch(N, 5)[b"labels"]
    assert snapshot(fake_root) == before, "loading must never write into the dataset folder"


def test_renamed_batches_folder_is_read_in_place(tmp_path, tiny):
    folder = write_batches(tmp_path / "my-cifar")
    (folder / "data_batch_2").unlink()
    before = snapshot(tmp_path)
    # Read where it is: an incomplete folder is an error, not a reason to download into it.
    with pytest.raises(TinyCifarError, match="missing file .*data_batch_2"):
        load_cifar10("train", folder, url="http://127.0.0.1:9/")
    assert len(load_cifar10("test", folder, url="http://127.0.0.1:9/")[1]) == N
    assert snapshot(tmp_path) == before


def test_env_var_is_used(fake_root, monkeypatch):
    monkeypatch.setenv("TINYCIFAR_DATA", str(fake_root))
    _, y = load_cifar10("test", download=False)
    assert len(y) == N


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_protocols_load(tmp_path, tiny, protocol):
    write_batches(tmp_path / BATCHES_DIR, protocol=protocol)
    x, y = load_cifar10("test", tmp_path, download=False)
    assert torch.equal(x, torch.from_numpy(fake_batch(N, 5)[b"data"].reshape(N, 3, 32, 32)))


def test_unknown_split(fake_root):
    with pytest.raises(TinyCifarError, match="unknown split 'valid'"):
        load_cifar10("valid", fake_root, download=False)


CORRUPTIONS = {
    "missing": (lambda p: p.unlink(), "missing file"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated or corrupt"),
    "garbage": (lambda p: p.write_bytes(b"this is not a pickle"), "truncated or corrupt"),
    "empty": (lambda p: p.write_bytes(b""), "truncated or corrupt"),
    "not a dict": (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "expected a dict"),
    "no labels": (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((N, 3072), np.uint8)})), "b'labels'"),
    "data is a list": (set_batch_key(b"data", lambda d: d.tolist()), "expected a numpy array"),
    "wrong dtype": (set_batch_key(b"data", lambda d: d.astype(np.float32)), "dtype float32, expected uint8"),
    "wrong width": (set_batch_key(b"data", lambda d: d[:, :3071]), "shape (20, 3071), expected (20, 3072)"),
    "too few rows": (set_batch_key(b"data", lambda d: d[:-1]), "shape (19, 3072)"),
    "label 10": (set_batch_key(b"labels", lambda lab: [*lab[:-1], 10]), "labels out of range"),
    "label -1": (set_batch_key(b"labels", lambda lab: [-1, *lab[1:]]), "labels out of range"),
    "label count": (set_batch_key(b"labels", lambda lab: lab[:-1]), "19 labels for 20 images"),
    "label strings": (set_batch_key(b"labels", lambda lab: [str(v) for v in lab]), "not a flat list of integers"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_batch_is_a_clear_error(fake_root, case):
    mutate, expected = CORRUPTIONS[case]
    mutate(fake_root / BATCHES_DIR / "data_batch_3")
    with pytest.raises(TinyCifarError) as info:
        load_cifar10("train", fake_root, download=False)
    msg = str(info.value)
    assert "data_batch_3" in msg
    assert expected in msg
    # The test split does not read that file, so it still loads.
    assert len(load_cifar10("test", fake_root, download=False)[1]) == N


@pytest.mark.parametrize("how", ["system", "open"])
def test_malicious_pickle_is_refused(fake_root, tmp_path, how):
    marker = tmp_path / f"pwned-{how}"
    payload = pickle.dumps({b"data": Evil(marker, how), b"labels": [0] * N}, protocol=2)
    # The payload is live: a plain pickle.load really does create the marker...
    pickle.loads(payload, encoding="bytes")
    assert marker.exists()
    marker.unlink()
    # ...and our loader refuses it before anything runs.
    (fake_root / BATCHES_DIR / "data_batch_1").write_bytes(payload)
    with pytest.raises(TinyCifarError, match="refuses to unpickle") as info:
        load_cifar10("train", fake_root, download=False)
    assert "data_batch_1" in str(info.value)
    assert not marker.exists()


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TinyCifarError, match="not a folder"):
        load_cifar10("train", f, download=True, url="http://127.0.0.1:9/")


# --- downloading ------------------------------------------------------------------------


def test_download_verify_extract(tmp_path, tiny, server):
    server.body = fake_archive_bytes(tmp_path)
    root = tmp_path / "cache" / "nested"  # does not exist yet
    x, y = load_cifar10("train", root, url=server.url, md5=md5(server.body), timeout=5)
    assert x.shape == (5 * N, 3, 32, 32) and y[:N].tolist() == fake_batch(N, 0)[b"labels"]
    assert server.requests == 1
    assert (root / ARCHIVE_NAME).read_bytes() == server.body
    assert sorted(p.name for p in (root / BATCHES_DIR).iterdir()) == sorted([*ALL_FILES, "batches.meta"])
    assert leftovers(root) == []
    # Second run: the folder is there, so no request, even with a broken server.
    server.mode = "404"
    _, yt = load_cifar10("test", root, url=server.url, md5=md5(server.body), timeout=5)
    assert len(yt) == N and server.requests == 1


def test_download_with_bad_md5_leaves_nothing(tmp_path, tiny, server):
    server.body = fake_archive_bytes(tmp_path)
    root = tmp_path / "cache"
    with pytest.raises(TinyCifarError, match="corrupt") as info:
        load_cifar10("train", root, url=server.url, md5="0" * 32, timeout=5)
    assert "by hand" in str(info.value)
    assert sorted(p.name for p in root.iterdir()) == []


@pytest.mark.parametrize("mode", ["404", "drop", "truncate", "stall", "hang", "refused"])
def test_download_failures_say_how_to_fix(tmp_path, tiny, server, mode):
    server.body = fake_archive_bytes(tmp_path)
    server.mode = mode
    url = server.url
    if mode == "refused":
        import socket

        with socket.socket() as s:  # a port that was free a moment ago: nothing listens
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/x.tar.gz"
    root = tmp_path / "cache"
    with pytest.raises(TinyCifarError) as info:
        load_cifar10("train", root, url=url, md5=md5(server.body), timeout=0.5)
    msg = str(info.value)
    assert "by hand" in msg and url in msg
    assert str(root / ARCHIVE_NAME) in msg
    assert "--data-dir" in msg and "TINYCIFAR_DATA" in msg
    if mode == "404":
        assert "404" in msg
    assert sorted(p.name for p in root.iterdir()) == []


def test_no_download_means_no_request(tmp_path, server):
    root = tmp_path / "cache"
    with pytest.raises(TinyCifarError, match="downloading is off") as info:
        load_cifar10("train", root, download=False, url=server.url)
    assert "by hand" in str(info.value)
    assert server.requests == 0 and not root.exists()


def test_archive_already_present_is_used(tmp_path, tiny, server):
    body = fake_archive_bytes(tmp_path)
    root = tmp_path / "cache"
    root.mkdir()
    (root / ARCHIVE_NAME).write_bytes(body)
    server.mode = "404"
    x, _ = load_cifar10("train", root, download=False, url=server.url, md5=md5(body))
    assert x.shape[0] == 5 * N and server.requests == 0
    assert leftovers(root) == []


def test_archive_already_present_with_bad_md5(tmp_path, tiny, server):
    root = tmp_path / "cache"
    root.mkdir()
    (root / ARCHIVE_NAME).write_bytes(b"half an archive")
    with pytest.raises(TinyCifarError, match="corrupt or not the CIFAR-10 archive"):
        load_cifar10("train", root, url=server.url, md5=md5(fake_archive_bytes(tmp_path)))
    assert server.requests == 0
    assert not (root / BATCHES_DIR).exists()
    assert (root / ARCHIVE_NAME).exists(), "a file the user placed by hand is not ours to delete"


def test_unwritable_data_dir(tmp_path, server):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(TinyCifarError, match="cannot write to data dir") as info:
        load_cifar10("train", blocker / "data", url=server.url)
    assert "--data-dir" in str(info.value) and server.requests == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_data_dir(tmp_path, server):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(TinyCifarError, match="cannot write to data dir"):
            load_cifar10("train", root, url=server.url)
    finally:
        root.chmod(0o755)


# --- unpacking safely -------------------------------------------------------------------


def _hardlink(tar):
    info = tarfile.TarInfo("cifar-10-batches-py/passwd")
    info.type = tarfile.LNKTYPE
    info.linkname = "/etc/passwd"
    tar.addfile(info)


def _device(tar):
    info = tarfile.TarInfo("cifar-10-batches-py/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


EVIL_MEMBERS = {
    "dotdot": (lambda tar, out: add_file(tar, "../evil", b"x"), "outside"),
    "nested dotdot": (lambda tar, out: add_file(tar, f"{BATCHES_DIR}/../../evil", b"x"), "outside"),
    "absolute": (lambda tar, out: add_file(tar, str(out / "abs-evil"), b"x"), "absolute"),
    "symlink": (lambda tar, out: add_symlink(tar), "link"),
    "symlink dir": (lambda tar, out: add_symlink(tar, "escape", str(out)), "link"),
    "hardlink": (lambda tar, out: _hardlink(tar), "link"),
    "device": (lambda tar, out: _device(tar), "special file"),
}


@pytest.mark.parametrize("with_filter", [True, False], ids=["data-filter", "own-check-only"])
@pytest.mark.parametrize("case", list(EVIL_MEMBERS))
def test_unsafe_archive_is_refused(tmp_path, tiny, monkeypatch, case, with_filter):
    if not with_filter:  # what an interpreter without tarfile's "data" filter would do
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    add_evil, expected = EVIL_MEMBERS[case]
    body = fake_archive_bytes(tmp_path, extra=lambda tar: add_evil(tar, tmp_path))
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    (root / ARCHIVE_NAME).write_bytes(body)
    before = snapshot(tmp_path)
    with pytest.raises(TinyCifarError, match="refusing to extract") as info:
        load_cifar10("train", root, md5=md5(body), url="http://127.0.0.1:9/")
    assert expected in str(info.value)
    assert snapshot(tmp_path) == before, "nothing may be written anywhere"
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "abs-evil").exists()


def test_archive_without_batches_folder(tmp_path, tiny):
    body = tar_bytes(lambda tar: add_file(tar, "readme.txt", b"hello"))
    (tmp_path / ARCHIVE_NAME).write_bytes(body)
    with pytest.raises(TinyCifarError, match="does not contain a cifar-10-batches-py"):
        load_cifar10("train", tmp_path, md5=md5(body))
    assert leftovers(tmp_path) == [] and not (tmp_path / BATCHES_DIR).exists()


def test_corrupt_archive_with_matching_md5(tmp_path, tiny):
    body = fake_archive_bytes(tmp_path)[:-200]
    (tmp_path / ARCHIVE_NAME).write_bytes(body)
    with pytest.raises(TinyCifarError, match="could not unpack"):
        load_cifar10("train", tmp_path, md5=md5(body))
    assert leftovers(tmp_path) == [] and not (tmp_path / BATCHES_DIR).exists()


# --- channel statistics -----------------------------------------------------------------


def test_channel_stats_matches_numpy():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2500, 3, 8, 8), dtype=torch.uint8, generator=g)  # > one chunk
    arr = images.numpy().astype(np.float64) / 255
    mean, std = channel_stats(images)
    np.testing.assert_allclose(mean, arr.mean(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, arr.std(axis=(0, 2, 3)), rtol=0, atol=1e-10)
    fmean, fstd = channel_stats(images.float() / 255)
    np.testing.assert_allclose(fmean, mean, atol=1e-6)
    np.testing.assert_allclose(fstd, std, atol=1e-6)


def test_channel_stats_constant_images():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    images[:, 1] = 255
    images[:, 2] = 51
    mean, std = channel_stats(images)
    assert mean == pytest.approx([0.0, 1.0, 0.2]) and std == pytest.approx([0, 0, 0], abs=1e-7)


def test_channel_stats_rejects_bad_shapes():
    with pytest.raises(TinyCifarError):
        channel_stats(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TinyCifarError):
        channel_stats(torch.zeros(0, 3, 32, 32, dtype=torch.uint8))


# --- the real dataset (read-only, only when TINYCIFAR_DATA is set) -------------------------


@pytest.fixture(scope="module")
def real():
    train = load_cifar10("train", REAL, download=False)
    test = load_cifar10("test", REAL, download=False)
    return SimpleNamespace(train=train, test=test)


@needs_real
def test_real_counts_and_first_labels(real):
    (x, y), (xt, yt) = real.train, real.test
    assert x.shape == (50_000, 3, 32, 32) and x.dtype == torch.uint8
    assert xt.shape == (10_000, 3, 32, 32) and yt.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [5000] * 10
    assert torch.bincount(yt, minlength=10).tolist() == [1000] * 10
    assert CLASSES[y[0]] == "frog" and y[0].item() == 6
    assert CLASSES[yt[0]] == "cat" and yt[0].item() == 3


@needs_real
def test_real_channel_stats(real):
    mean, std = channel_stats(real.train[0])
    assert [round(v, 4) for v in mean] == [0.4914, 0.4822, 0.4465]
    assert [round(v, 4) for v in std] == [0.2470, 0.2435, 0.2616]
