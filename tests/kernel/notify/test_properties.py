"""Property tests of epoll's trigger modes over random interleavings (simulator).

One UDP socket is watched by three epoll instances at once — level-triggered,
edge-triggered and one-shot — while a random sequence of arrivals (datagrams sent to it
over loopback), reads and waits (``poll(0)`` on all three) runs. A reference model of
Linux's rules says what each wait must report.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from simsock.constants import AF_INET, EPOLLET, EPOLLIN, EPOLLONESHOT, SOCK_DGRAM

OPS = st.lists(st.one_of(st.tuples(st.just("arrive"), st.integers(1, 3)),
                         st.tuples(st.just("read"), st.integers(1, 3)),
                         st.tuples(st.just("wait"), st.just(0)),
                         st.tuples(st.just("rearm"), st.just(0))), max_size=40)


def run(ops):
    """Run ``ops``; returns a list of (op, queued datagrams after it, lt, et, oneshot reports)."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        a.setblocking(False)
        b = k.socket(AF_INET, SOCK_DGRAM)
        eps = {}
        for name, flags in (("lt", 0), ("et", EPOLLET), ("os", EPOLLONESHOT)):
            eps[name] = k.epoll()
            eps[name].register(a, EPOLLIN | flags)
        queued = 0
        log = []
        for op, n in ops:
            got = {}
            if op == "arrive":
                for _ in range(n):
                    await b.sendto(b"x", a.getsockname())
                queued += n
            elif op == "read":
                for _ in range(n):
                    try:
                        await a.recv(10)
                        queued -= 1
                    except BlockingIOError:
                        break
            elif op == "rearm":
                eps["os"].modify(a, EPOLLIN | EPOLLONESHOT)
            else:
                for name, ep in eps.items():
                    got[name] = bool(await ep.poll(0))
            log.append((op, queued, got))
        return log

    sim = simsock.Simulation(seed=1, trace=False)
    t = sim.add_host("a").spawn(prog)
    sim.run(until=1)
    assert t.state == "exited"
    return t.result


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_trigger_modes_follow_linux_rules(ops):
    """LT reports exactly while data is queued; ET reports only if something arrived since
    its last wait (and data is queued); ONESHOT reports only when armed, never twice
    without a re-arm; and the same sequence gives the same reports (determinism)."""
    log = run(ops)
    arrived_since_et_wait = False
    armed = True
    for op, queued, got in log:
        if op == "arrive":
            arrived_since_et_wait = True
        elif op == "rearm":
            armed = True
        elif op == "wait":
            assert got["lt"] == (queued > 0)
            assert got["et"] == (arrived_since_et_wait and queued > 0)
            arrived_since_et_wait = False
            assert got["os"] == (armed and queued > 0)
            if got["os"]:
                armed = False
    assert run(ops) == log
