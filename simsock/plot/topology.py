"""Pictures of a network's topology under load: where the congestion is.

- :func:`topology` — the network drawn with networkx: each link direction an arrow coloured
  (and thickened) by its utilisation, routers coloured by the fraction of arriving packets
  they drop, every node labelled;
- :func:`topology_animation` — the same picture over time as an animated GIF
  (matplotlib's ``PillowWriter``), with a clock in the title and, below it, the flows'
  throughput with a cursor on the current time;
- :func:`layout` — the deterministic node positions both use.

The time series pictures (queues, throughput, drops) are in :mod:`simsock.plot.net`, which
re-exports these functions; the input conventions they share are in
:mod:`simsock.plot.netbase`. Colour
scales are fixed (0-100 % utilisation, 0 to ``drop_vmax`` drop rate) so that two pictures
of one run, or the frames of a GIF, can be compared by eye.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from PIL import Image  # Pillow, a dependency of matplotlib

from simsock import plot
from simsock.plot.netbase import Binned, Marks, bin_edges_s, binned_all, draw_marks, flow_colors, post_step
from simsock.units import NS_PER_S

__all__ = ["layout", "topology", "topology_animation"]

#: Link colour scale: utilisation 0 % (green) to 100 % (red).
UTIL_CMAP = "RdYlGn_r"
#: Router colour scale: drop rate 0 (white) to ``drop_vmax`` or more (dark purple).
DROP_CMAP = "Purples"
HOST_COLOR = "#d9d9d9"
ARC_RAD = 0.12           # curvature of the link arrows (the two directions bend apart)


def layout(graph: nx.Graph, seed: int = 1) -> dict[str, tuple[float, float]]:
    """Deterministic positions for ``graph`` (node attribute ``kind``: "host" or "router").

    When the routers form a chain (a dumbbell, a chain, a star) and every host hangs off one
    router: routers on a horizontal line in chain order, hosts of the first router in a column
    on the left, of the last router on the right, of middle routers above them; a lone router
    has its hosts split left and right. Otherwise a spring layout seeded with ``seed``.
    """
    if graph.number_of_nodes() == 0:
        raise ValueError("layout: the graph has no nodes")
    kinds = {n: graph.nodes[n].get("kind", "host") for n in graph.nodes}
    routers = [n for n in graph.nodes if kinds[n] == "router"]
    hosts = [n for n in graph.nodes if kinds[n] != "router"]
    chain = _router_chain(graph, routers)
    if chain is not None:
        owner: dict[str, str] = {}
        for h in hosts:
            peers = list(graph.neighbors(h))
            if len(peers) != 1 or kinds[peers[0]] != "router":
                chain = None
                break
            owner[h] = peers[0]
    if chain is None:
        pos = nx.spring_layout(graph, seed=seed)
        return {n: (float(x), float(y)) for n, (x, y) in pos.items()}
    gap = 2.0
    pos = {r: (gap * (i + 1), 0.0) for i, r in enumerate(chain)}
    left = [h for h in hosts if owner[h] == chain[0]]
    right = [h for h in hosts if owner[h] == chain[-1] and (len(chain) > 1 or h not in left)]
    if len(chain) == 1:             # a star: split the hosts in two columns
        half = (len(left) + 1) // 2
        left, right = left[:half], left[half:]
    for column, x in ((left, 0.0), (right, gap * (len(chain) + 1))):
        for i, h in enumerate(column):
            pos[h] = (x, _spread(i, len(column)))
    for r in chain[1:-1]:
        above = [h for h in hosts if owner[h] == r]
        x0 = pos[r][0]
        for i, h in enumerate(above):
            pos[h] = (x0 + 0.6 * (i - (len(above) - 1) / 2), 1.6 + 0.4 * (i % 2))
    return pos


def _spread(i: int, n: int) -> float:
    """Vertical position of the i-th of n hosts in a column, centred on 0, 1 apart
    (squeezed into +-2.5 when there are many)."""
    if n == 1:
        return 0.0
    step = min(1.0, 5.0 / (n - 1))
    return step * ((n - 1) / 2 - i)


def _router_chain(graph: nx.Graph, routers: list[str]) -> list[str] | None:
    """The routers in path order if they induce a simple path, else None."""
    if not routers:
        return None
    sub = graph.subgraph(routers)
    if len(routers) == 1:
        return list(routers)
    if not nx.is_connected(sub) or sub.number_of_edges() != len(routers) - 1:
        return None
    if any(d > 2 for _, d in sub.degree()):
        return None
    ends = sorted((n for n, d in sub.degree() if d == 1), key=routers.index)
    order = [ends[0]]
    while len(order) < len(routers):
        order.append(next(n for n in sub.neighbors(order[-1]) if n not in order))
    return order


def _check_graph(graph: nx.Graph) -> None:
    if not isinstance(graph, nx.Graph) or graph.is_directed():
        raise TypeError(f"expected an undirected networkx Graph of the topology (sim.graph), "
                        f"got {type(graph).__name__}")


def _draw_topology(
    ax: Axes,
    graph: nx.Graph,
    pos: Mapping[str, tuple[float, float]],
    utilisation: Mapping[str, float],
    drop_rate: Mapping[str, float],
    drop_vmax: float,
    label_min: float,
) -> None:
    """One frame: arrows per link direction, nodes, labels (no colorbars, no title)."""
    util_cmap, drop_cmap = colormaps[UTIL_CMAP], colormaps[DROP_CMAP]
    util_norm, drop_norm = Normalize(0.0, 1.0), Normalize(0.0, drop_vmax)
    kinds = {n: graph.nodes[n].get("kind", "host") for n in graph.nodes}
    routers = [n for n in graph.nodes if kinds[n] == "router"]
    hosts = [n for n in graph.nodes if kinds[n] != "router"]
    digraph = nx.DiGraph()
    digraph.add_nodes_from(graph.nodes)
    directed = []
    for u, v in graph.edges:
        directed.extend([(u, v), (v, u)])
    digraph.add_edges_from(directed)
    util = [min(1.0, max(0.0, float(utilisation.get(f"{u}->{v}", 0.0)))) for u, v in directed]
    # Hosts are drawn as labelled boxes (so long names fit); node_size only tells networkx
    # where to stop the arrows.
    node_size = {n: 1500 if kinds[n] == "router" else 800 for n in graph.nodes}
    sizes = [node_size[n] for n in digraph.nodes]
    nx.draw_networkx_edges(digraph, pos, ax=ax, edgelist=directed, edge_color=[util_cmap(util_norm(u)) for u in util],
                           width=[1.0 + 5.0 * u for u in util], arrows=True, arrowstyle="-|>", arrowsize=12,
                           connectionstyle=f"arc3,rad={ARC_RAD}", node_size=sizes, nodelist=list(digraph.nodes))
    nx.draw_networkx_nodes(graph, pos, ax=ax, nodelist=routers, node_shape="o",
                           node_color=[drop_cmap(drop_norm(min(drop_vmax, float(drop_rate.get(r, 0.0)))))
                                       for r in routers],
                           node_size=[node_size[n] for n in routers], edgecolors="black", linewidths=1.5)
    for n in hosts:
        ax.text(*pos[n], n, ha="center", va="center", fontsize=9, zorder=5,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": HOST_COLOR, "edgecolor": "0.3"})
    for n in routers:
        rate = float(drop_rate.get(n, 0.0))
        dark = drop_norm(min(drop_vmax, rate)) > 0.55
        ax.text(*pos[n], n, ha="center", va="center", fontsize=9, fontweight="bold", zorder=5,
                color="white" if dark else "black")
        ax.annotate(f"drops {rate:.0%}", pos[n], xytext=(0, -24), textcoords="offset points", ha="center",
                    va="top", fontsize=8, zorder=5,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    pad_x = 0.12 * ((max(xs) - min(xs)) or 1.0)
    pad_y = 0.15 * ((max(ys) - min(ys)) or 1.0)
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    # Percentages on the busy directions, on the middle of their arc. arc3 bends by ``rad``
    # in display space: the curve's midpoint is mid + rad/2 (dy, -dx) in pixels, converted
    # back to data units with the axes' current scale.
    box = ax.get_position()
    width_in, height_in = ax.figure.get_size_inches()
    sx = box.width * width_in / (ax.get_xlim()[1] - ax.get_xlim()[0])
    sy = box.height * height_in / (ax.get_ylim()[1] - ax.get_ylim()[0])
    for (u, v), value in zip(directed, util):
        if value < label_min:
            continue
        (x1, y1), (x2, y2) = pos[u], pos[v]
        dx, dy = x2 - x1, y2 - y1
        x = (x1 + x2) / 2 + ARC_RAD / 2 * dy * sy / sx
        y = (y1 + y2) / 2 - ARC_RAD / 2 * dx * sx / sy
        ax.text(x, y, f"{value:.0%}", ha="center", va="center", fontsize=8, zorder=6,
                color=util_cmap(util_norm(value)) if value < 0.5 else "black",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
    ax.axis("off")


def _colorbars(fig, ax: Axes, drop_vmax: float, caxes: tuple[Axes, Axes] | None = None) -> None:
    """The two colour scales: beside ``ax`` (vertical), or horizontal in ``caxes``."""
    util_label = "link utilisation (% of capacity, per direction)"
    drop_label = f"router drop rate (% of arriving packets{'; capped' if drop_vmax < 1 else ''})"
    util_sm = ScalarMappable(Normalize(0, 100), colormaps[UTIL_CMAP])
    drop_sm = ScalarMappable(Normalize(0, 100 * drop_vmax), colormaps[DROP_CMAP])
    if caxes is None:
        fig.colorbar(util_sm, ax=ax, fraction=0.035, pad=0.01).set_label(util_label)
        fig.colorbar(drop_sm, ax=ax, fraction=0.035, pad=0.02).set_label(drop_label)
        return
    for cax, sm, label in ((caxes[0], util_sm, util_label), (caxes[1], drop_sm, drop_label)):
        bar = fig.colorbar(sm, cax=cax, orientation="horizontal")
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)


def _legend_keys(ax: Axes) -> None:
    ax.legend(handles=[
        Line2D([], [], marker="s", linestyle="", markersize=9, markerfacecolor=HOST_COLOR, markeredgecolor="0.3",
               label="host"),
        Line2D([], [], marker="o", linestyle="", markersize=11, markerfacecolor="white", markeredgecolor="black",
               label="router (fill: drop rate)"),
        Line2D([], [], color="0.4", linewidth=3, label="link direction (colour, width: utilisation)"),
    ], loc="lower center", bbox_to_anchor=(0.5, -0.06), ncol=3, fontsize=8, frameon=False)


def topology(
    path: str | Path,
    graph: nx.Graph,
    *,
    utilisation: Mapping[str, float],
    drop_rate: Mapping[str, float],
    title: str = "Where the congestion is",
    pos: Mapping[str, tuple[float, float]] | None = None,
    drop_vmax: float = 0.5,
    label_min: float = 0.25,
    note: str | None = None,
) -> Path:
    """The topology with links coloured by utilisation and routers by drop rate.

    ``utilisation`` maps a link direction's channel name (``"r1->r2"``) to its busy fraction
    (0-1); each direction is its own arrow, so a saturated bottleneck shows as one red arrow
    beside an idle green one. ``drop_rate`` maps a router to the fraction of packets arriving
    at it that it dropped (0-1; the colour saturates at ``drop_vmax``). Directions at least
    ``label_min`` busy are labelled with their percentage. ``pos`` defaults to :func:`layout`.
    ``note`` is a boxed text in the corner (say which flows run where).
    """
    _check_graph(graph)
    _check_fraction(drop_vmax, "drop_vmax")
    pos = dict(pos or layout(graph))
    fig, ax = plt.subplots(figsize=(10.0, 6.0), dpi=plot.DPI, layout="constrained")
    ax.set_title(title, fontsize=12)
    _draw_topology(ax, graph, pos, utilisation, drop_rate, drop_vmax, label_min)
    _colorbars(fig, ax, drop_vmax)
    _legend_keys(ax)
    if note:
        plot.annotate_claim(ax, note)
    return plot.save(fig, path)


def _check_fraction(value: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{what} must be a fraction in (0, 1], e.g. 0.5; got {value!r}")


def topology_animation(
    path: str | Path,
    graph: nx.Graph,
    *,
    utilisation: Mapping[str, Sequence[float]],
    router_drops: Mapping[str, Sequence[float]],
    router_arrivals: Mapping[str, Sequence[float]],
    bin_ns: int,
    flows: Mapping[str, Binned] | None = None,
    capacity_bps: float | None = None,
    marks: Marks = (),
    title: str = "Congestion over time",
    pos: Mapping[str, tuple[float, float]] | None = None,
    drop_vmax: float = 0.5,
    label_min: float = 0.25,
    max_frames: int = 60,
    fps: int = 6,
    dpi: int = 80,
) -> Path:
    """An animated GIF of :func:`topology` over time.

    Per time bin of ``bin_ns``: ``utilisation[channel]`` is each link direction's busy
    fraction, ``router_drops[router]`` the packets it dropped and ``router_arrivals[router]``
    the packets that arrived at it. Consecutive bins are merged so there are at most
    ``max_frames`` frames (utilisation averaged, drops and arrivals summed, so a frame's drop
    rate is exact). With ``flows`` (``label -> bytes per bin``, same bin width) a lower panel
    shows each flow's throughput over the whole run with the current frame highlighted, so
    the picture says who suffers as well as where. ``marks`` are ``(time_s, text)`` events.
    """
    _check_graph(graph)
    _check_fraction(drop_vmax, "drop_vmax")
    if isinstance(bin_ns, bool) or not isinstance(bin_ns, int) or bin_ns <= 0:
        raise ValueError(f"bin_ns must be a positive int number of nanoseconds, got {bin_ns!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
        raise ValueError(f"max_frames must be an int >= 2, got {max_frames!r}")
    n_bins = max([len(v) for v in utilisation.values()] + [len(v) for v in router_drops.values()]
                 + [len(v) for v in router_arrivals.values()] + [0])
    if n_bins < 1:
        raise ValueError("topology_animation: no time bins (utilisation and router series are empty)")
    group = -(-n_bins // max_frames)
    frames = [(start, min(n_bins, start + group)) for start in range(0, n_bins, group)]

    pos = dict(pos or layout(graph))
    fig = plt.figure(figsize=(8.0, 7.0 if flows else 5.2), dpi=dpi, layout="constrained")
    rows = [3.0, 0.09] + ([1.4] if flows else [])
    grid = fig.add_gridspec(len(rows), 2, height_ratios=rows)
    ax = fig.add_subplot(grid[0, :])
    _colorbars(fig, ax, drop_vmax, caxes=(fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])))
    fax = cursor = None
    if flows:
        fax = fig.add_subplot(grid[2, :])
        cursor = _throughput_strip(fax, flows, bin_ns, n_bins, capacity_bps, marks)

    def draw(index: int) -> None:
        a, b = frames[index]
        util, rate = _frame_data(utilisation, router_drops, router_arrivals, a, b)
        ax.clear()
        _draw_topology(ax, graph, pos, util, rate, drop_vmax, label_min)
        t0, t1 = a * bin_ns / NS_PER_S, b * bin_ns / NS_PER_S
        events = [f"{text} at {t:g} s" for t, text in marks if t <= t0]
        ax.set_title(f"{title}\nt = {t0:.2f}-{t1:.2f} s" + (f"   ({events[-1]})" if events else ""), fontsize=11)
        if cursor is not None:
            cursor.set_x(t0)
            cursor.set_width(t1 - t0)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = _render_frames(fig, ax, fax, cursor, draw, len(frames))
    plt.close(fig)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0, optimize=False)
    return path


def _frame_data(utilisation: Mapping[str, Sequence[float]], router_drops: Mapping[str, Sequence[float]],
                router_arrivals: Mapping[str, Sequence[float]], a: int,
                b: int) -> tuple[dict[str, float], dict[str, float]]:
    """One frame's bins ``[a, b)`` merged: each link direction's mean utilisation, and each
    router's drop rate (its drops over its arrivals in those bins, 0 with no arrivals)."""
    util = {name: sum(values[a:b]) / (b - a) for name, values in utilisation.items()}
    rate = {}
    for r in router_arrivals:
        arrived = sum(router_arrivals[r][a:b])
        rate[r] = sum(router_drops.get(r, [])[a:b]) / arrived if arrived else 0.0
    return util, rate


