"""Shared worlds for the completion-based I/O tests."""

from __future__ import annotations

import simsock
from simsock.kernel.thread import wait_event
from tests.worlds import run_alone


def world(cores: int = 2, profile: str = "linux", delay: str = "1ms", seed: int = 1):
    """A server host with ``cores`` cores and a client host on a 100 Mbit/s link."""
    sim = simsock.Simulation(seed=seed, profile=profile)
    server = sim.add_host("server", cores=cores)
    client = sim.add_host("client")
    sim.add_link(server, client, rate="100Mbit", delay=delay)
    return sim, server, client


def run_one(program, cores: int = 2, until=None, profile: str = "linux"):
    """Run ``program(k, out)`` alone on host h with ``cores`` cores; returns ``(out, sim)``."""
    out = {}
    sim, _ = run_alone(program, out, until=until, name="h", cores=cores, profile=profile)
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

