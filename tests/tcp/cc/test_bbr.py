"""BBR (simsock/tcp/cc/bbr.py) and the pacing it needs (simsock/tcp/rate.py), in simulated worlds.

The dumbbell: one sender ``left1`` -> ``r1`` ==10 Mbit/s, 10 ms== ``r2`` -> ``right1`` (access
links 100 Mbit/s, 1 ms), a 100-packet drop-tail queue at ``r1``: a BDP of ~20 packets.
"""

from __future__ import annotations

import pytest

from models.topologies import dumbbell
from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, Simulation
from simsock.constants import TCP_CONGESTION
from simsock.tcp import cc
from simsock.tcp.cc.base import CongestionOps

MSS = 1448


def _bulk(cc_name: str, duration: float, *, step: float = 0.01, queue: int = 100, hook=None):
    """One endless bulk transfer through the dumbbell; queue length of r1->r2 every ``step``."""
    sim, left, right, _ = dumbbell(n_left=1, n_right=1, seed=1, queue=queue, trace=False)
    got = [0]
    box = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5001))
        ls.listen()
        c, _ = await ls.accept()
        while d := await c.recv(65536):
            got[0] += len(d)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, cc_name.encode())
        box["sock"] = s
        await s.connect(("right1", 5001))
        if hook is not None:
            hook(s.conn)
        chunk = b"x" * 65536
        while True:
            await s.send(chunk)

    right[0].spawn(server)
    left[0].spawn(client)
    port = next(c for link in sim.links for c in (link.forward, link.backward) if c.name == "r1->r2")
    queue_samples, got_at = [], []
    t = 0.0
    for i in range(int(round(duration / step))):
        t = (i + 1) * step
        sim.run(until=t)
        queue_samples.append(port.queued_packets())
        got_at.append(got[0])
    return {"queue": queue_samples, "got": got_at, "conn": box["sock"].conn, "drops": port.drops_queue,
            "step": step}


def _goodput_mbit(run, t0: float, t1: float) -> float:
    step = run["step"]
    a, b = run["got"][int(round(t0 / step)) - 1], run["got"][int(round(t1 / step)) - 1]
    return (b - a) * 8 / (t1 - t0) / 1e6


@pytest.fixture(scope="module")
def bbr_run():
    return _bulk("bbr", 6.0)


@pytest.fixture(scope="module")
def cubic_run():
    return _bulk("cubic", 6.0)


def test_bbr_fills_the_bottleneck_with_a_far_smaller_queue_than_cubic(bbr_run, cubic_run):
    """Both reach ~full utilisation of the 10 Mbit/s bottleneck (goodput >= 92 %: the rest is
    headers), but CUBIC fills the 100-packet buffer until it drops, while BBR keeps the
    queue near its 2-BDP cwnd cap minus the BDP in flight: a few packets, no drops."""
    for run in (bbr_run, cubic_run):
        assert _goodput_mbit(run, 2.0, 6.0) >= 9.2
    late = slice(200, None)                       # after 2 s
    bbr_q = bbr_run["queue"][late]
    cubic_q = cubic_run["queue"][late]
    bbr_mean, cubic_mean = sum(bbr_q) / len(bbr_q), sum(cubic_q) / len(cubic_q)
    assert bbr_mean < 15 and bbr_mean * 5 < cubic_mean, (bbr_mean, cubic_mean)
    assert max(bbr_q) <= 25
    assert bbr_run["drops"] == 0 < cubic_run["drops"]


def test_startup_exits_after_three_rounds_without_25_percent_growth(bbr_run):
    """STARTUP -> DRAIN once max_bw grew < 25 % for 3 rounds (full_bw_reached), at the
    bottleneck's rate; DRAIN -> PROBE_BW once in flight is down to the BDP; then the gain
    cycle (1.25, 0.75, 1 x6) with a min-RTT-long phase."""
    ops = bbr_run["conn"].cc
    names = [(old, new) for _, old, new in ops.transitions]
    assert names[:3] == [("STARTUP", "STARTUP"), ("STARTUP", "DRAIN"), ("DRAIN", "PROBE_BW")]
    assert ops.full_bw_reached and ops.full_bw_cnt >= 3
    # full_bw in packets/us << 24 -> bit/s of payload at the bottleneck (10 Mbit/s of IP)
    full_bps = ops.full_bw * MSS * 8 * 1_000_000 / (1 << 24)
    assert 8.5e6 < full_bps < 10.0e6, full_bps
    t_drain = ops.transitions[1][0]
    assert 0.1e9 < t_drain < 1.0e9                 # a few dozen ms-rounds into the transfer
    assert ops.mode_name == "PROBE_BW"


