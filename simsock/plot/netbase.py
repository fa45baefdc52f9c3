"""What the network pictures share: their input conventions, flow colours and event marks.

Data may come straight from a monitor or as plain lists read back from ``result.json`` (an
experiment's ``plot`` only sees the saved result):

- a value that holds until it changes (queue occupancy): a
  :class:`~simsock.timeseries.StepSeries`, or a pair ``(times_ns, values)``;
- an amount per time bin (bytes delivered, packets dropped): a
  :class:`~simsock.timeseries.BinnedCounter`, or ``{"bin_ns": int, "values": [...]}``.

:func:`steps` and :func:`binned_all` turn either form into seconds and plain lists, or
refuse it with a message naming the series. Used by :mod:`simsock.plot.net` (time series)
and :mod:`simsock.plot.topology` (the animation's throughput strip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes

from simsock.timeseries import BinnedCounter, StepSeries
from simsock.units import NS_PER_S

__all__ = ["Step", "Binned", "Marks", "steps", "binned", "binned_all", "bin_edges_s", "post_step",
           "flow_colors", "draw_marks", "headroom"]

Step = StepSeries | tuple[Sequence[int], Sequence[float]] | list
Binned = BinnedCounter | Mapping[str, Any]
Marks = Sequence[tuple[float, str]]



def steps(series: Step, what: str) -> tuple[list[float], list[float]]:
    """(times in s, values) of a step series given as a StepSeries or (times_ns, values)."""
    if isinstance(series, StepSeries):
        times, values = series.to_lists()
    elif isinstance(series, (tuple, list)) and len(series) == 2:
        times, values = list(series[0]), list(series[1])
    else:
        raise TypeError(f"{what}: expected a StepSeries or a pair (times_ns, values), "
                        f"got {type(series).__name__}")
    if len(times) != len(values):
        raise ValueError(f"{what}: {len(times)} times but {len(values)} values")
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"{what}: times must not decrease")
    return [t / NS_PER_S for t in times], values


def binned(series: Binned, what: str) -> tuple[int, list[float]]:
    """(bin width in ns, amounts) of a BinnedCounter or {"bin_ns": ..., "values": [...]}."""
    if isinstance(series, BinnedCounter):
        return series.bin_ns, series.bins.tolist()
    if isinstance(series, Mapping) and "bin_ns" in series and "values" in series:
        bin_ns = series["bin_ns"]
        if isinstance(bin_ns, bool) or not isinstance(bin_ns, int) or bin_ns <= 0:
            raise ValueError(f"{what}: bin_ns must be a positive int number of nanoseconds, got {bin_ns!r}")
        return bin_ns, list(series["values"])
    raise TypeError(f"{what}: expected a BinnedCounter or a dict {{'bin_ns': int, 'values': [...]}}, "
                    f"got {type(series).__name__}")


def binned_all(series: Mapping[str, Binned], what: str) -> tuple[int, dict[str, list[float]]]:
    """All series on one bin width, padded with empty bins to the same length."""
    if not series:
        raise ValueError(f"{what}: nothing to draw (an empty mapping)")
    widths = set()
    out: dict[str, list[float]] = {}
    for label, s in series.items():
        bin_ns, values = binned(s, f"{what} {label!r}")
        widths.add(bin_ns)
        out[label] = values
    if len(widths) != 1:
        raise ValueError(f"{what}: all series must use one bin width, got {sorted(widths)} ns")
    n = max(len(v) for v in out.values())
    for values in out.values():
        values.extend([0] * (n - len(values)))
    return widths.pop(), out


def bin_edges_s(bin_ns: int, n: int) -> list[float]:
    """n + 1 bin edges in seconds (the last one closes the last bin)."""
    return [i * bin_ns / NS_PER_S for i in range(n + 1)]


def post_step(values: Sequence[float]) -> list[float]:
    """Values for a ``where="post"`` step over n + 1 edges: the last value repeated."""
    values = list(values)
    return values + values[-1:] if values else values


def flow_colors(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per label, stable for a given order: the tab10 cycle, except that labels
    naming UDP get reds (the flood stands out) and the others skip red."""
    others = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 3]   # 3 is red
    reds = ["tab:red", "darkred", "salmon", "firebrick"]
    out: dict[str, Any] = {}
    i = j = 0
    for label in labels:
        if "udp" in label.lower():
            out[label] = reds[j % len(reds)]
            j += 1
        else:
            out[label] = others[i % len(others)]
            i += 1
    return out


def draw_marks(ax: Axes, marks: Marks) -> None:
    for t, text in marks:
        ax.axvline(t, color="black", linestyle="--", linewidth=1.0, label=text)


def headroom(ax: Axes, factor: float = 1.35) -> None:
    """Raise the top of the y axis so a note in the upper left corner covers no data."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, bottom + (top - bottom) * factor)
