"""``tinycifar models``."""

from __future__ import annotations

import argparse

from tinycifar.commands.flags import whole_number
from tinycifar.models import DEFAULT_BUDGET
from tinycifar.zoo import format_zoo, zoo_rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget",
        type=whole_number(0),
        default=DEFAULT_BUDGET,
        metavar="N",
        help=f"parameter budget to compare against (default: {DEFAULT_BUDGET:,})",
    )


def run(args: argparse.Namespace) -> int:
    budget = getattr(args, "budget", DEFAULT_BUDGET)
    print(format_zoo(zoo_rows(budget), budget))
    return 0
