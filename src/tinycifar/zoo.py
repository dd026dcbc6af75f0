"""``tinycifar models``: list the model zoo with each network's size, cost and receptive field.

One row per registered model, in registry (README) order: parameters, MACs per 32x32
image, int8 flash and RAM on a microcontroller (:mod:`tinycifar.memory`), theoretical
receptive field (all from :func:`tinycifar.summary.summarize`), whether
it fits the parameter budget, a ``*`` on the default model, and its one-line description.
"""

from __future__ import annotations

from tinycifar.memory import ARENA_TOLERANCE, FLASH_TOLERANCE
from tinycifar.models import DEFAULT_BUDGET
from tinycifar.summary import summarize

HEADERS = ("model", "params", "MACs (M)", "flash KB", "RAM KB", "RF", "budget", "description")


def zoo_rows(budget: int = DEFAULT_BUDGET) -> list[dict]:
    """One dict per registered model: name, params, macs, rf, within_budget, default, description."""
    from tinycifar.models import (
        DEFAULT_MODEL,
        create_model,
        describe_model,
        list_models,
    )

    rows = []
    for name in list_models():
        s = summarize(create_model(name), budget=budget, mcu=True)
        rows.append(
            {
                "name": name,
                "params": s.total_params,
                "macs": s.macs,
                "flash_bytes": None if s.mcu is None else s.mcu.flash_bytes,
                "ram_bytes": None if s.mcu is None else s.mcu.ram_bytes,
                "rf": s.receptive_field,
                "within_budget": not s.over_budget,
                "default": name == DEFAULT_MODEL,
                "description": describe_model(name),
            }
        )
    return rows


def format_zoo(rows: list[dict], budget: int = DEFAULT_BUDGET) -> str:
    cells = [
        (
            r["name"] + (" *" if r["default"] else ""),
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:.2f}",
            "-" if r["flash_bytes"] is None else f"{r['flash_bytes'] / 1000:.1f}",
            "-" if r["ram_bytes"] is None else f"{r['ram_bytes'] / 1000:.1f}",
            "-" if r["rf"] is None else str(r["rf"]),
            "yes" if r["within_budget"] else "NO",
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS)]
    right = {1, 2, 3, 4, 5}  # numbers right-aligned

    def line(values) -> str:
        parts = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    out = [line(HEADERS), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    out.append("")
    out.append(
        f"* default model.  budget: {budget:,} parameters.  "
        "MACs per 3x32x32 image; RF: theoretical receptive field in pixels.\n"
        "flash, RAM: the model as an int8 .tflite on a microcontroller, estimated from its graph (the file's "
        f"bytes and TFLM's arena, within {FLASH_TOLERANCE:.0%} and {ARENA_TOLERANCE:.0%} of what "
        "`tinycifar export --out M.tflite --int8` measures on the zoo)."
    )
    return "\n".join(out)
