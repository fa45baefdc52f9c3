"""Classic topologies: dumbbell, star and chain.

Each helper builds (or extends) a :class:`simsock.Simulation` and returns it with the nodes
a study needs. Names are stable, so channels have predictable names for monitors and
pictures (``"r1->r2"`` is a dumbbell's bottleneck, left to right).

- :func:`dumbbell` — ``left1..leftN`` — ``r1`` ==bottleneck== ``r2`` — ``right1..rightM``:
  the standard picture of flows sharing one congested link.
- :func:`star` — ``h1..hN`` around one router ``r1``.
- :func:`chain` — ``src`` — ``r1`` — ... — ``rK`` — ``dst``: a multi-hop path.

Defaults: access links 100 Mbit/s and 1 ms, the bottleneck 10 Mbit/s and 10 ms.

A helper given ``sim=None`` makes the simulation with ``seed``, ``profile`` and ``trace``,
whose defaults are :class:`simsock.Simulation`'s (and :func:`simsock.topology.from_graph`'s):
``trace=True`` records every syscall, packet and event. A run that does not read the trace
should pass ``trace=False`` (or the categories it reads, e.g. ``trace=("event",)``): at
thousands of packets a second the packet records cost time and memory. Given an existing
``sim``, the helper adds to it and leaves its trace as it is (``trace`` must then be left
out).
"""

from __future__ import annotations

import simsock

__all__ = ["dumbbell", "star", "chain"]


def _sim(sim, seed: int, profile, trace) -> simsock.Simulation:
    if sim is None:
        return simsock.Simulation(seed=seed, profile=profile, trace=True if trace is None else trace)
    if not isinstance(sim, simsock.Simulation):
        raise TypeError(f"expected a simsock.Simulation or None, got {type(sim).__name__}")
    if trace is not None:
        raise ValueError("trace= applies only when the helper makes the simulation (sim=None); this "
                         "simulation's trace was chosen when it was made: Simulation(trace=...)")
    return sim


def _count(n, what: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {n!r}")
    return n


def dumbbell(sim=None, n_left: int = 2, n_right: int = 2, *, access_rate="100Mbit", access_delay="1ms",
             bottleneck_rate="10Mbit", bottleneck_delay="10ms", qdisc=None, queue=None, seed: int = 1,
             profile="linux", trace=None):
    """``n_left`` hosts on router ``r1``, ``n_right`` hosts on router ``r2``, and the bottleneck
    link ``r1``–``r2``.

    ``qdisc`` (a callable returning a new queue discipline) and ``queue`` (packet limit of
    the default drop-tail) apply to the bottleneck's two directions; access links keep the
    profile's default queue (they are faster and do not congest). ``seed``, ``profile``,
    ``trace``: for a new simulation (``sim=None``; ``trace`` default: everything, as
    ``Simulation``), see the module docstring.

    Returns ``(sim, left_hosts, right_hosts, (r1, r2))``.
    """
    sim = _sim(sim, seed, profile, trace)
    _count(n_left, "n_left")
    _count(n_right, "n_right")
    r1 = sim.add_router("r1")
    r2 = sim.add_router("r2")
    left = [sim.add_host(f"left{i}") for i in range(1, n_left + 1)]
    right = [sim.add_host(f"right{i}") for i in range(1, n_right + 1)]
    sim.add_link(r1, r2, rate=bottleneck_rate, delay=bottleneck_delay, qdisc=qdisc, queue=queue)
    for h in left:
        sim.add_link(h, r1, rate=access_rate, delay=access_delay)
    for h in right:
        sim.add_link(r2, h, rate=access_rate, delay=access_delay)
    return sim, left, right, (r1, r2)


def star(n: int = 4, *, rate="100Mbit", delay="1ms", qdisc=None, queue=None, sim=None, seed: int = 1,
         profile="linux", trace=None):
    """``n`` hosts ``h1..hN`` each linked to one router ``r1`` (whose output ports use
    ``qdisc``/``queue``); ``seed``/``profile``/``trace`` as for :func:`dumbbell`. Returns
    ``(sim, hosts, router)``."""
    sim = _sim(sim, seed, profile, trace)
    _count(n, "n")
    router = sim.add_router("r1", qdisc=qdisc, queue=queue)
    hosts = [sim.add_host(f"h{i}") for i in range(1, n + 1)]
    for h in hosts:
        sim.add_link(h, router, rate=rate, delay=delay)
    return sim, hosts, router


def chain(n_routers: int = 3, *, rate="10Mbit", delay="5ms", access_rate="100Mbit", access_delay="1ms",
          qdisc=None, queue=None, sim=None, seed: int = 1, profile="linux", trace=None):
    """``src`` — ``r1`` — ... — ``rK`` — ``dst``: router-to-router links of ``rate``/``delay``
    (queues ``qdisc``/``queue`` on every router port), access links of
    ``access_rate``/``access_delay``; ``seed``/``profile``/``trace`` as for :func:`dumbbell`.
    Returns ``(sim, (src, dst), routers)``."""
    sim = _sim(sim, seed, profile, trace)
    _count(n_routers, "n_routers")
    routers = [sim.add_router(f"r{i}", qdisc=qdisc, queue=queue) for i in range(1, n_routers + 1)]
    src = sim.add_host("src")
    dst = sim.add_host("dst")
    sim.add_link(src, routers[0], rate=access_rate, delay=access_delay)
    for a, b in zip(routers, routers[1:]):
        sim.add_link(a, b, rate=rate, delay=delay)
    sim.add_link(routers[-1], dst, rate=access_rate, delay=access_delay)
    return sim, (src, dst), routers
