"""UDP conformance: the simulator against real Linux over 127.0.0.1 (see docs/conformance.md)."""

import pytest

from simsock.constants import (AF_INET, MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF,
                               SOCK_DGRAM, SOL_SOCKET)
from tests.conformance.harness import (attempt, attempt_async, check_scenario, free_port,
                                       needs_linux, one_host)

pytestmark = [pytest.mark.real, needs_linux]

LO = "127.0.0.1"


def pair(k):
    """A bound receiver and an unbound sender."""
    r = k.socket(AF_INET, SOCK_DGRAM)
    r.bind((LO, 0))
    s = k.socket(AF_INET, SOCK_DGRAM)
    return r, s


def test_udp_datagram_boundaries():
    """Three datagrams of 10, 200 and 3000 bytes arrive as three datagrams of those sizes."""
    async def prog(k):
        r, s = pair(k)
        dst = r.getsockname()
        for n in (10, 200, 3000):
            await s.sendto(b"d" * n, dst)
        await k.settle()
        for _ in range(3):
            await r.recvfrom(65536)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_datagram_boundaries")


def test_udp_zero_length_datagram():
    """A zero-length datagram is delivered and recv returns b""."""
    async def prog(k):
        r, s = pair(k)
        await s.sendto(b"", r.getsockname())
        await k.settle()
        await r.recvfrom(100)
        r.setblocking(False)
        await attempt_async(r.recv, 100)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_zero_length")


def test_udp_truncation_discards_the_rest():
    """recv(10) of a 100-byte datagram returns 10 bytes; the other 90 are gone."""
    async def prog(k):
        r, s = pair(k)
        await s.sendto(b"a" * 100, r.getsockname())
        await s.sendto(b"b" * 5, r.getsockname())
        await k.settle()
        await r.recv(10)
        await r.recv(100)
        r.setblocking(False)
        await attempt_async(r.recv, 100)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_truncation")


def test_udp_peek_then_recv():
    """MSG_PEEK returns the datagram and leaves it queued; recv then returns it again."""
    async def prog(k):
        r, s = pair(k)
        await s.sendto(b"p" * 50, r.getsockname())
        await k.settle()
        await r.recv(20, MSG_PEEK)
        await r.recv(100, MSG_PEEK)
        await r.recv(100)
        r.setblocking(False)
        await attempt_async(r.recv, 100)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_peek_then_recv")


def test_udp_msg_trunc_with_recv_into():
    """recv_into(buf of 10, 10, MSG_TRUNC) returns the datagram's real length (100)."""
    async def prog(k):
        r, s = pair(k)
        await s.sendto(b"t" * 100, r.getsockname())
        await k.settle()
        buf = bytearray(10)
        await r.recv_into(buf, 10, MSG_TRUNC)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_msg_trunc_recv_into")


def test_udp_nonblocking_recv_eagain():
    """recv on an empty non-blocking socket raises EAGAIN."""
    async def prog(k):
        r = k.socket(AF_INET, SOCK_DGRAM)
        r.bind((LO, 0))
        r.setblocking(False)
        await attempt_async(r.recv, 100)
        await attempt_async(r.recvfrom, 100)
        r.close()
    check_scenario(one_host(prog), name="udp_nonblocking_eagain")


def test_udp_recv_timeout():
    """settimeout(0.05) then recv on an empty socket raises TimeoutError."""
    async def prog(k):
        r = k.socket(AF_INET, SOCK_DGRAM)
        r.bind((LO, 0))
        r.settimeout(0.05)
        await attempt_async(r.recv, 100)
        r.close()
    check_scenario(one_host(prog), name="udp_recv_timeout")


def test_udp_emsgsize():
    """A 65508-byte datagram is too big for IPv4 UDP: EMSGSIZE; 65507 bytes is fine."""
    async def prog(k):
        r, s = pair(k)
        await attempt_async(s.sendto, b"x" * 65508, r.getsockname())
        await attempt_async(s.sendto, b"x" * 65507, r.getsockname())
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_emsgsize")


def test_udp_receive_buffer_overflow_count():
    """SO_RCVBUF 4096 receiver, 20 non-blocking 100-byte datagrams: exactly as many are readable."""
    async def prog(k):
        r, s = pair(k)
        r.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        s.setblocking(False)
        dst = r.getsockname()
        for _ in range(20):
            await attempt_async(s.sendto, b"o" * 100, dst)
        await k.settle()
        r.setblocking(False)
        for _ in range(21):
            if isinstance(await attempt_async(r.recv, 200), OSError):
                break
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_rcvbuf_overflow")


