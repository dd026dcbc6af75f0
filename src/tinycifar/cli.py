"""The ``tinycifar`` command: one sub-command per module, each module owning its options.

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
    "models": ("tinycifar.zoo_cli", "list the registered models with their size"),
    "summary": ("tinycifar.summary", "print a model's layer table, parameters, MACs, receptive field"),
    "analyze": ("tinycifar.analyze", "CIFAR-10 data analysis: class counts, channel statistics, sample grid"),
    "train": ("tinycifar.train", "train a model"),
    "soft-labels": ("tinycifar.distill", "store trained models' class probabilities for every training "
                    "image: a teacher for train --teacher"),
    "repeat": ("tinycifar.repeat", "train several seeds as parallel workers; mean ± std of their accuracy"),
    "sweep": ("tinycifar.sweep", "search recipe fields on Optuna, scored on the validation split"),
    "evaluate": ("tinycifar.evaluate", "evaluate weights on the official test set"),
    "predict": ("tinycifar.predict", "classify image files"),
    "export": ("tinycifar.export", "write a model as an ONNX file (fp32, optionally int8) for ONNX Runtime"),
}


def whole_number(minimum: int = 0, maximum: int | None = None):
    """An argparse ``type`` for integers in ``[minimum, maximum]``; accepts ``100,000`` and ``100_000``."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def add_data_flag(parser: argparse.ArgumentParser, use: str = "") -> None:
    """``--data-dir``, the same in every command; ``use`` says what the command reads it for."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"folder holding cifar-10-batches-py/{use} (default: $TINYCIFAR_DATA, else the user cache dir)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (default: auto, a CUDA GPU when torch sees one)")


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
