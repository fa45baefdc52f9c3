"""Pictures of a network under load: where the congestion is, and who suffers from it.

Five pictures, each drawn from monitor data (never from a running Simulation), each
returning the path of the file it wrote. This module holds the time series; the topology
drawings live in :mod:`simsock.plot.topology` and are re-exported here, so
``plot.net.topology`` and ``plot.topology.topology`` are the same function:

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
experiment's ``plot`` only sees the saved result): a value that holds until it changes as a
:class:`~simsock.timeseries.StepSeries` or a pair ``(times_ns, values)``, an amount per
time bin as a :class:`~simsock.timeseries.BinnedCounter` or ``{"bin_ns": int, "values":
[...]}`` (:mod:`simsock.plot.netbase`).

Times inside are integer nanoseconds; axes show seconds. Colour scales are fixed (0-100 %
utilisation, 0 to ``drop_vmax`` drop rate) so that two pictures of one run, or the frames
of a GIF, can be compared by eye. Layouts are deterministic (:func:`layout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from simsock import plot
from simsock.plot.netbase import (Binned, Marks, Step, bin_edges_s, binned_all, draw_marks, flow_colors,
                                  headroom, post_step, steps)
from simsock.plot.topology import (ARC_RAD, DROP_CMAP, HOST_COLOR, UTIL_CMAP, layout, topology,
                                   topology_animation)
from simsock.units import NS_PER_S

__all__ = [
    "layout",
    "flow_colors",
    "queue_occupancy",
    "flow_throughput",
    "drops_over_time",
    "topology",
    "topology_animation",
    "UTIL_CMAP",
    "DROP_CMAP",
    "HOST_COLOR",
    "ARC_RAD",
]

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
    fig, axes = plt.subplots(panels, 1, figsize=(9.0, 5.0 if panels == 1 else 7.0), dpi=plot.DPI,
                             layout="constrained", sharex=True, squeeze=False)
    ax = axes[0][0]
    ax.set_title(title, fontsize=12)
    ax.set_ylabel("queue (packets)")
    end = 0.0
    for label, series in queues.items():
        times, values = steps(series, f"queue {label!r}")
        if until_s is not None and times:
            times, values = times + [until_s], values + values[-1:]
        end = max(end, times[-1] if times else 0.0)
        plot.step_plot(ax, times, values, label, color=colors.get(label))
    if limit is not None:
        ax.axhline(limit, color="0.3", linestyle=":", linewidth=1.2, label=f"queue limit ({limit} packets)")
    draw_marks(ax, marks)
    ax.set_ylim(bottom=0)
    if delay:
        dax = axes[1][0]
        dax.set_ylabel("queueing delay (ms)")
        for label, (series, rate_bps) in delay.items():
            if not rate_bps or rate_bps <= 0:
                raise ValueError(f"queue_occupancy: delay {label!r} needs a positive link rate in bit/s, "
                                 f"got {rate_bps!r}")
            times, values = steps(series, f"queue bytes {label!r}")
            if until_s is not None and times:
                times, values = times + [until_s], values + values[-1:]
            ms = [v * 8 / rate_bps * 1000 for v in values]
            plot.step_plot(dax, times, ms, label, color=colors.get(label))
        draw_marks(dax, marks)
        dax.set_ylim(bottom=0)
    for row in axes:
        row[0].grid(True, alpha=0.3, linewidth=0.6)
    axes[-1][0].set_xlabel("time (s)")
    axes[-1][0].set_xlim(0, until_s if until_s is not None else (end or 1.0))
    if note:
        headroom(ax)
        plot.annotate_claim(ax, note)
    return plot.save(fig, path)


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
        ax.stackplot(edges, *[post_step(mbps[label]) for label in labels], step="post",
                     labels=labels, colors=[colors.get(label) for label in labels], alpha=0.85)
    else:
        for label in labels:
            plot.step_plot(ax, edges, post_step(mbps[label]), label, color=colors.get(label))
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
    ax.stackplot(edges, *[post_step([v * per_s for v in data[label]]) for label in labels], step="post",
                 labels=shown, colors=[colors.get(label) for label in labels], alpha=0.85)
    return _finish_binned(fig, ax, path, edges, marks, note)


def _binned_figure(series: Mapping[str, Binned], what: str, colors, title: str, ylabel: str):
    """The start of a per-bin chart over time: ``(bin_ns, data, edges, colors, fig, ax)``
    for ``series`` put on one bin width (:func:`binned_all`)."""
    bin_ns, data = binned_all(series, what)
    edges = bin_edges_s(bin_ns, len(next(iter(data.values()))))
    colors = dict(colors or flow_colors(list(data)))
    fig, ax = plot.figure(title, "time (s)", ylabel)
    return bin_ns, data, edges, colors, fig, ax


def _finish_binned(fig, ax: Axes, path: str | Path, edges: list[float], marks: Marks, note: str | None) -> Path:
    """The end of a per-bin chart: marks, axes from 0, the legend outside on the right,
    the note, saved to ``path``."""
    draw_marks(ax, marks)
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    if note:
        headroom(ax)
        plot.annotate_claim(ax, note)
    return plot.save(fig, path)


def _count(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"
