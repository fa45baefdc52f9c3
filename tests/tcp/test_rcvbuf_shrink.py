"""SO_RCVBUF shrunk below what a connection already holds, held against Linux 6.x.

Two reported bugs, both reproduced here before the fix:

* a transfer stalled for good after ``setsockopt(SO_RCVBUF, 8192)`` on an established
  connection while the reader kept reading: out-of-order segments filled the shrunk buffer,
  so the segment filling the hole was refused forever (the simulator checked
  ``rmem_alloc > rcvbuf`` and dropped, Linux prunes its out-of-order queue and accepts into an
  empty receive queue whatever the memory charge);
* with data queued above a shrunk SO_RCVBUF, the sender's retransmission timer stayed armed
  (``k.settle()`` never returned) and the connection even died of ETIMEDOUT after
  tcp_retries2, although its peer answered every retransmission.

What Linux does (tcp_input.c tcp_data_queue / tcp_try_rmem_schedule / tcp_prune_queue /
tcp_prune_ofo_queue, tcp_output.c tcp_select_window, tcp_timer.c tcp_retransmit_timer) and
this model now does: an in-sequence segment that does not fit is dropped only if the receive
queue holds something, and the ACK for it advertises a zero window (ICSK_ACK_NOMEM, with
rcv_wnd/rcv_wup updated since 6.13.2); out-of-order data above the arriving segment is pruned
to make room; the reader's next read sends a window update (tcp_cleanup_rbuf); the sender's
retransmissions into the zero window are zero-window probes with exponential backoff that
never time out while the peer answers -- the first of them a tail loss probe. The real
tests below measure this machine's loopback and hold the simulator to the same shape.
"""

import socket
import struct
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock.constants import AF_INET, SO_RCVBUF, SOCK_STREAM, SOL_SOCKET
from tests.tcp.fakelink import MS, make_pair

S = 1000 * MS
LO = "127.0.0.1"
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the real side needs Linux sockets")


def _payload(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


# -- the simulator, end to end ----------------------------------------------------------
def sim_shrunk_reader(total=1_000_000, shrink=8192, two_hosts=True, read_size=65536, pause=0.001,
                      loss=0.0, seed=1, until=60.0):
    """A reader that shrinks SO_RCVBUF right after accept and keeps reading (``pause`` s
    between reads). Returns (bytes received, end time or None, longest time without
    progress, receiver's stats)."""
    sim = simsock.Simulation(seed=seed, trace=False)
    a = sim.add_host("a")
    b = sim.add_host("b") if two_hosts else a
    if two_hosts:
        sim.add_link(a, b, rate="1Gbit", delay="1ms", loss=loss)
    data = _payload(total)
    got = bytearray()
    marks = [0.0]
    out = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5000))
        ls.listen(1)
        s, _ = await ls.accept()
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, shrink)
        while chunk := await s.recv(read_size):
            got.extend(chunk)
            marks.append(k.now)
            if pause:
                await k.sleep(pause)
        out["end"] = k.now
        out["stats"] = s.stats()
        s.close()

    async def client(k):
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(("b" if two_hosts else LO, 5000))
        await c.sendall(data)
        c.close()

    b.spawn(server)
    a.spawn(client)
    sim.run(until=until)
    assert bytes(got) == data[:len(got)]              # never out of order or corrupted
    gap = max(y - x for x, y in zip(marks, marks[1:])) if len(marks) > 1 else until
    return len(got), out.get("end"), gap, out.get("stats")


def test_out_of_order_data_filling_a_shrunk_buffer_no_longer_stalls_the_transfer():
    """The reported stall: before the fix this transfer stopped at 13032 bytes for good
    (eight out-of-order segments held 17728 bytes of a 16384-byte buffer; the missing one
    was refused at every retransmission)."""
    n, end, gap, _ = sim_shrunk_reader()
    assert n == 1_000_000 and end is not None and end < 2.0
    assert gap < 0.25


def test_loopback_transfer_after_shrinking_completes_one_rto_step_at_a_time():
    """Loopback, 64 KB segments against a 16 KB buffer: progress comes in window-sized steps
    paced by the loss probe, the RTO and the persist timer (~200 ms each), as on Linux
    (test_real_loopback_transfer_after_shrinking_completes); never a longer silence."""
    n, end, gap, _ = sim_shrunk_reader(total=300_000, two_hosts=False, pause=0)
    assert n == 300_000 and end is not None
    assert 0.15 < gap < 0.3


