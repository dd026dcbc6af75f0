"""The layering that `lint-imports` enforces covers every library module.

The contract "the library never parses arguments nor imports a command" lists its
modules by name (import-linter has no "all but these"): a module added to the library and
forgotten there would escape it.
"""

import pkgutil
import tomllib
from pathlib import Path

import tinycifar

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LAYER = {"tinycifar.cli", "tinycifar.commands", "tinycifar.__main__"}


def test_the_library_contract_lists_every_library_module():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (library,) = [c for c in config if c["type"] == "forbidden"]
    top_level = {f"tinycifar.{m.name}" for m in pkgutil.iter_modules(tinycifar.__path__)}
    assert set(library["source_modules"]) == top_level - COMMAND_LAYER
    assert {"tinycifar.cli", "tinycifar.commands", "argparse"} <= set(library["forbidden_modules"])
