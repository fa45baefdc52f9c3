"""Shared worlds for the completion-based I/O tests."""

from __future__ import annotations

import simsock
from simsock.kernel.thread import wait_event


def world(cores: int = 2, profile: str = "linux", delay: str = "1ms", seed: int = 1):
    """A server host with ``cores`` cores and a client host on a 100 Mbit/s link."""
    sim = simsock.Simulation(seed=seed, profile=profile)
    server = sim.add_host("server", cores=cores)
    client = sim.add_host("client")
    sim.add_link(server, client, rate="100Mbit", delay=delay)
    return sim, server, client


def run_one(program, cores: int = 2, until=None, profile: str = "linux"):
    """Run ``program(k, out)`` on one host with ``cores`` cores; returns ``(out, sim)``."""
    sim = simsock.Simulation(seed=1, profile=profile)
    host = sim.add_host("h", cores=cores)
    out = {}
    host.spawn(program, out)
    sim.run(until=until)
    return out, sim


async def run_on_cpu(k, seconds: float) -> None:
    """Application work that keeps the thread *running* for ``seconds``: ``k.compute``
    when the CPU model is installed, else a wait marked as CPU work (which is how the
    completion port tells running from blocked)."""
    compute = getattr(k, "compute", None)
    if compute is not None:
        await compute(seconds)
        return
    ev = k._sim.env.timeout(int(round(seconds * 1e9)))
    ev.cpu_work = True
    await wait_event(ev)


async def tcp_pair(k, port: int = 7000):
    """A connected (client, server) TCP socket pair over this host's loopback."""
    ls = k.socket()
    ls.bind(("127.0.0.1", port))
    ls.listen()
    c = k.socket()
    await c.connect(("127.0.0.1", port))
    s, _ = await ls.accept()
    ls.close()
    return c, s
