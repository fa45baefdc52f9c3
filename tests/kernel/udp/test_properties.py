"""Properties of UDP delivery, checked by hypothesis over datagram sizes, reader schedules,
buffer sizes and paths (MTU-1500 link with fragmentation, or loopback)."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SO_RCVBUF, SO_SNDBUF, SOCK_DGRAM, SOL_SOCKET

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def payload(seq: int, size: int) -> bytes:
    """A datagram of ``size`` bytes whose content depends on its sequence number."""
    return bytes((seq * 31 + i * 7) & 0xFF for i in range(size))


def is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


scenario = st.fixed_dictionaries({
    "sizes": st.lists(st.integers(0, 3000), min_size=1, max_size=30),
    "gaps_us": st.lists(st.integers(0, 2000), min_size=0, max_size=30),          # sender pacing
    "reads": st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 4)), min_size=0, max_size=30),
    "rcvbuf": st.sampled_from([None, 1, 3000, 8192, 20000]),
    "sndbuf": st.sampled_from([None, 1, 10000]),
    "loopback": st.booleans(),
    "rate": st.sampled_from(["1Mbit", "10Mbit", "1Gbit"]),
})


def run_scenario(sc):
    """Sender -> receiver (over a loss-free MTU-1500 link, or loopback); the reader reads
    bursts of non-blocking recvs on its schedule. Returns what it needs to check."""
    sim = simsock.Simulation(seed=1)
    a = sim.add_host("a")
    b = sim.add_host("b")
    sim.add_link(a, b, rate=sc["rate"], delay="1ms", mtu=1500)
    receiver_host = a if sc["loopback"] else b
    dest = ("127.0.0.1", 9000) if sc["loopback"] else ("b", 9000)
    sent = [payload(i, n) for i, n in enumerate(sc["sizes"])]
    state = {"received": [], "violations": [], "deliveries": 0, "max_rmem": 0}

    async def reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        if sc["rcvbuf"] is not None:
            s.setsockopt(SOL_SOCKET, SO_RCVBUF, sc["rcvbuf"])
        s.bind(("0.0.0.0", 9000))
        s.setblocking(False)
        state["sock"] = s
        last = [0]

        def monitor(now, rmem, queued):
            before = last[0]
            if rmem > before:                     # a delivery (releases never increase it)
                state["deliveries"] += 1
                state["biggest_charge"] = max(state.get("biggest_charge", 0), rmem - before)
                if not (before == 0 or rmem <= s.rcvbuf):
                    state["violations"].append((now, before, rmem, s.rcvbuf))
            state["max_rmem"] = max(state["max_rmem"], rmem)
            last[0] = rmem

        s.monitor = monitor
        for sleep_us, burst in sc["reads"]:
            await k.sleep(sleep_us / 1e6)
            for _ in range(burst):
                try:
                    state["received"].append(await s.recv(4000))
                except BlockingIOError:
                    break

    async def sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        if sc["sndbuf"] is not None:
            s.setsockopt(SOL_SOCKET, SO_SNDBUF, sc["sndbuf"])
        await k.sleep("1us")                       # the reader binds first
        calls = []
        for i, data in enumerate(sent):
            calls.append(await s.sendto(data, dest))
            gaps = sc["gaps_us"]
            if gaps:
                await k.sleep(gaps[i % len(gaps)] / 1e6)
        state["send_returns"] = calls

    receiver_host.spawn(reader)
    a.spawn(sender)
    sim.run(until="5s")
    return sim, sent, state, receiver_host


@SETTINGS
@given(scenario)
def test_received_is_intact_in_order_subsequence(sc):
    """On a loss-free path, whatever the sizes (0..3000, fragmented above 1472 on the
    MTU-1500 link) and the reader's schedule, the datagrams received are an in-order
    subsequence of those sent, each intact (whole, unmerged, unsplit), and every sendto
    returned the full datagram length."""
    sim, sent, state, _ = run_scenario(sc)
    assert state["send_returns"] == [len(d) for d in sent]
    assert all(r in sent for r in state["received"])
    assert is_subsequence(state["received"], sent), (state["received"], sent)


@SETTINGS
@given(scenario)
def test_rmem_never_exceeds_rcvbuf_except_into_empty_queue(sc):
    """At every delivery, the receive buffer's charge before was 0 (an empty queue always
    accepts one datagram) or the charge after is within SO_RCVBUF."""
    sim, sent, state, _ = run_scenario(sc)
    assert state["violations"] == []
    sock = state["sock"]
    assert state["deliveries"] == sock.received_datagrams + sock.queued_datagrams
    # one datagram's charge: its truesize, or the sum of its fragments' skbs when it was
    # reassembled (ip_frag_reasm keeps them)
    biggest = state.get("biggest_charge", 0)
    assert state["max_rmem"] <= max(sock.rcvbuf, biggest)


@SETTINGS
@given(scenario)
def test_conservation_sent_equals_received_dropped_queued(sc):
    """Nothing vanishes and nothing is invented: sent == read by the app + dropped for lack
    of receive buffer + still queued at the end; the host's counters agree."""
    sim, sent, state, host = run_scenario(sc)
    sock = state["sock"]
    assert len(sent) == len(state["received"]) + sock.drops + sock.queued_datagrams
    assert sock.received_datagrams == len(state["received"])
    assert host.udp.mib["RcvbufErrors"] == sock.drops
    assert host.udp.mib["InDatagrams"] == len(state["received"]) + sock.queued_datagrams
    assert host.udp.mib["NoPorts"] == 0
    assert set(sim.drops) <= {"rcvbuf"}
    assert sim.drops.get("rcvbuf", 0) == sock.drops


@SETTINGS
@given(st.lists(st.integers(0, 20000), min_size=1, max_size=60), st.sampled_from([1, 4096, 65536, 212992]))
def test_unread_queue_holds_what_truesize_predicts(sizes, rcvbuf):
    """With nobody reading, the receiver accepts datagrams in order while the sum of their
    truesizes fits SO_RCVBUF (the first always fits), and drops each one that does not."""
    sim = simsock.Simulation()
    a = sim.add_host("a")
    prof = sim.profile
    out = {}

    async def prog(k):
        r = k.socket(AF_INET, SOCK_DGRAM)
        r.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
        r.bind(("127.0.0.1", 9000))
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i, n in enumerate(sizes):
            await s.sendto(payload(i, n), ("127.0.0.1", 9000))
        await k.sleep(0)
        out["queued"] = r.queued_datagrams
        out["rmem"] = r.rmem_alloc
        out["rcvbuf"] = r.rcvbuf

    a.spawn(prog)
    sim.run(until="1s")
    cap = prof.stored_rcvbuf(rcvbuf)
    rmem, accepted = 0, 0
    for n in sizes:
        t = prof.udp_truesize(n)
        if rmem == 0 or rmem + t <= cap:
            rmem += t
            accepted += 1
    assert out == {"queued": accepted, "rmem": rmem, "rcvbuf": cap}
