"""Routers: forwarding, TTL, per-port queues, conservation, FIFO order, routing by shortest
path, delivery on any connected topology, unreachable destinations, determinism.

The errno a program sees for an unreachable destination is pinned against real Linux in
:func:`test_linux_icmp_unreachable_semantics` (two network namespaces, one forwarding).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from collections import deque

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM
from simsock.net.link import serialisation_ns
from simsock.net.qdisc import RED, CoDel, DropTail

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers -------------------------------------------------------------------------------
def sink(log: list, port: int = 9000, timeout: float = 2.0):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.settimeout(timeout)
        while True:
            try:
                data, addr = await s.recvfrom(65535)
            except TimeoutError:
                return
            log.append((k.now_ns, data, addr))
    return prog


def sender(dest, payloads, gaps_ns=None, port=None):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        if port is not None:
            s.bind(("0.0.0.0", port))
        for i, data in enumerate(payloads):
            await s.sendto(data, dest)
            if gaps_ns and gaps_ns[i % len(gaps_ns)]:
                await k.sleep(gaps_ns[i % len(gaps_ns)] / 1e9)
    return prog


def small_dumbbell(**kw):
    from models.topologies import dumbbell
    return dumbbell(None, 2, 2, **kw)


# -- basic forwarding -----------------------------------------------------------------------
def test_router_forwards_and_decrements_ttl():
    """A datagram crosses two routers: each forwards it once and takes one off its TTL;
    the payload arrives intact, from the sender's address."""
    sim, left, right, (r1, r2) = small_dumbbell()
    log = []
    ttls = []
    receive = right[0].receive
    right[0].receive = lambda pkt, ch: (ttls.append(pkt.ttl), receive(pkt, ch))
    right[0].spawn(sink(log))
    left[0].spawn(sender(("right1", 9000), [b"hello"]))
    sim.run()
    assert [(d, a[0]) for _, d, a in log] == [(b"hello", left[0].address)]
    assert ttls == [62]
    assert (r1.received, r1.forwarded, r2.received, r2.forwarded) == (1, 1, 1, 1)
    arrivals = sim.trace.packets("arrive")
    assert [p["where"] for p in arrivals] == ["left1->r1", "r1->r2", "r2->right1"]
    # store and forward: three serialisations of the 33-byte packet plus 12 ms of propagation
    size = 20 + 8 + 5
    expect = 2 * serialisation_ns(size, 100_000_000) + serialisation_ns(size, 10_000_000) + 12_000_000
    assert arrivals[-1]["t"] == expect


def test_processing_delay_and_router_stats():
    """A per-packet processing delay adds to the one-way time; sim.stats() reports each
    router's counters and its ports."""
    def one_way(delay):
        sim = simsock.Simulation()
        a, b = sim.add_host("a"), sim.add_host("b")
        r = sim.add_router("r", processing_delay=delay)
        sim.add_link(a, r, delay="1ms")
        sim.add_link(r, b, delay="1ms")
        b.spawn(sink([]))
        a.spawn(sender(("b", 9000), [b"x", b"y"]))
        sim.run()
        return sim.trace.packets("arrive")[-1]["t"], sim.stats()["routers"]["r"]

    t0, stats = one_way(0)
    t1, _ = one_way("50us")
    assert t1 - t0 == 50_000
    assert stats["received"] == stats["forwarded"] == 2 and stats["dropped"] == {}
    assert stats["ports"]["r->b"]["offered"] == stats["ports"]["r->b"]["sent"] == 2
    assert list(stats["ports"]) == ["r->a", "r->b"]


def test_router_address_and_kind():
    sim = simsock.Simulation()
    r = sim.add_router("r1")
    h = sim.add_host("h")
    assert r.address == "10.255.0.1" and h.address == "10.0.0.1"
    assert sim.graph.nodes["r1"]["kind"] == "router" and sim.graph.nodes["h"]["kind"] == "host"
    assert isinstance(r, simsock.Router)


