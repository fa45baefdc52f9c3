"""Benchmark: open-loop UDP over one link, simsock side by side with ns.py.

A sender sends ``N`` datagrams of 1000 bytes at a fixed interval (800 Mbit/s offered)
over a 1 Gbit/s, 1 ms link to a receiver that reads them with blocking ``recv``. Prints
datagrams per wall-second and SimPy events per datagram, with tracing off and on.

ns.py (``pip install ns.py``) is run on the same machine when it can be imported, by this
interpreter or by the one named in the NSPY_PYTHON environment variable, with the
equivalent world: DistPacketGenerator -> Port(1 Gbit/s) -> Wire(1 ms) -> PacketSink.

    python benchmarks/udp_blast.py [N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _workloads import build_udp   # the world benchmarks/compare.py and profile.py run

SIZE = 1000
INTERVAL_S = 1e-5


def run_simsock(n: int, trace: bool) -> tuple[float, float, int]:
    sim, _, received, _ = build_udp(n, trace)     # SIZE-byte datagrams every INTERVAL_S
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    events = next(sim.env._eid)
    assert received() == n, f"received {received()} of {n}"
    return n / wall, events / n, received()


NSPY_SCRIPT = r"""
import sys, time, simpy
from ns.packet.dist_generator import DistPacketGenerator
from ns.packet.sink import PacketSink
from ns.port.port import Port
from ns.port.wire import Wire
n = int(sys.argv[1])
env = simpy.Environment()
gen = DistPacketGenerator(env, "flow_1", lambda: 1e-5, lambda: 1000, flow_id=0, size=1000 * n)
port = Port(env, rate=1e9)
wire = Wire(env, lambda: 1e-3)
sink = PacketSink(env)
gen.out = port; port.out = wire; wire.out = sink
t0 = time.perf_counter()
env.run()
wall = time.perf_counter() - t0
got = sink.packets_received[0]
print(got / wall, next(env._eid) / got, got)
"""


def run_nspy(n: int):
    candidates = []
    try:
        import ns  # noqa: F401
        candidates.append(sys.executable)
    except ImportError:
        pass
    if os.environ.get("NSPY_PYTHON"):
        candidates.append(os.environ["NSPY_PYTHON"])
    for python in candidates:
        out = subprocess.run([python, "-c", NSPY_SCRIPT, str(n)], capture_output=True, text=True, timeout=600)
        if out.returncode == 0:
            rate, events, got = out.stdout.split()
            return float(rate), float(events), int(got)
        print(f"ns.py run failed with {python}: {out.stderr.strip()[-300:]}")
    return None


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"udp_blast: {n} datagrams of {SIZE} bytes, 800 Mbit/s offered on a 1 Gbit/s 1 ms link")
    rate, events, _ = run_simsock(n, trace=False)
    print(f"  simsock (trace off): {rate:10,.0f} datagrams per wall-second, {events:.2f} SimPy events per datagram")
    rate_on, events_on, _ = run_simsock(n, trace=True)
    print(f"  simsock (trace on):  {rate_on:10,.0f} datagrams per wall-second, {events_on:.2f} SimPy events per datagram")
    ns = run_nspy(n)
    if ns is None:
        print("  ns.py: not available (pip install ns.py, or set NSPY_PYTHON to a python that has it)")
    else:
        print(f"  ns.py 0.4.3:         {ns[0]:10,.0f} packets per wall-second,   {ns[1]:.2f} SimPy events per packet")
        print(f"  simsock / ns.py (trace off): {rate / ns[0]:.2f}x")


if __name__ == "__main__":
    main()
