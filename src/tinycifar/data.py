"""CIFAR-10: find it on disk, or download and unpack the official archive, and load it safely.

A local ``cifar-10-batches-py`` folder is checked by its format rather than by MD5, because
legitimate copies (such as one rebuilt from PNGs) hold the same pixels in different bytes.
The archive is only ever checked by MD5, since that is the one thing we know about it.
"""

from __future__ import annotations

import _codecs
import functools
import hashlib
import http.client
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch

from tinycifar.errors import TinyCifarError
from tinycifar.paths import writable_dir
from tinycifar.untrusted import read_bytes

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
DOWNLOAD_TIMEOUT = 30.0  # seconds without an answer before a download gives up

ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
IMAGE_SHAPE = (3, 32, 32)
# Images per batch file. A module constant (not a literal in the checks) so tests can
# monkeypatch it and exercise every code path on tiny fake batches.
_BATCH_SIZE = 10_000
# An official batch file is 31 MB (10,000 images of 3,072 bytes, pickled).
MAX_BATCH_BYTES = 64 << 20

_CHUNK = 1 << 20


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds (or will hold) ``cifar-10-batches-py/``.

    Order: the argument, then ``$TINYCIFAR_DATA``, then the user cache dir. Pointing at the
    ``cifar-10-batches-py`` folder itself is accepted too, since that is what people do.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get("TINYCIFAR_DATA") or None
    if data_dir is None:
        import platformdirs  # only needed for the fallback

        data_dir = platformdirs.user_cache_dir("tinycifar")
    path = Path(data_dir).expanduser()
    if path.name == BATCHES_DIR:
        path = path.parent
    return path


