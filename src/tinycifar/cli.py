"""The ``tinycifar`` command: one sub-command per module of :mod:`tinycifar.commands`.

A command module exposes ``configure_parser(parser)`` and ``run(args) -> int``; a
:class:`TinyCifarError` raised anywhere below becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tinycifar import __version__
from tinycifar.errors import TinyCifarError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("tinycifar.commands.models", "list the registered models with their size"),
    "summary": ("tinycifar.commands.summary", "print a model's layer table, parameters, MACs, receptive field"),
    "analyze": ("tinycifar.commands.analyze", "CIFAR-10 data analysis: class counts, channel statistics, sample grid"),
    "train": ("tinycifar.commands.train", "train a model"),
    "soft-labels": (
        "tinycifar.commands.soft_labels",
        "store trained models' class probabilities for every training image: a teacher for train --teacher",
    ),
    "repeat": ("tinycifar.commands.repeat", "train several seeds as parallel workers; mean ± std of their accuracy"),
    "sweep": ("tinycifar.commands.sweep", "search recipe fields on Optuna, scored on the validation split"),
    "evaluate": ("tinycifar.commands.evaluate", "evaluate weights on the official test set"),
    "predict": ("tinycifar.commands.predict", "classify image files"),
    "export": ("tinycifar.commands.export", "write a model as an ONNX file (fp32, optionally int8) for ONNX Runtime"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinycifar",
        description="Train and ship tiny (<100k parameter) CIFAR-10 classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"tinycifar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.configure_parser(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except TinyCifarError as e:
        print(f"tinycifar {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"tinycifar {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
