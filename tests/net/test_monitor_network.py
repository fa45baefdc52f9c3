"""Network monitors: their numbers agree with the simulator's own counters and with what
programs received; queue series agree with the queue's definition; output is deterministic."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsock import AF_INET, SOCK_DGRAM, SO_RCVBUF, SOL_SOCKET
from simsock.net.monitor import flow_key
from simsock.net.qdisc import RED, CoDel
from models.topologies import dumbbell

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def receiver(got: dict, port: int = 9000):
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, 4 << 20)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.5)
        while True:
            try:
                data = await s.recv(65535)
            except TimeoutError:
                return
            got[k.host] = got.get(k.host, 0) + len(data)
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


def run_world(flows, qdisc="fifo", queue=8, bin="5ms", until=None):
    factory = {"fifo": None,
               "red": lambda: RED(limit_packets=queue + 10, min_th=1, max_th=queue + 1, max_p=0.2),
               "codel": lambda: CoDel(target="1ms", interval="10ms", limit=queue)}[qdisc]
    sim, left, right, routers = dumbbell(None, 3, 3, queue=queue, qdisc=factory, bottleneck_rate="5Mbit")
    mon = sim.monitor(bin=bin)
    got = {}
    for h in right:
        h.spawn(receiver(got))
    for i, (count, size, gap) in enumerate(flows):
        left[i % 3].spawn(paced((f"right{i % 3 + 1}", 9000), count, size, gap, 20000 + i))
    sim.run(until=until)
    return sim, mon, got, left, right


flows_strategy = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 1472), st.integers(0, 3_000_000)),
                          min_size=1, max_size=4)


@SETTINGS
@given(flows=flows_strategy, qdisc=st.sampled_from(["fifo", "red", "codel"]), queue=st.integers(1, 12))
def test_monitor_numbers_agree_with_counters(flows, qdisc, queue):
    """For every channel: binned tx bytes sum to the channel's tx_bytes, binned busy time to
    its busy_ns, utilisation stays in [0, 1], binned drops equal its queue and loss drops
    and split by reason and flow; for every flow: delivered bytes equal what the receiving
    programs read, and its drops equal the drops counted at channels and nodes."""
    sim, mon, got, left, right = run_world(flows, qdisc, queue)
    mon.flush()
    total_drops = 0
    for link in sim.links:
        for ch in (link.forward, link.backward):
            m = mon.channel(ch.name)
            assert m.tx_bytes.total() == ch.tx_bytes
            assert m.tx_packets == ch.tx_packets
            assert m.busy_ns.total() == ch.busy_ns
            assert all(0.0 <= u <= 1.0 for u in mon.utilisation(ch.name))
            assert m.drops.total() == ch.drops_queue + ch.drops_loss
            assert sum(m.drops_by_reason.values()) == m.drops.total() == sum(m.drops_by_flow.values())
            total_drops += m.drops.total()
            assert m.queue_packets.at(sim.now_ns) == ch.queued_packets()
            assert m.queue_bytes.at(sim.now_ns) == ch.queued_bytes()
            if ch.name in ("r1->r2", "r2->r1"):      # the bottleneck's queue (access ports: txqueuelen)
                assert m.queue_packets.max() <= (queue if qdisc != "red" else queue + 10)
    delivered = {}
    for f in mon.flows.values():
        host = next(h.name for h in right if h.address == f.dst)
        delivered[host] = delivered.get(host, 0) + f.delivered_bytes.total()
    assert {h: n for h, n in delivered.items() if n} == {h: n for h, n in got.items() if n}
    node_drops = sum(sum(r.values()) for r in mon.node_drops.values())
    assert sum(f.drops for f in mon.flows.values()) == total_drops + node_drops == sum(sim.drops.values())
    json.dumps(mon.summary())


@SETTINGS
@given(flows=flows_strategy, queue=st.integers(1, 6))
def test_fifo_queue_series_is_full_at_every_tail_drop(flows, queue):
    """A drop-tail port drops only when full: at the instant of each queue_full drop the
    recorded occupancy of that port is exactly its limit."""
    sim, mon, got, *_ = run_world(flows, "fifo", queue)
    drops = [p for p in sim.trace.packets("drop") if p["reason"] == "queue_full"]
    for p in drops:
        assert mon.channel(p["where"]).queue_packets.at(p["t"]) == queue


def test_flows_are_keyed_by_five_tuple_in_order_of_first_appearance():
    sim, mon, got, left, right = run_world([(5, 100, 1_000_000), (5, 100, 0), (5, 200, 0)])
    keys = list(mon.flows)
    assert keys[0].startswith("udp ") and "->" in keys[0]
    assert set(keys) == {flow_key(17, left[i].address, 20000 + i, right[i].address, 9000) for i in range(3)}
    first = {}
    for p in sim.trace.records("packet"):
        if (p["event"] == "arrive" and p["where"].startswith("r2->")) or p["event"] == "drop":
            first.setdefault((p["src"], p["dst"]), len(first))
    order = sorted(first, key=first.get)
    assert [(mon.flows[k].src, mon.flows[k].dst) for k in keys] == order
    assert flow_key(17, "10.0.0.1", 40000, "10.0.0.3", 9000) == "udp 10.0.0.1:40000->10.0.0.3:9000"


def test_saturated_bottleneck_is_fully_utilised_and_throughput_matches_rate():
    """Two senders offer 8 Mbit/s each to a 5 Mbit/s bottleneck: in the steady part of the
    run its utilisation is 1 in every bin and the flows' delivered throughput adds up to the
    bottleneck rate less header overhead."""
    sim, mon, got, *_ = run_world([(400, 1000, 1_000_000), (400, 1000, 1_000_000)], bin="20ms")
    util = mon.utilisation("r1->r2")
    assert all(u == pytest.approx(1.0) for u in util[2:15])
    total = [sum(f.throughput_bps(sim.now_ns)[i] for f in mon.flows.values()) for i in range(2, 15)]
    goodput = 5e6 * 1000 / 1028          # payload share of the bottleneck rate
    # a 20 ms bin holds 12 or 13 whole packets, so single bins vary by one packet
    assert all(goodput * 0.9 <= t <= goodput * 1.1 for t in total)
    assert sum(total) / len(total) == pytest.approx(goodput, rel=0.02)
    s = mon.summary()["channels"]["r1->r2"]
    assert s["drops_by_reason"] == {"queue_full": s["drops"]} and s["drops"] > 0
    assert s["queue_max_packets"] == 8


def test_loss_drops_are_counted_per_channel_and_flow():
    """Random loss on a link: the monitor counts each lost packet at that channel, under
    reason "loss", and against the flow, whose delivered packets make up the rest."""
    sim2, left2, right2, _ = dumbbell(None, 1, 1)
    sim2.add_link(left2[0], right2[0], rate="1Mbit", delay="3ms", loss=0.3)
    mon2 = sim2.monitor()
    g = {}
    right2[0].spawn(receiver(g))

    async def blast2(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(200):
            await s.sendto(bytes(100), ("right1", 9000))
            await k.sleep(0.002)

    left2[0].spawn(blast2)
    sim2.run()
    m = mon2.channel("left1->right1")
    lost = sim2.drops["loss"]
    assert 30 < lost < 90
    assert m.drops_by_reason == {"loss": lost} and m.drops.total() == lost
    (flow,) = mon2.flows.values()
    assert flow.drops == lost and flow.delivered_packets == 200 - lost == g["right1"] // 100


def test_node_drops_and_csv_and_summary(tmp_path):
    """Drops away from queues (a full receive buffer) are kept per node; to_csv writes four
    files deterministically; the summary is JSON-able."""
    def build():
        sim, left, right, _ = dumbbell(None, 1, 1)
        mon = sim.monitor(bin="10ms")

        async def tiny_reader(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.setsockopt(SOL_SOCKET, SO_RCVBUF, 1)
            s.bind(("0.0.0.0", 9000))
            await k.sleep(1)

        right[0].spawn(tiny_reader)
        left[0].spawn(paced(("right1", 9000), 30, 500, 100_000, 20000))
        sim.run()
        return sim, mon

    sim, mon = build()
    assert mon.node_drops == {"right1": {"rcvbuf": sim.drops["rcvbuf"]}}
    (flow,) = mon.flows.values()
    assert flow.drops_by_reason == {"rcvbuf": sim.drops["rcvbuf"]}
    paths = mon.to_csv(tmp_path / "a")
    assert [os.path.basename(p) for p in paths] == ["queues.csv", "links.csv", "flows.csv", "drops.csv"]
    with open(paths[2]) as f:
        header = f.readline().strip().split(",")
    assert header == ["time_ns", flow.key, f"{flow.key} delivered_packets", f"{flow.key} drops"]
    sim2, mon2 = build()
    paths2 = mon2.to_csv(tmp_path / "b")
    for p, q in zip(paths, paths2):
        assert open(p, "rb").read() == open(q, "rb").read()
    assert json.dumps(mon.summary(), sort_keys=True) == json.dumps(mon2.summary(), sort_keys=True)


def test_monitor_off_costs_nothing_and_bad_use_is_clear():
    sim, left, right, _ = dumbbell(None, 1, 1)
    assert sim.monitors is None
    assert all(ch.monitor is None for link in sim.links for ch in (link.forward, link.backward))
    with pytest.raises(ValueError, match="positive duration"):
        sim.monitor(bin=0)
    mon = sim.monitor(bin="10ms")
    assert sim.monitors is mon and sim.monitor(bin="10ms") is mon
    with pytest.raises(ValueError, match="same bin"):
        sim.monitor(bin="20ms")
    with pytest.raises(KeyError, match="'a->b'"):
        mon.channel("r1-r2")
    # links added after monitor() are watched too
    extra = sim.add_host("extra")
    sim.add_link(extra, "r1")
    assert mon.channel("extra->r1") is not None


def test_busy_time_is_split_exactly_across_bins():
    """A transmission spanning bin boundaries adds to each bin the part it covers."""
    from simsock.net.monitor import ChannelMonitor
    m = ChannelMonitor("x", 1000, 10)
    m.transmit(5, 37, 4)
    assert m.busy_ns.bins.tolist() == [5, 10, 10, 7]
    assert m.tx_bytes.bins.tolist() == [0, 0, 0, 4]
    m.transmit(40, 40, 0)
    assert m.busy_ns.total() == 32
