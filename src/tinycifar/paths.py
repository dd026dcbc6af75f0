"""Output folders: made and proved writable before any work is spent on them."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinycifar.errors import TinyCifarError


def writable_dir(path: Path | str, what: str, fix: str) -> Path:
    """Create ``path`` if needed and write a scratch file in it; else one clear error.

    ``what`` names the folder as the user gave it (``--out``, ``data dir``), ``fix`` says
    what to do instead.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise TinyCifarError(f"cannot write to {what} {path} ({e.strerror or e}): {fix}") from None
    return path
