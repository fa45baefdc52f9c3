"""UDP socket buffers: SO_SNDBUF/SO_RCVBUF doubling and minimums, receive-buffer drops,
send-buffer blocking, EAGAIN and timeouts."""

import errno

import pytest

import simsock
from simsock import AF_INET, MSG_DONTWAIT, SO_RCVBUF, SO_SNDBUF, SOCK_DGRAM, SOL_SOCKET
from tests.kernel.udp.helpers import collect, err, pair, run_local
from tests.worlds import NO_CPU_COSTS, two_hosts


@pytest.mark.parametrize("requested, rcv, snd", [
    (1, 2304, 4608), (0, 2304, 4608), (2000, 4000, 4608), (10000, 20000, 20000),
    (10**7, 8388608, 8388608), (-1, 8388608, 8388608),
])
def test_sndbuf_rcvbuf_doubling_and_minimums(requested, rcv, snd):
    """setsockopt stores twice the value, capped at *mem_max first, raised to
    SOCK_MIN_RCVBUF 2304 / SOCK_MIN_SNDBUF 4608; negative means 'huge' (unsigned)."""
    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        out.append((s.getsockopt(SOL_SOCKET, SO_RCVBUF), s.getsockopt(SOL_SOCKET, SO_SNDBUF)))
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, requested)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, requested)
        out.append((s.getsockopt(SOL_SOCKET, SO_RCVBUF), s.getsockopt(SOL_SOCKET, SO_SNDBUF)))
    assert run_local(prog) == [(212992, 212992), (rcv, snd)]


def test_rcvbuf_full_drops_and_empty_queue_always_accepts():
    """With the minimum SO_RCVBUF (2304) a 1000-byte datagram (truesize 2304) fills it: the
    first of 100 is accepted (empty queue), the other 99 are dropped (RcvbufErrors); the
    blocking sender never waited (all 100 sendto returned at t=0)."""
    async def prog(k, out):
        r, s = await pair(k)
        r.setsockopt(SOL_SOCKET, SO_RCVBUF, 1)
        r.setsockopt(SOL_SOCKET, SO_RCVBUF, 1)
        for i in range(100):
            out.append((await s.sendto(bytes([i]) * 1000, ("127.0.0.1", 7000)), k.now_ns))
        await k.sleep(0)                     # let the loopback deliveries happen
        out.append((r.queued_datagrams, r.rmem_alloc, r.drops))
        out.append(await r.recv(2000))
    sim = simsock.Simulation(profile=NO_CPU_COSTS)   # 100 sendto calls take no simulated time
    a = sim.add_host("a")
    out = []
    a.spawn(prog, out)
    sim.run(until="1s")
    assert out[:100] == [(1000, 0)] * 100
    assert out[100] == (1, 2304, 99)
    assert out[101] == bytes([0]) * 1000
    assert a.udp.mib["RcvbufErrors"] == 99 and a.udp.mib["InDatagrams"] == 1


def test_small_sndbuf_nonblocking_eagain_all_or_nothing():
    """SO_SNDBUF 4608 (setsockopt 1) on a 1 Mbit/s link: two 1000-byte datagrams (truesize
    2304 each) are charged, the third non-blocking send fails whole with EAGAIN; once the
    interface has sent them, sends succeed again (whole)."""
    sim, a, b = two_hosts(rate="1Mbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, 1)
        s.setblocking(False)
        for _ in range(3):
            try:
                out.append(await s.sendto(b"x" * 1000, ("b", 9000)))
            except BlockingIOError as exc:
                out.append(err(exc))
        try:
            await s.sendto(b"y" * 1000, 0, ("b", 9000))     # the (data, flags, address) form
        except BlockingIOError:
            out.append("EAGAIN")
        await k.sleep(2 * 0.008224)          # both datagrams have left the interface
        out.append(await s.sendto(b"z" * 1000, ("b", 9000)))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [1000, 1000, (BlockingIOError, errno.EAGAIN), "EAGAIN", 1000]
    assert a.udp.mib["OutDatagrams"] == 3


def test_msg_dontwait_send_with_full_sndbuf():
    """MSG_DONTWAIT on a blocking socket with a full send buffer: EAGAIN at once."""
    sim, a, b = two_hosts(rate="1Mbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, 1)
        await s.sendto(b"x" * 1000, ("b", 9000))
        await s.sendto(b"x" * 1000, ("b", 9000))
        try:
            await s.sendto(b"x" * 1000, MSG_DONTWAIT, ("b", 9000))
        except BlockingIOError as exc:
            out.append((err(exc), k.now_ns))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [((BlockingIOError, errno.EAGAIN), 0)]


def test_small_sndbuf_blocking_sender_waits_then_resumes():
    """A blocking sender with a full send buffer waits, and resumes as Linux's
    sock_def_write_space wakes it: only once the charged memory is below half of SO_SNDBUF
    (sock_writeable). SO_SNDBUF 4608, 1000-byte datagrams (2304 each) at 1 Mbit/s (8.224 ms
    each): sends 1-2 at t=0, send 3 waits until both have left (16.448 ms), then send 4
    fits at once. Every call sends the whole datagram."""
    sim, a, b = two_hosts(rate="1Mbit", delay="1ms")
    got = []
    b.spawn(collect, 9000, got)
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, 1)
        for i in range(4):
            out.append((await s.sendto(bytes([i]) * 1000, ("b", 9000)), k.now_ns))

    a.spawn(prog)
    sim.run(until="1s")
    assert out == [(1000, 0), (1000, 0), (1000, 16_448_000), (1000, 16_448_000)]
    assert [d[0] for _, d in got] == [0, 1, 2, 3]


def test_blocking_send_timeout():
    """A blocked send with settimeout raises TimeoutError('timed out') at the deadline."""
    sim, a, b = two_hosts(rate="10kbit", delay="1ms")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, 1)
        s.settimeout(0.5)
        await s.sendto(b"x" * 1000, ("b", 9000))
        await s.sendto(b"x" * 1000, ("b", 9000))
        try:
            await s.sendto(b"x" * 1000, ("b", 9000))
        except TimeoutError as exc:
            out.append((str(exc), k.now_ns))

    a.spawn(prog)
    sim.run(until="5s")
    assert out == [("timed out", 500_000_000)]


def test_sender_never_blocked_by_receiver_over_link():
    """A UDP sender is never slowed by a receiver that does not read: 500 paced sends over
    a fast link all return at the instant they are made; the receiver drops the excess."""
    sim, a, b = two_hosts(rate="1Gbit", delay="1ms")
    out = []

    async def idle_receiver(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9000))
        await k.sleep(100)

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(500):
            before = k.now_ns
            await s.sendto(b"x" * 1000, ("b", 9000))
            out.append(k.now_ns - before)
            await k.sleep("20us")

    b.spawn(idle_receiver)
    a.spawn(prog)
    sim.run(until="1s")
    assert out == [0] * 500
    # default 212992 bytes / 2304 per datagram: 92 fit (the 93rd would exceed)
    assert b.udp.mib["InDatagrams"] == 92 and b.udp.mib["RcvbufErrors"] == 408