def test_add_router_bad_arguments_are_clear():
    sim = simsock.Simulation()
    with pytest.raises(TypeError, match="queue discipline such as simsock.DropTail"):
        sim.add_router("r", qdisc=5)
    with pytest.raises(ValueError, match="at least one packet"):
        sim.add_router("r", queue=0)
    sim.add_router("r")
    with pytest.raises(ValueError, match="already a node"):
        sim.add_router("r")


def test_ttl_expires_in_a_routing_loop():
    """Two routers whose default routes point at each other bounce a packet for an unknown
    address until its TTL runs out (ip_forward: ttl <= 1 is not forwarded)."""
    sim = simsock.Simulation()
    h = sim.add_host("h")
    r1, r2 = sim.add_router("r1"), sim.add_router("r2")
    sim.add_link(h, r1, delay="1ms")
    sim.add_link(r1, r2, delay="1ms")
    sim.set_default_route(h, r1)
    sim.set_default_route(r1, r2)
    sim.set_default_route(r2, r1)
    h.spawn(sender(("10.99.0.1", 9000), [b"x"]))
    sim.run()
    assert sim.drops == {"ttl": 1}
    # TTL 64 leaves h; r1 and r2 forward while ttl > 1: 63 forwards, the 64th router drops.
    assert r1.forwarded + r2.forwarded == 63
    assert r1.drops.get("ttl", 0) + r2.drops.get("ttl", 0) == 1


def test_udp_to_router_address_gets_port_unreachable():
    """A datagram for the router itself finds no socket: ICMP port unreachable comes back
    and a connected socket reports ECONNREFUSED, as from a host."""
    sim = simsock.Simulation()
    h = sim.add_host("h")
    r = sim.add_router("r1")
    sim.add_link(h, r, delay="1ms")
    seen = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect((r.address, 53))
        await s.send(b"q")
        await k.sleep(0.01)
        try:
            await s.send(b"q")
        except OSError as exc:
            seen.append(exc.errno)

    h.spawn(prog)
    sim.run()
    assert seen == [errno.ECONNREFUSED]
    assert r.drops == {"no_port": 1}


def test_hosts_use_the_path_mtu_so_routers_never_see_oversize_packets():
    """A 1400-byte middle link: UDP datagrams are fragmented and TCP segments sized for it
    at the sender (path MTU discovery's converged state); nothing is dropped for size."""
    from models.topologies import chain
    sim, (src, dst), routers = chain(3)
    link = sim.add_link(routers[0], routers[2], rate="100Mbit", delay="1us", mtu=1400)
    assert src.mtu_to(dst.address) == 1400 and sim.path_mtu(src, dst.address) == 1400
    log, got = [], []
    dst.spawn(sink(log))

    async def tcp_server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        conn, _ = await ls.accept()
        while data := await conn.recv(65536):
            got.append(data)

    async def tcp_client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("dst", 80))
        await s.sendall(bytes(20_000))
        s.close()

    dst.spawn(tcp_server)
    src.spawn(sender(("dst", 9000), [bytes(3000)]))
    src.spawn(tcp_client)
    sim.run()
    assert [len(d) for _, d, _ in log] == [3000]
    assert sum(map(len, got)) == 20_000
    assert sim.drops == {}
    assert max(p["size"] for p in sim.trace.packets("arrive") if p["where"] == link.forward.name) <= 1400


# -- drop-tail through a router ---------------------------------------------------------------
def reference_droptail(arrivals, rate_bps, limit_packets=None, limit_bytes=None):
    """A plain FIFO of waiting packets (the one on the wire is not in it) that refuses a
    packet when it holds ``limit_packets`` or the packet would take it past ``limit_bytes``.
    arrivals: [(t, size)] in order -> list of accepted flags."""
    busy_until = 0
    waiting = deque()    # (start, size)
    waiting_bytes = 0
    out = []
    for t, size in arrivals:
        while waiting and waiting[0][0] <= t:
            waiting_bytes -= waiting.popleft()[1]
        full = (limit_packets is not None and len(waiting) >= limit_packets) or (
            limit_bytes is not None and waiting_bytes + size > limit_bytes)
        if full:
            out.append(False)
            continue
        start = max(t, busy_until)
        busy_until = start + serialisation_ns(size, rate_bps)
        if start > t:
            waiting.append((start, size))
            waiting_bytes += size
        out.append(True)
    return out


