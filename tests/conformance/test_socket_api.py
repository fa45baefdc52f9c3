"""The socket API beyond the basics, the simulator against real Linux over loopback:
shutdown() before connect, listen() conflicts, socket options (SO_*TIMEO, SO_*BUFFORCE,
SO_*LOWAT), ioctls (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD) and recvmsg/sendmsg (docs/conformance.md)."""

import struct

import pytest

from simsock.constants import (AF_INET, EPOLLIN, EPOLLOUT, EPOLLRDHUP, FIONREAD, IPPROTO_TCP, MSG_PEEK,
                               MSG_TRUNC, MSG_WAITALL, POLLIN, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD,
                               POLLOUT, POLLPRI, POLLRDHUP, SHUT_RDWR, SHUT_WR, SO_RCVBUF,
                               SO_RCVBUFFORCE, SO_RCVLOWAT, SO_RCVTIMEO, SO_REUSEADDR, SO_SNDBUF,
                               SO_SNDBUFFORCE, SO_SNDLOWAT, SO_SNDTIMEO, SOCK_DGRAM, SOCK_STREAM,
                               SOL_SOCKET, TCP_CONGESTION, TCP_SYNCNT)
from tests.conformance.harness import attempt, attempt_async, check_scenario, needs_linux, one_host

pytestmark = [pytest.mark.real, needs_linux]

LO = "127.0.0.1"


async def _masks(k, s):
    p = k.poll()
    p.register(s, POLLIN | POLLPRI | POLLOUT | POLLRDHUP)
    polled = await p.poll(0)
    ep = k.epoll()
    ep.register(s, EPOLLIN | EPOLLOUT | EPOLLRDHUP)
    await ep.poll(0)
    ep.close()
    return polled


