"""Every flag that more than one command takes, defined once: ``--data-dir``, ``--device``,
``--precision``, ``--model``/``--weights``, the recipe fields, and whole-number types."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import fields
from pathlib import Path

from tinycifar.models import DEFAULT_BUDGET, DEFAULT_MODEL
from tinycifar.precision import PRECISIONS
from tinycifar.recipe import Recipe


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
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help=f"folder holding cifar-10-batches-py/{use} (default: $TINYCIFAR_DATA, else the user cache dir)",
    )


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run (default: auto, a CUDA GPU when torch sees one)",
    )


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    """``--precision``, the same for train, evaluate and predict."""
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="fp32; bf16 autocast (fast only where the CPU or GPU runs bf16 natively); "
        "auto: bf16 where it is native, else fp32 (default)",
    )


def add_budget_flag(parser: argparse.ArgumentParser) -> None:
    """``--budget``, the same for models and summary."""
    parser.add_argument(
        "--budget",
        type=whole_number(0),
        default=DEFAULT_BUDGET,
        metavar="N",
        help=f"parameter budget to compare against (default: {DEFAULT_BUDGET:,})",
    )


def add_weights_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--weights``, the same for evaluate, predict and export."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help=f"model name (default: the one the --weights file names, else {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="safetensors weights, e.g. a run's model.safetensors (default: the shipped pretrained weights)",
    )


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per recipe field; default None means 'keep the recipe's value'."""
    group = parser.add_argument_group("recipe overrides (default: the recipe's value)")
    for f in fields(Recipe):
        assert isinstance(f.type, str)  # recipe.py's `from __future__ import annotations`: the annotation's text
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"]
            )
        elif f.type == "str":
            group.add_argument(
                flag,
                dest=f.name,
                choices=f.metadata.get("choices"),
                default=None,
                metavar=None if "choices" in f.metadata else f.name.upper(),
                help=f.metadata["help"],
            )
        else:
            group.add_argument(
                flag,
                dest=f.name,
                type={"int": int, "float": float}[f.type],
                default=None,
                metavar=f.name.upper(),
                help=f.metadata["help"],
            )


def apply_overrides(recipe: Recipe, args: argparse.Namespace) -> Recipe:
    changes = {f.name: getattr(args, f.name) for f in fields(Recipe) if getattr(args, f.name, None) is not None}
    return dataclasses.replace(recipe, **changes)


def add_tflite_flags(parser: argparse.ArgumentParser) -> None:
    """``--tflite FILE`` and ``--runtime``, the same for evaluate and predict."""
    parser.add_argument(
        "--tflite",
        type=Path,
        default=None,
        metavar="FILE",
        help="run a .tflite file (any keeping tinycifar's TFLite contract, e.g. MLPerf Tiny's IC01 model) "
        "instead of PyTorch weights",
    )
    parser.add_argument(
        "--runtime",
        default="litert",
        choices=["litert", "tflm"],
        help="with --tflite: LiteRT (default), or TensorFlow Lite Micro, the kernels a microcontroller runs",
    )
