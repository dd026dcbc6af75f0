"""Matplotlib figures without pyplot: no global backend state, no GUI, safe in a notebook."""

from __future__ import annotations

from pathlib import Path

from tinycifar.atomic import atomic_write


def new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A bare ``Figure`` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: Path) -> Path:
    """Save ``fig`` to ``path`` (its suffix names the format) atomically."""
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format=path.suffix.lstrip(".") or "png"))
    return path