def _throughput_strip(fax: Axes, flows: Mapping[str, Binned], bin_ns: int, n_bins: int,
                      capacity_bps: float | None, marks: Marks):
    """The animation's lower panel: each flow's throughput over the whole run; returns the
    shaded span that marks the frame shown (moved by each frame)."""
    fbin, fdata = binned_all(flows, "topology_animation flows")
    if fbin != bin_ns:
        raise ValueError(f"topology_animation: flows use {fbin} ns bins but the topology data {bin_ns} ns")
    edges = bin_edges_s(bin_ns, len(next(iter(fdata.values()))))
    scale = 8 * NS_PER_S / bin_ns / 1e6
    colors = flow_colors(list(fdata))
    for label, values in fdata.items():
        plot.step_plot(fax, edges, post_step([v * scale for v in values]), label, color=colors[label])
    if capacity_bps:
        fax.axhline(capacity_bps / 1e6, color="0.2", linestyle=":", linewidth=1.0, label="bottleneck capacity")
    draw_marks(fax, marks)
    fax.set_xlim(0, n_bins * bin_ns / NS_PER_S)
    fax.set_ylim(bottom=0)
    fax.set_xlabel("time (s)")
    fax.set_ylabel("throughput (Mbit/s)")
    fax.set_title("delivered throughput per flow (shaded: the frame shown above)", fontsize=9)
    fax.grid(True, alpha=0.3, linewidth=0.6)
    fax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fax.axvspan(0, 0, color="tab:blue", alpha=0.3)


