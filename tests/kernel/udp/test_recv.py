"""Receiving UDP datagrams: MSG_PEEK, truncation and MSG_TRUNC, recv_into/recvfrom_into,
MSG_DONTWAIT, non-blocking sockets and timeouts."""

import errno

import simsock
from simsock import AF_INET, MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, SOCK_DGRAM
from tests.kernel.udp.helpers import err, pair, run_local


def test_msg_peek_does_not_consume():
    """MSG_PEEK returns the first datagram without removing it, also when truncated."""
    async def prog(k, out):
        r, s = await pair(k)
        await s.sendto(b"first", ("127.0.0.1", 7000))
        await s.sendto(b"second", ("127.0.0.1", 7000))
        out.append(await r.recv(100, MSG_PEEK))
        out.append(await r.recvfrom(3, MSG_PEEK))
        out.append(await r.recv(100))
        out.append(await r.recv(100))
    out = run_local(prog)
    assert out[0] == b"first"
    assert out[1][0] == b"fir"
    assert out[2:] == [b"first", b"second"]


def test_truncation_discards_rest_of_datagram():
    """recv(n) of a longer datagram returns its first n bytes; the rest is discarded, the
    next recv returns the next datagram."""
    async def prog(k, out):
        r, s = await pair(k)
        s.bind(("127.0.0.1", 5555))
        await s.sendto(b"0123456789", ("127.0.0.1", 7000))
        await s.sendto(b"next", ("127.0.0.1", 7000))
        await s.sendto(b"gone", ("127.0.0.1", 7000))
        out.append(await r.recv(4))
        out.append(await r.recv(100))
        out.append(await r.recvfrom(0))      # recvfrom(0) consumes a datagram too
        r.setblocking(False)
        try:
            await r.recv(100)
        except BlockingIOError:
            out.append("EAGAIN")
    assert run_local(prog) == [b"0123", b"next", (b"", ("127.0.0.1", 5555)), "EAGAIN"]


def test_msg_trunc_reports_real_length():
    """recv(n, MSG_TRUNC) returns a bytes object as long as the whole datagram (CPython
    resizes to the kernel's return value), starting with the first n bytes."""
    async def prog(k, out):
        r, s = await pair(k)
        await s.sendto(b"0123456789", ("127.0.0.1", 7000))
        await s.sendto(b"ab", ("127.0.0.1", 7000))
        data = await r.recv(4, MSG_TRUNC)
        out.append((len(data), data[:4]))
        out.append(await r.recv(100, MSG_TRUNC))   # not truncated: as without the flag
    assert run_local(prog) == [(10, b"0123"), b"ab"]


def test_recv_into_and_recvfrom_into():
    """recv_into fills the buffer and returns the byte count; nbytes limits it; with
    MSG_TRUNC the real datagram length is returned; recvfrom_into adds the source."""
    async def prog(k, out):
        r, s = await pair(k)
        s.bind(("127.0.0.1", 5555))
        for d in (b"abcdef", b"0123456789", b"xyz", b"long-datagram"):
            await s.sendto(d, ("127.0.0.1", 7000))
        buf = bytearray(8)
        out.append((await r.recv_into(buf), bytes(buf)))
        buf = bytearray(8)
        out.append((await r.recv_into(buf, 4), bytes(buf)))
        buf = bytearray(8)
        out.append((await r.recvfrom_into(buf), bytes(buf)))
        buf = bytearray(4)
        out.append((await r.recv_into(memoryview(buf), 0, MSG_TRUNC), bytes(buf)))
    assert run_local(prog) == [
        (6, b"abcdef\x00\x00"),
        (4, b"0123\x00\x00\x00\x00"),
        ((3, ("127.0.0.1", 5555)), b"xyz\x00\x00\x00\x00\x00"),
        (13, b"long"),
    ]


def test_msg_dontwait_on_blocking_socket():
    """MSG_DONTWAIT makes one call non-blocking: EAGAIN at once, socket stays blocking."""
    async def prog(k, out):
        r, _ = await pair(k)
        try:
            await r.recv(10, MSG_DONTWAIT)
        except BlockingIOError as exc:
            out.append((err(exc), exc.strerror, k.now_ns))
        out.append(r.getblocking())
    assert run_local(prog) == [((BlockingIOError, errno.EAGAIN), "Resource temporarily unavailable", 0), True]


def test_nonblocking_socket_eagain():
    """setblocking(False): recv/recvfrom/recv_into raise BlockingIOError(EAGAIN) when empty;
    gettimeout() is 0.0; SOCK_NONBLOCK at creation does the same."""
    async def prog(k, out):
        r, _ = await pair(k)
        r.setblocking(False)
        out.append((r.getblocking(), r.gettimeout()))
        for call in (lambda: r.recv(1), lambda: r.recvfrom(1), lambda: r.recv_into(bytearray(1))):
            try:
                await call()
            except OSError as exc:
                out.append(err(exc))
        nb = k.socket(AF_INET, SOCK_DGRAM | simsock.SOCK_NONBLOCK)
        nb.bind(("127.0.0.1", 0))
        out.append(nb.getblocking())
        try:
            await nb.recv(1)
        except OSError as exc:
            out.append(err(exc))
    assert run_local(prog) == [(False, 0.0)] + [(BlockingIOError, errno.EAGAIN)] * 3 + \
        [False, (BlockingIOError, errno.EAGAIN)]


def test_settimeout_expires_exactly_at_deadline():
    """With settimeout(0.25) an empty recv raises TimeoutError('timed out') (no errno) at
    exactly t0 + 250 ms; a datagram arriving before the deadline is returned instead."""
    async def prog(k, out):
        r, s = await pair(k)
        r.settimeout(0.25)
        out.append(r.gettimeout())
        await k.sleep("1ms")
        try:
            await r.recv(10)
        except TimeoutError as exc:
            out.append((type(exc), exc.args, exc.errno, str(exc), k.now_ns))

        async def late(k2):
            await k2.sleep("0.1s")
            await s.sendto(b"in time", ("127.0.0.1", 7000))
        k.spawn(late)
        t0 = k.now_ns
        out.append((await r.recv(10), k.now_ns - t0))
    out = run_local(prog)
    assert out == [0.25, (TimeoutError, ("timed out",), None, "timed out", 251_000_000), (b"in time", 100_000_000)]


def test_settimeout_none_and_zero():
    """settimeout(None) is blocking (gettimeout None), settimeout(0) is non-blocking."""
    async def prog(k, out):
        r, _ = await pair(k)
        r.settimeout(0)
        out.append((r.gettimeout(), r.getblocking()))
        r.settimeout(None)
        out.append((r.gettimeout(), r.getblocking()))
    assert run_local(prog) == [(0.0, False), (None, True)]
