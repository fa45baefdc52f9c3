"""Every experiment's figures, drawn from small runs (claims holding and claims broken), are
checked mechanically before they are saved: a title, axis labels with units, no offset or
scientific-notation text on the axes, no legend over the data, µs not "us", and numbers
of four digits or more written with thousands separators.

The figures are caught in :func:`simsock.plot.save`, so every experiment is covered
without knowing how it draws.
"""

from __future__ import annotations

import json
import re

import pytest

from simsock import experiment
from simsock import plot as plotting

#: experiment -> small parameter sets: one where the claims hold, then ones that break them
SMALL = {
    "blocking_threads": [{"clients": [5, 20], "duration": 0.6, "ramp": 0.2},
                         {"clients": [1], "idle_clients": 0, "duration": 0.4, "ramp": 0.1, "baseline": False}],
    "busy_poll": [{"clients": 3, "duration": 1.0, "arrive_from": 0.3, "arrive_to": 0.5},
                  {"listener_blocking": True, "clients": 3, "duration": 1.0, "arrive_from": 0.3,
                   "arrive_to": 0.5}],
    "epoll_edge": [{"clients": 4, "count": 10, "end": 0.5}, {"burst": 1, "clients": 3, "count": 6}],
    "flow_control": [{}, {"read_pause": 0.00001, "read_chunk": 65536, "pause_end": 0.5, "total": 200000},
                     {"sndbuf": 10000000, "total": 1000000}],
    "iocp_vs_epoll": [{"threads": "1,2", "duration": 0.05, "clients": 3, "architectures": "epoll,epoll_partitioned,iocp"},
                      {"architectures": "epoll", "threads": "1", "duration": 0.1, "clients": 3, "variants": ""}],
    "partial_send": [{}, {"sndbuf": 10000000}],
    "qdisc_compare": [{"duration": 2.0, "warmup": 0.5, "limit": 60}],
    "router_congestion": [{"duration": 1.5, "flood_start": 0.9, "warmup": 0.3, "settle": 0.2, "frames": 2}],
    "select_scaling": [{"watched": [10, 200], "duration": 0.1}, {"watched": [10], "mechanisms": ["epoll"]}],
    "send_buffer_blocks": [{}, {"nonblocking": True, "total": 200000}, {"total": 1000, "chunk": 1000},
                           {"client_closes": False, "total": 100000}],
    "udp_overflow": [{"count": 500}, {"read_rate": 10000.0, "count": 300},
                     {"link_rate": "1Mbit", "count": 100, "send_rate": 1000.0}],
}

NOTE_TOLERANCE = 0     # data points a boxed note may hide
_UNIT = re.compile(r"\(([^)]+)\)")
_BAD_US = re.compile(r"(?<![A-Za-z])us(?![A-Za-z])")
_NO_SEPARATOR = re.compile(r"(?<![\d.,\w])\d{4,}(?![\d,]|\.\d)")


def _texts(fig):
    """Title, labels, legend entries and free text of a figure (not the tick labels)."""
    for ax in fig.axes:
        yield ax.get_title()
        yield ax.get_xlabel()
        yield ax.get_ylabel()
        legend = ax.get_legend()
        if legend is not None:
            yield from (t.get_text() for t in legend.get_texts())
        yield from (t.get_text() for t in ax.texts)
    if fig._suptitle is not None:
        yield fig._suptitle.get_text()


def _categorical(axis) -> bool:
    labels = [t.get_text() for t in axis.get_ticklabels()]
    return any(label and not re.fullmatch(r"[−\-\d.,e+%×]+", label) for label in labels)


def _problems(fig) -> list[str]:
    fig.canvas.draw()
    for ax in fig.axes:                       # tick labels too: 12,000, not 12000
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            if _NO_SEPARATOR.search(label.get_text().replace("\N{MINUS SIGN}", "-")):
                return [f"tick label {label.get_text()!r} without a thousands separator"]
    problems = []
    titled = any(ax.get_title() for ax in fig.axes) or (fig._suptitle is not None and fig._suptitle.get_text())
    if not titled:
        problems.append("the figure has no title")
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison or ax.get_label() == "<colorbar>" or not ax.has_data():
            continue                                 # drawings (topologies) have no axes to label
        where = f"axes {i} ({ax.get_title()!r})"
        shared_x = [o for o in ax.get_shared_x_axes().get_siblings(ax) if o is not ax and o.get_xlabel()]
        for name, axis, label in (("x", ax.xaxis, ax.get_xlabel()), ("y", ax.yaxis, ax.get_ylabel())):
            if name == "x" and not label and (shared_x or _categorical(axis)):
                continue                             # a stacked panel, or categories that name themselves
            if name == "y" and not label and ax.get_title() and _UNIT.search(ax.get_title()):
                continue                             # a small multiple whose title names the quantity
            if not label:
                problems.append(f"{where}: no {name} label")
            elif not _UNIT.search(label) and not _categorical(axis):
                problems.append(f"{where}: {name} label {label!r} has no unit in parentheses")
            if axis.get_offset_text().get_text():
                problems.append(f"{where}: {name} axis has offset text {axis.get_offset_text().get_text()!r}")
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent()
            axbox = ax.get_window_extent()
            inside = box.x0 >= axbox.x0 - 1 and box.x1 <= axbox.x1 + 1 and box.y0 >= axbox.y0 - 1 and \
                box.y1 <= axbox.y1 + 1
            if inside:
                hit = plotting.covered(box, plotting.data_points(ax))
                if hit:
                    problems.append(f"{where}: the legend covers {hit} data points")
        for note in ax.texts:
            if note.get_bbox_patch() is not None:
                hit = plotting.covered(note.get_window_extent(), plotting.data_points(ax))
                if hit > NOTE_TOLERANCE:
                    problems.append(f"{where}: the note {note.get_text()[:40]!r}... covers {hit} data points")
    for text in _texts(fig):
        if _BAD_US.search(text):
            problems.append(f"'us' for microseconds in {text!r}")
        for number in _NO_SEPARATOR.findall(text):
            problems.append(f"{number} without a thousands separator in {text!r}")
    return problems


CASES = [(name, i, params) for name, sets in SMALL.items() for i, params in enumerate(sets)]


def test_every_experiment_is_covered():
    assert sorted(SMALL) == experiment.available()


@pytest.mark.parametrize("name,index,params", CASES, ids=[f"{n}-{i}" for n, i, _ in CASES])
def test_figures_are_readable(name, index, params, tmp_path, monkeypatch):
    module = experiment.load(name)
    merged = {**module.PARAMS, **params}
    result = json.loads(json.dumps(module.run(merged, 1), allow_nan=False))
    found: dict[str, list[str]] = {}

    def checked_save(fig, path):
        plotting.finish(fig)
        found[str(path)] = _problems(fig)
        plotting.plt.close(fig)               # checked as drawn; writing the PNG adds nothing here
        return path

    monkeypatch.setattr(plotting, "save", checked_save)
    drawn = module.plot(result, tmp_path)
    if isinstance(drawn, tuple):
        drawn, errors = drawn
        assert not errors, errors
    assert drawn, f"{name} drew no figure"
    bad = {path.rpartition("/")[2]: p for path, p in found.items() if p}
    assert bad == {}