def _render_frames(fig, ax: Axes, fax: Axes | None, cursor, draw, n_frames: int) -> list:
    """Each frame as a Pillow image, ``draw(index)`` putting frame ``index`` on ``ax``.

    Lays the figure out once (constrained layout on every frame would cost more than the
    drawing), then renders only what changes: the background (colorbars, throughput strip)
    is drawn once and each frame blits the topology and the cursor onto a copy of it.
    Redrawing the whole figure per frame, as PillowWriter.grab_frame does, took 2.5x as long
    here (9.4 s against 3.8 s for 60 frames), FuncAnimation with constrained layout 5x.
    """
    canvas = fig.canvas
    draw(0)
    canvas.draw()
    fig.set_layout_engine("none")
    ax.clear()
    ax.axis("off")
    if cursor is not None:
        cursor.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    if cursor is not None:
        cursor.set_visible(True)
    images = []
    for index in range(n_frames):
        draw(index)
        canvas.restore_region(background)
        for artist in sorted(ax.collections + ax.patches + ax.texts + ax.lines + [ax.title],
                             key=lambda a: a.get_zorder()):
            ax.draw_artist(artist)
        if cursor is not None:
            fax.draw_artist(cursor)
        width, height = canvas.get_width_height()
        images.append(Image.frombuffer("RGBA", (width, height), bytes(canvas.buffer_rgba()), "raw", "RGBA", 0, 1))
    return images
