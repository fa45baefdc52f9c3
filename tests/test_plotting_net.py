"""Network pictures (simsock.plot.net) drawn from synthetic monitor data: each writes a
valid image, accepts the monitor's objects and the plain lists read back from result.json,
lays topologies out deterministically, and refuses bad input with a clear message."""

import json

import networkx as nx
import pytest
from PIL import Image

from simsock.plot import net as pn
from simsock.timeseries import BinnedCounter, StepSeries

BIN = 100_000_000          # 100 ms
N_BINS = 40                # 4 s


def _counter(per_bin) -> BinnedCounter:
    c = BinnedCounter(BIN)
    for i, v in enumerate(per_bin):
        c.add(i * BIN, v)
    return c


def _flows():
    """Four TCP flows share 10 Mbit/s until 2 s, then a UDP flood takes over."""
    tcp = [[31_250 if i < 20 else 2_000 for i in range(N_BINS)] for _ in range(4)]
    udp = [0 if i < 20 else 115_000 for i in range(N_BINS)]
    flows = {f"TCP {k + 1}": _counter(v) for k, v in enumerate(tcp)}
    flows["UDP flood"] = _counter(udp)
    return flows


def _queue():
    packets, nbytes = StepSeries(), StepSeries()
    for ms in range(0, 4000, 5):
        v = (ms // 5) % 30 if ms < 2000 else 99 + (ms // 5) % 2
        packets.record(ms * 1_000_000, v)
        nbytes.record(ms * 1_000_000, v * 1500)
    return packets, nbytes


def _dumbbell() -> nx.Graph:
    g = nx.Graph()
    g.add_node("r1", kind="router")
    g.add_node("r2", kind="router")
    for i in range(1, 5):
        g.add_node(f"left{i}", kind="host")
        g.add_node(f"right{i}", kind="host")
        g.add_edge(f"left{i}", "r1")
        g.add_edge("r2", f"right{i}")
    g.add_edge("r1", "r2")
    return g


def _is_png(path) -> bool:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


def test_queue_occupancy_with_delay_panel(tmp_path):
    packets, nbytes = _queue()
    out = pn.queue_occupancy(tmp_path / "q.png", {"r1->r2": packets}, limit=100,
                             delay={"r1->r2": (nbytes, 10_000_000)}, marks=[(2.0, "UDP flood starts")],
                             until_s=4.0)
    assert out == tmp_path / "q.png" and _is_png(out)


def test_series_read_back_from_json_draw_the_same_picture(tmp_path):
    """A StepSeries and its (times_ns, values) lists, a BinnedCounter and its
    {"bin_ns", "values"} dict, give byte-identical PNGs: plot() works from result.json."""
    packets, _ = _queue()
    flows = _flows()
    plain_q = json.loads(json.dumps(packets.to_lists()))
    plain_f = json.loads(json.dumps({k: {"bin_ns": c.bin_ns, "values": c.bins.tolist()} for k, c in flows.items()}))
    a = pn.queue_occupancy(tmp_path / "a.png", {"q": packets})
    b = pn.queue_occupancy(tmp_path / "b.png", {"q": plain_q})
    assert a.read_bytes() == b.read_bytes()
    c = pn.flow_throughput(tmp_path / "c.png", flows, capacity_bps=10e6)
    d = pn.flow_throughput(tmp_path / "d.png", plain_f, capacity_bps=10e6)
    assert c.read_bytes() == d.read_bytes()


@pytest.mark.parametrize("stacked", [False, True])
def test_flow_throughput(tmp_path, stacked):
    out = pn.flow_throughput(tmp_path / "t.png", _flows(), capacity_bps=10e6, stacked=stacked,
                             marks=[(2.0, "UDP flood starts")])
    assert _is_png(out)


def test_drops_over_time(tmp_path):
    drops = {"TCP 1": _counter([0] * 19 + [1] * 21), "UDP flood": _counter([0] * 20 + [40] * 20)}
    assert _is_png(pn.drops_over_time(tmp_path / "d.png", drops, marks=[(2.0, "flood")]))


def test_topology_png(tmp_path):
    util = {"r1->r2": 1.0, "r2->r1": 0.05, "left1->r1": 0.3, "r2->right4": 0.9}
    out = pn.topology(tmp_path / "topo.png", _dumbbell(), utilisation=util, drop_rate={"r1": 0.33},
                      note="UDP flood: left4 -> right4")
    assert _is_png(out)


def test_topology_animation_gif_has_frames_and_is_small(tmp_path):
    g = _dumbbell()
    util = {"r1->r2": [0.9] * 20 + [1.0] * 20, "left4->r1": [0.0] * 20 + [0.15] * 20}
    drops = {"r1": [1] * 20 + [300] * 20, "r2": [0] * N_BINS}
    arrivals = {"r1": [800] * 20 + [1200] * 20, "r2": [800] * N_BINS}
    out = pn.topology_animation(tmp_path / "a.gif", g, utilisation=util, router_drops=drops, router_arrivals=arrivals,
                                bin_ns=BIN, flows=_flows(), capacity_bps=10e6, marks=[(2.0, "UDP flood starts")],
                                max_frames=12)
    with Image.open(out) as im:
        assert im.format == "GIF"
        frames = im.n_frames
    # 40 bins, at most 12 frames: bins are merged 4 to a frame
    assert frames == 10
    assert out.stat().st_size < 2_000_000


def test_pictures_are_byte_for_byte_reproducible(tmp_path):
    """Same data, same bytes: a PNG and a GIF drawn twice are identical files."""
    g = _dumbbell()
    kwargs = dict(utilisation={"r1->r2": [0.5, 1.0, 1.0]}, router_drops={"r1": [0, 5, 9]},
                  router_arrivals={"r1": [10, 20, 30]}, bin_ns=BIN, max_frames=3)
    a = pn.topology_animation(tmp_path / "a.gif", g, **kwargs)
    b = pn.topology_animation(tmp_path / "b.gif", g, **kwargs)
    assert a.read_bytes() == b.read_bytes()
    c = pn.topology(tmp_path / "c.png", g, utilisation={"r1->r2": 0.7}, drop_rate={"r1": 0.1})
    d = pn.topology(tmp_path / "d.png", g, utilisation={"r1->r2": 0.7}, drop_rate={"r1": 0.1})
    assert c.read_bytes() == d.read_bytes()


def test_layout_dumbbell_puts_hosts_either_side_of_the_routers():
    pos = pn.layout(_dumbbell())
    assert pos["r1"][1] == pos["r2"][1] == 0.0
    assert all(pos[f"left{i}"][0] < pos["r1"][0] < pos["r2"][0] < pos[f"right{i}"][0] for i in range(1, 5))
    assert len({pos[f"left{i}"] for i in range(1, 5)}) == 4


def test_layout_chain_star_and_general_graphs_are_deterministic():
    chain = nx.path_graph(["src", "r1", "r2", "r3", "dst"])
    for n in chain:
        chain.nodes[n]["kind"] = "router" if n.startswith("r") else "host"
    pos = pn.layout(chain)
    assert [pos[n][0] for n in ["src", "r1", "r2", "r3", "dst"]] == sorted(pos[n][0] for n in pos)
    star = nx.star_graph(["r1", "h1", "h2", "h3"])
    for n in star:
        star.nodes[n]["kind"] = "router" if n == "r1" else "host"
    spos = pn.layout(star)
    assert {spos["h1"][0], spos["h3"][0]} == {0.0, 4.0}
    mesh = nx.cycle_graph(["a", "b", "c", "d"])
    for n in mesh:
        mesh.nodes[n]["kind"] = "router"
    assert pn.layout(mesh) == pn.layout(mesh.copy())


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(TypeError, match="StepSeries or a pair"):
        pn.queue_occupancy(tmp_path / "x.png", {"q": 5})
    with pytest.raises(ValueError, match="one bin width"):
        pn.flow_throughput(tmp_path / "x.png", {"a": BinnedCounter(BIN), "b": BinnedCounter(2 * BIN)})
    with pytest.raises(ValueError, match="link rate"):
        packets, nbytes = _queue()
        pn.queue_occupancy(tmp_path / "x.png", {"q": packets}, delay={"q": (nbytes, 0)})
    with pytest.raises(TypeError, match="undirected networkx Graph"):
        pn.topology(tmp_path / "x.png", nx.DiGraph(), utilisation={}, drop_rate={})
    with pytest.raises(ValueError, match="drop_vmax"):
        pn.topology(tmp_path / "x.png", _dumbbell(), utilisation={}, drop_rate={}, drop_vmax=0)


def test_topology_pictures_live_in_plot_topology_and_are_reexported():
    """plot.net holds the time series, plot.topology the topology drawings; plot.net
    re-exports them, and either module can be imported first (fresh interpreters)."""
    import subprocess
    import sys

    from simsock.plot import topology as pt
    for name in ("layout", "topology", "topology_animation", "UTIL_CMAP", "DROP_CMAP"):
        assert getattr(pn, name) is getattr(pt, name)
    assert set(pn.__all__) >= {"layout", "topology", "topology_animation", "queue_occupancy"}
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        pn.nothing
    for first in ("topology", "net"):
        code = (f"from simsock.plot import {first}; from simsock.plot.net import *; "
                f"print(topology.__module__, queue_occupancy.__module__)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["simsock.plot.topology", "simsock.plot.net"]
