"""The conformance harness: one world, run on the simulator and on real Linux, compared.

``check_scenario(world_fn)`` runs ``world_fn`` on both kernels (:func:`simsock.compare.run_both`),
normalises both syscall traces and asserts that :func:`simsock.compare.compare` finds no
difference; the failure message lists every difference in words.

Fixtures: with ``SIMSOCK_RECORD_FIXTURES=1`` the real trace is written to
``fixtures/<scenario>.jsonl``. When a fixture exists, the simulator is also compared against
it, so that the simulator's side of the comparison runs on machines that are not Linux
(:func:`check_against_fixture` does only that part).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from simsock.compare import compare, run_both
from simsock.trace import read_jsonl

FIXTURES = Path(__file__).parent / "fixtures"
ON_LINUX = sys.platform == "linux"
needs_linux = pytest.mark.skipif(not ON_LINUX, reason="the real kernel side needs Linux sockets")


def _name(world_fn, name):
    return name or getattr(world_fn, "scenario", None) or world_fn.__name__


def _fail(diffs, against):
    lines = "\n".join(f"  - {d}" for d in diffs)
    pytest.fail(f"the simulator disagrees with {against} in {len(diffs)} thread(s):\n{lines}", pytrace=False)


def run_sim(world_fn, until=2.0, seed=1):
    import simsock
    from simsock.compare import _add_host_events

    sim = simsock.Simulation(seed=seed)
    world_fn(sim)
    sim.run(until=until)
    _add_host_events(sim)
    return sim.trace


def check_against_fixture(world_fn, until=2.0, tolerant_calls=None, *, name=None, sim_trace=None) -> bool:
    """Compare the simulator with the recorded real trace; False when there is no fixture."""
    path = FIXTURES / f"{_name(world_fn, name)}.jsonl"
    if not path.exists():
        return False
    if sim_trace is None:
        sim_trace = run_sim(world_fn, until)
    diffs = compare(sim_trace, read_jsonl(path), tolerant_calls, names=("sim", f"fixture {path.name}"))
    if diffs:
        _fail(diffs, f"the recorded fixture {path.name}")
    return True


REAL_ATTEMPTS = 3


def _run_real(world_fn, until):
    from simsock.real import RealWorld
    real = RealWorld(seed=1)
    world_fn(real)
    real.run(until=until, unfinished="stop")
    return real.trace


def check_scenario(world_fn, until=2.0, tolerant_calls=None, *, name=None):
    """Run ``world_fn`` on both kernels and assert their normalised syscall traces agree."""
    scenario = _name(world_fn, name)
    if not ON_LINUX:
        if not check_against_fixture(world_fn, until, tolerant_calls, name=scenario):
            pytest.skip("no real Linux here and no recorded fixture for this scenario")
        return
    sim_trace, real_trace = run_both(world_fn, until)
    diffs = compare(sim_trace, real_trace, tolerant_calls, names=("sim", "real"))
    # Real threads on a loaded machine can be scheduled late (a waiter not yet in epoll_wait
    # when the datagram comes, so a different thread reports it): the real side is run again,
    # up to REAL_ATTEMPTS times in all. A simulator that disagrees with Linux fails every attempt.
    for _ in range(REAL_ATTEMPTS - 1):
        if not diffs:
            break
        real_trace = _run_real(world_fn, until)
        diffs = compare(sim_trace, real_trace, tolerant_calls, names=("sim", "real"))
    if os.environ.get("SIMSOCK_RECORD_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        real_trace.to_jsonl(FIXTURES / f"{scenario}.jsonl")
    if diffs:
        _fail(diffs, "real Linux")
    check_against_fixture(world_fn, until, tolerant_calls, name=scenario, sim_trace=sim_trace)


# -- helpers for scenario programs ---------------------------------------------------------
def free_port(kind=socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (an ephemeral one, so normalisation names it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attempt(fn, *args):
    """Call ``fn``; an OSError is returned instead of raised (the trace records it anyway)."""
    try:
        return fn(*args)
    except OSError as e:
        return e


async def attempt_async(fn, *args):
    try:
        return await fn(*args)
    except OSError as e:
        return e


def one_host(*programs, name=None):
    """A world of one host ``a`` running ``programs``; the world function is named after the scenario."""
    def world(w):
        h = w.add_host("a")
        for p in programs:
            h.spawn(p)
    world.scenario = name
    return world
