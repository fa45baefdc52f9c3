"""TBF (simsock/net/tbf.py) against ``tc qdisc add dev X root tbf`` on a real veth pair.

Two namespaces made by this test (``veth_pair`` in conftest.py), a veth pair between them,
the tbf on the sender's end. A UDP blast
goes from A to B; what B receives, and at what rate, is compared with the same world in the
simulator (a 10 Gbit/s link whose a->b direction has the same TBF). Bounded: a few thousand
datagrams, at most a few seconds; the namespaces are deleted afterwards.
"""

from __future__ import annotations

import json
import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM
from simsock.net.tbf import TBF

pytestmark = pytest.mark.real

_SENDER = r"""
import socket, sys, time, json
dst, n, size, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
ok = 0
start = time.monotonic()
for i in range(n):
    if gap:
        while time.monotonic() < start + i * gap:
            pass
    try:
        s.sendto(b"x" * size, (dst, 9)); ok += 1
    except OSError:
        pass
print(json.dumps({"sent": ok, "duration": time.monotonic() - start}))
"""

_RECEIVER = r"""
import socket, struct, sys, json
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # arrival times from the kernel
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.bind(("0.0.0.0", 9))
print("ready", flush=True)
s.settimeout(float(sys.argv[1]))
times = []
try:
    while True:
        _, anc, _, _ = s.recvmsg(65536, 64)
        sec, nsec = struct.unpack("qq", anc[0][2][:16])
        times.append(sec + nsec / 1e9)
except socket.timeout:
    pass
print(json.dumps({"got": len(times), "first": times[0] if times else 0, "last": times[-1] if times else 0}))
"""


@pytest.fixture
def veth(veth_pair):
    """Run a blast: tbf ``tc_opts`` on A's end, ``n`` datagrams of ``size`` every ``gap`` s."""
    v = veth_pair

    def run(tc_opts: str, n: int, size: int, gap: float, wait: float) -> dict:
        v.tc("tbf " + tc_opts)
        recv = v.popen(v.b, _RECEIVER, wait)
        try:
            assert recv.stdout.readline().strip() == "ready"
            sent = v.python(v.a, _SENDER, v.ip_b, n, size, gap)
            out = json.loads(recv.stdout.readline())
        finally:
            recv.wait(timeout=60)
        out.update(json.loads(sent.stdout))
        q = v.qdisc_stats()
        out.update(drops=q.get("drops"), tc_sent=q.get("packets"))
        return out
    return run


def _sim(tc_opts: str, n: int, size: int, gap: float) -> dict:
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Gbit", delay="0ms", ab={"qdisc": TBF.from_tc(tc_opts)})
    times = []

    async def rx(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 1 << 22)
        s.bind(("0.0.0.0", 9))
        while True:
            await s.recv(65536)
            times.append(k.now)

    async def tx(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_SNDBUF, 1 << 22)
        start = k.now
        for i in range(n):
            if gap and k.now < start + i * gap:
                await k.sleep(start + i * gap - k.now)
            await s.sendto(b"x" * size, ("b", 9))

    b.spawn(rx)
    a.spawn(tx)
    sim.run(until=n * gap + 30)
    q = sim.links[0].forward.qdisc
    return {"got": len(times), "first": times[0] if times else 0, "last": times[-1] if times else 0,
            "drops": q.dropped, "tc_sent": q.dequeued}


def test_blast_into_tbf_delivers_burst_plus_limit(veth):
    """2000 datagrams of 1000 bytes at once into ``rate 1mbit burst 10kb limit 30000``: the
    bucket lets ~9 frames through, the 30000-byte backlog holds 28 more, the rest are dropped
    (plus what the tokens of the blast's few milliseconds add on the real side)."""
    opts = "rate 1mbit burst 10kb limit 30000"
    real = veth(opts, 2000, 1000, 0.0, 1.5)
    sim = _sim(opts, 2000, 1000, 0.0)
    assert sim["got"] == sim["tc_sent"] == 2000 - sim["drops"]
    assert real["got"] == real["tc_sent"] == 2000 - real["drops"]
    slack = 1 + int(real["duration"] * 125_000 / 1042)     # tokens earned while the real blast ran
    assert sim["got"] <= real["got"] <= sim["got"] + slack, (real, sim)
    assert sim["got"] == 10240 // 1042 + 30000 // 1042