@SETTINGS
@given(sizes=st.lists(st.integers(0, 1400), min_size=1, max_size=60),
       gaps=st.lists(st.integers(0, 400_000), min_size=1, max_size=20),
       limit=st.integers(1, 12),
       how=st.sampled_from(["router_queue", "router_qdisc", "link_queue", "bytes"]))
def test_droptail_drops_exactly_when_full_through_a_router(sizes, gaps, limit, how):
    """The router's bottleneck port drops an arriving packet exactly when its queue is full
    (packets waiting, not counting the one on the wire), whichever way the limit is given:
    the router's queue=, the router's qdisc=DropTail(packets=), the link's queue=, or a
    byte limit DropTail(bytes=)."""
    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    limit_bytes = None
    if how == "router_queue":
        r = sim.add_router("r", queue=limit)
        sim.add_link(r, b, rate="10Mbit", delay="1ms")
    elif how == "router_qdisc":
        r = sim.add_router("r", qdisc=lambda: DropTail(packets=limit))
        sim.add_link(r, b, rate="10Mbit", delay="1ms")
    elif how == "link_queue":
        r = sim.add_router("r", queue=1000)
        sim.add_link(r, b, rate="10Mbit", delay="1ms", queue=limit)
    else:
        limit_bytes = limit * 700
        r = sim.add_router("r", qdisc=lambda: DropTail(bytes=limit_bytes))
        sim.add_link(r, b, rate="10Mbit", delay="1ms")
    sim.add_link(a, r, rate="100Mbit", delay="1ms")
    payloads = [bytes(n) for n in sizes]
    b.spawn(sink([]))
    a.spawn(sender(("b", 9000), payloads, gaps))
    sim.run()
    arrivals = [(p["t"], p["size"], p["uid"]) for p in sim.trace.packets("arrive") if p["where"] == "a->r"]
    expected = reference_droptail([(t, s) for t, s, _ in arrivals], 10_000_000,
                                  None if how == "bytes" else limit, limit_bytes)
    dropped = {p["uid"] for p in sim.trace.packets("drop") if p["where"] == "r->b"}
    assert [uid not in dropped for _, _, uid in arrivals] == expected
    port = r.stats()["ports"]["r->b"]
    assert port["dropped"] == expected.count(False)
    assert port["offered"] == port["sent"] + port["dropped"] + port["queued"]


# -- FIFO order ------------------------------------------------------------------------------
@SETTINGS
@given(n=st.integers(1, 40), gaps=st.lists(st.integers(0, 300_000), min_size=1, max_size=10),
       qdisc=st.sampled_from(["fifo", "red", "codel"]))
def test_queue_is_fifo(n, gaps, qdisc):
    """Packets of two flows leave the bottleneck port in the order they arrived at the router
    (less the ones dropped), for the eager FIFO and for the event-driven qdiscs."""
    factory = {"fifo": None,
               "red": lambda: RED(limit_packets=20, min_th=5, max_th=15, max_p=0.1),
               "codel": lambda: CoDel(limit=20)}[qdisc]
    sim, left, right, (r1, r2) = small_dumbbell(qdisc=factory, queue=20)
    right[0].spawn(sink([]))
    right[1].spawn(sink([]))
    left[0].spawn(sender(("right1", 9000), [bytes(1000)] * n, gaps))
    left[1].spawn(sender(("right2", 9000), [bytes(500)] * n, gaps[::-1]))
    sim.run()
    arrive = sim.trace.packets("arrive")
    into_r1 = [p["uid"] for p in arrive if p["where"] in ("left1->r1", "left2->r1")]
    out_of_r1 = [p["uid"] for p in arrive if p["where"] == "r1->r2"]
    dropped = {p["uid"] for p in sim.trace.packets("drop")}
    assert out_of_r1 == [u for u in into_r1 if u not in dropped]


