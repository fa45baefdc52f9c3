"""Topologies: building a simulation from a networkx graph, and the dumbbell, star and
chain helpers."""

from __future__ import annotations

import json

import networkx as nx
import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, Simulation
from simsock.net.qdisc import RED, DropTail
from simsock.topology import from_graph
from models.topologies import chain, dumbbell, star


def echo_count(log, port=9000):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.settimeout(1.0)
        while True:
            try:
                log.append(await s.recv(2000))
            except TimeoutError:
                return
    return prog


def send(dest, n, size=100):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(n):
            await s.sendto(bytes([i % 256]) * size, dest)
    return prog


def test_from_graph_builds_hosts_routers_and_links_with_attributes():
    """Node kinds, cores, router queue/qdisc and edge attributes all reach the simulation;
    nodes and links are created in graph order; sim.graph records kinds."""
    G = nx.Graph()
    G.add_node("client")
    G.add_node("r1", kind="router", queue=7)
    G.add_node("r2", kind="router", qdisc=lambda: RED(limit_packets=50, min_th=5, max_th=15))
    G.add_node("server", kind="host", cores=4)
    G.add_edge("client", "r1", rate="100Mbit", delay="1ms")
    G.add_edge("r1", "r2", rate="10Mbit", delay="10ms", loss=0.0, mtu=1400)
    G.add_edge("r2", "server", rate="10Mbit", delay="2ms", qdisc=lambda: DropTail(packets=3))
    sim = from_graph(G, seed=3)
    assert list(sim.nodes) == ["client", "r1", "r2", "server"]
    assert sim.hosts["server"].cores == 4
    assert isinstance(sim.routers["r1"], simsock.Router)
    assert {n: d["kind"] for n, d in sim.graph.nodes(data=True)} == {
        "client": "host", "r1": "router", "r2": "router", "server": "host"}
    ch = {c.name: c for link in sim.links for c in (link.forward, link.backward)}
    assert ch["r1->r2"].queue_packets == 7 and ch["r1->r2"].mtu == 1400 and ch["r1->r2"].rate_bps == 10_000_000
    assert ch["client->r1"].queue_packets == sim.profile.txqueuelen      # hosts keep the default
    assert isinstance(ch["r2->r1"].qdisc, RED)                          # the router's qdisc
    assert isinstance(ch["r2->server"].qdisc, DropTail) and ch["r2->server"].queue_packets == 3  # the edge's wins
    assert ch["r2->server"].delay_ns == 2_000_000
    log = []
    sim.hosts["server"].spawn(echo_count(log))
    sim.hosts["client"].spawn(send(("server", 9000), 5))
    sim.run()
    assert len(log) == 5


def test_from_graph_accepts_int_nodes():
    G = nx.path_graph(3)
    G.nodes[1]["kind"] = "router"
    sim = from_graph(G)
    assert list(sim.hosts) == ["0", "2"] and list(sim.routers) == ["1"]


@pytest.mark.parametrize("mutate, error, match", [
    (lambda G: G.nodes["a"].update(kind="switch"), ValueError, "kind must be 'host' or 'router'"),
    (lambda G: G.nodes["a"].update(colour="red"), ValueError, r"unknown attribute\(s\) \['colour'\]"),
    (lambda G: G.nodes["a"].update(queue=5), ValueError, "a host takes"),
    (lambda G: G.edges["a", "r"].update(bandwidth="1Mbit"), ValueError, r"edge \('a', 'r'\).*bandwidth"),
    (lambda G: G.edges["a", "r"].update(rate="fast"), ValueError, r"edge \('a', 'r'\)"),
    (lambda G: G.edges["a", "r"].update(loss=2), ValueError, "probability"),
    (lambda G: G.nodes["r"].update(qdisc="droptail"), TypeError, r"node 'r'.*queue discipline"),
    (lambda G: G.nodes["a"].update(cores=0), ValueError, r"node 'a'.*cores"),
])
def test_from_graph_bad_attributes_are_clear_errors(mutate, error, match):
    G = nx.Graph()
    G.add_node("a")
    G.add_node("r", kind="router")
    G.add_edge("a", "r")
    mutate(G)
    with pytest.raises(error, match=match):
        from_graph(G)