def test_probe_bw_paces_at_the_gain_cycle(bbr_run):
    """In PROBE_BW the pacing rate is gain x max_bw x 99 %: one of 1.25, 0.75 or 1 times."""
    conn = bbr_run["conn"]
    ops = conn.cc
    base = ops._rate_bytes_per_sec(conn.tp, ops._max_bw(), 256)
    ratio = conn.tp.pacing_rate / base
    assert min(abs(ratio - g) for g in (1.25, 0.75, 1.0)) < 0.01, ratio


def test_probe_rtt_after_10_s_without_a_lower_rtt():
    """The min-RTT filter expires 10 s after its last refresh: PROBE_RTT, cwnd 4 for at least
    200 ms and a round, then back to PROBE_BW with the cwnd from before."""
    seen = []

    def hook(conn):
        ops = conn.cc
        orig = ops.cong_control

        def spy(tp, ack, flag, rs):
            before = ops.min_rtt_stamp, ops.mode_name
            orig(tp, ack, flag, rs)
            if ops.mode_name == "PROBE_RTT" and before[1] != "PROBE_RTT":
                seen.append((tp.now_us // 1000, before[0], before[1], tp.snd_cwnd))
        ops.cong_control = spy

    run = _bulk("bbr", 11.5, step=0.05, hook=hook)
    ops = run["conn"].cc
    assert seen, [t[1:] for t in ops.transitions]
    now_ms, stamp_ms, old, cwnd = seen[0]
    assert old == "PROBE_BW" and cwnd <= 4
    assert 10_000 < now_ms - stamp_ms < 10_100         # within a few rounds of the expiry
    t_in = next(t for t, _, new in ops.transitions if new == "PROBE_RTT")
    t_out = next(t for t, old, _ in ops.transitions if old == "PROBE_RTT")
    assert t_out - t_in >= 200_000_000
    assert ops.mode_name == "PROBE_BW"


def test_bbr_is_deterministic():
    """Same seed, same world: the same state changes at the same nanoseconds, same bytes."""
    a, b = _bulk("bbr", 1.5), _bulk("bbr", 1.5)
    assert a["conn"].cc.transitions == b["conn"].cc.transitions
    assert a["got"] == b["got"] and a["queue"] == b["queue"]


class _FixedPace(CongestionOps):
    """A module that asks for pacing at a fixed rate and never limits cwnd. It owns the
    rate through cong_control (as BBR does): for a module without one, TCP itself sets
    the pacing rate on every ACK (tcp_update_pacing_rate)."""

    name = "fixedpace"
    needs_pacing = True
    RATE = 1_000_000                                    # bytes/s

    def init(self, tp):
        tp.snd_cwnd = 1000
        tp.pacing_rate = self.RATE

    def ssthresh(self, tp):
        return tp.snd_cwnd

    def cong_control(self, tp, ack, flag, rs):
        pass


def test_paced_connection_releases_segments_at_the_pacing_rate():
    """Internal pacing (tcp_pacing_check / tcp_update_skb_after_send): after the first 10
    segments, bursts of max(rate/1024/MSS, 2) segments leave every burst_bytes/rate seconds,
    on a link far faster than the rate (RTT 40 ms: no extra GSO allowance, tcp_tso_rtt_log)."""
    cc.register("fixedpace", _FixedPace, replace=True)
    try:
        sim = Simulation(seed=1)
        a, b = sim.add_host("a"), sim.add_host("b")
        sim.add_link(a, b, rate="10Gbit", delay="20ms")

        async def server(k):
            ls = k.socket(AF_INET, SOCK_STREAM)
            ls.bind(("0.0.0.0", 80))
            ls.listen()
            c, _ = await ls.accept()
            while await c.recv(65536):
                pass

        async def client(k):
            s = k.socket(AF_INET, SOCK_STREAM)
            s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"fixedpace")
            await s.connect(("b", 80))
            await s.sendall(b"x" * 200 * MSS)

        b.spawn(server)
        a.spawn(client)
        sim.run(until=1.0)
        sends = [r["t"] for r in sim.trace.packets("enqueue")
                 if r["where"] == "a->b" and r["size"] == MSS + 52]
    finally:
        cc.unregister("fixedpace")
    assert len(sends) >= 150
    paced = sends[10:150]
    # bursts of 2 (1e6 >> 10 = 976 bytes < 1 MSS): pairs leave together
    starts = paced[::2]
    assert all(paced[i] == paced[i + 1] for i in range(0, len(paced) - 1, 2))
    gaps = [y - x for x, y in zip(starts, starts[1:])]
    expect = 2 * MSS * 1_000_000_000 // _FixedPace.RATE
    assert all(abs(g - expect) <= 2 for g in gaps), (set(gaps), expect)


def test_which_algorithms_pace():
    """Without fq and without a module asking for it, Linux does not pace (sk_pacing_status
    NONE); BBR asks for pacing and sizes the send buffer for 3 cwnds, not 2."""
    assert not cc.get("cubic").needs_pacing and not cc.get("reno").needs_pacing
    assert cc.get("bbr").needs_pacing and cc.get("bbr").sndbuf_expand(None) == 3
    assert cc.get("cubic").sndbuf_expand(None) == 2


def test_the_profile_names_the_default_algorithm():
    """New sockets get the profile's tcp_congestion_control (linux: cubic; a profile of a
    kernel built with CONFIG_DEFAULT_BBR, e.g. measured by ``profile --from-host``: bbr)."""
    import dataclasses

    from simsock.profiles import LINUX
    assert LINUX.tcp_congestion_control == "cubic"
    names = {}
    for profile in (LINUX, dataclasses.replace(LINUX, tcp_congestion_control="bbr")):
        sim = Simulation(seed=1, profile=profile)
        host = sim.add_host("a")

        async def prog(k, profile=profile):
            s = k.socket(AF_INET, SOCK_STREAM)
            names[profile.tcp_congestion_control] = s.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)
        host.spawn(prog)
        sim.run(until=1)
    assert names == {"cubic": b"cubic".ljust(16, b"\0"), "bbr": b"bbr".ljust(16, b"\0")}