# -- conservation ----------------------------------------------------------------------------
def check_conservation(sim):
    """At this instant: every router received = forwarded + dropped there; every channel
    offered = sent + dropped by its queue + queued; and the packets each channel has put on
    the wire either arrived (per the trace), were lost, or are still on their way."""
    arrivals: dict[str, int] = {}
    for p in sim.trace.packets("arrive"):
        arrivals[p["where"]] = arrivals.get(p["where"], 0) + 1
    into: dict[str, int] = {}
    for link in sim.links:
        for ch in (link.forward, link.backward):
            s = ch.port_stats()
            assert s["offered"] == s["sent"] + s["dropped"] + s["queued"], ch.name
            transmitting = 1 if (not ch.eager and ch._transmitting) else 0
            on_wire = ch.in_flight - (s["queued"] if ch.eager else 0) + transmitting
            assert s["sent"] == arrivals.get(ch.name, 0) + s["lost"] + on_wire, ch.name
            into[ch.dst.name] = into.get(ch.dst.name, 0) + arrivals.get(ch.name, 0)
    for name, r in sim.routers.items():
        assert r.received == into.get(name, 0)
        assert r.received == r.forwarded + sum(r.drops.values())
        assert r.forwarded == sum(ch.offered for ch in r.ports()) - r.icmp_sent


@st.composite
def random_world(draw):
    n_routers = draw(st.integers(1, 4))
    extra = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=4))
    n_hosts = draw(st.integers(2, 4))
    attach = draw(st.lists(st.integers(0, n_routers - 1), min_size=n_hosts, max_size=n_hosts))
    rates = draw(st.lists(st.sampled_from(["1Mbit", "5Mbit", "20Mbit"]), min_size=12, max_size=12))
    queue = draw(st.integers(1, 8))
    qdisc = draw(st.sampled_from(["fifo", "red", "codel"]))
    flows = draw(st.lists(st.tuples(st.integers(0, n_hosts - 1), st.integers(0, n_hosts - 1),
                                    st.integers(1, 15), st.integers(0, 1400), st.integers(0, 2_000_000)),
                          min_size=1, max_size=5))
    samples = draw(st.lists(st.integers(1, 60_000_000), min_size=1, max_size=6))
    return n_routers, extra, n_hosts, attach, rates, queue, qdisc, flows, sorted(samples)


@SETTINGS
@given(world=random_world())
def test_conservation_at_every_node_and_queue(world):
    """Random routers, links and flows: conservation holds at sampled instants and at the
    end, for FIFO, RED and CoDel ports."""
    n_routers, extra, n_hosts, attach, rates, queue, qdisc, flows, samples = world
    factory = {"fifo": None,
               "red": lambda: RED(limit_packets=queue + 4, min_th=1, max_th=queue + 1, max_p=0.2),
               "codel": lambda: CoDel(target="1ms", interval="5ms", limit=queue)}[qdisc]
    sim = simsock.Simulation()
    routers = [sim.add_router(f"r{i}", qdisc=factory, queue=queue) for i in range(n_routers)]
    hosts = [sim.add_host(f"h{i}") for i in range(n_hosts)]
    ri = iter(rates)
    for i in range(1, n_routers):
        sim.add_link(routers[i - 1], routers[i], rate=next(ri), delay="1ms")
    for a, b in extra:
        if a < n_routers and b < n_routers and a != b and not sim.graph.has_edge(f"r{a}", f"r{b}"):
            sim.add_link(routers[a], routers[b], rate=next(ri), delay="2ms")
    for h, r in zip(hosts, attach):
        sim.add_link(h, routers[r], rate="20Mbit", delay="1ms")
    for h in hosts:
        h.spawn(sink([], timeout=0.5))
    for src, dst, count, size, gap in flows:
        if src != dst:
            hosts[src].spawn(sender((f"h{dst}", 9000), [bytes(size)] * count, [gap]))
    for t in samples:
        sim.run(until=t / 1e9)
        check_conservation(sim)
    sim.run()
    check_conservation(sim)


