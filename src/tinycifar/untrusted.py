"""Reading files a stranger may have made: one bounded reader for every loader.

Weights, teachers, checkpoints, ONNX models, images and CIFAR-10 batches all come in
through :func:`read_bytes`, so none of them can be made to read a device, a FIFO or a file
that grows without end, whatever ``stat`` reports or wherever a symlink points. The bytes
are then parsed from memory: nothing resolves a second path afterwards.

Header-level parsers of the formats that are parsed before any tensor is allocated live
here too (the safetensors header, the zip directory of a ``torch.save`` checkpoint), so
they can be fuzzed on their own.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

from tinycifar.errors import TinyCifarError

_CHUNK = 1 << 20


def read_bytes(path: Path | str, cap: int, what: str, fix: str) -> bytes:
    """The whole of a regular file of at most ``cap`` bytes; one clear error otherwise.

    ``what`` names the file for the user ("weights file x.safetensors"), ``fix`` says what
    to give instead. The file is opened first and then checked (``fstat`` of the open file,
    so a swap between check and read changes nothing); ``O_NONBLOCK`` keeps a FIFO from
    hanging the open. The read stops at ``cap + 1`` bytes: ``/proc`` files report size 0.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TinyCifarError(f"{what} does not exist: {fix}") from None
    except IsADirectoryError:
        raise TinyCifarError(f"{what} is a folder, not a file: {fix}") from None
    except OSError as e:
        raise TinyCifarError(f"cannot read {what} ({e.strerror or e}): {fix}") from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise TinyCifarError(f"{what} is a folder, not a file: {fix}")
        if not stat.S_ISREG(mode):
            raise TinyCifarError(
                f"{what} is not a regular file (a device, FIFO or socket); tinycifar reads only plain files: {fix}"
            )
        if st.st_size > cap:
            raise TinyCifarError(f"{what} is {st.st_size:,} bytes, more than tinycifar reads ({cap:,}): {fix}")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= cap:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise TinyCifarError(f"cannot read {what} ({e.strerror or e}): {fix}") from None
    finally:
        os.close(fd)
    if total > cap:
        raise TinyCifarError(f"{what} holds more than {cap:,} bytes, more than tinycifar reads: {fix}")
    return b"".join(chunks)


# --- safetensors --------------------------------------------------------------------------

# safetensors' limit on the header (100 MB) is far above what a tiny model's needs: a
# header is a few KB; this one is parsed by Python's json, so it is kept small.
MAX_SAFETENSORS_HEADER = 1 << 20


class SafetensorsHeader(NamedTuple):
    """What a safetensors file declares before its tensor data."""

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]  # safetensors' names: F32, I64...
    metadata: dict[str, str]


def safetensors_header(data: bytes) -> SafetensorsHeader:
    """The header of safetensors bytes, checked for shape only; raises ``ValueError`` for
    anything that is not one (the caller names the file). The safetensors package parses
    headers only from paths, and the bytes here were read once, bounded, from a path that
    must not be opened again."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(data):
        raise ValueError(f"header length {n} does not fit the file")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"header is not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("__metadata__ is not a map of strings")
    shapes, dtypes = {}, {}
    for name, info in header.items():
        if not (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and isinstance(info.get("shape"), list)
            and all(type(d) is int and 0 <= d < 2**40 for d in info["shape"])
            and len(info["shape"]) <= 8
        ):
            raise ValueError(f"tensor {name[:40]!r} has no valid dtype and shape")
        shapes[name], dtypes[name] = tuple(info["shape"]), info["dtype"]
    return SafetensorsHeader(shapes, dtypes, metadata)


def load_safetensors(data: bytes) -> dict[str, Any]:
    """The tensors of safetensors bytes whose header was checked (names, shapes, types)."""
    from safetensors.torch import load

    return load(data)


# --- torch.save checkpoints ---------------------------------------------------------------


def check_checkpoint_zip(data: bytes, cap: int) -> None:
    """Refuse a ``torch.save`` zip that could expand in memory beyond what it holds.

    ``torch.save`` stores every entry uncompressed; an entry that is compressed (a zip bomb
    expands ~1000×) or declares more bytes than the file holds is refused before torch
    decodes anything, as is a directory whose declared sizes add up past ``cap``. Raises
    ``ValueError`` with the reason.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        IndexError,
        struct.error,
        NotImplementedError,
        UnicodeDecodeError,
    ) as e:
        raise ValueError(f"not a torch.save zip ({type(e).__name__})") from None
    # torch tells its formats apart by the first bytes: data before the archive would be read
    # as a legacy pickle, which allocates the storages it declares.
    if data[:4] != b"PK\x03\x04" or min((i.header_offset for i in infos), default=0) != 0:
        raise ValueError("not a torch.save zip (bytes before the archive)")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"entry {info.filename[:60]!r} is compressed; torch.save stores entries as they are")
        if info.file_size != info.compress_size or info.file_size > len(data):
            raise ValueError(
                f"entry {info.filename[:60]!r} declares {info.file_size:,} bytes in a file of {len(data):,}"
            )
        total += info.file_size
    if total > cap:
        raise ValueError(f"its entries add up to {total:,} bytes, over {cap:,}")
