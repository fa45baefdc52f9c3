"""Benchmark: what the trace costs in memory, per traced event (tracemalloc).

Two worlds: ``udp`` (N datagrams of 8000 bytes, fragmented over a 1500-byte MTU link, read
by a receiver) and ``tcp`` (a bulk transfer of N*8000 bytes over a 100 Mbit/s link). Each runs
with the trace off, kept in RAM (the default), capped (``trace_limit``, a ring of the last
records), and streamed to a JSON Lines file (``trace_file``). For each it prints the memory
the finished simulation still holds (``tracemalloc``, measured after the run with the
simulation alive), the number of trace records, and the bytes per traced event above the
untraced run.

    python benchmarks/trace_memory.py [N]        (default N = 5000)
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
import tracemalloc

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM

SIZE = 8000


def udp_world(n: int, **trace_kw):
    sim = simsock.Simulation(seed=1, **trace_kw)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="1Gbit", delay="1ms")

    async def receiver(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 64 << 20)
        s.bind(("0.0.0.0", 9000))
        for _ in range(n):
            await s.recv(SIZE)

    async def sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(n):
            await s.sendto(bytes([i & 0xFF]) * SIZE, ("b", 9000))
            await k.sleep(100e-6)

    b.spawn(receiver)
    a.spawn(sender)
    return sim


def tcp_world(n: int, **trace_kw):
    sim = simsock.Simulation(seed=1, **trace_kw)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="100Mbit", delay="5ms")

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        while await c.recv(65536):
            pass
        c.close()

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("b", 80))
        chunk = b"x" * SIZE
        for _ in range(n):
            await s.sendall(chunk)
        s.close()

    b.spawn(server)
    a.spawn(client)
    return sim


def measure(world, n: int, **trace_kw) -> tuple[int, int, int, float]:
    """(bytes held after the run, peak bytes during it, records, wall seconds)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    sim = world(n, **trace_kw)
    sim.run()
    wall = time.perf_counter() - t0
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    held = current - base
    tracemalloc.stop()
    records = len(sim.trace) + getattr(sim.trace, "dropped", 0)
    del sim
    gc.collect()
    return held, peak - base, records, wall


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    tmp = tempfile.mkdtemp(prefix="simsock-trace-bench-")
    print(f"{'world':5} {'trace':24} {'held MiB':>9} {'peak MiB':>9} {'records':>9} {'B/event':>8} "
          f"{'wall s (under tracemalloc)':>26}")
    for name, world in (("udp", udp_world), ("tcp", tcp_world)):
        off, off_peak, _, wall_off = measure(world, n, trace=False)
        print(f"{name:5} {'off':24} {off / 2**20:9.1f} {off_peak / 2**20:9.1f} {0:9d} {'-':>8} {wall_off:26.2f}")
        modes = (("in RAM (default)", {}),
                 ("capped trace_limit=10000", {"trace_limit": 10_000}),
                 ("streamed trace_file", {"trace_file": os.path.join(tmp, f"{name}.jsonl")}))
        for label, kw in modes:
            held, peak, records, wall = measure(world, n, **kw)
            per = (held - off) / records if records else 0.0
            print(f"{name:5} {label:24} {held / 2**20:9.1f} {peak / 2**20:9.1f} {records:9d} {per:8.1f} "
                  f"{wall:26.2f}")
    print(f"(streamed files in {tmp})")


if __name__ == "__main__":
    main()