# -- routing ---------------------------------------------------------------------------------
@st.composite
def router_graph(draw):
    n = draw(st.integers(2, 8))
    seed = draw(st.integers(0, 10_000))
    p = draw(st.floats(0.2, 0.9))
    g = nx.gnp_random_graph(n, p, seed=seed)
    # make it connected: chain the components
    comps = [sorted(c) for c in nx.connected_components(g)]
    for c1, c2 in zip(comps, comps[1:]):
        g.add_edge(c1[0], c2[0])
    delays = draw(st.lists(st.integers(0, 5_000_000), min_size=g.number_of_edges(), max_size=g.number_of_edges()))
    for (u, v), d in zip(sorted(g.edges), delays):
        g.edges[u, v]["delay"] = d
    n_hosts = draw(st.integers(2, 5))
    attach = draw(st.lists(st.integers(0, n - 1), min_size=n_hosts, max_size=n_hosts))
    return g, attach


def build_router_world(g, attach):
    sim = simsock.Simulation()
    for v in sorted(g.nodes):
        sim.add_router(f"r{v}", queue=10_000)
    hosts = [sim.add_host(f"h{i}") for i in range(len(attach))]
    for u, v in sorted(g.edges):
        sim.add_link(f"r{u}", f"r{v}", rate="1Gbit", delay=g.edges[u, v]["delay"] / 1e9)
    for h, r in zip(hosts, attach):
        sim.add_link(h, f"r{r}", rate="1Gbit", delay="1ms")
    return sim, hosts


@SETTINGS
@given(world=router_graph())
def test_routing_agrees_with_networkx_shortest_paths(world):
    """On a random connected router graph, the path each datagram takes is a simple path
    whose cost (delay + 1 ns per hop) equals networkx's shortest path length."""
    g, attach = world
    sim, hosts = build_router_world(g, attach)
    for i, h in enumerate(hosts):
        h.spawn(sink([], timeout=0.2))
        for j in range(len(hosts)):
            if i != j:
                h.spawn(sender((f"h{j}", 9000), [f"{i}->{j}".encode()]))
    sim.run()
    weighted = nx.Graph()
    for u, v, d in sim.graph.edges(data=True):
        weighted.add_edge(u, v, w=d["delay"] + 1)
    paths: dict[int, list[str]] = {}
    for p in sim.trace.packets("arrive"):
        paths.setdefault(p["uid"], []).append(p["where"])
    assert len(paths) == len(hosts) * (len(hosts) - 1)
    for hops in paths.values():
        nodes = [hops[0].split("->")[0]] + [h.split("->")[1] for h in hops]
        assert len(set(nodes)) == len(nodes), nodes
        assert all(n.startswith("r") for n in nodes[1:-1])      # hosts are never transit
        cost = sum(weighted.edges[a, b]["w"] for a, b in zip(nodes, nodes[1:]))
        # hosts are leaves here, so the router-only distance is the shortest distance
        assert cost == nx.shortest_path_length(weighted, nodes[0], nodes[-1], weight="w")


def test_paths_avoid_hosts_when_a_router_path_exists():
    """A host between two routers is not used as a shortcut: hosts do not forward."""
    sim = simsock.Simulation()
    a, m, b = sim.add_host("a"), sim.add_host("m"), sim.add_host("b")
    r1, r2 = sim.add_router("r1"), sim.add_router("r2")
    sim.add_link(a, r1, delay="1ms")
    sim.add_link(r1, m, delay="1ms")
    sim.add_link(m, r2, delay="1ms")
    sim.add_link(r1, r2, delay="50ms")
    sim.add_link(r2, b, delay="1ms")
    log = []
    b.spawn(sink(log))
    a.spawn(sender(("b", 9000), [b"x"]))
    sim.run()
    assert [d for _, d, _ in log] == [b"x"]
    assert [p["where"] for p in sim.trace.packets("arrive")] == ["a->r1", "r1->r2", "r2->b"]


def test_routes_are_recomputed_when_a_link_is_added():
    """Forwarding tables are computed lazily and dropped when the topology changes."""
    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    r1, r2, r3 = (sim.add_router(f"r{i}") for i in (1, 2, 3))
    sim.add_link(a, r1, delay="1ms")
    sim.add_link(r1, r2, delay="20ms")
    sim.add_link(r2, b, delay="1ms")
    assert r1.output_port(b.address).name == "r1->r2"
    sim.add_link(r1, r3, delay="1ms")
    sim.add_link(r3, r2, delay="1ms")
    assert r1.output_port(b.address).name == "r1->r3"


