"""The look shared by every figure: rc style, axis labels (with units), colours, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from ..atomic import atomic_write

__all__ = ["STYLE", "LABEL_TIME", "LABEL_V", "LABEL_I", "LABEL_DVDT", "GATE_LABELS", "trace_colors",
           "new_axes", "save_figure"]

#: Matplotlib rc settings every figure is drawn and saved with.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.0,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}

LABEL_TIME = "time (ms)"
LABEL_V = "V (mV)"
LABEL_I = "I$_{\\mathrm{inj}}$ (µA/cm²)"
LABEL_DVDT = "dV/dt (mV/ms)"
GATE_LABELS = {"m": "m (Na act.)", "h": "h (Na inact.)", "n": "n (K act.)"}


def trace_colors(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10, else evenly along viridis."""
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    if n <= 10:
        return [cmap(k) for k in range(n)]
    return [cmap(k / max(n - 1, 1)) for k in range(n)]


def new_axes(ax, figsize=(6.0, 3.0)):
    """``(figure, axes)``: those of ``ax``, or a new figure of ``figsize`` (inches)."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path, dpi: int | None = None) -> Path:
    """Save ``fig`` (PNG, PDF, SVG... by the suffix; PNG without one) atomically
    (:func:`hybridhh.atomic.atomic_write`), creating the parent directory."""
    path = Path(path)
    with matplotlib.rc_context(STYLE):
        fmt = path.suffix[1:].lower() or matplotlib.rcParams["savefig.format"]
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))
    return path

