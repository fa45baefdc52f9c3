"""The conformance differential tests' machinery (tests/conformance/differential.py), on the simulator alone."""

from hypothesis import given, settings
from hypothesis import strategies as st

import simsock

from tests.conformance.differential import (FILL, Scenario, Step, _near, differences, tcp_scenarios,
                                            udp_scenarios, world)
from tests.conformance.harness import run_sim


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.one_of(tcp_scenarios(), udp_scenarios()))
def test_generated_programs_are_deterministic_on_the_simulator(scn):
    """Every generated program runs to its end on the simulator, gives the same trace twice,
    and agrees with itself under :func:`differences`."""
    sims = []
    for _ in range(2):
        sim = simsock.Simulation(seed=1)
        world(scn)(sim)
        sim.run(until=scn.until())
        sims.append(sim)
    a, b = sims[0].trace, sims[1].trace
    assert list(a.records()) == list(b.records())
    assert differences(scn, a, b) == []
    assert [t.state for t in sims[0].hosts["a"].threads] == ["exited"]   # no call hung


def test_differences_sees_a_changed_fact():
    """A different byte count is a difference in an exact step, not in a tolerant one."""
    exact = Scenario("tcp", 4096, 4096, (None, None), (Step("send", "c", 1000),))
    small = Scenario("tcp", 4096, 4096, (None, None), (Step("send", "c", 999),))
    a = run_sim(world(exact))
    b = run_sim(world(small))
    assert differences(exact, a, b) != []
    tolerant = Scenario("tcp", 4096, 4096, (None, None), (Step("send", "c", 1000, tolerant=True),))
    assert differences(tolerant, a, b) == []


def test_tolerance_rule():
    """Within 15% (FILL_SLACK is 0 now); zero against non-zero never; lengths of data
    compared, not bytes."""
    assert _near(6144, 5400) and _near(100000, 86000) and _near(0, 0)
    assert not _near(6144, 4096)        # one 2048-byte skb apart: no longer tolerated
    assert not _near(0, 5) and not _near(100000, 84000) and not _near(8192, 6000) and not _near(FILL, 10000)
    assert _near({"len": 1000, "crc32": 1}, {"len": 1100, "crc32": 2})
    assert not _near([1, "x"], [1, "y"])
