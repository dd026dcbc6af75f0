"""``tinycifar analyze`` through the CLI entry point, on a tiny fake dataset and on the real one."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA as REAL
from conftest import needs_real_data
from PIL import Image

from tinycifar import cli, data
from tinycifar.data import BATCHES_DIR, CLASSES

N = 20  # images per fake batch

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def class_color(label: int) -> tuple[int, int, int]:
    return (20 * label + 5, 200 - 15 * label, 60 + 10 * label)


def write_fake(root: Path) -> tuple[np.ndarray, list[int], list[int]]:
    """Official layout and format; every image a solid colour chosen by its class.
    Returns the train data and the train and test labels."""
    folder = root / BATCHES_DIR
    folder.mkdir(parents=True)
    train_data, train_labels, test_labels = [], [], []
    for k, name in enumerate(FILES):
        labels = [(i + k) % 7 if k < 5 else i % 10 for i in range(N)]  # classes 7-9 only in test
        img = np.empty((N, 3, 1024), dtype=np.uint8)
        for i, label in enumerate(labels):
            img[i] = np.array(class_color(label), dtype=np.uint8)[:, None]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": img.reshape(N, 3072)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        if k < 5:
            train_data.append(img.reshape(N, 3072))
            train_labels += labels
        else:
            test_labels = labels
    return np.concatenate(train_data), train_labels, test_labels


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_BATCH_SIZE", N)
    root = tmp_path / "data"
    return root, *write_fake(root)


def check_png(path: Path) -> Image.Image:
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as im:
        im.verify()
    im = Image.open(path)
    assert im.format == "PNG"
    return im.convert("RGB")


def test_analyze_fake_dataset(fake, tmp_path, capsys):
    root, train_data, train_labels, test_labels = fake
    out = tmp_path / "out" / "deeper"
    assert cli.main(["analyze", "--data-dir", str(root), "--out", str(out), "--no-download"]) == 0
    stdout = capsys.readouterr().out

    assert "image size: 3x32x32" in stdout
    train_counts = np.bincount(train_labels, minlength=10)
    test_counts = np.bincount(test_labels, minlength=10)
    for name, n_train, n_test in zip(CLASSES, train_counts, test_counts):
        assert re.search(rf"^{name}\s+{n_train}\s+{n_test}$", stdout, re.M), f"no table row for {name}"
    assert re.search(rf"^total\s+{5 * N}\s+{N}$", stdout, re.M)

    pixels = train_data.reshape(-1, 3, 1024).astype(np.float64) / 255
    mean = " ".join(f"{v:.4f}" for v in pixels.mean(axis=(0, 2)))
    std = " ".join(f"{v:.4f}" for v in pixels.std(axis=(0, 2)))
    assert f"mean (R, G, B): {mean}\n" in stdout
    assert f"std (R, G, B): {std}\n" in stdout

    samples = out / "samples.png"
    dist = out / "class_distribution.png"
    assert f"wrote {samples}" in stdout and f"wrote {dist}" in stdout
    grid = np.asarray(check_png(samples))
    assert grid.shape[0] >= 10 * 32 * 2 and grid.shape[1] >= 10 * 32 * 2
    # Each training class shows its images, drawn pixel for pixel (nearest neighbour,
    # upscaled): at least 10 full tiles of exactly that colour.
    for label in range(7):
        n_px = np.all(grid == class_color(label), axis=-1).sum()
        assert n_px >= 10 * 32 * 32 * 4, f"{CLASSES[label]} samples missing from the grid"
    assert not np.all(grid == class_color(8), axis=-1).any(), "a class with no training images was drawn"
    check_png(dist)


def test_analyze_unwritable_out(fake, tmp_path, capsys):
    root = fake[0]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert cli.main(["analyze", "--data-dir", str(root), "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and "--out" in err
    assert "Traceback" not in err


def test_analyze_without_data_and_no_download(tmp_path, capsys):
    empty = tmp_path / "empty"
    assert cli.main(["analyze", "--data-dir", str(empty), "--out", str(tmp_path / "o"), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "downloading is off" in err and "--data-dir" in err and "TINYCIFAR_DATA" in err
    assert not (tmp_path / "o").exists() and not empty.exists()


@needs_real_data
def test_analyze_real_dataset(tmp_path, capsys):
    out = tmp_path / "analysis"
    assert cli.main(["analyze", "--data-dir", REAL, "--out", str(out), "--no-download"]) == 0
    stdout = capsys.readouterr().out
    assert "mean (R, G, B): 0.4914 0.4822 0.4465\n" in stdout
    assert "std (R, G, B): 0.2470 0.2435 0.2616\n" in stdout
    for name in CLASSES:
        assert re.search(rf"^{name}\s+5000\s+1000$", stdout, re.M)
    assert re.search(r"^total\s+50000\s+10000$", stdout, re.M)
    check_png(out / "samples.png")
    check_png(out / "class_distribution.png")
