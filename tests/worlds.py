"""Worlds that tests in many packages build: one host, two hosts over a link, a program run
alone, a connected TCP pair.

These are plain functions rather than pytest fixtures because tests call them several times
with different parameters, from inside hypothesis tests and from other helpers.
``NO_CPU_COSTS`` is the profile for tests that pin socket and network timing exactly (the CPU
model itself is tested in tests/kernel/cpu/).
"""

from __future__ import annotations

import simsock
from simsock.profiles import without_cpu_costs

NO_CPU_COSTS = without_cpu_costs()


def one_host(name: str = "a", *, cores: int = 1, seed: int = 1, profile="linux"):
    """A simulation holding one host; returns ``(sim, host)``."""
    sim = simsock.Simulation(seed=seed, profile=profile)
    return sim, sim.add_host(name, cores=cores)


def two_hosts(*, link: bool = True, seed: int = 1, profile=NO_CPU_COSTS, **link_kw):
    """Hosts a (10.0.0.1) and b (10.0.0.2) joined by one link made with ``link_kw`` (none if
    ``link`` is false); no CPU costs unless a profile is given. Returns ``(sim, a, b)``."""
    sim = simsock.Simulation(seed=seed, profile=profile)
    a = sim.add_host("a")
    b = sim.add_host("b")
    if link:
        sim.add_link(a, b, **link_kw)
    return sim, a, b


def run_alone(program, *args, until=None, **host_kw):
    """Run ``program(k, *args)`` as the only program of :func:`one_host` (``host_kw``) until
    ``until``; returns ``(sim, thread)``. Assertions inside the program surface as
    SimulationError with the AssertionError as ``__cause__``."""
    sim, host = one_host(**host_kw)
    thread = host.spawn(program, *args)
    sim.run(until=until)
    return sim, thread


async def tcp_pair(k, port: int = 7000):
    """A connected ``(client, server)`` TCP socket pair over this host's loopback."""
    ls = k.socket()
    ls.bind(("127.0.0.1", port))
    ls.listen()
    c = k.socket()
    await c.connect(("127.0.0.1", port))
    s, _ = await ls.accept()
    ls.close()
    return c, s
