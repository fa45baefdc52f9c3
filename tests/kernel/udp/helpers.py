"""Helpers the UDP socket tests share: run a program alone, compare errors, a socket pair, a
receiver that records arrivals."""

from simsock import AF_INET, SOCK_DGRAM
from tests.worlds import NO_CPU_COSTS, run_alone


def run_local(prog, until="10s"):
    """Run ``prog(k, out)`` alone on host a without CPU costs; return ``out``."""
    out = []
    run_alone(prog, out, until=until, profile=NO_CPU_COSTS)
    return out


def err(exc):
    """(class, errno) of an exception, for exact comparisons."""
    return type(exc), getattr(exc, "errno", None)


async def pair(k, port=7000):
    """A receiver bound to 127.0.0.1:port and a sender, both on this host."""
    r = k.socket(AF_INET, SOCK_DGRAM)
    r.bind(("127.0.0.1", port))
    s = k.socket(AF_INET, SOCK_DGRAM)
    return r, s


async def collect(k, port, out, bufsize=70000):
    """Bind ``port`` and record ``(time_ns, payload)`` of every datagram into ``out``."""
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data = await s.recv(bufsize)
        out.append((k.now_ns, data))
