"""Congestion-control conformance: TCP_CONGESTION and what it changes, simulator vs real Linux
over 127.0.0.1 (see docs/conformance.md)."""

import pytest

from simsock.constants import AF_INET, IPPROTO_TCP, SO_SNDBUF, SOCK_STREAM, SOL_SOCKET, TCP_CONGESTION
from tests.conformance.harness import attempt, check_scenario, needs_linux, one_host

pytestmark = [pytest.mark.real, needs_linux]

LO = "127.0.0.1"


def _available() -> set:
    try:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            return set(f.read().split())
    except OSError:
        return set()


@pytest.mark.parametrize("cc", ["cubic", "bbr", "reno"])
def test_congestion_named_then_autotuned_sndbuf(cc):
    """TCP_CONGESTION set, read back NUL-padded, inherited by accepted sockets; SO_SNDBUF after connect is sndbuf_expand (bbr 3, else 2) cwnds of skbs."""
    if cc not in _available():
        pytest.skip(f"{cc} is not available on this host")

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.setsockopt(IPPROTO_TCP, TCP_CONGESTION, cc.encode())
        ls.bind((LO, 0))
        ls.listen(8)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(IPPROTO_TCP, TCP_CONGESTION, cc.encode())
        c.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)
        c.getsockopt(SOL_SOCKET, SO_SNDBUF)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        c.getsockopt(SOL_SOCKET, SO_SNDBUF)
        s.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)     # inherited from the listener
        s.getsockopt(SOL_SOCKET, SO_SNDBUF)
        await c.sendall(b"x" * 1000)
        await s.recv(1000)
        c.close(); s.close(); ls.close()
    check_scenario(one_host(prog), name=f"tcp_congestion_{cc}")


def test_congestion_unknown_and_empty_names():
    """An unknown TCP_CONGESTION name raises ENOENT, an empty one EINVAL; the socket keeps its algorithm."""
    async def prog(k):
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        attempt(c.setsockopt, IPPROTO_TCP, TCP_CONGESTION, b"nosuch")
        attempt(c.setsockopt, IPPROTO_TCP, TCP_CONGESTION, b"")
        c.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)
        c.close()
    check_scenario(one_host(prog), name="tcp_congestion_errors")
