"""Where a study lives: a journal file, or a database that workers on many machines share.

A database URL may hold a password, so every line a sweep prints or raises goes through
:func:`hide_password` or :func:`scrub`, and workers read the URL from ``STORAGE_ENV``
rather than their argv, which any user's ``ps`` shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinycifar.errors import TinyCifarError
from tinycifar.sweep.optuna_extra import need_optuna

HEARTBEAT_S, GRACE_S = 10, 60  # database storage: a trial silent for a minute is dead
STORAGE_ENV = "TINYCIFAR_SWEEP_STORAGE"  # the storage URL, out of argv (ps shows argv to all)

# scheme://user:PASSWORD@rest: the password runs to the last "@" (one may hold an "@"
# unescaped, which SQLAlchemy's parser cuts short and would half show).
_URL_WITH_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*):(?P<password>.*)@(?P<tail>[^@]*)$")
_ANY_URL_PASSWORD = re.compile(r"\b([A-Za-z][\w+.-]*://[^:/@\s]*):[^@\s/]*@")


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``, for every line a sweep prints."""
    m = _URL_WITH_PASSWORD.match(url)
    if not m or not m["password"]:
        return url
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: the pattern still masks it
        shown = None
    if shown is None or any(secret in shown for secret in _secrets(url)):
        shown = f"{m['head']}:***@{m['tail']}"
    return shown


def _secrets(url: str | None) -> set[str]:
    """A storage URL's password, as written and decoded (a driver's error may show either)."""
    m = _URL_WITH_PASSWORD.match(url or "")
    if not m or not m["password"]:
        return set()
    found = {m["password"], urllib.parse.unquote(m["password"])}
    with contextlib.suppress(Exception):  # not a URL SQLAlchemy parses: the pattern's reading is enough
        from sqlalchemy.engine import make_url

        found.add(make_url(m.string).password or "")
    return {s for s in found if s}


def scrub(text: str, url: str | None) -> str:
    """``text`` (an error, a log line) with the storage URL's password, and any other URL's
    password, shown as ``***``."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _ANY_URL_PASSWORD.sub(r"\1:***@", text)


def open_storage(spec: str | None, out: Path) -> Any:
    """A journal file (default: ``OUT/study.journal``) or a database URL (with heartbeat)."""
    optuna = need_optuna()
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if spec is None or "://" not in spec:
        path = Path(spec) if spec else out / "study.journal"
        return JournalStorage(JournalFileBackend(str(path)))
    url = spec.replace("postgresql://", "postgresql+psycopg://", 1)  # the driver the extra installs
    try:
        return RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except Exception as e:  # noqa: BLE001 - connection refused, bad URL, missing driver: all one line
        why = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise TinyCifarError(scrub(f"cannot open the study storage {hide_password(spec)} ({why})", spec)) from None


def open_study(spec: str | None, name: str, open_it: Callable[[], Any]) -> Any:
    """``open_it()`` (Optuna's create_study or load_study), a database's error as one line
    without its password."""
    try:
        return open_it()
    except Exception as e:  # noqa: BLE001 - a lost connection, a missing study: one line either way
        why = (str(e).splitlines() or [""])[0][:200]
        where = hide_password(spec) if spec else "the journal"
        raise TinyCifarError(
            scrub(f"cannot open study {name!r} in {where} ({type(e).__name__}: {why})", spec)
        ) from None


def worker_id(pid: int | None = None) -> str:
    """How a trial names the worker that runs it (this process, or the one of ``pid``):
    unique across the machines that share a database."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def account_for_dead(study: Any, worker: str, storage: Any) -> list[int]:
    """Mark the RUNNING trials of a dead ``worker`` failed and queue one retry of each
    (never a retry of a retry). ``storage`` is the one the study was opened on. Returns the
    trial numbers accounted for."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") != worker:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "failed_because", f"worker {worker} died")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if "retry_of" not in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        done.append(t.number)
    return done
