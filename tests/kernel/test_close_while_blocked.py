"""close() by one thread while others are blocked in calls on the same socket.

Linux: a blocked call holds a reference to the file (fdget), so close() removes only the
descriptor; the socket lives on until the last such call returns, and the calls are not
woken by the close. CPython's blocking calls therefore return the next data; calls in
timeout mode poll first and then call on the descriptor -1 (EBADF). The conformance
scenarios ``tcp_close_while_blocked_in_recv[_timeout]`` and
``udp_close_while_blocked_in_recv`` hold this against the real kernel; here are the
invariants over many readers and datagrams.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from simsock.constants import AF_INET, SOCK_DGRAM


def run(readers: int, datagrams: int, timeout):
    got = {}
    port = 5000

    async def reader(k, r, i):
        try:
            data, _ = await r.recvfrom(100)
            got[i] = data
        except OSError as e:
            got[i] = type(e).__name__ if not isinstance(e, TimeoutError) else "timeout"

    async def main(k):
        r = k.socket(AF_INET, SOCK_DGRAM)
        r.bind(("127.0.0.1", port))
        if timeout is not None:
            r.settimeout(timeout)
        for i in range(readers):
            k.spawn(reader, r, i)
        await k.sleep(0.01)
        r.close()
        s = k.socket(AF_INET, SOCK_DGRAM)
        for j in range(datagrams):
            await s.sendto(bytes([j]) * 10, ("127.0.0.1", port))
        await k.sleep(0.01)
        probe = k.socket(AF_INET, SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
            got["rebind"] = True
        except OSError:
            got["rebind"] = False
        probe.close()
        s.close()

    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(main)
    sim.run(until=1.0)
    return got


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(0, 4))
def test_blocking_readers_outlive_close(readers, datagrams):
    """Blocking readers: the first min(readers, datagrams) get one datagram each, in arrival
    order, the others stay blocked; the port is released (can be bound again) exactly when
    no reader is left in the call."""
    got = run(readers, datagrams, None)
    answered = sorted(k for k in got if k != "rebind")
    assert answered == list(range(min(readers, datagrams)))
    assert [got[i] for i in answered] == [bytes([j]) * 10 for j in range(len(answered))]
    assert got["rebind"] is (datagrams >= readers)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(0, 4))
def test_timeout_readers_see_ebadf_or_timeout(readers, datagrams):
    """Readers with a timeout: once a datagram makes the socket readable each of them raises
    EBADF (CPython's call on descriptor -1) and the datagram stays unread; with nothing to
    read they time out. No reader gets data; the port is released when the last one is out."""
    got = run(readers, datagrams, 0.5)
    outcome = "OSError" if datagrams else "timeout"
    assert [got[i] for i in range(readers)] == [outcome] * readers
    # probed at 20 ms: released at once by EBADF, but only at 0.5 s by the timeouts
    assert got["rebind"] is bool(datagrams)