def test_udp_connected_to_closed_port_refused_once():
    """Connected UDP to a closed port: the next recv raises ConnectionRefusedError, then EAGAIN."""
    port = free_port()

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect((LO, port))
        await s.send(b"hello")
        await k.settle()
        s.setblocking(False)
        await attempt_async(s.recv, 100)
        await attempt_async(s.recv, 100)
        s.close()
    check_scenario(one_host(prog), name="udp_connected_refused")


def test_udp_eaddrinuse_on_double_bind():
    """Two sockets binding one port without SO_REUSEADDR: the second gets EADDRINUSE."""
    port = free_port()

    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        b = k.socket(AF_INET, SOCK_DGRAM)
        a.bind((LO, port))
        attempt(b.bind, (LO, port))
        a.close(); b.close()
    check_scenario(one_host(prog), name="udp_eaddrinuse")


def test_udp_reuseaddr_on_both_binds():
    """SO_REUSEADDR on both sockets lets both bind the same UDP port."""
    port = free_port()

    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        b = k.socket(AF_INET, SOCK_DGRAM)
        a.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        b.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        a.bind((LO, port))
        attempt(b.bind, (LO, port))
        a.close(); b.close()
    check_scenario(one_host(prog), name="udp_reuseaddr_both")


def test_udp_bind_twice_einval():
    """Binding an already bound socket again raises EINVAL."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        a.bind((LO, 0))
        attempt(a.bind, (LO, 0))
        a.close()
    check_scenario(one_host(prog), name="udp_bind_twice_einval")


def test_udp_getsockname_before_bind():
    """getsockname of a fresh socket is ("0.0.0.0", 0)."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        a.getsockname()
        a.close()
    check_scenario(one_host(prog), name="udp_getsockname_before_bind")


def test_udp_send_on_unconnected_edestaddrreq():
    """send (no address) on an unconnected UDP socket raises EDESTADDRREQ."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        await attempt_async(a.send, b"x")
        a.close()
    check_scenario(one_host(prog), name="udp_send_edestaddrreq")


def test_udp_buffer_size_readback():
    """SO_RCVBUF/SO_SNDBUF read back doubled, clamped below and above, as Linux does."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        a.getsockopt(SOL_SOCKET, SO_RCVBUF)
        a.getsockopt(SOL_SOCKET, SO_SNDBUF)
        for v in (1, 1000, 4096, 65536, 200000, 10_000_000):
            for opt in (SO_RCVBUF, SO_SNDBUF):
                a.setsockopt(SOL_SOCKET, opt, v)
                a.getsockopt(SOL_SOCKET, opt)
        a.close()
    check_scenario(one_host(prog), name="udp_buffer_readback")


async def _blocked_udp_reader(k, r):
    await attempt_async(r.recvfrom, 100)
    await attempt_async(r.recvfrom, 100)


def test_udp_close_while_blocked_in_recv():
    """close() by another thread leaves a blocked recvfrom blocked; it returns the next datagram,
    then the descriptor is gone (EBADF)."""
    async def prog(k):
        r, s = pair(k)
        dst = r.getsockname()
        reader = k.spawn(_blocked_udp_reader, r)
        await k.sleep(0.05)
        r.close()
        await k.sleep(0.05)
        await s.sendto(b"late", dst)
        await reader.join()
        s.close()
    check_scenario(one_host(prog), name="udp_close_while_blocked_in_recv")


def test_udp_reconnect_keeps_pending_error():
    """A connected socket's pending ECONNREFUSED (from an ICMP) survives a new connect: the next send raises it."""
    async def prog(k):
        r, s = pair(k)
        dst = r.getsockname()
        await s.connect(dst)
        r.close()
        await s.sendto(b"x" * 100, dst)
        await k.settle()
        await s.connect(dst)
        await attempt_async(s.sendto, b"y" * 10, dst)
        await attempt_async(s.sendto, b"z" * 10, dst)
        s.close()
    check_scenario(one_host(prog), name="udp_reconnect_keeps_pending_error")


def test_udp_dontwait_with_timeout_waits():
    """MSG_DONTWAIT on a socket with a timeout: CPython polls first, so an empty socket raises TimeoutError."""
    async def prog(k):
        r, s = pair(k)
        r.settimeout(0.05)
        await attempt_async(r.recvfrom, 100, MSG_DONTWAIT)
        await s.sendto(b"d" * 10, r.getsockname())
        await k.settle()
        await attempt_async(r.recvfrom, 100, MSG_DONTWAIT)
        r.close(); s.close()
    check_scenario(one_host(prog), name="udp_dontwait_with_timeout")
