"""A run folder's safety: one writer at a time, and no run started over another unasked.

``tinycifar train`` (and every sweep trial, and ``repeat`` for its own folder) holds the
folder's lock while it writes there. The lock is a file made with ``O_EXCL`` that names
its owner (host, pid, start time) and is held with ``flock`` for the owner's lifetime: the
kernel lets go of it however the owner dies, so a lock left by a killed run is stale and
taken over, while a live one turns a second writer away with one line. The lock is
re-entrant within a process, so a command can take it before it clears a folder and the
training engine can take it again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from tinycifar.errors import TinyCifarError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_EXCL alone; a stale lock is removed by hand
    fcntl = None  # type: ignore[assignment]

LOCK = ".tinycifar.lock"
# What `tinycifar train` writes: a folder holding any of these holds a run.
RUN_FILES = (
    "config.json",
    "environment.json",
    "log.jsonl",
    "last.pt",
    "last.pt.new",
    "previous.pt",
    "model.safetensors",
    "metrics.json",
    "curves.png",
)

_held: dict[Path, tuple[int, int]] = {}  # folder -> (lock fd, depth): re-entrant per process


def run_files(folder: Path | str) -> list[str]:
    """The names of a run's files present in ``folder``."""
    folder = Path(folder)
    return [name for name in RUN_FILES if (folder / name).exists() or (folder / name).is_symlink()]


def refuse_existing_run(folder: Path | str) -> None:
    """One clear line if ``folder`` already holds a run: nothing of it is touched."""
    found = run_files(folder)
    if found:
        raise TinyCifarError(
            f"{folder} already holds a run ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}): "
            "continue it with --resume, choose another --out, or pass --overwrite to delete "
            "it and start again"
        )


def clear_run(folder: Path | str) -> list[str]:
    """Delete a run's own files from ``folder`` (nothing else in it); their names."""
    folder = Path(folder)
    found = run_files(folder)
    for name in found:
        (folder / name).unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def run_lock(folder: Path | str) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; one clear error if a live process holds it."""
    key = Path(folder).resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        _held[key] = (_acquire(Path(folder)), 1)
    try:
        yield
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            _release(Path(folder), fd)


def _acquire(folder: Path) -> int:
    path = folder / LOCK
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(10):
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:  # its owner just released it: try again
                continue
            except OSError as e:
                raise TinyCifarError(
                    f"cannot take the lock {path} ({e.strerror or e}): remove it if it is "
                    "not a tinycifar lock file, or choose another --out"
                ) from None
            if fcntl is None:
                os.close(fd)
                raise _busy(path, "") from None
        except OSError as e:
            raise TinyCifarError(
                f"cannot write to {folder} ({e.strerror or e}): choose a folder you can write to"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held by a live process
                owner = _owner(fd)
                os.close(fd)
                raise _busy(path, owner) from None
            except OSError as e:  # a filesystem without locks
                os.close(fd)
                raise TinyCifarError(
                    f"cannot lock {path} ({e.strerror or e}): choose an --out on a local disk"
                ) from None
            # The owner may have released and unlinked it between our open and our flock:
            # then we hold a lock on a file no one else will find. Start again.
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
        try:
            os.ftruncate(fd, 0)
            os.write(
                fd, f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
            )
        except OSError as e:
            os.close(fd)
            raise TinyCifarError(
                f"cannot write the lock {path} ({e.strerror or e}): free some space or choose another --out"
            ) from None
        return fd
    raise TinyCifarError(f"could not take the lock {path}: other processes keep taking it; choose another --out")


def _release(folder: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(folder / LOCK)  # before the flock goes, so no one takes over a file being removed
    os.close(fd)


def _owner(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _busy(path: Path, owner: str) -> TinyCifarError:
    who = f" ({owner})" if owner else ""
    return TinyCifarError(
        f"{path.parent} is in use by another tinycifar process{who}: wait for it to end, or choose another --out"
    )