@SETTINGS
@given(world=router_graph(), count=st.integers(1, 6), size=st.integers(0, 3000))
def test_any_connected_topology_delivers_every_datagram(world, count, size):
    """Loss-free links and big queues: every datagram from every host reaches every other
    host intact and exactly once (fragments included, sizes up to 3000 bytes)."""
    g, attach = world
    sim, hosts = build_router_world(g, attach)
    logs = [[] for _ in hosts]
    for i, h in enumerate(hosts):
        h.spawn(sink(logs[i], timeout=0.5))
        for j in range(len(hosts)):
            if i != j:
                h.spawn(sender((f"h{j}", 9000), [bytes([i, j, s]) * (size // 3) for s in range(count)]))
    sim.run()
    for j, log in enumerate(logs):
        got = sorted(d for _, d, _ in log)
        want = sorted(bytes([i, j, s]) * (size // 3) for i in range(len(hosts)) if i != j for s in range(count))
        assert got == want
    assert sim.drops == {}


# -- unreachable destinations ----------------------------------------------------------------
def _errno_of(coro_fn):
    async def prog(k, out):
        try:
            out.append(await coro_fn(k))
        except OSError as exc:
            out.append(errno.errorcode.get(exc.errno, exc.errno))
    return prog


def test_unknown_address_is_enetunreach_at_the_call():
    """No node has the address and no default route: sendto, UDP connect and TCP connect
    fail at once with ENETUNREACH ('Network is unreachable'), nothing is sent."""
    sim, left, right, _ = small_dumbbell()
    out = []

    async def udp_send(k):
        return await k.socket(AF_INET, SOCK_DGRAM).sendto(b"x", ("10.200.0.1", 9))

    async def udp_connect(k):
        return await k.socket(AF_INET, SOCK_DGRAM).connect(("10.200.0.1", 9))

    async def tcp_connect(k):
        return await k.socket(AF_INET, SOCK_STREAM).connect(("10.200.0.1", 80))

    async def all_three(k):
        for fn in (udp_send, udp_connect, tcp_connect):
            await _errno_of(fn)(k, out)
            out.append(k.now_ns)

    left[0].spawn(all_three)
    sim.run()
    assert out == ["ENETUNREACH", 0, "ENETUNREACH", 0, "ENETUNREACH", 0]
    assert sim.trace.packets("arrive") == []


def test_disconnected_component_is_enetunreach():
    """The host exists but no path leads to it: ENETUNREACH at the sender."""
    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    r1, r2 = sim.add_router("r1"), sim.add_router("r2")
    sim.add_link(a, r1)
    sim.add_link(r2, b)
    out = []

    async def prog(k):
        await _errno_of(lambda k: k.socket(AF_INET, SOCK_DGRAM).sendto(b"x", ("b", 9)))(k, out)
        await _errno_of(lambda k: k.socket(AF_INET, SOCK_STREAM).connect(("b", 80)))(k, out)

    a.spawn(prog)
    sim.run()
    assert out == ["ENETUNREACH", "ENETUNREACH"]


def gateway_world():
    """a - r1 - r2 - b, plus an island c behind r3; a's default gateway is r1, and r1 has
    no route to c (another component) nor to unknown addresses."""
    sim = simsock.Simulation()
    a, b, c = sim.add_host("a"), sim.add_host("b"), sim.add_host("c")
    r1, r2, r3 = (sim.add_router(f"r{i}") for i in (1, 2, 3))
    sim.add_link(a, r1, delay="1ms")
    sim.add_link(r1, r2, delay="1ms")
    sim.add_link(r2, b, delay="1ms")
    sim.add_link(r3, c, delay="1ms")
    sim.set_default_route(a, r1)
    return sim, a, r1, c


def test_router_without_route_answers_tcp_connect_with_ehostunreach():
    """connect() through a gateway that has no route to the destination fails when the
    router's ICMP host unreachable arrives (tcp_v4_err: fatal in SYN_SENT), not after the
    SYN retries."""
    sim, a, r1, c = gateway_world()
    out = []

    async def prog(k):
        await _errno_of(lambda k: k.socket(AF_INET, SOCK_STREAM).connect((c.address, 80)))(k, out)
        out.append(k.now_ns)

    a.spawn(prog)
    sim.run()
    assert out[0] == "EHOSTUNREACH"
    assert out[1] < 10_000_000           # one round trip to r1, not a 1 s SYN retry
    assert r1.drops == {"no_route": 1} and r1.icmp_sent == 1


def test_router_net_unreachable_outside_the_simulated_network():
    """For an address outside 10.0.0.0/8 the router has no route at all and answers net
    unreachable: connect() fails with ENETUNREACH (icmp_err_convert[0])."""
    sim, a, r1, c = gateway_world()
    out = []
    a.spawn(_errno_of(lambda k: k.socket(AF_INET, SOCK_STREAM).connect(("192.0.2.7", 80))), out)
    sim.run()
    assert out == ["ENETUNREACH"]


def test_connected_udp_socket_ignores_host_unreachable():
    """Linux's __udp4_lib_err reports only hard ICMP errors to a socket without IP_RECVERR:
    host and net unreachable are transient (RFC 1122 3.2.2.1), so a connected UDP socket
    keeps sending without error while the router drops and answers each datagram."""
    sim, a, r1, c = gateway_world()
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect((c.address, 9))
        for _ in range(3):
            out.append(await s.send(b"x"))
            await k.sleep(0.01)
        s.setblocking(False)
        try:
            await s.recv(10)
        except OSError as exc:
            out.append(errno.errorcode[exc.errno])

    a.spawn(prog)
    sim.run()
    assert out == [1, 1, 1, "EAGAIN"]
    assert r1.drops == {"no_route": 3}
    assert a.ip_mib["InReceives"] == 3          # the three ICMP errors did arrive


def test_established_tcp_keeps_icmp_as_soft_error():
    """In an established connection an ICMP unreachable is only the soft error (sk_err_soft):
    nothing is reported until a timeout would use it."""
    from simsock.tcp.connection import TcpConnection
    assert hasattr(TcpConnection, "icmp_error")
    sim, left, right, (r1, r2) = small_dumbbell()
    state = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        conn, _ = await ls.accept()
        state["data"] = await conn.recv(100)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("right1", 80))
        conn = s.conn
        conn.icmp_error(errno.EHOSTUNREACH, k.now_ns)
        state["soft"] = conn.sk_err_soft
        await s.sendall(b"hi")
        state["so_error"] = s.getsockopt(simsock.SOL_SOCKET, simsock.SO_ERROR)

    right[0].spawn(server)
    left[0].spawn(client)
    sim.run()
    assert state == {"soft": errno.EHOSTUNREACH, "data": b"hi", "so_error": 0}


# -- real Linux ------------------------------------------------------------------------------
CLIENT_SCRIPT = textwrap.dedent(r"""
    import errno, json, socket, sys, time
    dests = {"host": "10.66.9.9", "net": "10.77.9.9"}
    res = {}
    src = iter(range(11, 40))
    def name(e):
        return errno.errorcode.get(e, str(e))
    for kind, ip in dests.items():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"10.66.0.{next(src)}", 0))
        s.settimeout(3)
        t0 = time.monotonic()
        try:
            s.connect((ip, 80)); res["tcp_" + kind] = "ok"
        except socket.timeout:
            res["tcp_" + kind] = "timeout"
        except OSError as e:
            res["tcp_" + kind] = name(e.errno)
        res["tcp_" + kind + "_fast"] = time.monotonic() - t0 < 1.0
        for recverr in (0, 1):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((f"10.66.0.{next(src)}", 0))
            if recverr:
                u.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
            u.connect((ip, 9))
            seen = []
            for _ in range(2):
                try:
                    u.send(b"x"); seen.append("ok")
                except OSError as e:
                    seen.append(name(e.errno))
                time.sleep(0.2)
            res[f"udp_{kind}_recverr{recverr}"] = seen
    print(json.dumps(res))
""")


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux network namespaces")
def test_linux_icmp_unreachable_semantics():
    """Real Linux, two namespaces (client -> forwarding router): the router answers a
    destination it routes as 'unreachable' with ICMP host unreachable and one it has no
    route for with net unreachable. TCP connect fails fast with EHOSTUNREACH /
    ENETUNREACH; a connected UDP socket sees neither unless IP_RECVERR is set. The
    simulator's routers and sockets follow this (tests above)."""
    from simsock.real.netns import namespaces_available
    ok, reason = namespaces_available()
    if not ok:
        pytest.skip(reason)
    tag = f"ssrt{os.getpid() % 100000}"
    ns_c, ns_r = f"{tag}c", f"{tag}r"
    try:
        _ip("netns", "add", ns_c)
        _ip("netns", "add", ns_r)
        for ns in (ns_c, ns_r):
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns_c, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", ns_r)
        for i in range(1, 40):
            _ip("-n", ns_c, "addr", "add", f"10.66.0.{i}/24", "dev", "v0")
        _ip("-n", ns_r, "addr", "add", "10.66.0.254/24", "dev", "v1")
        _ip("-n", ns_c, "link", "set", "v0", "up")
        _ip("-n", ns_r, "link", "set", "v1", "up")
        _ip("-n", ns_c, "route", "add", "default", "via", "10.66.0.254")
        _ip("-n", ns_r, "route", "add", "unreachable", "10.66.9.0/24")
        subprocess.run(["ip", "netns", "exec", ns_r, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True,
                       capture_output=True, timeout=10)
        out = subprocess.run(["ip", "netns", "exec", ns_c, sys.executable, "-c", CLIENT_SCRIPT],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
    finally:
        for ns in (ns_c, ns_r):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    assert res == {
        "tcp_host": "EHOSTUNREACH", "tcp_host_fast": True,
        "udp_host_recverr0": ["ok", "ok"], "udp_host_recverr1": ["ok", "EHOSTUNREACH"],
        "tcp_net": "ENETUNREACH", "tcp_net_fast": True,
        "udp_net_recverr0": ["ok", "ok"], "udp_net_recverr1": ["ok", "ENETUNREACH"],
    }


# -- determinism -----------------------------------------------------------------------------
DETERMINISM_SCRIPT = textwrap.dedent(r"""
    import hashlib, json, sys
    sys.path.insert(0, sys.argv[1])
    import simsock
    from simsock import AF_INET, SOCK_DGRAM
    from simsock.net.qdisc import RED
    from models.topologies import dumbbell
    sim, left, right, _ = dumbbell(None, 3, 3, queue=10,
                                   qdisc=lambda: RED(limit_packets=30, min_th=3, max_th=10, max_p=0.2))
    mon = sim.monitor(bin="5ms")
    async def rx(k):
        s = k.socket(AF_INET, SOCK_DGRAM); s.bind(("0.0.0.0", 9000)); s.settimeout(0.5)
        while True:
            try: await s.recv(2000)
            except TimeoutError: return
    async def tx(k, dest, gap):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(200):
            await s.sendto(bytes(1000), dest)
            await k.sleep(gap)
    for i, h in enumerate(right):
        h.spawn(rx)
        left[i].spawn(tx, (h.name, 9000), 0.0005 * (i + 1))
    sim.run()
    sim.trace.to_jsonl(sys.argv[2])
    blob = json.dumps({"summary": mon.summary(), "stats": sim.stats()}, sort_keys=True)
    print(hashlib.sha256(blob.encode() + open(sys.argv[2], "rb").read()).hexdigest())
""")


def test_router_run_is_identical_across_hash_seeds(tmp_path):
    """A dumbbell with RED, a monitor and six flows gives byte-identical traces, stats and
    monitor summaries in fresh interpreters with different PYTHONHASHSEEDs."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digests = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, root, str(tmp_path / f"t{seed}.jsonl")],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        digests.append(out.stdout.strip())
    assert digests[0] == digests[1]
