"""``tinycifar models``."""

from __future__ import annotations

import argparse

from tinycifar.commands.flags import add_budget_flag
from tinycifar.models import DEFAULT_BUDGET
from tinycifar.zoo import format_zoo, zoo_rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_budget_flag(parser)


def run(args: argparse.Namespace) -> int:
    budget = getattr(args, "budget", DEFAULT_BUDGET)
    print(format_zoo(zoo_rows(budget), budget))
    return 0