def test_lt_bw_detects_a_token_bucket_policer():
    """A policer (a TBF whose limit is its burst: it drops instead of queueing) at 2 Mbit/s of
    frames on a 10 Mbit/s path: losses of >= 20 % at a steady delivery rate over 4+ rounds,
    twice, make BBR use the long-term rate (lt_use_bw), ~1.91 Mbit/s of payload, pacing gain 1."""
    from simsock import TBF
    sim = Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Mbit", delay="20ms", ab={"qdisc": TBF(rate="2Mbit", burst=3028, limit=3028)})
    box = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        while await c.recv(65536):
            pass

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"bbr")
        box["conn"] = s
        await s.connect(("b", 80))
        while True:
            await s.send(b"x" * 65536)

    b.spawn(server)
    a.spawn(client)
    sim.run(until=1.5)
    ops = box["conn"].conn.cc
    assert ops.lt_use_bw and ops.mode_name == "PROBE_BW" and ops.pacing_gain == 256
    lt_bps = ops.lt_bw * MSS * 8 * 1_000_000 / (1 << 24)
    assert 1.8e6 < lt_bps < 2.05e6, lt_bps


def test_bbr_state_changes_are_traced():
    """With event tracing on, each BBR state change is a ``tcp_cc_state`` event."""
    sim, left, right, _ = dumbbell(n_left=1, n_right=1, seed=1, queue=100)

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5001))
        ls.listen()
        c, _ = await ls.accept()
        while await c.recv(65536):
            pass

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"bbr")
        await s.connect(("right1", 5001))
        while True:
            await s.send(b"x" * 65536)

    right[0].spawn(server)
    left[0].spawn(client)
    sim.run(until=1.0)
    events = [r for r in sim.trace.records("event") if r.get("kind") == "tcp_cc_state"]
    assert [(e["fields"]["old"], e["fields"]["new"]) for e in events][:3] == [
        ("STARTUP", "STARTUP"), ("STARTUP", "DRAIN"), ("DRAIN", "PROBE_BW")]


