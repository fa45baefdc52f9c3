"""Blocking calls against real Linux: a blocking call waits, it never raises EAGAIN (issue 12).

Each scenario fills or empties a loopback connection so that the blocking call must wait at
the moment it is made, and checks what it returns once the other side lets it go.
"""

import struct

import pytest

from simsock.constants import (
    AF_INET,
    MSG_WAITALL,
    SO_ERROR,
    SO_LINGER,
    SO_RCVBUF,
    SO_SNDBUF,
    SOCK_STREAM,
    SOL_SOCKET,
)
from tests.conformance.harness import (
    attempt_async,
    check_scenario,
    needs_linux,
    one_host,
)

pytestmark = [pytest.mark.real, needs_linux]

LO = "127.0.0.1"


async def _small_buffers(k, size=4096):
    """(listener, client, server side) with SO_SNDBUF=size on the client, SO_RCVBUF=size on the server."""
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind((LO, 0))
    ls.listen(8)
    c = k.socket(AF_INET, SOCK_STREAM)
    c.setsockopt(SOL_SOCKET, SO_SNDBUF, size)
    await c.connect(ls.getsockname())
    conn, _ = await ls.accept()
    conn.setsockopt(SOL_SOCKET, SO_RCVBUF, size)
    return ls, c, conn


async def _fill(k, c) -> int:
    """Non-blocking sends until EAGAIN, twice (after a settle): the bytes accepted."""
    c.setblocking(False)
    total = 0
    for _ in range(2):
        while True:
            try:
                total += await c.send(b"f" * 4096)
            except BlockingIOError:
                break
        await k.settle()
    return total


async def _drain_after(k, conn, nbytes, delay):
    await k.sleep(delay)
    await attempt_async(conn.recv, nbytes, MSG_WAITALL)


def blocked_send_world(call):
    async def prog(k):
        ls, c, conn = await _small_buffers(k)
        total = await _fill(k, c)
        reader = k.spawn(_drain_after, conn, total + 4096, 0.1)
        c.setblocking(True)
        await attempt_async(getattr(c, call), b"y" * 4096)      # full at the call: it waits
        await reader.join()
        c.close(); conn.close(); ls.close()
    return one_host(prog)


def test_tcp_blocking_send_into_full_buffer_waits():
    """A blocking send(4096) into a send buffer already full at the call waits for the reader, then returns 4096."""
    check_scenario(blocked_send_world("send"), name="tcp_blocking_send_full_waits")


def test_tcp_blocking_sendall_into_full_buffer_waits():
    """A blocking sendall(4096) into a send buffer already full at the call waits, then returns None."""
    check_scenario(blocked_send_world("sendall"), name="tcp_blocking_sendall_full_waits")


def test_tcp_timeout_send_into_full_buffer_waits():
    """send(4096) with settimeout(2) into a full send buffer waits for space (poll), then returns 4096."""
    async def prog(k):
        ls, c, conn = await _small_buffers(k)
        total = await _fill(k, c)
        reader = k.spawn(_drain_after, conn, total + 4096, 0.1)
        c.settimeout(2.0)
        await attempt_async(c.send, b"y" * 4096)
        await reader.join()
        c.close(); conn.close(); ls.close()
    check_scenario(one_host(prog), name="tcp_timeout_send_full_waits")


def test_tcp_timeout_send_into_full_buffer_times_out():
    """send with settimeout(0.2) into a full buffer nobody drains raises TimeoutError, not EAGAIN."""
    async def prog(k):
        ls, c, conn = await _small_buffers(k)
        await _fill(k, c)
        c.settimeout(0.2)
        await attempt_async(c.send, b"y" * 4096)
        await attempt_async(c.sendall, b"y" * 4096)
        c.close(); conn.close(); ls.close()
    check_scenario(one_host(prog), name="tcp_timeout_send_full_times_out")


async def _send_after(k, c, data, delay):
    await k.sleep(delay)
    await c.sendall(data)


