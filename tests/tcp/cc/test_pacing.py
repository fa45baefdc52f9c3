"""TCP pacing of classic algorithms (simsock/tcp/rate.py): only when the qdisc is fq.

Linux paces a cubic or reno flow only under sch_fq (``net.core.default_qdisc=fq``), at
``tcp_update_pacing_rate``'s rate: 200 % of cwnd x mss / srtt while cwnd < ssthresh / 2
(``tcp_pacing_ss_ratio``), 120 % after (``tcp_pacing_ca_ratio``). With the default
pfifo_fast a flight leaves back to back.
"""

from __future__ import annotations

import dataclasses

from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, Simulation
from simsock.constants import TCP_CONGESTION
from simsock.profiles import LINUX

MSS = 1448


def _flight(default_qdisc: str):
    """Send times of the first 60 full data segments of a cubic flow over a 10 Gbit/s, 20 ms path."""
    sim = Simulation(seed=1, profile=dataclasses.replace(LINUX, default_qdisc=default_qdisc))
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Gbit", delay="20ms")
    box = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        while await c.recv(1 << 16):
            pass

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        box["conn"] = s
        await s.connect(("b", 80))
        await s.sendall(b"x" * 200 * MSS)

    b.spawn(server)
    a.spawn(client)
    sim.run(until=0.5)
    sends = [r["t"] for r in sim.trace.packets("enqueue") if r["where"] == "a->b" and r["size"] == MSS + 52]
    return sends, box["conn"].conn


def test_without_fq_a_cubic_flight_leaves_back_to_back():
    sends, conn = _flight("pfifo_fast")
    second = sends[10:30]                       # the second round: 20 segments after 10 ACKs
    assert second[-1] - second[0] < 100_000     # within 0.1 ms (~1.2 us per segment at 10 Gbit/s)
    assert not conn.pacing_on and conn.tp.pacing_rate == 0


def test_with_fq_cubic_is_paced_at_twice_its_rate_in_slow_start():
    """The second round (after the unpaced initial window) leaves in bursts of 2 segments
    (tcp_tso_autosize at this rate) spaced 2 x MSS / pacing rate, i.e. spread over about half
    the RTT (200 % of cwnd per RTT), instead of at once."""
    sends, conn = _flight("fq")
    assert conn.pacing_on
    assert sends[:10] == [sends[0]] * 10         # the first 10 segments are not paced
    second = [t for t in sends if 35_000_000 < t - sends[0] < 75_000_000]
    assert len(second) >= 10
    assert all(second[i] == second[i + 1] for i in range(0, len(second) - 1, 2))
    gaps = [y - x for x, y in zip(second[::2], second[2::2])]
    # 2 x 1448 bytes at 200 % of 11..20 segments per 40 ms: 2.0 to 3.7 ms per burst
    assert all(1_900_000 < g < 3_700_000 for g in gaps), gaps
    # the rate it paced at is tcp_update_pacing_rate's formula for the state it ended in
    tp = conn.tp
    srtt_us = conn.rtt.srtt // 1000
    ratio = 200 if tp.snd_cwnd < tp.snd_ssthresh // 2 else 120
    assert tp.pacing_rate == MSS * 10_000 * ratio * max(tp.snd_cwnd, len(conn.scoreboard.records)) // srtt_us