def _queued_then_shrunk(first=50_000, second=20_000, shrink=4096, wait=None, until=4000.0):
    """50 KB sit unread in the receiver; SO_RCVBUF drops to 4 KB; 20 KB more are sent.
    Returns a dict of observations."""
    sim = simsock.Simulation(seed=1, trace=("event",))
    h = sim.add_host("a")
    data = _payload(first + second)
    obs = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        await c.sendall(data[:first])
        await k.settle()
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, shrink)
        obs["t0"] = t0 = k.now
        await c.sendall(data[first:])
        await k.settle()
        obs["settle_s"] = k.now - t0
        obs["outq_after_settle"] = c.conn.outq
        if wait:
            await k.sleep(wait)
        obs["alive"] = c.conn.state == "ESTABLISHED" and not c.conn.sk_err
        obs["sender"] = c.stats()
        got = bytearray()
        while len(got) < len(data):
            got.extend(await s.recv(65536))
        obs["data_ok"] = bytes(got) == data
        obs["read_done_s"] = k.now - t0
        await k.settle()
        obs["outq_end"] = c.conn.outq

    h.spawn(prog)
    sim.run(until=until)
    retx = [r["t"] / 1e9 - obs["t0"] for r in sim.trace.records()
            if r["kind"] == "tcp_retransmit"]
    obs["retransmit_times"] = retx
    obs["windows"] = [r["fields"]["window"] for r in sim.trace.records() if r["kind"] == "tcp_rwnd"]
    return obs


def test_settle_returns_when_the_shrunk_receiver_refuses_data():
    """The reported hang: settle() returns at once (the receiver advertised a zero window,
    so the sender's retransmissions are zero-window probes), the data is intact once read."""
    obs = _queued_then_shrunk()
    assert obs["settle_s"] < 0.01
    assert obs["outq_after_settle"] == 20_000         # refused, still the sender's
    assert 0 in obs["windows"]                        # ICSK_ACK_NOMEM: a zero window
    assert obs["data_ok"] and obs["outq_end"] == 0
    assert obs["read_done_s"] < 2.0


def test_retransmissions_into_the_zero_window_back_off_like_linux():
    """As measured on Linux 6.18 loopback (capture in the module docstring of
    test_real_shrunk_receiver_refuses_then_recovers): a loss probe ~one RTO after the send,
    the RTO one RTO after the probe, then 2x, 4x, 8x ... ."""
    obs = _queued_then_shrunk(wait=8.0)
    t = obs["retransmit_times"]
    assert len(t) >= 5
    rto = t[0]
    assert 0.2 <= rto < 0.21
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert abs(gaps[0] - rto) < 0.001
    assert all(abs(g2 - 2 * g1) < 0.001 for g1, g2 in zip(gaps[:3], gaps[1:4]))
    assert obs["sender"]["loss_probes"] == 1


def test_zero_window_retransmissions_never_time_out_while_the_peer_answers():
    """tcp_retransmit_timer's zero-window branch: no ETIMEDOUT after tcp_retries2
    (~924 s) -- the peer answers every probe -- so a reader back after 30 minutes gets it all."""
    obs = _queued_then_shrunk(wait=1800.0)
    assert obs["alive"] and obs["data_ok"] and obs["outq_end"] == 0


# -- the receiver, segment by segment ---------------------------------------------------
def _shrunk_after(queued: int, rcvbuf: int = 4608, locked: bool = True):
    """A pair with ``queued`` bytes unread at B, then B's rcvbuf set below that, as
    setsockopt(SO_RCVBUF) does (sk_rcvbuf = 2*value, SOCK_RCVBUF_LOCK)."""
    net, c, s = make_pair(delay=1 * MS)
    c.config.nodelay = True
    c.send(bytes(queued), net.now)
    net.run(duration=100 * MS)
    assert s.inq == queued
    s.rcvbuf = rcvbuf
    s.config.rcvbuf_locked = locked
    return net, c, s


def test_in_sequence_segment_over_a_shrunk_buffer_is_refused_with_a_zero_window():
    """Unread data over rcvbuf: the next segment is dropped and answered with a zero window
    that rcv_wnd/rcv_wup record (so the read sends a window update, tcp_cleanup_rbuf); the
    sender's retransmission then gets in."""
    net, c, s = _shrunk_after(10_000)
    c.send(bytes(1000), net.now)
    net.run(duration=5 * MS)
    assert s.inq == 10_000 and s.stats()["rcvq_drops"] == 1
    assert s.rcv.rcv_wnd == 0 and s.rcv.rcv_wup == s.rcv.rcv_nxt and c.snd_wnd == 0
    assert len(s.recv(1 << 20, net.now)) == 10_000
    assert s.segments_to_send(net.now)[-1].window > 0      # the window update
    net.run(duration=2 * S)
    assert s.inq == 1000 and c.snd_una == c.snd_nxt


