"""What the training loop calls around its epochs: small objects, one job each.

The loop (:func:`tinycifar.train.fit`) knows nothing of consoles, files or pruners: it calls
``on_start`` once the run is built (or resumed), ``on_epoch_start`` and ``on_step`` around
the steps, ``on_epoch_end`` with each epoch's log row, and ``on_end`` with the final
metrics. A new option is one more such object, never a branch inside the loop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch.nn as nn
from tqdm import tqdm

from tinycifar.atomic import write_json, write_text
from tinycifar.checkpoint import save_checkpoint, save_weights
from tinycifar.figures import new_figure, save_figure
from tinycifar.runconfig import RunConfig


class Run(Protocol):
    """What a callback sees of a run in progress (:class:`tinycifar.train.Run`)."""

    config: RunConfig
    out: Path
    history: list[dict[str, Any]]
    notes: list[str]
    resumed: bool
    steps_per_epoch: int

    def checkpoint(self) -> dict[str, Any]: ...

    def final_model(self) -> nn.Module: ...

    def environment(self) -> dict[str, Any]: ...


class Callback:
    """Does nothing: subclasses override what they need."""

    def on_start(self, run: Run) -> None:
        pass

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        pass

    def on_step(self, run: Run) -> None:
        pass

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        pass

    def on_end(self, run: Run, metrics: dict[str, Any]) -> None:
        pass


class Checkpoints(Callback):
    """A checkpoint after every epoch (``last.pt``, the one before kept as ``previous.pt``)."""

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        save_checkpoint(run.checkpoint(), run.out)


class RunFolder(Callback):
    """The run folder's records: config, machine, the per-epoch log, and at the end the
    weights, metrics and curves."""

    def on_start(self, run: Run) -> None:
        self.written = run.config
        if not run.resumed:
            write_json(run.out / "config.json", run.config.to_dict())
            write_json(run.out / "environment.json", run.environment())
        # A resumed run's log may hold an epoch its checkpoint does not (killed in between,
        # or resumed from previous.pt): the checkpoint's history is the truth.
        write_log(run.out, run.history)

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        if run.config != self.written:  # a time budget shortened the plan
            write_json(run.out / "config.json", run.config.to_dict())
            self.written = run.config
        write_log(run.out, run.history)

    def on_end(self, run: Run, metrics: dict[str, Any]) -> None:
        config = run.config
        # held_out: a teacher made of these weights must not judge a student on images they saw.
        save_weights(
            run.final_model(),
            run.out / "model.safetensors",
            {
                "model": config.model,
                "seed": str(config.seed),
                "epochs": str(config.recipe.epochs),
                "held_out": str(config.eval_images if config.eval_on == "val" else 0),
                # evaluate, predict, export and soft-labels rebuild the network from these
                **({"model_args": json.dumps(config.model_args)} if config.model_args else {}),
            },
        )
        write_json(run.out / "metrics.json", metrics)
        plot_history(run.history, config.eval_on, run.out / "curves.png")


class ConsoleLog(Callback):
    """One line an epoch, a progress bar within it (``progress``), through ``say``."""

    def __init__(self, say: Callable[[str], None] = print, progress: bool = True) -> None:
        self.say, self.progress = say, progress
        self.bar: tqdm | None = None
        self.said = 0

    def on_start(self, run: Run) -> None:
        for note in run.notes:
            self.say(note)
        self.said = len(run.notes)
        self.say(
            f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {run.config.eval_on + '_loss':>10} "
            f"{run.config.eval_on + '_acc':>9} {'lr':>8} {'seconds':>7}"
        )
        for row in run.history:
            self.say(format_row(row))

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        if self.progress:
            self.bar = tqdm(
                total=run.steps_per_epoch,
                desc=f"epoch {epoch + 1}/{run.config.recipe.epochs}",
                leave=False,
                file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 30,
            )

    def on_step(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.say(format_row(row))
        for note in run.notes[self.said :]:  # what the run learnt during the epoch (a shorter plan)
            self.say(note)
        self.said = len(run.notes)


def format_row(row: dict[str, Any]) -> str:
    loss, acc = row["eval_loss"], row["eval_acc"]
    evaluated = f"{loss:>10.4f} {acc:>9.2%}" if acc is not None else f"{'-':>10} {'-':>9}"
    return (
        f"{row['epoch']:>5} {row['train_loss']:>10.4f} {row['train_acc']:>9.2%} "
        f"{evaluated} {row['lr']:>8.4f} {row['seconds']:>7.1f}"
    )


def write_log(out: Path, history: list[dict[str, Any]]) -> None:
    # Rewritten whole (a few KB) rather than appended: a crash leaves the last whole log,
    # and a symlink planted as log.jsonl is replaced, not written through.
    write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def plot_history(history: list[dict[str, Any]], eval_on: str, path: Path) -> None:
    fig = new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    for split, label, style in (("train", "train (label-smoothed)", "-"), ("eval", eval_on, "o--")):
        rows = [r for r in history if r[f"{split}_acc"] is not None]  # eval_every skips some
        ax1.plot([r["epoch"] for r in rows], [r[f"{split}_loss"] for r in rows], style, label=label)
        ax2.plot(
            [r["epoch"] for r in rows],
            [100 * r[f"{split}_acc"] for r in rows],
            style,
            label=eval_on if split == "eval" else "train",
        )
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