def test_paced_udp_through_tbf_leaves_at_the_token_rate(veth):
    """A UDP stream at ~2x the shaped rate for 1.5 s through ``rate 2mbit burst 5kb limit
    20000``: what arrives after the initial burst arrives at 2 Mbit/s of Ethernet frames
    (IP size + 14), on both kernels; drops are the excess."""
    opts = "rate 2mbit burst 5kb limit 20000"
    n, size, gap = 750, 1000, 0.002                # 4 Mbit/s offered for 1.5 s
    real = veth(opts, n, size, gap, 1.5)
    sim = _sim(opts, n, size, gap)
    frame = size + 28 + 14
    for side in (real, sim):
        burst_frames = 5120 // frame
        rate = (side["got"] - 1 - burst_frames) * frame * 8 / (side["last"] - side["first"])
        assert rate == pytest.approx(2e6, rel=0.03), (side, rate)
        assert side["got"] + side["drops"] == n
    assert abs(real["got"] - sim["got"]) <= max(5, sim["got"] // 25), (real, sim)


def test_real_backend_builds_the_same_tbf_from_a_world():
    """``RealWorld(namespaces=True).add_link(a, b, ab={"qdisc": TBF(...)})`` puts that tbf on
    a's end only, with the same rate, burst and limit (what ``tc -s qdisc`` reports), so one
    world script shapes both kernels alike."""
    import subprocess as sp

    from simsock.real import RealWorld
    from simsock.real.netns import namespaces_available
    ok, why = namespaces_available()
    if not ok:
        pytest.skip(why)
    w = RealWorld(namespaces=True)
    try:
        a, b = w.add_host("a"), w.add_host("b")
        link = w.add_link(a, b, ab={"qdisc": TBF.from_tc("rate 1mbit burst 10kb limit 30000")})
        shown = {}
        for h in (a, b):
            r = sp.run(["ip", "netns", "exec", h.namespace, "tc", "-j", "qdisc", "show", "dev", link["dev"]],
                       capture_output=True, text=True, timeout=10, check=True)
            shown[h.name] = json.loads(r.stdout)[0]
        assert shown["a"]["kind"] == "tbf"
        opts = shown["a"]["options"]
        # tc shows the limit as latency: (limit - burst) / rate, in microseconds
        assert (opts["rate"], opts["burst"], opts["lat"]) == (125000, 10240, (30000 - 10240) * 10**6 // 125000)
        assert shown["b"]["kind"] != "tbf"
        with pytest.raises(ValueError, match="only a simsock.TBF"):
            w.add_link(a, w.add_host("c"), ab={"qdisc": simsock.DropTail(packets=10)})
    finally:
        w.close()


_TIMES = r"""
import json, socket, struct, sys
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # the kernel's arrival time of each datagram
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.bind(("0.0.0.0", 9))
print("ready", flush=True)
s.settimeout(float(sys.argv[1]))
times = []
try:
    while True:
        _, anc, _, _ = s.recvmsg(65536, 64)
        sec, nsec = struct.unpack("qq", anc[0][2][:16])
        times.append(sec + nsec / 1e9)
except socket.timeout:
    pass
print(json.dumps([t - times[0] for t in times]))
"""


def test_peakrate_spaces_the_burst_as_tc_does(veth_pair):
    """``rate 1mbit burst 10kb limit 30000 peakrate 4mbit mtu 1600``: a blast's first frames
    leave one per frame/peakrate (1042 B at 4 Mbit/s: 2.08 ms; the second sooner, as the peak
    bucket starts full) while the 10 KB bucket lasts,
    then at 1 Mbit/s (8.3 ms); the same on both kernels (real arrival times from SO_TIMESTAMPNS,
    not from when the reader got to run)."""
    opts = "rate 1mbit burst 10kb limit 30000 peakrate 4mbit mtu 1600"
    v = veth_pair
    v.tc("tbf " + opts)
    rx = v.popen(v.b, _TIMES, 1.0)
    try:
        assert rx.stdout.readline().strip() == "ready"
        v.python(v.a, _SENDER, v.ip_b, 200, 1000, 0.0)
        real = json.loads(rx.stdout.readline())
    finally:
        rx.wait(timeout=60)

    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Gbit", ab={"qdisc": TBF.from_tc(opts)})
    times = []

    async def recv(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9))
        while True:
            await s.recv(65536)
            times.append(k.now)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(200):
            await s.sendto(b"x" * 1000, ("b", 9))

    b.spawn(recv)
    a.spawn(send)
    sim.run(until=5)
    simulated = [t - times[0] for t in times]
    # the peak bucket starts with mtu (1600 B): the 2nd frame waits only for 2 x 1042 - 1600 B
    assert simulated[1] == pytest.approx((2 * 1042 - 1600) * 8 / 4e6, rel=1e-3)
    for arrivals in (real, simulated):
        early = sorted(y - x for x, y in zip(arrivals[1:9], arrivals[2:10]))
        late = sorted(y - x for x, y in zip(arrivals[-11:], arrivals[-10:]))
        assert early[4] == pytest.approx(1042 * 8 / 4e6, rel=0.1), early      # medians
        assert late[5] == pytest.approx(1042 * 8 / 1e6, rel=0.1), late
    assert abs(len(real) - len(simulated)) <= 2, (len(real), len(simulated))
