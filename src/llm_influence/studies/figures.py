"""Figure helpers: local styling, byte-stable atomic PNG saving.

Figure functions of the studies build ``matplotlib.figure.Figure`` objects directly (no pyplot
global state, no ``show``), style inside :func:`styled`, and return the Figure; the stage saves it
with :func:`save_figure`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llm_influence.utils.io import atomic_path

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not when a study module is imported
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 120
_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "svg.hashsalt": "llm-influence",
}


def _matplotlib():
    """matplotlib with the non-interactive Agg backend (selected before anything draws)."""
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Seaborn whitegrid style applied locally (restored on exit)."""
    mpl = _matplotlib()
    import seaborn as sns

    with mpl.rc_context(_RC), sns.axes_style("whitegrid"):
        yield


def new_figure(
    ax: Axes | None = None, figsize: tuple[float, float] = (6.0, 4.0)
) -> tuple[Figure, Axes]:
    """The given axes and its figure, or a new Figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    _matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def signed_heatmap(
    ax: Axes, wide: pd.DataFrame, limit: float, colorbar: str, title: str, xlabel: str, ylabel: str
) -> None:
    """Heatmap of signed values on a diverging scale (blue < 0 < red, white at 0, ±``limit``)."""
    import seaborn as sns

    sns.heatmap(wide, ax=ax, cmap="RdBu_r", center=0.0, vmin=-limit, vmax=limit,
                cbar_kws={"label": colorbar})  # fmt: skip
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = DPI) -> None:
    """Save atomically; PNG without a timestamp (PDF/SVG with dates removed) -> stable bytes."""
    path = os.fspath(path)
    fmt = path.rsplit(".", 1)[-1].lower()
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None},
                "svg": {"Date": None}}.get(fmt, {})  # fmt: skip
    mpl = _matplotlib()
    with mpl.rc_context({"svg.hashsalt": "llm-influence"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)


def placeholder_figure(title: str, message: str) -> Figure:
    """A figure that says why a study has nothing to show (keeps report() targets present)."""
    with styled():
        fig, ax = new_figure(None, (6.0, 2.0))
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)
    return fig
