"""Benchmark: one bulk TCP flow over a 100 Mbit/s, 10 ms path.

The bottleneck queue holds a bandwidth-delay product (100 Mbit/s x 20 ms RTT = 250 kB,
about 170 full-size packets). Prints data segments per wall-second, SimPy events per data
segment (ACKs included) and link utilisation, with tracing off. ``nosack`` runs both hosts
with net.ipv4.tcp_sack=0 (NewReno recovery), ``rfc6675`` with tcp_recovery=0 (SACK with
DupThresh loss marking instead of RACK).

    python benchmarks/tcp_bulk.py [seconds-of-simulated-time] [congestion] [sack|nosack|rfc6675]
"""

from __future__ import annotations

import dataclasses
import sys
import time

import simsock
from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, TCP_CONGESTION


def run(sim_seconds: float, congestion: str, mode: str = "sack") -> dict:
    from simsock.profiles import get_profile
    profile = get_profile("linux")
    if mode == "nosack":
        profile = dataclasses.replace(profile, tcp_sack=False)
    elif mode == "rfc6675":
        profile = dataclasses.replace(profile, tcp_recovery=0)
    sim = simsock.Simulation(seed=1, trace=False, profile=profile)
    a = sim.add_host("sender")
    b = sim.add_host("receiver")
    bdp_packets = int(100e6 * 0.020 / 8 / 1500)
    link = sim.add_link(a, b, rate="100Mbit", delay="10ms", queue=bdp_packets)

    async def receiver(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5001))
        ls.listen()
        conn, _ = await ls.accept()
        while await conn.recv(1 << 20):
            pass

    async def sender(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, congestion.encode())
        await s.connect(("receiver", 5001))
        block = bytes(1 << 20)
        while True:
            await s.sendall(block)

    b.spawn(receiver)
    a.spawn(sender)
    t0 = time.perf_counter()
    sim.run(until=sim_seconds)
    wall = time.perf_counter() - t0
    ch = link.forward
    data_segments = ch.tx_packets
    events = next(sim.env._eid)
    return {
        "wall_s": wall,
        "segments_per_wall_s": data_segments / wall,
        "events_per_segment": events / data_segments,
        "utilisation": ch.busy_ns / sim.env.now,
        "goodput_mbit": sum(s.stats().get("bytes_received", 0) for s in b.sockets()) * 8 / sim_seconds / 1e6,
        "retransmits": sum(s.stats().get("retransmits", 0) for s in a.sockets()),
        "rto_count": sum(s.stats().get("rto_count", 0) for s in a.sockets()),
        "recoveries": sum(s.stats().get("recoveries", 0) for s in a.sockets()),
    }


def main() -> None:
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    cc = sys.argv[2] if len(sys.argv) > 2 else "cubic"
    mode = sys.argv[3] if len(sys.argv) > 3 else "sack"
    if mode not in ("sack", "nosack", "rfc6675"):
        sys.exit(f"tcp_bulk: third argument must be sack, nosack or rfc6675, not {mode!r}")
    r = run(secs, cc, mode)
    print(f"tcp_bulk: one {cc} flow ({mode}), 100 Mbit/s, 10 ms one-way, BDP queue, {secs:g} s simulated")
    print(f"  {r['segments_per_wall_s']:,.0f} data segments per wall-second, "
          f"{r['events_per_segment']:.2f} SimPy events per data segment (its ACK included)")
    print(f"  link utilisation {r['utilisation']:.1%}, goodput {r['goodput_mbit']:.1f} Mbit/s, "
          f"{r['retransmits']} retransmissions, {r['recoveries']} recoveries, "
          f"{r['rto_count']} RTOs, wall {r['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
