"""Benchmark: the C10K problem — 10,000 game clients on one edge-triggered epoll server.

Each client (models.clients.game_client, two threads: sender and echo reader) connects to
the ``server`` host, spread over the first second, and sends a 100-byte update every
100 ms; the server is models.servers_readiness.epoll_et_server on one thread, one core.
Clients live on one ``clients`` host (8 cores) linked to the server at 10 Gbit/s, 1 ms.
Runs ``seconds`` of simulated time (5 by default) with tracing off and prints wall time,
process CPU time (what to compare on a shared machine), SimPy events, updates echoed, peak
RSS, and the server's CPU utilisation.

Targets (issue 5): under 60 s wall and under 2 GiB on a 2-core machine.

    python benchmarks/c10k.py [clients] [seconds]
"""

from __future__ import annotations

import os
import resource
import sys
import time
from functools import partial

import simsock
from models.clients import game_client, new_record
from models.servers_readiness import epoll_et_server, new_server_record

PORT = 7200


def run(clients: int, seconds: float) -> dict:
    t0 = time.perf_counter()
    c0 = time.process_time()
    sim = simsock.Simulation(seed=1, trace=False)
    server = sim.add_host("server", cores=1)
    hosts = sim.add_host("clients", cores=8)
    sim.add_link(server, hosts, rate="10Gbit", delay="1ms")
    srec = new_server_record()
    crec = new_record()
    server.spawn(partial(epoll_et_server, record=srec, size=100, backlog=4096), PORT, name="epoll-et")
    for i in range(clients):
        hosts.spawn(partial(game_client, period=0.1, size=100, start_delay=0.01 + i / clients, record=crec),
                    ("server", PORT), name=f"c{i}")
    build = time.perf_counter() - t0
    sim.run(until=seconds)
    wall = time.perf_counter() - t0
    cpu_s = time.process_time() - c0
    events = next(sim.env._eid)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = server.cpu.stats()
    return {"wall_s": wall, "cpu_s": cpu_s, "build_s": build, "events": events, "rss_mib": rss_kib / 1024,
            "connected": crec["connected"], "sent": crec["sent"], "received": crec["received"],
            "server_updates": srec["updates"], "server_util": cpu["utilisation"],
            "rtt_mean_ms": crec["rtt_sum_ns"] / crec["received"] / 1e6 if crec["received"] else float("nan"),
            "rtt_max_ms": crec["rtt_max_ns"] / 1e6, "errors": len(crec["errors"])}


def main() -> None:
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    r = run(clients, seconds)
    from simsock.profiles import LINUX
    print(f"c10k: {clients} game clients (100 B every 100 ms) -> one epoll-ET server on one core, "
          f"{seconds:g} s simulated, TCP {LINUX.tcp_congestion_control} (the linux profile's default)")
    print(f"  wall {r['wall_s']:.1f} s (building the world {r['build_s']:.1f} s), process CPU {r['cpu_s']:.1f} s, "
          f"{r['events']:,} SimPy events ({r['events'] / r['wall_s']:,.0f} per wall-second), "
          f"peak RSS {r['rss_mib']:,.0f} MiB")
    print(f"  {r['connected']} connected, {r['sent']:,} updates sent, {r['received']:,} echoed back "
          f"(server counted {r['server_updates']:,}), {r['errors']} client errors")
    print(f"  round trip mean {r['rtt_mean_ms']:.2f} ms, max {r['rtt_max_ms']:.2f} ms; "
          f"server core busy {r['server_util']:.1%}")
    print(f"  {r['events'] / max(1, r['sent']):.2f} SimPy events per update (both directions, ACKs included), "
          f"{r['cpu_s'] / max(1, r['sent']) * 1e6:.0f} us of CPU per update; "
          f"load average at the end {os.getloadavg()[0]:.1f} (a shared machine slows the wall time)")


if __name__ == "__main__":
    main()