def test_tcp_blocking_recv_calls_wait_for_data():
    """recv, recv_into, recvfrom and recv(MSG_WAITALL) on an empty blocking socket wait for the data."""
    async def prog(k):
        ls, c, conn = await _small_buffers(k, 65536)
        for call, args in (("recv", (100,)), ("recv_into", (bytearray(100),)), ("recvfrom", (100,)),
                           ("recv", (300, MSG_WAITALL))):
            writer = k.spawn(_send_after, c, b"r" * 300 if args[-1] == MSG_WAITALL else b"r" * 100, 0.05)
            await attempt_async(getattr(conn, call), *args)
            await writer.join()
        c.settimeout(1.0)
        writer = k.spawn(_send_after, conn, b"t" * 50, 0.05)
        await attempt_async(c.recv, 100)        # timeout mode: waits, returns the data
        await writer.join()
        c.close(); conn.close(); ls.close()
    check_scenario(one_host(prog), name="tcp_blocking_recv_waits")


async def _connect_after(k, addr, delay):
    await k.sleep(delay)
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(addr)
    await k.sleep(0.05)
    s.close()


def test_tcp_blocking_accept_waits_for_a_connection():
    """accept on a blocking listener with an empty queue waits for the next connection (and with a timeout)."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        for timeout in (None, 1.0):
            ls.settimeout(timeout)
            client = k.spawn(_connect_after, ls.getsockname(), 0.05)
            conn, _ = await ls.accept()
            await client.join()
            conn.close()
        ls.close()
    check_scenario(one_host(prog), name="tcp_blocking_accept_waits")


async def _reset_after(k, conn, delay):
    """Close ``conn`` with SO_LINGER 0 after ``delay``: the peer gets a RST."""
    await k.sleep(delay)
    conn.setsockopt(SOL_SOCKET, SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def reset_while_blocked_world(call, then_error=False):
    async def prog(k):
        ls, c, conn = await _small_buffers(k)
        killer = k.spawn(_reset_after, conn, 0.2)
        if call == "recv":
            await attempt_async(c.recv, 10)                 # blocked in recv when the RST comes
        else:
            await attempt_async(getattr(c, call), b"x" * (1 << 20))   # blocked for space when the RST comes
        if then_error:
            c.getsockopt(SOL_SOCKET, SO_ERROR)
        await attempt_async(c.send, b"x" * 10)
        await attempt_async(c.send, b"x" * 10)
        await attempt_async(c.recv, 10)
        await killer.join()
        c.close(); ls.close()
    return one_host(prog)


def test_tcp_reset_during_blocking_send_reported_by_next_call():
    """A RST during a blocked send: the send returns its partial count, the next send raises ECONNRESET, then EPIPE."""
    check_scenario(reset_while_blocked_world("send"), name="tcp_reset_during_blocking_send")


def test_tcp_reset_during_blocking_send_left_for_so_error():
    """After a blocked send cut by a RST returned its count, SO_ERROR reads the pending ECONNRESET (once)."""
    check_scenario(reset_while_blocked_world("send", then_error=True), name="tcp_reset_during_send_so_error")


def test_tcp_reset_during_blocking_sendall_raises_it():
    """A RST during a blocked sendall: sendall itself raises ECONNRESET; the next send raises EPIPE."""
    check_scenario(reset_while_blocked_world("sendall"), name="tcp_reset_during_blocking_sendall")


def test_tcp_reset_during_blocking_recv_raises_it_once():
    """A RST during a blocked recv: the recv raises ECONNRESET, then sends raise EPIPE and recv returns b""."""
    check_scenario(reset_while_blocked_world("recv"), name="tcp_reset_during_blocking_recv")


async def _send_then_reset(k, conn, delay):
    await k.sleep(delay)
    await conn.send(b"w" * 100)
    await _reset_after(k, conn, delay)


def test_tcp_reset_during_msg_waitall_returns_what_was_copied():
    """recv(1000, MSG_WAITALL) that got 100 bytes when a RST comes returns them; the next recv raises ECONNRESET."""
    async def prog(k):
        ls, c, conn = await _small_buffers(k, 65536)
        killer = k.spawn(_send_then_reset, conn, 0.05)
        await attempt_async(c.recv, 1000, MSG_WAITALL)
        await attempt_async(c.recv, 1000)
        await attempt_async(c.recv, 1000)
        await killer.join()
        c.close(); ls.close()
    check_scenario(one_host(prog), name="tcp_reset_during_msg_waitall")
