"""The network monitor's per-bin series: packets offered to and arriving at channels, drops
per bin by reason and flow, per-flow delivered packets and drops, node arrivals and drops.

The reference is the simulator's own running totals read at every bin boundary (running the
simulation bin by bin, as experiments did before these series existed): each bin of a
series must equal the difference of the totals at its two ends, for any world and bin."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsock import AF_INET, SOCK_DGRAM
from simsock.net.qdisc import RED, CoDel
from models.topologies import dumbbell

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def receiver(port: int = 9000):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.3)
        while True:
            try:
                await s.recv(65535)
            except TimeoutError:
                return
    return prog


def paced(dest, count, size, gap, sport):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", sport))
        for _ in range(count):
            await s.sendto(bytes(size), dest)
            if gap:
                await k.sleep(gap / 1e9)
    return prog


def build(flows, qdisc, queue, bin_ns, to_nobody):
    factory = {"fifo": None,
               "red": lambda: RED(limit_packets=queue + 10, min_th=1, max_th=queue + 1, max_p=0.2),
               "codel": lambda: CoDel(target="1ms", interval="10ms", limit=queue)}[qdisc]
    sim, left, right, routers = dumbbell(None, 2, 2, queue=queue, qdisc=factory, bottleneck_rate="5Mbit",
                                         trace=False)
    mon = sim.monitor(bin=f"{bin_ns}ns")
    right[0].spawn(receiver())
    for i, (count, size, gap) in enumerate(flows):
        # flow 0 may go to a port nobody listens on (node drops at the receiver, ICMP back)
        port = 9999 if (to_nobody and i == 0) else 9000
        left[i % 2].spawn(paced(("right1", port), count, size, gap, 20000 + i))
    return sim, mon, routers


def totals(sim, mon, routers, arrivals) -> dict:
    """The running totals the binned series must add up to, as of now (``arrivals``: packets
    that reached the far end of each channel, counted by wrapping the nodes' receive)."""
    out = {}
    for link in sim.links:
        for ch in (link.forward, link.backward):
            out[("offered", ch.name)] = ch.offered
            out[("drops", ch.name)] = ch.drops_queue + ch.drops_loss
            out[("arrived", ch.name)] = arrivals.get(ch.name, 0)
    for key, f in mon.flows.items():
        out[("flow_drops", key)] = f.drops
        out[("flow_packets", key)] = f.delivered_packets
    for r in routers:
        out[("received", r.name)] = r.received
        out[("router_drops", r.name)] = sum(r.drops.values()) + sum(p.drops_queue for p in r.ports())
    return out


@SETTINGS
@given(flows=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1472), st.integers(0, 2_000_000)),
                      min_size=1, max_size=3),
       qdisc=st.sampled_from(["fifo", "red", "codel"]), queue=st.integers(1, 8),
       bin_ns=st.sampled_from([700_000, 1_000_000, 3_333_333, 10_000_000]), to_nobody=st.booleans())
def test_binned_series_equal_the_totals_read_at_every_bin_boundary(flows, qdisc, queue, bin_ns, to_nobody):
    # one world run bin by bin, reading the simulator's totals at each boundary ...
    sim, mon, routers = build(flows, qdisc, queue, bin_ns, to_nobody)
    arrivals = {}
    for node in sim.nodes.values():
        def counting(pkt, channel, receive=node.receive):
            arrivals[channel.name] = arrivals.get(channel.name, 0) + 1
            receive(pkt, channel)
        node.receive = counting
    snaps = [totals(sim, mon, routers, arrivals)]
    k = 0
    while True:
        k += 1
        sim.run(until=f"{k * bin_ns - 1}ns")
        snaps.append(totals(sim, mon, routers, arrivals))
        if sim.env.peek() == float("inf"):
            break
    n = k

    def per_bin(key):
        return [b.get(key, 0) - a.get(key, 0) for a, b in zip(snaps, snaps[1:])]

    # ... and the same world run in one go: its series give the same numbers bin by bin
    sim2, mon2, routers2 = build(flows, qdisc, queue, bin_ns, to_nobody)
    sim2.run()
    end = n * bin_ns

    def series(counter):
        return counter.to_lists(end)[1][:n]

    for link in sim2.links:
        for ch in (link.forward, link.backward):
            m = mon2.channel(ch.name)
            assert series(m.offered_packets) == per_bin(("offered", ch.name))
            assert series(m.drops) == per_bin(("drops", ch.name))
            by_reason = [sum(v) for v in zip(*[series(c) for c in m.drop_bins_by_reason.values()])] or [0] * n
            by_flow = [sum(v) for v in zip(*[series(c) for c in m.drop_bins_by_flow.values()])] or [0] * n
            assert by_reason == by_flow == series(m.drops)
            assert series(m.arrived_packets) == per_bin(("arrived", ch.name))
            assert m.offered_bytes.total() >= m.tx_bytes.total()
            assert {k: c.total() for k, c in m.drop_bins_by_flow.items()} == m.drops_by_flow
            assert {k: c.total() for k, c in m.drop_bins_by_reason.items()} == m.drops_by_reason
            rates = m.drop_rate(end)
            assert all(r >= 0 for r in rates)
            if ch.eager or qdisc == "red":       # drops decided when the packet is offered
                assert all(r <= 1 for r in rates)
    for key, f in mon2.flows.items():
        assert series(f.drop_bins) == per_bin(("flow_drops", key))
        assert series(f.delivered_packet_bins) == per_bin(("flow_packets", key))
        assert f.drop_bins.total() == f.drops and f.delivered_packet_bins.total() == f.delivered_packets
    for r in routers2:
        assert mon2.arrivals(r, end) == per_bin(("received", r.name))
        assert mon2.drops_at(r.name, end) == per_bin(("router_drops", r.name))
    for node, bins in mon2.node_drop_bins.items():
        assert bins.total() == sum(mon2.node_drops[node].values())


def test_channel_counts_by_hand():
    """Three packets offered in the first 1 ms bin to a 1-packet drop-tail queue on a slow
    link: one goes on the wire at once, one waits, one is refused — offered 3, dropped 1,
    drop rate 1/3; they arrive one serialisation time apart, in later bins."""
    import simsock
    sim = simsock.Simulation(trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="8Mbit", delay="0ms", queue=1)     # 1000-byte packet: 1 ms
    mon = sim.monitor(bin="1ms")

    async def burst(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(3):
            await s.sendto(bytes(972), ("b", 9))

    a.spawn(burst)
    sim.run()
    m = mon.channel("a->b")
    assert m.offered_packets.bins.tolist() == [3]
    assert m.offered_bytes.bins.tolist() == [3000]
    assert m.drops.bins.tolist() == [1] and m.drop_rate(m.busy_ns.bin_ns) == [1 / 3]
    assert len(m.drop_rate()) == len(mon.bin_times_s())   # default: bins up to now
    assert m.arrived_packets.bins.tolist() == [0, 1, 1]        # at 1 ms and 2 ms
    assert {k: c.bins.tolist() for k, c in m.drop_bins_by_reason.items()} == {"queue_full": [1]}
    (key,) = m.drop_bins_by_flow
    assert m.drop_bins_by_flow[key].bins.tolist() == [1] and key.startswith("udp 10.0.0.1:")
    assert mon.arrivals("b") == [0, 1, 1] and mon.arrivals(b, until=1_000_000) == [0]
    assert mon.drops_at("a") == [1, 0, 0]                      # a's output queue refused one
    assert mon.drops_at("b") == [0, 1, 1]                      # nobody listens on port 9
    assert mon.summary()["channels"]["a->b"]["drop_fraction"] == round(1 / 3, 6)
