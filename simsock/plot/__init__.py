"""Figures for experiments: one readable style, headless, byte-for-byte reproducible PNGs.

Every experiment draws with these helpers so that figures look alike: 9 x 5 inches at 120
dpi, a light grid, a title, and axis labels that carry their units ("time (s)",
"queue (packets)"). The backend is Agg, so plotting works without a display (CI, ssh) and
in worker processes. :func:`save` drops the "Software" PNG metadata, which holds the
matplotlib version, so a figure's bytes depend only on what is drawn (and the installed
fonts and matplotlib's rasteriser).

The package is the only part of simsock that imports matplotlib. This module holds the
house style (``from simsock import plot``: :func:`figure`, :func:`step_plot`,
:func:`save`...); pictures of network monitor data are in :mod:`simsock.plot.net`, built on
:mod:`simsock.plot.netbase` (input conventions, flow colours) and
:mod:`simsock.plot.topology` (the topology drawings, re-exported by ``plot.net``).
Every picture is written through :func:`save`, so patching ``plot.save`` sees them all.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import Formatter, ScalarFormatter  # noqa: E402
import numpy as np  # noqa: E402

from simsock.claims import format_number  # noqa: E402

__all__ = ["figure", "save", "step_plot", "shade_intervals", "annotate_claim", "legend_below", "number", "finish"]

SIZE_IN = (9.0, 5.0)
DPI = 120
#: The group id (an Artist property, written only to SVG) that marks a note for :func:`finish`.
_NOTE_GID = "simsock-claim-note"


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
    finish(fig)
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
    """A boxed note stating what the figure shows; :func:`finish` moves it to the corner of
    the axes where it covers the least data."""
    note = ax.text(0.01, 0.98, text, transform=ax.transAxes, ha="left", va="top", fontsize=9,
                   bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fffbe6",
                         "edgecolor": "0.6", "alpha": 0.95})
    note.set_gid(_NOTE_GID)


def legend_below(ax: Axes, ncol: int = 2, fontsize: float = 8) -> None:
    """The legend under the axes, outside the data, in ``ncol`` columns."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol, fontsize=fontsize,
              frameon=False)


def number(value) -> str:
    """A number as figures write it: 12,500 with separators; 0.25 or 3.142 otherwise."""
    return format_number(value)


class _Thousands(Formatter):
    """Tick labels as the rest of a figure writes numbers: 12,000, never 1e4 or an offset."""

    def __init__(self, inner: ScalarFormatter):
        super().__init__()
        self.inner = inner

    def set_axis(self, axis):
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs):
        self.inner.set_locs(locs)

    def __call__(self, x, pos=None):
        if abs(x) >= 1000 and float(x).is_integer():
            return f"{int(x):,}"
        return self.inner(x, pos)


