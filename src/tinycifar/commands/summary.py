"""``tinycifar summary``."""

from __future__ import annotations

import argparse

from tinycifar.commands.flags import add_budget_flag, whole_number
from tinycifar.summary import DEFAULT_INPUT_SIZE, format_summary, summarize


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from tinycifar.models import DEFAULT_MODEL

    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"registered model name (default: {DEFAULT_MODEL}; see `tinycifar models`)",
    )
    add_budget_flag(parser)
    parser.add_argument(
        "--input-size",
        type=whole_number(1),
        nargs=3,
        default=list(DEFAULT_INPUT_SIZE),
        metavar=("C", "H", "W"),
        help="input image size (default: 3 32 32)",
    )


def run(args: argparse.Namespace) -> int:
    from tinycifar.models import create_model

    model = create_model(args.model)
    print(format_summary(summarize(model, input_size=args.input_size, budget=args.budget, mcu=True)))
    return 0