@pytest.mark.parametrize("how", [0, 1, 2])       # SHUT_RD, SHUT_WR, SHUT_RDWR
def test_shutdown_never_connected_sets_the_flags(how):
    """shutdown() of a never-connected TCP socket raises ENOTCONN but sets sk_shutdown: after
    SHUT_RD or SHUT_RDWR recv returns b"" (blocking or not) and poll shows IN|OUT|HUP|RDHUP;
    after SHUT_WR recv is still ENOTCONN; send is EPIPE either way."""
    async def prog(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        attempt(s.shutdown, how)
        await _masks(k, s)
        await attempt_async(s.recv, 10)
        await attempt_async(s.send, b"x")
        s.setblocking(False)
        await attempt_async(s.recv, 10)
        b = k.socket(AF_INET, SOCK_STREAM)
        b.bind((LO, 0))
        attempt(b.shutdown, how)
        await _masks(k, b)
        s.close()
        b.close()
    check_scenario(one_host(prog), name=f"tcp_shutdown_never_connected_{how}")


def test_shutdown_before_connect_survives_connect():
    """The flags set by shutdown(SHUT_RDWR) before connect stay: the connect succeeds, recv
    returns b"" and poll shows IN|OUT|HUP|RDHUP on the connected socket."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        s = k.socket(AF_INET, SOCK_STREAM)
        attempt(s.shutdown, SHUT_RDWR)
        await s.connect(ls.getsockname())
        await _masks(k, s)
        await attempt_async(s.recv, 10)
        await attempt_async(s.send, b"x")
        conn, _ = await ls.accept()
        for x in (conn, s, ls):
            x.close()
    check_scenario(one_host(prog), name="tcp_shutdown_before_connect")


@pytest.mark.parametrize("second", ["127.0.0.1", "0.0.0.0"])
def test_second_listen_on_a_reuseaddr_port_is_eaddrinuse(second):
    """Two sockets with SO_REUSEADDR may bind one port while neither listens; the first listen
    works, the second (and a repeated one) raises EADDRINUSE; connects reach the first."""
    async def prog(k):
        a = k.socket(AF_INET, SOCK_STREAM)
        a.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        a.bind((LO, 0))
        port = a.getsockname()[1]
        b = k.socket(AF_INET, SOCK_STREAM)
        b.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        attempt(b.bind, (second, port))
        a.listen()
        attempt(b.listen)
        attempt(b.listen)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect((LO, port))
        conn, _ = await a.accept()
        for x in (conn, c, b, a):
            x.close()
    check_scenario(one_host(prog), name=f"tcp_second_listen_reuseaddr_{second}")


# -- socket options ------------------------------------------------------------------------
def _tv(sec, usec):
    return struct.pack("ll", sec, usec)


def test_socket_option_values_match_linux():
    """What setsockopt stores and getsockopt returns: SO_RCVTIMEO/SO_SNDTIMEO as struct timeval
    rounded up to jiffies (CONFIG_HZ=250: 1 us reads back as 4000 us), EDOM for tv_usec outside
    0..999999, EINVAL for a short buffer or an int, getsockopt truncated to buflen or as an int;
    SO_SNDBUFFORCE/SO_RCVBUFFORCE doubled without the rmem_max/wmem_max cap (ENOPROTOOPT to
    read); SO_SNDLOWAT ENOPROTOOPT to set and 1 to read; SO_RCVLOWAT 0 -> 1, negative ->
    INT_MAX, capped by TCP at tcp_rmem[2]/2 (which also grows SO_RCVBUF), not by UDP."""
    async def prog(k):
        for kind in (SOCK_STREAM, SOCK_DGRAM):
            s = k.socket(AF_INET, kind)
            for opt in (SO_RCVTIMEO, SO_SNDTIMEO):
                s.getsockopt(SOL_SOCKET, opt, 16)
                s.getsockopt(SOL_SOCKET, opt)
                for tv in ((1, 500000), (0, 1), (0, 4001), (0, 0), (-1, 0), (0, -1), (0, 1000000),
                           (0, 999999), (3, 0)):
                    attempt(s.setsockopt, SOL_SOCKET, opt, _tv(*tv))
                    s.getsockopt(SOL_SOCKET, opt, 16)
                attempt(s.setsockopt, SOL_SOCKET, opt, b"\0" * 8)
                attempt(s.setsockopt, SOL_SOCKET, opt, 5)
                s.getsockopt(SOL_SOCKET, opt, 8)
                s.getsockopt(SOL_SOCKET, opt, 20)
            attempt(s.setsockopt, SOL_SOCKET, SO_SNDLOWAT, 100)
            s.getsockopt(SOL_SOCKET, SO_SNDLOWAT)
            for v in (0, 1000, -5, 1 << 30):
                s.setsockopt(SOL_SOCKET, SO_RCVLOWAT, v)
                s.getsockopt(SOL_SOCKET, SO_RCVLOWAT)
            s.close()
        for force, plain in ((SO_SNDBUFFORCE, SO_SNDBUF), (SO_RCVBUFFORCE, SO_RCVBUF)):
            s = k.socket(AF_INET, SOCK_STREAM)
            for v in (0, 1000, 100000, 10 ** 7, 2 ** 31 - 1, -1):
                s.setsockopt(SOL_SOCKET, force, v)
                s.getsockopt(SOL_SOCKET, plain)
            attempt(s.getsockopt, SOL_SOCKET, force)
            s.close()
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(SOL_SOCKET, SO_RCVLOWAT, 100_000)      # grows SO_RCVBUF to hold it
        s.getsockopt(SOL_SOCKET, SO_RCVBUF)
        s.close()
    check_scenario(one_host(prog), name="socket_option_values")


def test_kernel_timeouts_on_blocking_calls():
    """SO_RCVTIMEO on a blocking socket: recv, recv(MSG_WAITALL), accept and UDP recvfrom
    fail with EAGAIN (BlockingIOError) when it expires, not TimeoutError; with settimeout()
    CPython's own timeout applies (TimeoutError), as the socket is then non-blocking inside."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        ls.setsockopt(SOL_SOCKET, SO_RCVTIMEO, _tv(0, 100_000))
        await attempt_async(ls.accept)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        c.setsockopt(SOL_SOCKET, SO_RCVTIMEO, _tv(0, 100_000))
        await attempt_async(c.recv, 100)
        await s.send(b"abc")
        await attempt_async(c.recv, 100, MSG_WAITALL)     # returns what came before the timeout
        await attempt_async(c.recv, 100, MSG_WAITALL)
        c.settimeout(0.05)
        await attempt_async(c.recv, 100)
        u = k.socket(AF_INET, SOCK_DGRAM)
        u.bind((LO, 0))
        u.setsockopt(SOL_SOCKET, SO_RCVTIMEO, _tv(0, 50_000))
        await attempt_async(u.recvfrom, 100)
        for x in (u, c, s, ls):
            x.close()
    check_scenario(one_host(prog), name="kernel_rcvtimeo")


def test_connect_timeout_is_einprogress_then_ealready():
    """SO_SNDTIMEO bounds a blocking connect: to a listener whose accept queue is full (its
    SYNs are dropped) connect() fails with EINPROGRESS after the timeout, a second one waits
    again and fails with EALREADY; the attempt goes on (TCP_SYNCNT 1: ETIMEDOUT after 3 s)."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(0)
        first = k.socket(AF_INET, SOCK_STREAM)
        await first.connect(ls.getsockname())
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(IPPROTO_TCP, TCP_SYNCNT, 1)
        c.setsockopt(SOL_SOCKET, SO_SNDTIMEO, _tv(0, 300_000))
        await attempt_async(c.connect, ls.getsockname())
        await attempt_async(c.connect, ls.getsockname())
        await k.sleep(3.0)
        await attempt_async(c.connect, ls.getsockname())
        for x in (c, first, ls):
            x.close()
    check_scenario(one_host(prog), until=5.0, name="kernel_sndtimeo_connect")


def test_send_timeout_returns_the_partial_count():
    """SO_SNDTIMEO on a blocking TCP socket whose peer does not read: send() waits up to the
    timeout and returns what it copied; the next send copies nothing and fails with EAGAIN;
    sendall fails with EAGAIN too (CPython's loop of send calls). SIOCOUTQ/SIOCOUTQNSD then
    show what is queued and unsent, SIOCINQ what the peer holds."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        ls.bind((LO, 0))
        ls.listen(8)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        c.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        c.setsockopt(SOL_SOCKET, SO_SNDTIMEO, _tv(0, 100_000))
        await attempt_async(c.send, b"x" * 200_000)
        await attempt_async(c.send, b"x" * 200_000)
        await attempt_async(c.sendall, b"x" * 200_000)
        await k.settle()
        for req in (SIOCOUTQ, SIOCOUTQNSD):     # queued: unacknowledged, and of that unsent
            k.ioctl(c, req)
        k.ioctl(s, SIOCINQ)
        for x in (c, s, ls):
            x.close()
    check_scenario(one_host(prog), name="kernel_sndtimeo")


def test_rcvlowat_holds_readiness_and_blocking_recv():
    """SO_RCVLOWAT 1000 on a TCP socket with 500 bytes queued: poll/epoll do not report it
    readable, a blocking recv waits (here until SO_RCVTIMEO, then returns the 500 bytes), a
    non-blocking recv returns at once; with 1100 bytes queued it is readable."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        s.setsockopt(SOL_SOCKET, SO_RCVLOWAT, 1000)
        s.setsockopt(SOL_SOCKET, SO_RCVTIMEO, _tv(0, 100_000))
        await c.send(b"a" * 500)
        await k.settle()
        await _masks(k, s)
        await attempt_async(s.recv, 4096)
        await c.send(b"b" * 500)
        await k.settle()
        s.setblocking(False)
        await attempt_async(s.recv, 100)
        s.setblocking(True)
        await c.send(b"c" * 700)
        await k.settle()
        await _masks(k, s)
        await attempt_async(s.recv, 4096)
        for x in (c, s, ls):
            x.close()
    check_scenario(one_host(prog), name="tcp_rcvlowat")


# -- ioctl -----------------------------------------------------------------------------------
def test_ioctl_queue_sizes_match_linux():
    """k.ioctl(sock, SIOCINQ/SIOCOUTQ/SIOCOUTQNSD[, arg]): TCP's bytes to read, not yet
    acknowledged and not yet sent (EINVAL on a listener, 0 before a connection), UDP's next
    datagram (ENOTTY for SIOCOUTQNSD), unknown requests ENOTTY, fcntl.ioctl's shapes for a
    mutable buffer (filled, 0 returned), bytes (filled copy) and an int (EFAULT)."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        for req in (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD):
            attempt(k.ioctl, ls, req)
        f = k.socket(AF_INET, SOCK_STREAM)
        for req in (FIONREAD, SIOCOUTQ, SIOCOUTQNSD, 0x1234):
            attempt(k.ioctl, f, req)
        attempt(k.ioctl, f, FIONREAD, 0)
        buf = bytearray(4)
        attempt(k.ioctl, f, FIONREAD, buf)
        attempt(k.ioctl, f, FIONREAD, b"\0" * 4)
        attempt(k.ioctl, f, FIONREAD, b"\0" * 2)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        await c.send(b"x" * 1000)
        await k.settle()
        for sock in (c, s):
            for req in (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD):
                k.ioctl(sock, req)
        k.ioctl(s, SIOCINQ, buf)
        s.shutdown(SHUT_WR)
        await k.settle()
        k.ioctl(c, SIOCINQ)
        u = k.socket(AF_INET, SOCK_DGRAM)
        u.bind((LO, 0))
        v = k.socket(AF_INET, SOCK_DGRAM)
        for req in (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD):
            attempt(k.ioctl, u, req)
        for n in (100, 300, 0):
            await v.sendto(b"d" * n, u.getsockname())
        await k.settle()
        u.setblocking(False)
        for _ in range(4):
            k.ioctl(u, SIOCINQ)
            await attempt_async(u.recv, 1000)
        f.close()
        attempt(k.ioctl, f, FIONREAD)
        for x in (u, v, c, s, ls):
            x.close()
    check_scenario(one_host(prog), name="ioctl_queues")


# -- recvmsg / sendmsg -----------------------------------------------------------------------
def test_recvmsg_sendmsg_shapes_match_linux():
    """sendmsg gathers its buffers (one datagram for UDP); recvmsg returns (data, [], msg_flags,
    address) with MSG_TRUNC in msg_flags for a cut datagram (data cut too, even with the
    MSG_TRUNC flag), recvmsg_into scatters; TCP's address is None and an address given to a
    connected TCP sendmsg is ignored; bad arguments raise CPython's errors."""
    async def prog(k):
        u = k.socket(AF_INET, SOCK_DGRAM)
        u.bind((LO, 0))
        v = k.socket(AF_INET, SOCK_DGRAM)
        v.bind((LO, 0))
        await v.sendmsg([b"ab", b"cdef"], [], 0, u.getsockname())
        for ch in b"xyz":
            await v.sendmsg([bytes([ch]) * 10], [], 0, u.getsockname())
        await attempt_async(v.sendmsg, [b"q"])
        await v.sendmsg([], [], 0, u.getsockname())
        await k.settle()
        await u.recvmsg(100)
        await u.recvmsg(4)
        await u.recvmsg(4, 0, MSG_TRUNC)
        await u.recvmsg(4, 1024, MSG_PEEK)
        await u.recvmsg_into([bytearray(3), bytearray(20)])
        await u.recvmsg(10)
        u.setblocking(False)
        await attempt_async(u.recvmsg, 10)
        for bad in ((-1,), (10, -1)):
            try:
                await u.recvmsg(*bad)
            except ValueError:
                pass
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(8)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        await c.sendmsg([b"hello ", b"world"])
        await c.sendmsg([b"!"], [], 0, (LO, 9))
        await k.settle()
        await s.recvmsg(5)
        await s.recvmsg(100, 0, MSG_PEEK)
        await s.recvmsg_into([bytearray(4), bytearray(4)], 64)
        c.close()
        await k.settle()
        await s.recvmsg(100)
        f = k.socket(AF_INET, SOCK_STREAM)
        await attempt_async(f.recvmsg, 10)
        await attempt_async(f.sendmsg, [b"x"])
        for x in (f, s, ls, u, v):
            x.close()
    check_scenario(one_host(prog), name="recvmsg_sendmsg")


def test_sendmsg_with_ancillary_data_says_it_is_not_modelled():
    """Control messages are not modelled: sendmsg with ancdata fails with EOPNOTSUPP and a
    message that says so (Linux would accept some, such as IP_TTL)."""
    import errno

    import simsock
    out = []

    async def prog(k):
        u = k.socket(AF_INET, SOCK_DGRAM)
        try:
            await u.sendmsg([b"x"], [(0, 2, b"\0\0\0\1")], 0, (LO, 9))
        except OSError as e:
            out.append(e)
    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=1)
    assert out and out[0].errno == errno.EOPNOTSUPP and "ancillary data" in str(out[0])