def test_from_graph_rejects_wrong_graph_types():
    with pytest.raises(ValueError, match="undirected"):
        from_graph(nx.DiGraph([("a", "b")]))
    with pytest.raises(ValueError, match="MultiGraph"):
        from_graph(nx.MultiGraph([("a", "b")]))
    with pytest.raises(TypeError, match="networkx Graph"):
        from_graph({"a": "b"})
    G = nx.Graph()
    G.add_nodes_from([1, "1"])
    with pytest.raises(ValueError, match="uniquely"):
        from_graph(G)


def test_dumbbell_shape_names_and_bottleneck():
    sim, left, right, (r1, r2) = dumbbell(None, 3, 2, queue=17, bottleneck_rate="5Mbit")
    assert [h.name for h in left] == ["left1", "left2", "left3"]
    assert [h.name for h in right] == ["right1", "right2"]
    assert (r1.name, r2.name) == ("r1", "r2")
    assert sorted(sim.graph.degree[n] for n in sim.graph) == [1, 1, 1, 1, 1, 3, 4]
    ch = {c.name: c for link in sim.links for c in (link.forward, link.backward)}
    assert ch["r1->r2"].rate_bps == 5_000_000 and ch["r1->r2"].queue_packets == 17
    assert ch["r1->r2"].delay_ns == 10_000_000
    assert ch["left1->r1"].rate_bps == 100_000_000 and ch["left1->r1"].delay_ns == 1_000_000
    log = []
    right[1].spawn(echo_count(log))
    left[2].spawn(send(("right2", 9000), 4))
    sim.run()
    assert len(log) == 4


def test_dumbbell_extends_an_existing_simulation():
    sim = simsock.Simulation(seed=9)
    same, *_ = dumbbell(sim, 1, 1)
    assert same is sim and sim.seed == 9
    with pytest.raises(ValueError, match="n_left"):
        dumbbell(None, 0, 1)
    with pytest.raises(TypeError, match="Simulation"):
        dumbbell("sim", 1, 1)


def test_star_and_chain():
    sim, hosts, r = star(4, rate="50Mbit")
    assert [h.name for h in hosts] == ["h1", "h2", "h3", "h4"] and sim.graph.degree["r1"] == 4
    log = []
    hosts[3].spawn(echo_count(log))
    for h in hosts[:3]:
        h.spawn(send(("h4", 9000), 2))
    sim.run()
    assert len(log) == 6

    sim, (src, dst), routers = chain(4)
    assert [r.name for r in routers] == ["r1", "r2", "r3", "r4"]
    assert nx.shortest_path(sim.graph, "src", "dst") == ["src", "r1", "r2", "r3", "r4", "dst"]
    log = []
    dst.spawn(echo_count(log))
    src.spawn(send(("dst", 9000), 3))
    sim.run()
    assert len(log) == 3
    assert [r.forwarded for r in routers] == [3, 3, 3, 3]


@pytest.mark.parametrize("helper", ["dumbbell", "star", "chain"])
def test_topology_helpers_default_to_the_simulations_trace_and_take_trace(helper):
    """Like Simulation() and from_graph(), a helper traces everything unless told otherwise;
    trace= reaches the simulation it makes, and is refused with a simulation it extends."""
    fn = {"dumbbell": dumbbell, "star": star, "chain": chain}[helper]
    default = Simulation()
    sim = fn()[0]
    flags = ("want_syscalls", "want_packets", "want_events")
    assert [getattr(sim.trace, f) for f in flags] == [getattr(default.trace, f) for f in flags] == [True] * 3
    assert [getattr(fn(trace=False)[0].trace, f) for f in flags] == [False] * 3
    assert [getattr(fn(trace=("event",))[0].trace, f) for f in flags] == [False, False, True]
    with pytest.raises(ValueError, match="only when the helper makes the simulation"):
        fn(sim=Simulation(), trace=False)


def test_untraced_dumbbell_runs_the_same_and_records_nothing():
    """trace=False changes what is recorded, never what happens."""
    def run(trace):
        sim, left, right, _ = dumbbell(None, 1, 1, trace=trace)
        log = []
        right[0].spawn(echo_count(log))
        left[0].spawn(send(("right1", 9000), 5))
        sim.run()
        return sim, log

    traced, log1 = run(None)
    quiet, log2 = run(False)
    assert log1 == log2 and len(log1) == 5
    assert len(quiet.trace) == 0 < len(traced.trace)
    assert json.dumps(quiet.stats(), sort_keys=True) == json.dumps(traced.stats(), sort_keys=True)