def load_cifar10(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    md5: str | None = None,
    timeout: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a CIFAR-10 split as ``(uint8 images (N, 3, 32, 32), int64 labels (N,))``.

    If ``<data_dir>/cifar-10-batches-py`` is missing, an archive already at
    ``<data_dir>/cifar-10-python.tar.gz`` is verified and unpacked; failing that, and if
    ``download`` is true, the archive is fetched from ``url`` first. ``url``, ``md5`` and
    ``timeout`` default to :data:`CIFAR10_URL`, :data:`CIFAR10_MD5` and
    :data:`DOWNLOAD_TIMEOUT`, read at call time (so the commands, which pass none of
    them, can be pointed elsewhere by setting the module constants).
    """
    url = CIFAR10_URL if url is None else url
    md5 = CIFAR10_MD5 if md5 is None else md5
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    if split not in SPLIT_FILES:
        raise TinyCifarError(f"unknown split {split!r}: use 'train' or 'test'")
    root = resolve_data_dir(data_dir)
    batches = _ensure_batches(root, download=download, url=url, md5=md5, timeout=timeout)
    files = SPLIT_FILES[split]
    # Filled batch by batch so the split is never held twice (list of batches + concatenation).
    images = np.empty((len(files) * _BATCH_SIZE, *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.empty(len(files) * _BATCH_SIZE, dtype=np.int64)
    for i, name in enumerate(files):
        data, lab = _read_batch(batches / name)
        rows = slice(i * _BATCH_SIZE, (i + 1) * _BATCH_SIZE)
        images[rows] = data.reshape(-1, *IMAGE_SHAPE)  # rows are R, G, B planes of 32x32
        labels[rows] = lab
    return torch.from_numpy(images), torch.from_numpy(labels)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std in [0, 1] of ``(N, C, H, W)`` images.

    uint8 images are scaled by 1/255; floating images are taken as already in [0, 1].
    Works in chunks so the training set never exists as one float64 copy (1.2 GB).
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise TinyCifarError(f"channel_stats needs a non-empty (N, C, H, W) tensor, got shape {tuple(images.shape)}")
    scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for chunk in images.split(1024):
        x = chunk.to(torch.float64) * scale
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    # E[x^2] - E[x]^2 is well-conditioned here: float64 sums of values in [0, 1].
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


# --- getting the files onto disk -------------------------------------------------------


def _by_hand_hint(root: Path, url: str) -> str:
    return (
        f"Download the archive by hand from {url} and save it as {root / ARCHIVE_NAME} "
        f"(or extract it there so that {root / BATCHES_DIR} exists), or point "
        "--data-dir / TINYCIFAR_DATA at a folder that already holds cifar-10-batches-py."
    )


def _ensure_batches(root: Path, *, download: bool, url: str, md5: str, timeout: float) -> Path:
    batches = root / BATCHES_DIR
    if batches.is_dir():
        return batches
    if any((root / name).is_file() for name in ("data_batch_1", "test_batch")):
        return root  # the batches folder itself under another name; never download into it
    if root.exists() and not root.is_dir():
        raise TinyCifarError(f"data dir {root} is not a folder: pass a folder with --data-dir or TINYCIFAR_DATA")
    archive = root / ARCHIVE_NAME
    have_archive = archive.is_file()
    if have_archive:
        digest = _md5_of(archive)
        if digest != md5:
            # Not ours to delete: the user may have put it there by hand.
            raise TinyCifarError(
                f"{archive} is corrupt or not the CIFAR-10 archive (MD5 {digest}, expected {md5}): "
                f"delete it and run again. {_by_hand_hint(root, url)}"
            )
    elif not download:
        nested = next(root.glob(f"*/{BATCHES_DIR}"), None) if root.is_dir() else None
        if nested is not None and nested.is_dir():
            raise TinyCifarError(
                f"CIFAR-10 not found in {root}, but one folder further down there is {nested}: "
                "point --data-dir / TINYCIFAR_DATA at it."
            )
        raise TinyCifarError(f"CIFAR-10 not found in {root} and downloading is off. {_by_hand_hint(root, url)}")
    writable_dir(
        root,
        "data dir",
        "CIFAR-10 must be downloaded or unpacked there. Choose a writable folder with --data-dir or TINYCIFAR_DATA.",
    )
    if not have_archive:
        _download(url, archive, md5=md5, timeout=timeout, root=root)
    _extract(archive, root)
    return batches


def _md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _download(url: str, archive: Path, *, md5: str, timeout: float, root: Path) -> None:
    from tqdm import tqdm

    # A temp file in the same folder, renamed only once complete and verified, so an
    # interrupted or corrupt download never sits at the name we trust on the next run.
    fd, tmp_name = tempfile.mkstemp(dir=archive.parent, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    h = hashlib.md5(usedforsecurity=False)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                received = 0
                with tqdm(
                    total=expected, unit="B", unit_scale=True, desc="CIFAR-10", file=sys.stderr, leave=False
                ) as bar:
                    while block := resp.read(_CHUNK):
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
                if expected is not None and received != expected:
                    raise http.client.IncompleteRead(b"", expected - received)
        except (OSError, http.client.HTTPException, ValueError) as e:
            # OSError covers URLError/HTTPError, timeouts and dropped connections.
            raise TinyCifarError(f"downloading {url} failed: {_describe(e)}. {_by_hand_hint(root, url)}") from None
        digest = h.hexdigest()
        if digest != md5:
            raise TinyCifarError(
                f"the file downloaded from {url} is corrupt (MD5 {digest}, expected {md5}). {_by_hand_hint(root, url)}"
            )
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)


def _describe(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"the server answered HTTP {e.code} {e.reason}"
    if isinstance(e, http.client.IncompleteRead):
        return "the connection closed before the whole file arrived"
    if isinstance(e, TimeoutError) or "timed out" in str(e):
        return "the server did not answer in time"
    reason = getattr(e, "reason", None)
    return f"{type(e).__name__}: {reason if reason is not None else e}"


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise TinyCifarError(f"refusing to extract {name!r}: the archive contains a {kind}, which CIFAR-10 never does")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise TinyCifarError(f"refusing to extract {name!r}: absolute path in the archive")
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise TinyCifarError(f"refusing to extract {name!r}: it would land outside {dest}")


def _extract(archive: Path, root: Path) -> None:
    # Unpack next to the final place, then rename: the batches folder appears complete or
    # not at all, even if we are killed half-way.
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        dest = tmp.resolve()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for m in members:
                    _check_member(m, dest)
                # Our own check above is what makes this safe on every Python; the "data"
                # filter (3.12+, backported to some 3.10/3.11) is a second line of defence.
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - old interpreters only
                    tar.extractall(dest, members=members)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise TinyCifarError(
                f"could not unpack {archive} ({type(e).__name__}: {e}): delete it and run again"
            ) from None
        unpacked = dest / BATCHES_DIR
        if not unpacked.is_dir():
            raise TinyCifarError(f"{archive} does not contain a {BATCHES_DIR}/ folder: it is not the CIFAR-10 archive")
        try:
            os.replace(unpacked, root / BATCHES_DIR)
        except OSError:
            if not (root / BATCHES_DIR).is_dir():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- reading the batch files ---------------------------------------------------------


def _numpy_core() -> Any:
    try:
        from numpy import _core  # numpy >= 2

        return _core
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy import core

        return core


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    core = _numpy_core()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _codecs.encode,
    }
    # Official (Python 2, numpy 1) files name numpy.core; numpy 2 writes numpy._core.
    # Resolve them ourselves so a pickle never makes us import anything.
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else: a pickle can otherwise
    call any function (os.system, open, ...) while it loads."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise TinyCifarError(
                f"tinycifar refuses to unpickle {module}.{name}: a CIFAR-10 batch only holds numpy arrays and lists"
            ) from None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    def bad(problem: str) -> TinyCifarError:
        return TinyCifarError(
            f"{path} is not a valid CIFAR-10 batch: {problem}. Delete {path.parent} to download a fresh "
            "copy, or point --data-dir / TINYCIFAR_DATA at a good one."
        )

    if not path.exists():
        nested = path.parent / BATCHES_DIR
        if (nested / path.name).is_file():  # the archive was extracted inside the folder again
            raise TinyCifarError(
                f"missing file {path}: the batch files are one folder further down, in {nested}. "
                "Point --data-dir / TINYCIFAR_DATA there, or move them up one folder."
            )
        raise TinyCifarError(
            f"missing file {path}: the CIFAR-10 folder {path.parent} is incomplete. Delete it to download a "
            "fresh copy, or point --data-dir / TINYCIFAR_DATA at a complete one."
        )
    raw = read_bytes(
        path,
        MAX_BATCH_BYTES,
        f"CIFAR-10 batch {path}",
        f"delete {path.parent} to download a fresh copy, or point --data-dir / TINYCIFAR_DATA at a good one",
    )
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except TinyCifarError as e:
        raise TinyCifarError(f"{path}: {e}") from None
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean the same
        raise bad(f"truncated or corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None

    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise bad("expected a dict with keys b'data' and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray):
        raise bad(f"data is a {type(data).__name__}, expected a numpy array")
    if data.dtype != np.uint8:
        raise bad(f"data has dtype {data.dtype}, expected uint8")
    expected_shape = (_BATCH_SIZE, int(np.prod(IMAGE_SHAPE)))
    if data.shape != expected_shape:
        raise bad(f"data has shape {data.shape}, expected {expected_shape}")
    # A list of lists that share one another (a pickle's memo makes that a few bytes) would
    # allocate billions of items in np.asarray: the type of every item is checked first.
    if isinstance(labels, list) and not all(type(v) is int for v in labels):
        raise bad("labels are not a flat list of integers")
    if not isinstance(labels, (list, np.ndarray)):
        raise bad(f"labels are a {type(labels).__name__}, not a list of integers")
    try:
        labels = np.asarray(labels)
    except Exception:
        raise bad("labels are not a list of integers") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise bad(f"labels are not a flat list of integers (dtype {labels.dtype}, shape {labels.shape})")
    if len(labels) != len(data):
        raise bad(f"{len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise bad(f"labels out of range: found {labels.min()}..{labels.max()}, expected 0..{len(CLASSES) - 1}")
    return data, labels.astype(np.int64)


def train_size() -> int:
    """Images in the official training set (what a split or a teacher file is counted against)."""
    return len(SPLIT_FILES["train"]) * _BATCH_SIZE
