"""Writing files so that a crash, a kill or a full disk never leaves half of one.

Every file tinycifar writes for a user (checkpoints, weights, JSON records, logs, ONNX
files) goes through :func:`atomic_write`: a temp file in the same folder, fsync, then a
rename over the target. The rename replaces a symlink at the target instead of writing
through it, so a link planted in a run folder cannot redirect a write elsewhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, rename it over ``path``.

    Either the old file or the new one survives, never a mix. A write that fails for want
    of space or permission (``OSError``; torch reports a full disk as ``RuntimeError``) is
    one :class:`TinyCifarError` and leaves the old file as it was.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, e: BaseException) -> TinyCifarError:
    detail = getattr(e, "strerror", None) or (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return TinyCifarError(
        f"cannot write {path} ({detail}); the last complete file there is kept: free some "
        "space or choose another folder, then run again (a training run: with --resume)"
    )


def write_text(path: Path | str, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def write_json(path: Path | str, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting it to read it is process-wide, and another thread (Optuna's
# heartbeat, say) creating a file in that moment would get a world-writable one.
_UMASK = _umask()
