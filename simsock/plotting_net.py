"""Pictures of a network under load: where the congestion is, and who suffers from it.

Five pictures, each drawn from monitor data (never from a running Simulation), each
returning the path of the file it wrote. This module holds the time series and what all
pictures share (input normalisation, flow colours); the topology drawings live in
:mod:`simsock.plotting_topology` and are re-exported here, so ``plotting_net.topology``
and ``plotting_net.topology_animation`` are the same functions:

- :func:`queue_occupancy` — packets waiting in chosen queues over time, optionally with a
  second panel of the queueing delay a newly arriving packet would see (backlog / rate);
- :func:`flow_throughput` — delivered throughput of each flow (Mbit/s over time), as lines
  or stacked, with the bottleneck's capacity drawn in;
- :func:`drops_over_time` — drops per second, stacked per flow or per reason, each legend
  entry carrying its total;
- :func:`topology` — the network drawn with networkx: each link direction an arrow coloured
  (and thickened) by its utilisation, routers coloured by the fraction of arriving packets
  they drop, every node labelled;
- :func:`topology_animation` — the same picture over time as an animated GIF
  (matplotlib's ``PillowWriter``), with a clock in the title and, below it, the flows'
  throughput with a cursor on the current time.

Data may come straight from a monitor or as plain lists read back from ``result.json`` (an
experiment's ``plot`` only sees the saved result):

- a value that holds until it changes (queue occupancy): a
  :class:`~simsock.timeseries.StepSeries`, or a pair ``(times_ns, values)``;
- an amount per time bin (bytes delivered, packets dropped): a
  :class:`~simsock.timeseries.BinnedCounter`, or ``{"bin_ns": int, "values": [...]}``.

Times inside are integer nanoseconds; axes show seconds. Colour scales are fixed (0-100 %
utilisation, 0 to ``drop_vmax`` drop rate) so that two pictures of one run, or the frames
of a GIF, can be compared by eye. Layouts are deterministic (:func:`layout`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib import colormaps  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from simsock import plotting  # noqa: E402
from simsock.timeseries import BinnedCounter, StepSeries  # noqa: E402
from simsock.units import NS_PER_S  # noqa: E402

__all__ = [
    "layout",
    "flow_colors",
    "queue_occupancy",
    "flow_throughput",
    "drops_over_time",
    "topology",
    "topology_animation",
]

Step = StepSeries | tuple[Sequence[int], Sequence[float]] | list
Binned = BinnedCounter | Mapping[str, Any]
Marks = Sequence[tuple[float, str]]


# ---------------------------------------------------------------------------------------------
# Input normalisation


def _steps(series: Step, what: str) -> tuple[list[float], list[float]]:
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


def _binned(series: Binned, what: str) -> tuple[int, list[float]]:
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


def _binned_all(series: Mapping[str, Binned], what: str) -> tuple[int, dict[str, list[float]]]:
    """All series on one bin width, padded with empty bins to the same length."""
    if not series:
        raise ValueError(f"{what}: nothing to draw (an empty mapping)")
    widths = set()
    out: dict[str, list[float]] = {}
    for label, s in series.items():
        bin_ns, values = _binned(s, f"{what} {label!r}")
        widths.add(bin_ns)
        out[label] = values
    if len(widths) != 1:
        raise ValueError(f"{what}: all series must use one bin width, got {sorted(widths)} ns")
    n = max(len(v) for v in out.values())
    for values in out.values():
        values.extend([0] * (n - len(values)))
    return widths.pop(), out


def _bin_edges_s(bin_ns: int, n: int) -> list[float]:
    """n + 1 bin edges in seconds (the last one closes the last bin)."""
    return [i * bin_ns / NS_PER_S for i in range(n + 1)]


def _post_step(values: Sequence[float]) -> list[float]:
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


def _marks(ax: Axes, marks: Marks) -> None:
    for t, text in marks:
        ax.axvline(t, color="black", linestyle="--", linewidth=1.0, label=text)


# ---------------------------------------------------------------------------------------------
# Time series


def queue_occupancy(
    path: str | Path,
    queues: Mapping[str, Step],
    *,
    title: str = "Queue occupancy",
    limit: int | None = None,
    delay: Mapping[str, tuple[Step, float]] | None = None,
    marks: Marks = (),
    until_s: float | None = None,
    colors: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> Path:
    """Packets queued over time, one line per queue (``label -> series of packets``).

    ``limit`` draws the queue's capacity (packets). ``delay`` (``label -> (series of queued
    bytes, link rate in bit/s)``) adds a lower panel with the queueing delay a packet arriving
    at that moment would wait before its transmission starts: backlog bytes x 8 / rate, in ms
    (exact for a FIFO; for an AQM it is what the backlog costs, whichever packet is sent).
    ``marks`` are ``(time_s, text)`` events drawn as dashed vertical lines; ``note`` is a
    boxed text in the upper left corner (the claim the figure shows, with its numbers).
    """
    if not queues:
        raise ValueError("queue_occupancy: give at least one queue (label -> StepSeries)")
    colors = dict(colors or flow_colors(list(queues)))
    panels = 2 if delay else 1
    fig, axes = plt.subplots(panels, 1, figsize=(9.0, 5.0 if panels == 1 else 7.0), dpi=plotting.DPI,
                             layout="constrained", sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.set_title(title, fontsize=12)
    ax.set_ylabel("queue (packets)")
    end = 0.0
    for label, series in queues.items():
        times, values = _steps(series, f"queue {label!r}")
        if until_s is not None and times:
            times, values = times + [until_s], values + values[-1:]
        end = max(end, times[-1] if times else 0.0)
        plotting.step_plot(ax, times, values, label, color=colors.get(label))
    if limit is not None:
        ax.axhline(limit, color="0.3", linestyle=":", linewidth=1.2, label=f"queue limit ({limit} packets)")
    _marks(ax, marks)
    ax.set_ylim(bottom=0)
    if delay:
        dax = axes[1][0]
        dax.set_ylabel("queueing delay (ms)")
        for label, (series, rate_bps) in delay.items():
            if not rate_bps or rate_bps <= 0:
                raise ValueError(f"queue_occupancy: delay {label!r} needs a positive link rate in bit/s, "
                                 f"got {rate_bps!r}")
            times, values = _steps(series, f"queue bytes {label!r}")
            if until_s is not None and times:
                times, values = times + [until_s], values + values[-1:]
            ms = [v * 8 / rate_bps * 1000 for v in values]
            plotting.step_plot(dax, times, ms, label, color=colors.get(label))
        _marks(dax, marks)
        dax.set_ylim(bottom=0)
    for row in axes:
        row[0].grid(True, alpha=0.3, linewidth=0.6)
    axes[-1][0].set_xlabel("time (s)")
    axes[-1][0].set_xlim(0, until_s if until_s is not None else (end or 1.0))
    if note:
        _headroom(ax)
        plotting.annotate_claim(ax, note)
    return plotting.save(fig, path)


def flow_throughput(
    path: str | Path,
    flows: Mapping[str, Binned],
    *,
    title: str = "Throughput per flow",
    capacity_bps: float | None = None,
    capacity_label: str = "bottleneck capacity",
    stacked: bool = False,
    marks: Marks = (),
    colors: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> Path:
    """Delivered throughput per flow in Mbit/s over time (``label -> bytes per bin``).

    Lines by default; ``stacked=True`` stacks the flows so the top edge is their total and
    each band's height is one flow's share. Name flows in human terms ("TCP 1", "UDP flood").
    """
    bin_ns, data, edges, colors, fig, ax = _binned_figure(flows, "flow_throughput", colors, title,
                                                          "throughput (Mbit/s)")
    scale = 8 * NS_PER_S / bin_ns / 1e6        # bytes per bin -> Mbit/s
    labels = list(data)
    mbps = {label: [v * scale for v in data[label]] for label in labels}
    if stacked:
        ax.stackplot(edges, *[_post_step(mbps[label]) for label in labels], step="post",
                     labels=labels, colors=[colors.get(label) for label in labels], alpha=0.85)
    else:
        for label in labels:
            plotting.step_plot(ax, edges, _post_step(mbps[label]), label, color=colors.get(label))
    if capacity_bps:
        ax.axhline(capacity_bps / 1e6, color="0.2", linestyle=":", linewidth=1.2,
                   label=f"{capacity_label} ({capacity_bps / 1e6:g} Mbit/s)")
    return _finish_binned(fig, ax, path, edges, marks, note)


def drops_over_time(
    path: str | Path,
    drops: Mapping[str, Binned],
    *,
    title: str = "Drops over time",
    what: str = "packets",
    marks: Marks = (),
    colors: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> Path:
    """Drops per second, stacked per flow or per reason (``label -> drops per bin``).

    Each legend entry carries the series' total, so who loses most is read off the legend.
    ``what`` names the unit counted ("packets").
    """
    bin_ns, data, edges, colors, fig, ax = _binned_figure(drops, "drops_over_time", colors, title,
                                                          f"drops ({what}/s)")
    per_s = NS_PER_S / bin_ns
    labels = list(data)
    shown = [f"{label} ({_count(sum(data[label]))} {what} dropped)" for label in labels]
    ax.stackplot(edges, *[_post_step([v * per_s for v in data[label]]) for label in labels], step="post",
                 labels=shown, colors=[colors.get(label) for label in labels], alpha=0.85)
    return _finish_binned(fig, ax, path, edges, marks, note)


def _binned_figure(series: Mapping[str, Binned], what: str, colors, title: str, ylabel: str):
    """The start of a per-bin chart over time: ``(bin_ns, data, edges, colors, fig, ax)``
    for ``series`` put on one bin width (:func:`_binned_all`)."""
    bin_ns, data = _binned_all(series, what)
    edges = _bin_edges_s(bin_ns, len(next(iter(data.values()))))
    colors = dict(colors or flow_colors(list(data)))
    fig, ax = plotting.figure(title, "time (s)", ylabel)
    return bin_ns, data, edges, colors, fig, ax


def _finish_binned(fig, ax: Axes, path: str | Path, edges: list[float], marks: Marks, note: str | None) -> Path:
    """The end of a per-bin chart: marks, axes from 0, the legend outside on the right,
    the note, saved to ``path``."""
    _marks(ax, marks)
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    if note:
        _headroom(ax)
        plotting.annotate_claim(ax, note)
    return plotting.save(fig, path)


def _headroom(ax: Axes, factor: float = 1.35) -> None:
    """Raise the top of the y axis so a note in the upper left corner covers no data."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, bottom + (top - bottom) * factor)


def _count(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


# ---------------------------------------------------------------------------------------------
# Topology (simsock.plotting_topology, imported on first use: it builds on the helpers above)

_TOPOLOGY_NAMES = ("layout", "topology", "topology_animation", "UTIL_CMAP", "DROP_CMAP", "HOST_COLOR", "ARC_RAD")


def __getattr__(name: str):
    if name in _TOPOLOGY_NAMES:
        from simsock import plotting_topology
        return getattr(plotting_topology, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
