"""Names, families and types of UDP sockets: name resolution, gaierror, unsupported
families and types."""

import errno
import socket


import simsock
from simsock import AF_INET, AF_INET6, SOCK_DGRAM
from tests.kernel.udp.helpers import err, run_local
from tests.worlds import two_hosts


def test_gaierror_for_unknown_host():
    """An unknown host name raises socket.gaierror with EAI_NONAME, as glibc."""
    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for call in (lambda: s.sendto(b"x", ("nosuch", 1)), lambda: s.connect(("nosuch", 1))):
            try:
                await call()
            except socket.gaierror as exc:
                out.append((type(exc), exc.errno))
        try:
            k.gethostbyname("nosuch")
        except socket.gaierror as exc:
            out.append((type(exc), exc.errno))
    assert run_local(prog) == [(socket.gaierror, socket.EAI_NONAME)] * 3


def test_name_resolution():
    """localhost -> 127.0.0.1, host names -> their 10.x address (case-insensitive), dotted
    quads unchanged, '' -> 0.0.0.0 for bind."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        out.append([k.gethostbyname(n) for n in ("localhost", "LOCALHOST", "a", "b", "B", "1.2.3.4")])

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [["127.0.0.1", "127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "1.2.3.4"]]


def test_af_inet6_not_supported():
    """AF_INET6 raises OSError(EAFNOSUPPORT); unknown socket types EINVAL."""
    async def prog(k, out):
        for fam, typ in [(AF_INET6, SOCK_DGRAM), (simsock.AF_UNIX, SOCK_DGRAM), (AF_INET, 99)]:
            try:
                k.socket(fam, typ)
            except OSError as exc:
                out.append(err(exc))
    assert run_local(prog) == [(OSError, errno.EAFNOSUPPORT), (OSError, errno.EAFNOSUPPORT),
                               (OSError, errno.EINVAL)]
