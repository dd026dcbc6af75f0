"""Matplotlib figures without pyplot: no global backend state, no GUI, safe in a notebook."""

from __future__ import annotations

from pathlib import Path

from tinycifar.errors import TinyCifarError


def new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A bare ``Figure`` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: Path) -> Path:
    try:
        fig.savefig(path)
    except OSError as e:
        raise TinyCifarError(f"cannot write {path} ({e.strerror or e}): choose another folder with --out") from None
    return path
