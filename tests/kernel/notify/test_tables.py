"""select, poll and epoll semantics as tables, run on both kernels.

Every scenario in :mod:`tests.kernel.notify.scenarios` is a program plus the observations Linux's
rules predict for it. Each is run on the simulator and, where the OS is Linux, on the real
kernel (the same program through ``simsock.real``); both must give exactly the table.
"""

import sys

import pytest

import simsock
from tests.kernel.notify.scenarios import ALL

ON_LINUX = sys.platform == "linux"


def run_sim(prog, until=5.0):
    sim = simsock.Simulation(seed=1)
    t = sim.add_host("a").spawn(prog)
    sim.run(until=until)
    assert t.state == "exited", f"the program did not finish ({t.state})"
    return t.result


def run_real(prog, until=10.0):
    from simsock.real import RealWorld
    w = RealWorld()
    h = w.add_host("a").spawn(prog)
    w.run(until=until)
    return h.result


@pytest.mark.parametrize("name", sorted(ALL))
def test_simulator_matches_the_table(name):
    """The simulated kernel reports what Linux's rules say (see each scenario's docstring)."""
    prog, expected = ALL[name]
    assert run_sim(prog) == expected


@pytest.mark.real
@pytest.mark.skipif(not ON_LINUX, reason="the real kernel side needs Linux")
@pytest.mark.parametrize("name", sorted(ALL))
def test_real_linux_matches_the_table(name):
    """The machine's own kernel gives the same table (so the table is Linux's, not ours)."""
    prog, expected = ALL[name]
    assert run_real(prog) == expected
