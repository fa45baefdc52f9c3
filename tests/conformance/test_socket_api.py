"""The socket API beyond the basics, the simulator against real Linux over loopback:
shutdown() before connect, listen() conflicts, socket options (SO_*TIMEO, SO_*BUFFORCE,
SO_*LOWAT), ioctls (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD) and recvmsg/sendmsg (docs/conformance.md)."""

import pytest

from simsock.constants import (AF_INET, EPOLLIN, EPOLLOUT, EPOLLRDHUP, POLLIN, POLLOUT, POLLPRI,
                               POLLRDHUP, SHUT_RD, SHUT_RDWR, SHUT_WR, SO_REUSEADDR, SOCK_STREAM,
                               SOL_SOCKET)
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


@pytest.mark.parametrize("how", [SHUT_RD, SHUT_WR, SHUT_RDWR])
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
