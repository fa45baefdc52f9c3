"""Scale figures for docs/performance.md: memory per connection and per traced event, cost over time.

- memory per TCP connection: the c10k world (``C`` clients, two threads each, one epoll
  server), run until every client is connected and has sent a few updates; Python memory
  (tracemalloc) per connection, both ends, their threads and buffers included;
- memory per traced event: udp_blast with tracing on minus tracing off, per trace record;
- cost over simulated time: the c10k world, CPU per update in each simulated second (a
  flat line means no per-run state grows with time).

    python benchmarks/scale.py [--clients 2000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workloads import udp


def c10k_world(clients: int):
    import simsock
    from models.clients import game_client, new_record
    from models.servers_readiness import epoll_et_server, new_server_record
    sim = simsock.Simulation(seed=1, trace=False)
    server = sim.add_host("server", cores=1)
    hosts = sim.add_host("clients", cores=8)
    sim.add_link(server, hosts, rate="10Gbit", delay="1ms")
    srec, crec = new_server_record(), new_record()
    server.spawn(partial(epoll_et_server, record=srec, size=100, backlog=4096), 7200, name="epoll-et")
    for i in range(clients):
        hosts.spawn(partial(game_client, period=0.1, size=100, start_delay=0.01 + i / clients, record=crec),
                    ("server", 7200), name=f"c{i}")
    return sim, crec


def memory_per_connection(clients: int) -> dict:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    sim, crec = c10k_world(clients)
    built = tracemalloc.get_traced_memory()[0]
    sim.run(until=1.5)
    gc.collect()
    ran = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"clients": clients, "connected": crec["connected"], "build_per_client": (built - base) / clients,
            "per_connection": (ran - base) / clients}


def memory_per_trace_record(n: int) -> dict:
    import simsock
    out = {}
    for trace in (False, True):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        made = []
        original = simsock.Simulation.__init__

        def init(self, *a, **k):
            original(self, *a, **k)
            made.append(self)
        simsock.Simulation.__init__ = init
        try:
            udp(str(n), "1" if trace else "0")
        finally:
            simsock.Simulation.__init__ = original
        gc.collect()
        out[trace] = (tracemalloc.get_traced_memory()[0] - base, len(made[0].trace))
        tracemalloc.stop()
        made.clear()                      # the simulation goes before the next pass starts
    extra = out[True][0] - out[False][0]
    return {"records": out[True][1], "bytes_per_record": extra / max(1, out[True][1]),
            "records_per_datagram": out[True][1] / n}


def cost_over_time(clients: int, seconds: int) -> list:
    sim, crec = c10k_world(clients)
    rows = []
    for s in range(1, seconds + 1):
        sent0, c0 = crec["sent"], time.process_time()
        sim.run(until=float(s))
        rows.append((s, crec["sent"] - sent0, (time.process_time() - c0) / max(1, crec["sent"] - sent0) * 1e6))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--datagrams", type=int, default=20_000)
    args = ap.parse_args()
    m = memory_per_connection(args.clients)
    print(f"memory per TCP connection (c10k world, {m['clients']} clients, {m['connected']} connected, both ends, "
          f"2 client threads each): {m['per_connection'] / 1024:.1f} KiB of Python objects "
          f"({m['build_per_client'] / 1024:.1f} KiB of it before the run: threads, coroutines, k)")
    t = memory_per_trace_record(args.datagrams)
    print(f"memory per trace record (udp_blast, trace on - off): {t['bytes_per_record']:.0f} bytes, "
          f"{t['records_per_datagram']:.1f} records per datagram")
    print(f"cost over simulated time (c10k, {args.clients} clients; second, updates, us CPU per update):")
    for s, n, us in cost_over_time(args.clients, args.seconds):
        print(f"  {s:>3} {n:>9,} {us:8.1f}")


if __name__ == "__main__":
    main()
