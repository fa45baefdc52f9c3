"""ICMP errors on UDP sockets: port unreachable reported once to connected sockets (on recv or
send), never to unconnected ones; a connected socket's peer filter."""

import errno

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOL_SOCKET
from tests.kernel.udp.helpers import collect, err, run_local
from tests.worlds import two_hosts


def test_connected_udp_icmp_refused_once_on_recv():
    """A connected socket sending to a closed port gets ConnectionRefusedError once, on the
    next recv (a blocked recv wakes when the ICMP arrives: 29 bytes out + 56 bytes back over
    1 Gbit/s + 1 ms each way = 2_000_680 ns); then recv is EAGAIN again."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect(("b", 9999))
        await s.send(b"x")
        try:
            await s.recv(10)
        except ConnectionRefusedError as exc:
            out.append((err(exc), exc.strerror, k.now_ns))
        s.setblocking(False)
        try:
            await s.recv(10)
        except OSError as exc:
            out.append(err(exc))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [((ConnectionRefusedError, errno.ECONNREFUSED), "Connection refused", 2_000_680),
                   (BlockingIOError, errno.EAGAIN)]
    assert b.udp.mib["NoPorts"] == 1


def test_connected_udp_icmp_refused_once_on_send():
    """The pending ICMP error is reported by the next send instead if that comes first;
    the send after it succeeds."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect(("b", 9999))
        await s.send(b"x")
        await k.sleep("10ms")
        try:
            await s.send(b"y")
        except ConnectionRefusedError as exc:
            out.append(err(exc))
        out.append(await s.send(b"z"))
        await k.sleep("10ms")
        out.append(s.getsockopt(SOL_SOCKET, simsock.SO_ERROR))   # the ICMP for b"z"
        out.append(s.getsockopt(SOL_SOCKET, simsock.SO_ERROR))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [(ConnectionRefusedError, errno.ECONNREFUSED), 1, errno.ECONNREFUSED, 0]


def test_loopback_connected_udp_refused():
    """Over loopback (no ICMP rate limit) every send to a closed port produces a refusal."""
    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect(("127.0.0.1", 9))
        s.setblocking(False)
        for _ in range(3):
            await s.send(b"x")
            try:
                await s.recv(10)
            except OSError as exc:
                out.append(err(exc))
    assert run_local(prog) == [(ConnectionRefusedError, errno.ECONNREFUSED)] * 3


def test_unconnected_udp_never_sees_icmp():
    """An unconnected socket is not told about port unreachable: recv stays EAGAIN, sends
    keep succeeding, though the ICMP did come back."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setblocking(False)
        await s.sendto(b"x", ("b", 9999))
        await k.sleep("10ms")
        try:
            await s.recv(10)
        except OSError as exc:
            out.append(err(exc))
        out.append(await s.sendto(b"y", ("b", 9999)))
        out.append(s.getsockopt(SOL_SOCKET, simsock.SO_ERROR))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [(BlockingIOError, errno.EAGAIN), 1, 0]
    assert b.udp.mib["NoPorts"] == 2
    assert a.ip_mib["InReceives"] == 2       # both ICMP errors arrived


def test_sendto_other_address_on_connected_socket():
    """sendto with an explicit address on a connected UDP socket goes to that address."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    got_b, got_a = [], []
    b.spawn(collect, 9000, got_b)
    a.spawn(collect, 9001, got_a)

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect(("b", 9000))
        await s.send(b"to peer")
        await s.sendto(b"elsewhere", ("127.0.0.1", 9001))

    a.spawn(prog)
    sim.run(until="1s")
    assert [d for _, d in got_b] == [b"to peer"]
    assert [d for _, d in got_a] == [b"elsewhere"]


def test_connected_socket_filters_non_peer():
    """A connected socket only receives from its peer; a datagram from another port finds
    no socket (NoPorts) and is not delivered."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def receiver(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 7000))
        await s.connect(("b", 9000))
        await k.sleep("50ms")
        s.setblocking(False)
        while True:
            try:
                out.append(await s.recvfrom(100))
            except BlockingIOError:
                break

    async def senders(k):
        peer = k.socket(AF_INET, SOCK_DGRAM)
        peer.bind(("0.0.0.0", 9000))
        other = k.socket(AF_INET, SOCK_DGRAM)
        other.bind(("0.0.0.0", 9001))
        await k.sleep("1ms")
        await other.sendto(b"stranger", ("a", 7000))
        await peer.sendto(b"friend", ("a", 7000))

    a.spawn(receiver)
    b.spawn(senders)
    sim.run(until="1s")
    assert out == [(b"friend", ("10.0.0.2", 9000))]
    assert a.udp.mib["NoPorts"] == 1
