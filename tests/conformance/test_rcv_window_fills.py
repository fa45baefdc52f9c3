"""Fills after small segments, on the simulator and the real kernel (loopback; skipped off
Linux): the receive-window gap the differential tests used to tolerate with FILL_SLACK.

``k`` sends of ``size`` bytes (each settled), then a non-blocking 1 MiB fill, a 3000-byte
read by the server and a second fill. Before the receiver modelled tcp_try_coalesce the
simulator's windows after the small segments were smaller than Linux's (1096 against 2096
bytes after three 1000-byte segments into SO_RCVBUF 4096) and the fills differed by up to
25% (8192 against 6144, 17000 against 24576); see tests/tcp/test_rcv_window.py.
"""

import sys

import pytest

from simsock.compare import normalise
from tests.conformance.differential import FILL, Scenario, Step, differences, world
from tests.conformance.harness import run_both

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")

#: (SO_SNDBUF, SO_RCVBUF, k, size, exact): exact -> every call's result equal, else within
#: the differential tolerance (2 x 1000 into 4096: the second fill is 6192 on Linux, 6144 here).
CASES = [
    (4096, 4096, 3, 1000, True),
    (4096, 4096, 2, 1000, False),
    (16384, 16384, 5, 1000, True),
    (4096, 4096, 10, 100, True),
    (65536, 65536, 20, 1000, True),
    (None, 4096, 3, 1000, True),
]


def _results(trace):
    return {key: [c["result"] if c["errno"] is None else c["errno"] for c in calls]
            for key, calls in normalise(trace).items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: "snd%s-rcv%s-%dx%d" % c[:4])
def test_fill_after_small_segments_matches_linux(case):
    sndbuf, rcvbuf, k, size, exact = case
    steps = ([Step("send", "c", size)] * k
             + [Step("send", "c", FILL, tolerant=True), Step("recv", "s", 3000),
                Step("send", "c", FILL, tolerant=True)])
    scn = Scenario("tcp", sndbuf, rcvbuf, (None, None), tuple(steps))
    sim, real = run_both(world(scn), scn.until())
    assert differences(scn, sim, real) == [], scn.program()
    if exact:
        assert _results(sim) == _results(real), scn.program()
