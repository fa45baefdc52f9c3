"""UDP datagram semantics: boundaries, zero-length datagrams, source addresses, delivery over
loopback, the largest datagram (EMSGSIZE)."""

import errno

from tests.kernel.udp.helpers import err, pair, run_local


def test_datagram_boundaries_preserved():
    """Each recv returns exactly one datagram, never merging or splitting them."""
    async def prog(k, out):
        r, s = await pair(k)
        for d in (b"hello", b"x" * 10, b"abc"):
            out.append(await s.sendto(d, ("127.0.0.1", 7000)))
        for _ in range(3):
            out.append(await r.recv(100))
    assert run_local(prog) == [5, 10, 3, b"hello", b"x" * 10, b"abc"]


def test_zero_length_datagram():
    """A zero-length datagram is sent (returns 0) and received as b'' with its source."""
    async def prog(k, out):
        r, s = await pair(k)
        out.append(await s.sendto(b"", ("127.0.0.1", 7000)))
        out.append(await r.recvfrom(100))
    out = run_local(prog)
    assert out[0] == 0
    assert out[1][0] == b"" and out[1][1][0] == "127.0.0.1"


def test_zero_length_datagram_is_counted_in_queue():
    """Two empty datagrams are two datagrams: both are read, then EAGAIN."""
    async def prog(k, out):
        r, s = await pair(k)
        await s.sendto(b"", ("127.0.0.1", 7000))
        await s.sendto(b"", ("127.0.0.1", 7000))
        await k.sleep(0)                     # let both deliveries happen
        r.setblocking(False)
        out.append(await r.recv(10))
        out.append(await r.recv(10))
        try:
            await r.recv(10)
        except BlockingIOError as exc:
            out.append(err(exc))
    assert run_local(prog) == [b"", b"", (BlockingIOError, errno.EAGAIN)]


def test_recvfrom_source_address():
    """recvfrom reports the sender's (ip, port): 127.0.0.1 over loopback."""
    async def prog(k, out):
        r, s = await pair(k)
        s.bind(("127.0.0.1", 4444))
        await s.sendto(b"q", ("localhost", 7000))
        out.append(await r.recvfrom(10))
    assert run_local(prog) == [(b"q", ("127.0.0.1", 4444))]


def test_loopback_delivery_completes_within_sendto():
    """On Linux a datagram sent over loopback is in the receiver's queue when sendto
    returns (loopback_xmit -> netif_rx, processed by the softirq run as sendto re-enables
    bottom halves): an immediate non-blocking recv gets it. Measured on this machine:
    1000 of 1000 immediate recvs succeed."""
    async def prog(k, out):
        r, s = await pair(k)
        r.setblocking(False)
        await s.sendto(b"now", ("127.0.0.1", 7000))
        try:
            out.append(await r.recv(10))
        except BlockingIOError:
            out.append("EAGAIN")
    assert run_local(prog) == [b"now"]


def test_recv_zero_returns_empty_without_touching_the_socket():
    """CPython's recv(0) (and recv_into of 0 bytes) returns b'' / 0 at once without a
    system call: it neither consumes a queued datagram, nor blocks on an empty socket, nor
    fails on a closed one (measured with CPython 3.11 on Linux). recvfrom(0) does consume."""
    async def prog(k, out):
        r, s = await pair(k)
        out.append(await r.recv(0))                  # empty, blocking socket: no wait
        out.append(k.now_ns)
        await s.sendto(b"keep", ("127.0.0.1", 7000))
        await k.sleep(0)
        out.append(await r.recv(0))
        out.append(await r.recv_into(bytearray(0)))
        out.append(await r.recv(10))                 # still there
        r.close()
        out.append(await r.recv(0))
    assert run_local(prog) == [b"", 0, b"", 0, b"keep", b""]


def test_emsgsize_above_65507():
    """A 65508-byte payload exceeds 65535 - 20 - 8: EMSGSIZE; 65507 bytes is sent and
    received intact over loopback."""
    async def prog(k, out):
        r, s = await pair(k)
        try:
            await s.sendto(b"x" * 65508, ("127.0.0.1", 7000))
        except OSError as exc:
            out.append((err(exc), exc.strerror))
        big = bytes(range(256)) * 255 + bytes(range(227))
        out.append(await s.sendto(big, ("127.0.0.1", 7000)))
        out.append(await r.recv(70000) == big)
    assert run_local(prog) == [((OSError, errno.EMSGSIZE), "Message too long"), 65507, True]
