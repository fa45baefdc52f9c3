"""Flow control, Nagle/delayed ACK, RTO and fast retransmit over the fake link."""

from simsock.constants import EPOLLOUT
from simsock.tcp.config import TcpConfig
from tests.tcp.fakelink import MS, make_pair

S = 1000 * MS


def fill(net, conn, chunk=65536):
    total = 0
    while True:
        try:
            total += conn.send(b"x" * chunk, net.now)
        except BlockingIOError:
            return total


def test_zero_window_probes_backoff_and_reopen():
    """A reader that stops reading: the window closes to 0, the sender probes with zero-length
    segments (seq snd_una-1) at RTO-based, doubling intervals, and resumes once the reader drains."""
    cfg_b = TcpConfig(congestion="reno", rcvbuf=8192, rcvbuf_locked=True)
    net, c, s = make_pair(cfg_b=cfg_b)
    events = []
    c.trace = lambda kind, now, f: events.append((kind, now, f))
    fill(net, c)
    net.run(duration=10 * S)
    zwp = [t for k, t, f in events if k == "zwp"]
    assert len(zwp) >= 4
    gaps = [b - a for a, b in zip(zwp, zwp[1:])]
    assert all(g2 >= 2 * g1 - 2 * MS for g1, g2 in zip(gaps, gaps[1:]))   # exponential backoff
    assert c.snd_wnd == 0 and s.rmem_alloc <= 8192
    before = s.inq
    data = s.recv(1 << 20, net.now)
    assert len(data) == before
    net.run(duration=100 * MS)      # window update ACK from tcp_cleanup_rbuf reopens the flow
    assert s.inq > 0


def test_writable_only_when_half_of_queue_free():
    """EPOLLOUT and SIG_OUT come back only when free >= queued/2, not at the first free byte."""
    cfg_a = TcpConfig(congestion="reno", sndbuf=32768, sndbuf_locked=True)
    cfg_b = TcpConfig(congestion="reno", rcvbuf=16384, rcvbuf_locked=True)
    net, c, s = make_pair(cfg_a=cfg_a, cfg_b=cfg_b)
    fill(net, c)
    net.run(duration=2 * S)
    fill(net, c)
    assert not c.poll() & EPOLLOUT
    c.take_signals()
    while True:
        s.recv(1000, net.now)        # slow reader: frees a little at a time
        net.run(duration=50 * MS)
        q = c.wmem_queued
        if c.poll() & EPOLLOUT:
            assert c.sndbuf - q >= q // 2
            break
        assert c.sndbuf - q < q // 2 or q >= c.sndbuf


def test_send_buffer_charges_skb_overhead():
    """Queued memory is payload + 832 bytes per skb: a 1-byte corked send costs 833."""
    cfg = TcpConfig(congestion="reno", cork=True)
    net, c, s = make_pair(cfg_a=cfg)
    c.send(b"x", net.now)
    assert c.wmem_queued == 833
    c.send(b"y" * 100, net.now)
    assert c.wmem_queued == 933          # appended to the unsent tail skb


def test_partial_send_when_buffer_nearly_full():
    """send() accepts part of a buffer when only part fits (tcp_sendmsg), EAGAIN when none does."""
    cfg_a = TcpConfig(congestion="reno", sndbuf=8192, sndbuf_locked=True)
    cfg_b = TcpConfig(congestion="reno", rcvbuf=4096, rcvbuf_locked=True)
    net, c, s = make_pair(cfg_a=cfg_a, cfg_b=cfg_b)
    n = c.send(b"x" * 100000, net.now)
    assert 0 < n < 100000
    assert c.wmem_queued >= c.sndbuf or n < 100000


def test_nagle_delayed_ack_stall():
    """write-write-read: the first round is quick (quickack), later rounds stall ~40 ms because
    the second small write waits for the ACK the server delays (pingpong mode)."""
    net, c, s = make_pair(delay=50_000)
    rounds = []
    for i in range(5):
        t0 = net.now
        c.send(b"a" * 100, net.now)
        net.flush()                  # the kernel pushes after every send() (tcp_push)
        c.send(b"b" * 100, net.now)
        net.run_until(lambda: s.inq >= 200)
        s.recv(200, net.now)
        s.send(b"r" * 10, net.now)
        net.run_until(lambda: c.inq >= 10)
        c.recv(10, net.now)
        rounds.append(net.now - t0)
    assert rounds[0] < 1 * MS
    assert all(39 * MS <= r <= 45 * MS for r in rounds[1:]), rounds


def test_nodelay_removes_the_stall():
    """With TCP_NODELAY the same exchange takes about one RTT."""
    net, c, s = make_pair(delay=50_000, cfg_a=TcpConfig(congestion="reno", nodelay=True))
    for i in range(4):
        t0 = net.now
        c.send(b"a" * 100, net.now)
        net.flush()                  # the kernel pushes after every send() (tcp_push)
        c.send(b"b" * 100, net.now)
        net.run_until(lambda: s.inq >= 200)
        s.recv(200, net.now)
        s.send(b"r" * 10, net.now)
        net.run_until(lambda: c.inq >= 10)
        c.recv(10, net.now)
        assert net.now - t0 < 1 * MS


def test_rto_backoff_doubles_then_etimedout():
    """Black-holed data: first a tail loss probe (one segment in flight: 2*srtt + 200 ms,
    capped at the RTO), then retransmissions at RTO, 2 RTO, 4 RTO ... capped at 120 s --
    the pattern Linux shows (tests/tcp/test_rcvbuf_shrink.py); ETIMEDOUT once
    tcp_retries2's modelled time (~924.6 s from the first send) has passed."""
    net, c, s = make_pair(delay=1 * MS)
    net.drop = lambda seg, side: side == "A"
    t_send = net.now
    c.send(b"z" * 100, net.now)
    net.run(duration=2000 * S)
    times = [t for t, side, seg, what in net.log if side == "A" and seg.payload and t >= t_send]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert c.stats()["loss_probes"] == 1
    assert gaps[0] == min(2 * c.rtt.srtt + 200 * MS, gaps[1])      # the probe
    assert gaps[2] == 2 * gaps[1] and gaps[3] == 2 * gaps[2]
    assert max(gaps) == 120 * S
    assert c.state == "CLOSE" and c.take_error() == 110
    assert 924 * S <= times[-1] - t_send + 120 * S  # gave up after the modelled time


def test_fast_retransmit_after_single_drop():
    """One data segment lost mid-stream: 3 dup ACKs trigger a fast retransmit, no RTO,
    and cwnd is reduced (NewReno)."""
    net, c, s = make_pair(delay=5 * MS)
    dropped = []

    def drop(seg, side):
        if side == "A" and seg.payload and not dropped and c.stats_bytes_sent > 40000:
            dropped.append(seg.seq)
            return True
        return False
    net.drop = drop
    data = b"q" * 300000
    sent = 0
    got = bytearray()
    while len(got) < len(data):
        if sent < len(data):
            try:
                sent += c.send(data[sent:], net.now)
            except BlockingIOError:
                pass
        net.step(net.now + S)
        try:
            while True:
                got += s.recv(1 << 20, net.now)
        except BlockingIOError:
            pass
    st = c.stats()
    assert dropped and st["fast_retransmits"] >= 1 and st["rto_count"] == 0
    assert bytes(got) == data
    assert st["ssthresh"] < 1 << 30
