"""Figures for experiments: one readable style, headless, byte-for-byte reproducible PNGs.

Every experiment draws with these helpers so that figures look alike: 9 x 5 inches at 120
dpi, a light grid, a title, and axis labels that carry their units ("time (s)",
"queue (packets)"). The backend is Agg, so plotting works without a display (CI, ssh) and
in worker processes. :func:`save` drops the "Software" PNG metadata, which holds the
matplotlib version, so a figure's bytes depend only on what is drawn (and the installed
fonts and matplotlib's rasteriser).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["figure", "save", "step_plot", "shade_intervals", "annotate_claim"]

SIZE_IN = (9.0, 5.0)
DPI = 120


def figure(
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    size: tuple[float, float] = SIZE_IN,
    dpi: int = DPI,
) -> tuple[Figure, Axes]:
    """A new figure with one set of axes, titled and labelled (put units in the labels)."""
    fig, ax = plt.subplots(figsize=size, dpi=dpi, layout="constrained")
    ax.set_title(title, fontsize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created), close it, return the path.

    A legend is added when some artist has a label and there is none yet.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        handles, _ = ax.get_legend_handles_labels()
        if handles and ax.get_legend() is None:
            ax.legend(loc="best", fontsize=9)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def step_plot(ax: Axes, times_s: Sequence[float], values: Sequence[float], label: str,
              **style) -> None:
    """A quantity that holds its value until the next sample (queue length, window, buffer)."""
    ax.step(times_s, values, where="post", label=label, linewidth=1.2, **style)


def shade_intervals(ax: Axes, intervals: Iterable[tuple[float, float]], label: str,
                    color: str = "tab:red", alpha: float = 0.15) -> None:
    """Shade ``(start_s, end_s)`` spans, e.g. when a sender was blocked; one legend entry."""
    for index, (start, end) in enumerate(intervals):
        ax.axvspan(start, end, color=color, alpha=alpha, linewidth=0,
                   label=label if index == 0 else None)


def annotate_claim(ax: Axes, text: str) -> None:
    """A boxed note in the upper left corner stating the claim the figure shows."""
    ax.text(0.01, 0.98, text, transform=ax.transAxes, ha="left", va="top", fontsize=9,
            wrap=True, bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fffbe6",
                             "edgecolor": "0.6", "alpha": 0.95})
