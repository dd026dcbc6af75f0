"""A run's records in fixed keys: each epoch's log row and the final metrics.

A row holds ``epoch, train_loss, train_acc, eval_loss, eval_acc, lr, seconds``; the
metrics hold ``eval_acc`` and ``eval_loss`` with ``eval_on`` (``test`` or ``val``) saying
what they were scored on. Run folders written before these keys spelled the scored set into
them (``test_acc``, ``final_val_acc``); :func:`row` and :func:`metrics` read those the same.
"""

from __future__ import annotations

from typing import Any

ROW_KEYS = ("epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds")


def row(values: dict[str, Any]) -> dict[str, Any]:
    """A log row in this version's keys, from a row of any version."""
    out = dict(values)
    for split in ("test", "val"):
        for what in ("loss", "acc"):
            if f"{split}_{what}" in out:
                out[f"eval_{what}"] = out.pop(f"{split}_{what}")
    return out


def metrics(values: dict[str, Any]) -> dict[str, Any]:
    """Final metrics in this version's keys, from metrics of any version."""
    out = dict(values)
    for split in ("test", "val"):
        if f"final_{split}_acc" in out:
            out["eval_acc"] = out.pop(f"final_{split}_acc")
            out["eval_loss"] = out.pop(f"final_{split}_loss", None)
            out.setdefault("eval_on", split)
    return out
