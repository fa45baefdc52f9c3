"""Closing a socket with completion-based I/O pending.

Linux: an io_uring request holds its own file reference (the SQE's fget), so close(fd)
does not cancel it; cancellation happens only through IORING_OP_ASYNC_CANCEL or ring
teardown (io_uring_files_cancel runs at task exit / ring close). The socket lives on — no
FIN — until the last such request completes. Windows: closesocket aborts pending
overlapped operations with ERROR_OPERATION_ABORTED (995) and releases the socket at once.
"""

from __future__ import annotations

import errno

from tests.kernel.completion.helpers import run_one
from tests.worlds import tcp_pair


async def _peer_eof_within(k, c, seconds: float) -> bool:
    """Whether ``c`` reads end of stream within ``seconds`` (the other side's FIN)."""
    c.settimeout(seconds)
    try:
        return await c.recv(100) == b""
    except TimeoutError:
        return False


def test_uring_recv_pending_at_close_completes_with_the_data_that_arrives_later():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(8)
        ring.prep_recv(s, 100, "r")
        ring.submit()
        s.close()
        out["fileno"] = s.fileno()
        out["peer_eof_while_held"] = await _peer_eof_within(k, c, 0.01)   # no FIN: the file is held
        out["nothing_yet"] = ring.peek_cqe()
        await c.sendall(b"late data")
        ud, res, extra = await ring.wait_cqe(timeout=1)
        out["cqe"] = (ud, res, bytes(extra))
        ring.prep_recv(s, 100, "after")               # the descriptor is gone
        ring.submit()
        out["after"] = tuple((await ring.wait_cqe(timeout=1))[:2])
        out["peer_eof_after"] = await _peer_eof_within(k, c, 0.1)        # last request done: released

    out, _ = run_one(prog)
    assert out["fileno"] == -1
    assert out["peer_eof_while_held"] is False
    assert out["nothing_yet"] is None
    assert out["cqe"] == ("r", 9, b"late data")
    assert out["after"] == ("after", -errno.EBADF)
    assert out["peer_eof_after"] is True


def test_uring_recv_pending_at_close_ends_with_zero_when_the_peer_closes():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(8)
        ring.prep_recv(s, 100, "r")
        ring.submit()
        s.close()
        c.close()
        out["cqe"] = tuple((await ring.wait_cqe(timeout=1))[:2])
        out["pending"] = ring.pending

    out, _ = run_one(prog)
    assert out["cqe"] == ("r", 0)
    assert out["pending"] == 0


def test_uring_request_held_by_a_closed_socket_ends_by_async_cancel_and_releases_it():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(8)
        ring.prep_recv(s, 100, "r")
        ring.submit()
        s.close()
        await k.sleep(0.001)
        ring.prep_cancel("r", "cancel")
        ring.submit()
        out["cqes"] = sorted([tuple((await ring.wait_cqe(timeout=1))[:2]) for _ in range(2)])
        out["peer_eof"] = await _peer_eof_within(k, c, 0.1)

    out, _ = run_one(prog)
    assert out["cqes"] == [("cancel", 0), ("r", -errno.ECANCELED)]
    assert out["peer_eof"] is True


def test_uring_ring_close_cancels_requests_that_hold_a_closed_socket():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(8)
        ring.prep_recv(s, 100, "r")
        ring.submit()
        s.close()
        out["held"] = not await _peer_eof_within(k, c, 0.01)
        ring.close()
        out["peer_eof"] = await _peer_eof_within(k, c, 0.1)

    out, _ = run_one(prog)
    assert out["held"] is True
    assert out["peer_eof"] is True


def test_iocp_closesocket_aborts_pending_operations_and_releases_the_socket_at_once():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        ops = [s.recv_overlapped(10), s.recv_overlapped(10)]
        s.close()
        packets = [await port.get(timeout=1) for _ in range(2)]
        out["results"] = [(p.key, p.op is ops[0] or p.op is ops[1], getattr(p.error, "winerror", None))
                          for p in packets]
        out["recv_error"] = (ops[0].error.errno, ops[0].error.winerror)
        out["order"] = [ops.index(p.op) for p in packets]
        out["peer_eof"] = await _peer_eof_within(k, c, 0.1)      # released by close itself
        try:
            await port.get(timeout=0.01)
            out["extra"] = True
        except TimeoutError:
            out["extra"] = False

    out, _ = run_one(prog)
    assert out["recv_error"] == (errno.ECANCELED, 995)
    assert out["results"] == [("s", True, 995), ("s", True, 995)]    # both aborted by closesocket
    assert out["order"] == [0, 1]                                    # in posting order
    assert out["peer_eof"] is True
    assert out["extra"] is False


# -- the same rules on the real kernel (this machine's Linux) ------------------------------
def _real_ring():
    import pytest

    from tests.kernel.completion.real_uring import Ring
    try:
        return Ring()
    except OSError as exc:                     # ENOSYS, or io_uring_disabled / seccomp: EPERM
        pytest.skip(f"io_uring is not available here: {exc}")


def test_real_linux_close_does_not_cancel_a_pending_io_uring_recv():
    """What the simulated tests above assume, checked on Linux: after close(fd) the pending
    recv stays in flight and holds the socket (the peer sees no FIN), completes with data
    sent later, and only then is the socket released; ASYNC_CANCEL ends a held request with
    -ECANCELED; the peer's close ends it with 0."""
    import socket
    import time

    ring = _real_ring()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    pairs = []
    try:
        def pair():
            c = socket.create_connection(ls.getsockname())
            s, _ = ls.accept()
            pairs.append((c, s))
            return c, s

        c, s = pair()
        buf = ring.recv(s.fileno(), 100, 7)
        s.close()
        time.sleep(0.02)
        assert ring.peek() is None                       # close(fd) completed nothing
        c.settimeout(0.1)
        try:
            got = c.recv(100)
        except TimeoutError:
            got = None
        assert got is None                               # no FIN: the request holds the file
        c.sendall(b"late data")
        assert ring.wait() == (7, 9)
        assert buf.raw[:9] == b"late data"
        c.settimeout(1)
        assert c.recv(100) == b""                        # released after the last request

        c2, s2 = pair()
        ring.recv(s2.fileno(), 100, 8)
        s2.close()
        ring.cancel(8, 9)
        assert sorted([ring.wait(), ring.wait()]) == [(8, -errno.ECANCELED), (9, 0)]
        c2.settimeout(1)
        assert c2.recv(100) == b""

        c3, s3 = pair()
        ring.recv(s3.fileno(), 100, 10)
        s3.close()
        c3.close()
        assert ring.wait() == (10, 0)
    finally:
        ring.close()
        ls.close()
        for c, s in pairs:
            c.close()
            s.close()