def test_tcp_info_shows_bbrs_pacing_and_delivery_rate(bbr_run):
    """getsockopt(TCP_INFO)'s pacing_rate is BBR's own, delivery_rate the rate sampler's (about
    the bottleneck's 10 Mbit/s of payload), delivered tp->delivered + the SYN."""
    from simsock.tcp.info import tcp_info
    conn = bbr_run["conn"]
    info = tcp_info(conn, 6_000_000_000)
    assert info["pacing_rate"] == conn.tp.pacing_rate
    assert 1.1e6 < info["delivery_rate"] < 1.26e6           # bytes/s of payload
    assert info["delivered"] == conn.tp.delivered + 1


@pytest.mark.parametrize("first, then", [("cubic", "bbr"), ("bbr", "cubic")])
def test_switching_algorithm_mid_transfer(first, then):
    """setsockopt(TCP_CONGESTION) on an established, busy connection re-initialises the new
    module (tcp_reinit_congestion_control); the transfer completes. A socket that was BBR stays
    paced (sk_pacing_status never returns to NONE)."""
    sim = Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Mbit", delay="5ms", queue=50)
    box = {"got": 0}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        while d := await c.recv(65536):
            box["got"] += len(d)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, first.encode())
        await s.connect(("b", 80))
        box["conn"] = s.conn
        await s.sendall(b"x" * 500_000)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, then.encode())
        box["name"] = s.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)
        await s.sendall(b"x" * 500_000)
        s.close()

    b.spawn(server)
    a.spawn(client)
    sim.run(until=10)
    conn = box["conn"]
    assert box["got"] == 1_000_000 and box["name"] == then.encode().ljust(16, b"\0")
    assert conn.cc.name == then
    assert conn.pacing_on == ("bbr" in (first, then))


_BBR_WORLD = """
import hashlib, json
from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, TBF
from simsock.constants import TCP_CONGESTION
from models.topologies import dumbbell
sim, left, right, _ = dumbbell(n_left=2, n_right=2, seed=7, queue=60)
async def server(k):
    ls = k.socket(AF_INET, SOCK_STREAM); ls.bind(("0.0.0.0", 5001)); ls.listen()
    c, _ = await ls.accept()
    while await c.recv(65536):
        pass
def client(i):
    async def run(k):
        s = k.socket(AF_INET, SOCK_STREAM); s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"bbr")
        await s.connect((f"right{i}", 5001))
        while True:
            await s.send(b"x" * 65536)
    return run
for i in (1, 2):
    right[i - 1].spawn(server); left[i - 1].spawn(client(i))
sim.run(until=1.5)
h = hashlib.sha256()
for r in sim.trace.records():
    h.update(json.dumps(r, sort_keys=True, default=str).encode())
print(h.hexdigest())
"""


def test_bbr_trace_identical_across_processes_and_hash_seeds():
    """Two BBR flows sharing a bottleneck (random starting gain phases, pacing timers): the
    whole trace is byte-identical in two processes with different PYTHONHASHSEED."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    digests = set()
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(root))
        out = subprocess.run([sys.executable, "-c", _BBR_WORLD], env=env, capture_output=True, text=True,
                             timeout=300, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


def test_a_profile_naming_an_unknown_algorithm_is_refused_at_once():
    import dataclasses

    from simsock.profiles import LINUX
    with pytest.raises(ValueError, match="tcp_congestion_control 'vegas'"):
        Simulation(profile=dataclasses.replace(LINUX, tcp_congestion_control="vegas"))