def test_full_out_of_order_queue_is_pruned_for_the_missing_segment():
    """tcp_prune_ofo_queue: the segment filling the hole gets in by discarding out-of-order
    data above it; the SACK blocks are reset; everything arrives in the end."""
    net, c, s = make_pair(delay=1 * MS)
    dropped = []
    net.drop = lambda seg, side: side == "A" and bool(seg.payload) and not dropped and not dropped.append(1)
    c.send(bytes(12 * 1448), net.now)
    net.run(duration=1500 * 1000)
    assert s.inq == 0 and s.rcvq.ooo
    s.rcvbuf = 4608                                     # SO_RCVBUF 2304 while out of order
    s.config.rcvbuf_locked = True
    net.drop = None
    net.run(duration=2 * S)
    assert s.stats()["ofo_pruned"] >= 1 and s.inq > 0
    got = 0
    for _ in range(50):
        if s.inq:
            got += len(s.recv(1 << 20, net.now))
        net.run(duration=300 * MS)
    assert got == 12 * 1448 and c.snd_una == c.snd_nxt


def test_unlocked_rcvbuf_grows_instead_of_dropping():
    """tcp_clamp_window: without SOCK_RCVBUF_LOCK the receive buffer is raised to what is
    allocated (up to tcp_rmem[2]) rather than refusing data inside the advertised window."""
    net, c, s = _shrunk_after(10_000, locked=False)
    c.send(bytes(1000), net.now)
    net.run(duration=5 * MS)
    assert s.inq == 11_000 and s.stats()["rcvq_drops"] == 0
    assert s.rcvbuf > 4608


# -- properties -------------------------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shrink=st.sampled_from([1, 2048, 4096, 6000, 8192, 20000]),
       read_size=st.sampled_from([512, 4096, 65536]),
       pause=st.sampled_from([0.0, 0.0005, 0.003]),
       loss=st.sampled_from([0.0, 0.01, 0.03]),
       seed=st.integers(1, 1000))
def test_any_shrink_with_a_reading_reader_delivers_everything(shrink, read_size, pause, loss, seed):
    """Whatever SO_RCVBUF becomes, with loss or not, a reader that keeps reading gets every
    byte in order, and the transfer never goes silent for long (the longest wait is a
    backed-off RTO after consecutive losses, far below 5 s here)."""
    n, end, gap, _ = sim_shrunk_reader(total=120_000, shrink=shrink, read_size=read_size,
                                       pause=pause, loss=loss, seed=seed, until=120.0)
    assert n == 120_000 and end is not None
    assert gap < 5.0


# -- real Linux -------------------------------------------------------------------------
def _real_pair():
    ls = socket.socket()
    ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    ls.bind((LO, 0))
    ls.listen(1)
    c = socket.socket()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


def _tcp_info(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    backoff = info[4]
    total_retrans = struct.unpack_from("I", info, 100)[0]
    return backoff, total_retrans


@linux
def test_real_loopback_transfer_after_shrinking_completes():
    """Linux 6.18: SO_RCVBUF 8192 on an accepted socket, 300 KB over loopback: completes,
    in window-sized steps about 200 ms apart (12 s per MB measured here; the simulator,
    which does not merge skbs as tcp_grow_skb does, takes two steps per RTO: ~6 s)."""
    c, s = _real_pair()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    data = _payload(300_000)
    t = threading.Thread(target=lambda: (c.sendall(data), c.close()), daemon=True)
    t0 = time.monotonic()
    t.start()
    s.settimeout(10)
    got = bytearray()
    last = t0
    gap = 0.0
    while chunk := s.recv(65536):
        now = time.monotonic()
        gap = max(gap, now - last)
        last = now
        got.extend(chunk)
    t.join(10)
    s.close()
    assert bytes(got) == data
    assert 0.15 < gap < 2.0                          # RTO-paced, never a long silence
    n, end, sim_gap, _ = sim_shrunk_reader(total=300_000, two_hosts=False, pause=0)
    assert n == 300_000 and 0.15 < sim_gap < 0.3


@linux
def test_real_shrunk_receiver_refuses_then_recovers():
    """Linux 6.18 loopback, captured with tshark: after the shrink the 20000-byte segment is
    dropped and answered with win=0; retransmissions follow at +210 ms (loss probe), +216 ms
    (RTO), then +436, +864, +1728 ms, each answered with win=0; once the reader reads, the
    next retransmission is accepted. Here: after 1 s the sender has retransmitted 2-4 times
    with backoff, nothing got through, the connection is alive, and reading completes it."""
    c, s = _real_pair()
    data = _payload(70_000)
    c.sendall(data[:50_000])
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(data[50_000:])
    time.sleep(1.0)
    backoff, retrans = _tcp_info(c)
    import fcntl
    import termios
    buf = bytearray(4)
    fcntl.ioctl(c.fileno(), termios.TIOCOUTQ, buf)
    outq = int.from_bytes(buf, "little", signed=True)
    s.settimeout(10)
    got = bytearray()
    while len(got) < len(data):
        got.extend(s.recv(65536))
    c.close()
    s.close()
    assert outq == 20_000 and 2 <= retrans <= 4 and backoff >= 1
    assert bytes(got) == data
    sim = _queued_then_shrunk(wait=1.0)
    sim_retx = [x for x in sim["retransmit_times"] if x < 1.0]
    assert len(sim_retx) == 3 and sim["outq_after_settle"] == 20_000
