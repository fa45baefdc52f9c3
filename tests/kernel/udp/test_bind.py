"""Binding UDP sockets and their addresses: conflicts, SO_REUSEADDR, ephemeral ports,
autobind, connect's local address, close and descriptor numbers."""

import errno

from simsock import AF_INET, SO_REUSEADDR, SOCK_DGRAM, SOL_SOCKET
from tests.kernel.udp.helpers import err, pair, run_local
from tests.worlds import two_hosts


def test_bind_conflicts():
    """Same port twice: EADDRINUSE, also wildcard against a specific address; two
    different specific addresses may share a port."""
    async def prog(k, out):
        s1 = k.socket(AF_INET, SOCK_DGRAM)
        s1.bind(("0.0.0.0", 5000))
        for addr in [("0.0.0.0", 5000), ("127.0.0.1", 5000)]:
            s = k.socket(AF_INET, SOCK_DGRAM)
            try:
                s.bind(addr)
            except OSError as exc:
                out.append((err(exc), exc.strerror))
        x = k.socket(AF_INET, SOCK_DGRAM)
        x.bind(("127.0.0.1", 6000))
        y = k.socket(AF_INET, SOCK_DGRAM)
        y.bind(("10.0.0.1", 6000))
        out.append((x.getsockname(), y.getsockname()))
    assert run_local(prog) == [((OSError, errno.EADDRINUSE), "Address already in use")] * 2 + \
        [(("127.0.0.1", 6000), ("10.0.0.1", 6000))]


def test_so_reuseaddr_on_both_allows_sharing():
    """SO_REUSEADDR on both sockets lets them bind the same port; on only one, it does not."""
    async def prog(k, out):
        s1 = k.socket(AF_INET, SOCK_DGRAM)
        s1.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        s1.bind(("0.0.0.0", 5000))
        s2 = k.socket(AF_INET, SOCK_DGRAM)
        try:
            s2.bind(("0.0.0.0", 5000))
        except OSError as exc:
            out.append(err(exc))
        s2.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        s2.bind(("0.0.0.0", 5000))
        out.append((s2.getsockname(), s2.getsockopt(SOL_SOCKET, SO_REUSEADDR)))
    assert run_local(prog) == [(OSError, errno.EADDRINUSE), (("0.0.0.0", 5000), 1)]


def test_second_bind_einval_and_foreign_address():
    """Binding a bound socket again is EINVAL; binding an address this host does not own is
    EADDRNOTAVAIL (another host's address or any foreign one)."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        try:
            s.bind(("0.0.0.0", 0))
        except OSError as exc:
            out.append((err(exc), exc.strerror))
        for addr in [("10.0.0.2", 0), ("192.168.1.1", 5000), ("b", 1)]:
            t = k.socket(AF_INET, SOCK_DGRAM)
            try:
                t.bind(addr)
            except OSError as exc:
                out.append((err(exc), exc.strerror))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [((OSError, errno.EINVAL), "Invalid argument")] + \
        [((OSError, errno.EADDRNOTAVAIL), "Cannot assign requested address")] * 3


def test_ephemeral_ports_in_range_and_distinct():
    """bind(port 0) picks distinct ports in ip_local_port_range 32768..60999."""
    async def prog(k, out):
        for _ in range(200):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.bind(("", 0))
            out.append(s.getsockname())
    names = run_local(prog)
    ports = [p for _, p in names]
    assert all(ip == "0.0.0.0" for ip, _ in names)
    assert all(32768 <= p <= 60999 for p in ports)
    assert len(set(ports)) == 200


def test_getsockname_before_bind_and_autobind_on_sendto():
    """An unbound socket's name is ('0.0.0.0', 0); sendto binds it to an ephemeral port on
    the wildcard address, which the receiver sees as the source port."""
    async def prog(k, out):
        r, s = await pair(k)
        out.append(s.getsockname())
        await s.sendto(b"x", ("127.0.0.1", 7000))
        name = s.getsockname()
        out.append(name[0])
        out.append(32768 <= name[1] <= 60999)
        out.append((await r.recvfrom(10))[1] == ("127.0.0.1", name[1]))
    assert run_local(prog) == [("0.0.0.0", 0), "0.0.0.0", True, True]


def test_connect_fixes_local_address_and_peer():
    """connect() autobinds and picks the source address of the route: the host's address
    towards another host, 127.0.0.1 towards loopback; getpeername is the peer."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect(("b", 9000))
        out.append((s.getsockname()[0], s.getpeername()))
        t = k.socket(AF_INET, SOCK_DGRAM)
        await t.connect(("localhost", 9000))
        out.append((t.getsockname()[0], t.getpeername()))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [("10.0.0.1", ("10.0.0.2", 9000)), ("127.0.0.1", ("127.0.0.1", 9000))]


def test_close_then_ebadf():
    """After close: calls raise OSError(EBADF), fileno() is -1, close() again is harmless,
    and the port is free to bind again."""
    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        s.close()
        out.append(s.fileno())
        s.close()
        for call in (lambda: s.recv(1), lambda: s.sendto(b"x", ("127.0.0.1", 5000)), lambda: s.send(b"x")):
            try:
                await call()
            except OSError as exc:
                out.append((err(exc), exc.strerror))
        for call in (s.getsockname, lambda: s.bind(("127.0.0.1", 0)), lambda: s.setblocking(False)):
            try:
                call()
            except OSError as exc:
                out.append(err(exc))
        again = k.socket(AF_INET, SOCK_DGRAM)
        again.bind(("127.0.0.1", 5000))
        out.append(again.getsockname())
    out = run_local(prog)
    assert out == [-1] + [((OSError, errno.EBADF), "Bad file descriptor")] * 3 + [(OSError, errno.EBADF)] * 3 + \
        [("127.0.0.1", 5000)]


def test_fds_lowest_free_from_3_per_host():
    """File descriptors start at 3 on each host and reuse the lowest free one."""
    sim, a, b = two_hosts(link=False)
    out = []

    async def prog(k):
        s = [k.socket(AF_INET, SOCK_DGRAM) for _ in range(4)]
        out.append([x.fileno() for x in s])
        s[2].close()
        s[0].close()
        out.append(k.socket(AF_INET, SOCK_DGRAM).fileno())
        out.append(k.socket(AF_INET, SOCK_DGRAM).fileno())
        out.append(k.socket(AF_INET, SOCK_DGRAM).fileno())

    a.spawn(prog)
    b.spawn(prog)
    sim.run(until="1s")
    assert out == [[3, 4, 5, 6], 3, 5, 7] * 2
