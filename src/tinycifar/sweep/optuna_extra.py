"""Optuna, the optional ``[sweep]`` extra: imported only when a sweep runs, and quietened."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from tinycifar.errors import TinyCifarError


def need_optuna() -> Any:
    """The ``optuna`` module, or one error that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise TinyCifarError(
            "sweeps are an optional extra: pip install -e '.[sweep]' in the checkout (make setup installs every extra)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeat and its retry callback are marked experimental (since Optuna 2.8, unchanged):
    # a warning per process that tells a user nothing to do.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for handler in logging.getLogger("optuna").handlers:
        handler.addFilter(_without_known_traceback)  # adding the same filter twice is a no-op
    return optuna


def _without_known_traceback(record: logging.LogRecord) -> bool:
    # Optuna logs a failed trial with its traceback; a TinyCifarError's one line says it all.
    if record.exc_info and isinstance(record.exc_info[1], TinyCifarError):
        record.exc_info, record.exc_text = None, None
    return True
