"""Differential property tests: random socket scenarios, simulator against real Linux.

Hypothesis generates small programs (see :mod:`tests.conformance.differential`): sends of 0
bytes to more than any buffer holds, receives with small and large buffers, ``MSG_PEEK``
and ``MSG_DONTWAIT``, ``shutdown`` in each direction and ``close`` on a loopback TCP
connection; ``sendto`` of 0 to 65508 bytes, ``recvfrom``/``recv_into`` (truncation,
``MSG_TRUNC``), ``connect`` and ``close`` on UDP sockets; random ``SO_SNDBUF``/``SO_RCVBUF``;
non-blocking or 50 ms timeouts. Each runs on the simulator and on this machine's kernel and
the two syscall traces must agree on every exact fact and, for TCP byte counts after a
fill, within 15% (the module docstring of ``differential`` says why).

Examples are derandomized (the same ones on every run, so a failure reproduces); the
failure message prints the scenario as a program. ``SIMSOCK_DIFF_EXAMPLES=N`` runs N
examples per protocol instead of the default; ``SIMSOCK_DIFF_SEED=S`` draws other examples
(hypothesis seed S) for exploration; ``SIMSOCK_DIFF_SHRINK=1`` lets hypothesis shrink a
failing scenario (slow: every attempt runs the real kernel too).
"""

import os

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from simsock.compare import run_both
from tests.conformance.differential import EXAMPLES, differences, tcp_scenarios, udp_scenarios, world
from tests.conformance.harness import needs_linux

pytestmark = [pytest.mark.real, needs_linux]

SHRINK = os.environ.get("SIMSOCK_DIFF_SHRINK") == "1"
SEED = os.environ.get("SIMSOCK_DIFF_SEED")
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])


def diff_settings(default: int):
    chosen = settings(max_examples=EXAMPLES or default, derandomize=SEED is None, deadline=None,
                      database=None, phases=PHASES, suppress_health_check=list(HealthCheck))
    if SEED is None:
        return chosen
    return lambda fn: seed(int(SEED))(chosen(fn))


def check(scn):
    sim_trace, real_trace = run_both(world(scn), scn.until())
    diffs = differences(scn, sim_trace, real_trace)
    if diffs:
        pytest.fail("the simulator and real Linux disagree on this scenario:\n\n" + scn.program()
                    + "\n\n" + "\n".join(f"  - {d}" for d in diffs), pytrace=False)


@diff_settings(default=40)
@given(tcp_scenarios())
def test_tcp_scenarios_agree_with_linux(scn):
    """Random TCP loopback scenarios: the simulated and the real trace agree."""
    check(scn)


@diff_settings(default=60)
@given(udp_scenarios())
def test_udp_scenarios_agree_with_linux(scn):
    """Random UDP loopback scenarios: the simulated and the real trace agree exactly."""
    check(scn)