def data_points(ax: Axes):
    """Display coordinates of what ``ax`` plots: line vertices and points along each
    segment, scatter offsets, bar tops and centres (reference lines spanning the axes left
    out). Used to keep notes and legends off the data."""
    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) == 0:
            continue
        if len(xy) == 2 and (np.allclose(xy[:, 0], xy[0, 0]) or np.allclose(xy[:, 1], xy[0, 1])) and \
                line.get_transform() is not ax.transData:
            continue                                  # axhline/axvline: a reference, not data
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) > 1:
            t = np.linspace(0, 1, 8)[:, None, None]
            xy = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2)
        pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets())
        if len(offsets):
            pts.append(coll.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        box = patch.get_window_extent()
        if box.width * box.height > 0 and box.width < ax.get_window_extent().width * 0.9:
            pts.append(np.array([[box.x0, box.y1], [box.x1, box.y1], [(box.x0 + box.x1) / 2, box.y1],
                                 [(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2]]))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def covered(box, points, margin: float = 2.0) -> int:
    """How many of ``points`` lie inside the display-space ``box`` (shrunk by ``margin``)."""
    if len(points) == 0:
        return 0
    inside = ((points[:, 0] > box.x0 + margin) & (points[:, 0] < box.x1 - margin)
              & (points[:, 1] > box.y0 + margin) & (points[:, 1] < box.y1 - margin))
    return int(inside.sum())


_CORNERS = ((0.01, 0.98, "left", "top"), (0.99, 0.98, "right", "top"),
            (0.01, 0.02, "left", "bottom"), (0.99, 0.02, "right", "bottom"),
            (0.5, 0.98, "center", "top"), (0.5, 0.02, "center", "bottom"))


def _fit_width(note, ax: Axes, renderer) -> None:
    """Rewrap a note that is wider than its axes."""
    limit = ax.get_window_extent(renderer).width * 0.96
    width = note.get_window_extent(renderer).width
    if width <= limit:
        return
    text = note.get_text()
    longest = max(len(line) for line in text.splitlines())
    chars = max(30, int(longest * limit / width))
    note.set_text("\n".join(wrapped for line in text.splitlines()
                            for wrapped in (textwrap.wrap(line, chars) or [""])))


def _place_notes(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        notes = [t for t in ax.texts if t.get_gid() == _NOTE_GID]
        if not notes:
            continue
        points = data_points(ax)
        legend = ax.get_legend()
        for note in notes:
            _fit_width(note, ax, renderer)
            for _attempt in range(4):
                best = None
                for x, y, ha, va in _CORNERS:
                    note.set_position((x, y))
                    note.set_ha(ha)
                    note.set_va(va)
                    box = note.get_window_extent(renderer)
                    cost = covered(box, points)
                    if legend is not None and box.overlaps(legend.get_window_extent(renderer)):
                        cost += 10_000
                    if best is None or cost < best[0]:
                        best = (cost, x, y, ha, va)
                _, x, y, ha, va = best
                note.set_position((x, y))
                note.set_ha(ha)
                note.set_va(va)
                if best[0] == 0 or ax.get_yscale() not in ("linear", "log"):
                    break
                # no free corner: make room above the data for the note, and try again
                height = note.get_window_extent(renderer).height / max(1.0, ax.get_window_extent().height)
                grow = 1.0 / max(0.2, 1.0 - height - 0.04)
                bottom, top = ax.get_ylim()
                if ax.get_yscale() == "log":
                    ax.set_ylim(bottom, bottom * (top / bottom) ** grow)
                else:
                    ax.set_ylim(bottom, bottom + (top - bottom) * grow)
                fig.canvas.draw()
                points = data_points(ax)


def _wrap_titles(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    texts = [ax.title for ax in fig.axes]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    for title in texts:
        text = title.get_text()
        if not text or "\n" in text:
            continue
        limit = width * 0.95 if title is getattr(fig, "_suptitle", None) else \
            max(200.0, title.axes.get_window_extent(renderer).width * 0.98 if hasattr(title, "axes")
                and title.axes is not None else width)
        extent = title.get_window_extent(renderer).width
        if extent > limit:
            chars = max(20, int(len(text) * limit / extent))
            title.set_text("\n".join(textwrap.wrap(text, chars)))


def finish(fig: Figure) -> None:
    """What :func:`save` does before writing: a legend where artists have labels and there is
    none (placed where it covers the least data), plain tick labels with thousands
    separators on linear axes (no offset such as "+3.2e3", no scientific notation), titles
    wrapped to the figure, and notes moved to the corner where they cover the least data."""
    for ax in fig.axes:
        handles, _ = ax.get_legend_handles_labels()
        if handles and ax.get_legend() is None:
            ax.legend(loc="best", fontsize=9)
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            formatter = axis.get_major_formatter()
            if scale == "linear" and type(formatter) is ScalarFormatter:
                formatter.set_useOffset(False)
                formatter.set_scientific(False)
                axis.set_major_formatter(_Thousands(formatter))
    fig.canvas.draw()
    _wrap_titles(fig)
    _place_notes(fig)
