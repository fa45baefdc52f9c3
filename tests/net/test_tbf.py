"""The token bucket filter (simsock/net/tbf.py) and per-direction link settings (add_link ab=/ba=)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SOCK_DGRAM, TBF
from simsock.net.tbf import tc_rate, tc_size, tc_time


class _P:
    """A stand-in packet: TBF reads only ``size`` (and sets ``enqueued_at``)."""

    def __init__(self, size):
        self.size = size
        self.enqueued_at = 0


def test_tc_units_are_tcs():
    """iproute2's get_rate/get_size/get_time: kb is 1024 bytes, mbit 10^6 bit/s, mbps 8 x 10^6."""
    assert tc_rate("1mbit") == 1_000_000 and tc_rate("1Mbit") == 1_000_000
    assert tc_rate("100kbps") == 800_000 and tc_rate("8000") == 8000
    assert tc_size("10kb") == 10240 and tc_size("10k") == 10240 and tc_size("1mbit") == 131072
    assert tc_size("1500") == 1500 and tc_size("1500b") == 1500
    assert tc_time("50ms") == 50_000_000 and tc_time("100") == 100_000
    with pytest.raises(ValueError, match="unit"):
        tc_rate("1 furlong")


def test_from_tc_reads_a_command_line():
    q = TBF.from_tc("tc qdisc add dev veth0 root tbf rate 1mbit burst 10kb limit 30000")
    assert (q.rate, q.burst, q.limit, q.peakrate) == (1_000_000, 10240, 30000, None)
    q = TBF.from_tc("rate 1mbit burst 10kb latency 50ms")
    assert q.limit == 125_000 * 50 // 1000 + 10240          # tc: rate * latency + burst
    q = TBF.from_tc("rate 1mbit burst 10kb latency 50ms peakrate 2mbit mtu 1600")
    assert q.limit == min(125_000 * 50 // 1000 + 10240, 250_000 * 50 // 1000 + 1600)
    with pytest.raises(ValueError, match="mtu"):
        TBF(rate="1Mbit", burst=10_000, limit=1000, peakrate="2Mbit")
    with pytest.raises(ValueError, match="limit"):
        TBF(rate="1Mbit", burst=10_000)
    with pytest.raises(ValueError, match="unknown tbf option"):
        TBF.from_tc("rate 1mbit burst 10kb limit 100 cell 8")


def test_bucket_starts_full_then_releases_at_rate_counting_the_ethernet_header():
    """burst 3000, rate 8 Mbit/s (1 byte/us): two 1486-byte IP packets (1500-byte frames)
    empty the bucket at once; the third leaves when 1500 bytes of tokens are back (1.5 ms)."""
    q = TBF(rate=8_000_000, burst=3000, limit=100_000)
    q.attach(random.Random(1), 0)
    for _ in range(4):
        assert q.enqueue(_P(1486), 0)
    assert q.dequeue(0) is not None and q.dequeue(0) is not None
    assert q.dequeue(0) is None and q.watchdog_ns == 1_500_000
    assert q.dequeue(1_499_999) is None
    assert q.dequeue(1_500_000) is not None
    assert q.dequeue(1_500_000) is None and q.watchdog_ns == 3_000_000
    assert q.overlimits == 3


def test_limit_counts_frames_and_oversized_packets_are_dropped():
    q = TBF(rate="1Mbit", burst=1600, limit=3000)
    q.attach(random.Random(1), 0)
    assert q.enqueue(_P(1486), 0) and q.enqueue(_P(1486), 0)      # 3000 bytes of frames
    assert not q.enqueue(_P(1), 0)                                 # 15 more would exceed 3000
    assert not q.enqueue(_P(1600), 0)                              # 1614-byte frame > burst
    assert q.drops == {"queue_full": 1, "too_big": 1}
    assert q.backlog == 3000 and q.bytes == 2972


def test_peakrate_spaces_a_burst():
    """A full bucket at rate 1 Mbit/s but peakrate 8 Mbit/s with a 1500-byte peak bucket:
    1500-byte frames leave 1.5 ms apart, not all at once."""
    q = TBF(rate="1Mbit", burst=100_000, limit=100_000, peakrate="8Mbit", mtu=1500)
    q.attach(random.Random(1), 0)
    for _ in range(3):
        q.enqueue(_P(1486), 0)
    t, out = 0, []
    while len(out) < 3:
        if q.dequeue(t) is not None:
            out.append(t)
        else:
            t = q.watchdog_ns
    assert out == [0, 1_500_000, 3_000_000]


@settings(max_examples=60, deadline=None)
@given(rate=st.integers(100_000, 100_000_000), burst=st.integers(1600, 100_000),
       sizes=st.lists(st.integers(28, 1486), min_size=1, max_size=200),
       gaps=st.lists(st.integers(0, 5_000_000), min_size=1, max_size=200))
def test_never_more_than_burst_plus_rate_times_t(rate, burst, sizes, gaps):
    """The token bucket's defining bound: over any prefix of the run, the frame bytes sent by
    time t are at most burst + rate/8 x t; and every packet is either sent, dropped or still
    queued."""
    q = TBF(rate=rate, burst=burst, limit=50_000)
    q.attach(random.Random(1), 0)
    now, sent = 0, 0
    for i, size in enumerate(sizes):
        now += gaps[i % len(gaps)]
        q.enqueue(_P(size), now)
        while (p := q.dequeue(now)) is not None:
            sent += p.size + 14
            assert sent <= burst + rate * now // 8_000_000_000 + 1
    assert q.enqueued == q.dequeued + q.dropped + q.packets


def _udp_world(**link):
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    ln = sim.add_link(a, b, **link)
    arrivals = {"a": [], "b": []}

    def receiver(name):
        async def rx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.bind(("0.0.0.0", 9))
            while True:
                await s.recv(2000)
                arrivals[name].append(k.now)
        return rx

    def sender(dest):
        async def tx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            for _ in range(20):
                await s.sendto(b"x" * 1222, (dest, 9))        # 1250-byte IP packets
        return tx

    a.spawn(receiver("a"))
    b.spawn(receiver("b"))
    a.spawn(sender("b"))
    b.spawn(sender("a"))
    sim.run(until=5)
    return ln, arrivals


def test_add_link_per_direction_rates():
    """ab/ba override one direction: 20 packets of 1250 bytes take 20 ms at 10 Mbit/s one way
    and 2 ms at 100 Mbit/s the other."""
    ln, arr = _udp_world(rate="1Gbit", delay="1ms", ab={"rate": "10Mbit"}, ba={"rate": "100Mbit"})
    assert ln.forward.rate_bps == 10_000_000 and ln.backward.rate_bps == 100_000_000
    assert arr["b"][-1] == pytest.approx(0.001 + 20 * 0.001, abs=2e-5)      # + the first call's CPU time
    assert arr["a"][-1] == pytest.approx(0.001 + 20 * 0.0001, abs=2e-5)


def test_add_link_shaper_on_one_hosts_egress_only():
    """A TBF on a's egress shapes a->b; b->a runs at the link rate."""
    tbf = TBF(rate="1Mbit", burst=1600, limit=100_000)
    ln, arr = _udp_world(rate="1Gbit", delay="1ms", ab={"qdisc": tbf})
    assert isinstance(ln.forward.qdisc, TBF) and ln.backward.qdisc is None
    gaps = [y - x for x, y in zip(arr["b"], arr["b"][1:])]
    assert gaps[-1] == pytest.approx(1264 * 8 / 1e6, rel=1e-6)       # frame = 1250 + 14 at 1 Mbit/s
    assert arr["a"][-1] < 0.002


def test_add_link_without_overrides_is_unchanged():
    ln, _ = _udp_world(rate="10Mbit", delay="2ms")
    assert ln.rate_bps == 10_000_000 and ln.delay_ns == 2_000_000
    assert ln.forward.rate_bps == ln.backward.rate_bps == 10_000_000


@pytest.mark.parametrize("kw, match", [
    ({"ab": {"speed": "1Mbit"}}, "unknown setting 'speed'"),
    ({"ab": "10Mbit"}, "must be a dict"),
    ({"ba": {"loss": 2}}, "probability"),
    ({"ab": {"rate": "fast"}}, "rate"),
])
def test_add_link_direction_errors_are_one_line(kw, match):
    sim = simsock.Simulation(seed=1)
    a, b = sim.add_host("a"), sim.add_host("b")
    with pytest.raises((ValueError, TypeError), match=match):
        sim.add_link(a, b, **kw)


def test_add_link_direction_values_read_as_add_links():
    """Per-direction values follow add_link's own rules (simsock/validate.py): a queue with a
    byte unit is a bfifo on that direction, a duration jitter a uniform Jitter."""
    sim = simsock.Simulation(seed=1)
    a, b = sim.add_host("a"), sim.add_host("b")
    ln = sim.add_link(a, b, ab={"queue": "3000B", "jitter": "1ms"}, ba={"queue": 5, "loss": 0})
    assert type(ln.forward.qdisc).__name__ == "DropTail" and ln.forward.qdisc.limit_bytes == 3000
    assert ln.forward.jitter is not None and ln.backward.jitter is None
    assert ln.backward.queue_packets == 5 and ln.backward.loss is None
    with pytest.raises(ValueError, match="in bytes and a qdisc both set"):
        sim.add_link(a, sim.add_host("c"), ab={"queue": "3000B", "qdisc": TBF(rate="1Mbit", burst=1600, limit=3000)})
