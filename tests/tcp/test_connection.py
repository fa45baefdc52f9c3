"""Two TCP connections over a fake link: handshake, transfer, close and reset paths."""

import errno

import pytest

from simsock.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLWRNORM, SHUT_WR
from simsock.tcp.config import TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.segment import SYN
from simsock.signals import SIG_STATE
from tests.tcp.fakelink import MS, Net, make_pair

S = 1000 * MS


def drain(net, conn, n=1 << 20):
    out = bytearray()
    while True:
        try:
            d = conn.recv(n, net.now)
        except BlockingIOError:
            return bytes(out)
        if not d:
            return bytes(out)
        out += d


def test_handshake_takes_three_one_way_delays():
    """connect() sends SYN; both sides are ESTABLISHED after SYN, SYN-ACK, ACK (3 x delay)."""
    net, c, s = make_pair(delay=5 * MS)
    assert (c.state, s.state) == ("ESTABLISHED", "ESTABLISHED")
    assert net.now == 15 * MS
    assert c.take_signals() & SIG_STATE
    assert c.mss_cache == 1448 and s.mss_cache == 1448   # 1460 - 12 for timestamps


def test_fresh_socket_poll_send_recv():
    """A never-connected socket polls EPOLLOUT|EPOLLHUP; send is EPIPE, recv ENOTCONN (Linux)."""
    c = TcpConnection(("10.0.0.1", 1), ("10.0.0.2", 2), TcpConfig(), iss=1)
    assert c.poll() == EPOLLOUT | EPOLLHUP | EPOLLWRNORM or c.poll() & (EPOLLOUT | EPOLLHUP) == EPOLLOUT | EPOLLHUP
    with pytest.raises(BrokenPipeError):
        c.send(b"x", 0)
    with pytest.raises(OSError) as e:
        c.recv(1, 0)
    assert e.value.errno == errno.ENOTCONN


def test_bulk_transfer_delivers_exact_bytes():
    """1 MB crosses intact and in order; the sender's outq returns to 0."""
    net, c, s = make_pair()
    data = bytes(range(256)) * 4096
    sent, got = 0, bytearray()
    while len(got) < len(data):
        if sent < len(data):
            try:
                sent += c.send(data[sent:], net.now)
            except BlockingIOError:
                pass
        net.step(net.now + S)
        got += drain(net, s)
    assert bytes(got) == data
    net.run(duration=1 * S)
    assert c.outq == 0 and c.wmem_queued == 0


def test_half_close_peer_can_still_send():
    """After A's shutdown(SHUT_WR), B reads EOF (EPOLLRDHUP) yet its own sends still reach A."""
    net, c, s = make_pair()
    c.send(b"hello", net.now)
    c.shutdown(SHUT_WR, net.now)
    net.run(duration=1 * S)
    assert drain(net, s) == b"hello"
    assert s.recv(10, net.now) == b"" and s.recv(10, net.now) == b""
    assert s.poll() & (EPOLLIN | EPOLLRDHUP) == EPOLLIN | EPOLLRDHUP
    assert (c.state, s.state) == ("FIN_WAIT2", "CLOSE_WAIT")
    assert s.send(b"reply", net.now) == 5
    net.run(duration=1 * S)
    assert drain(net, c) == b"reply"
    with pytest.raises(BrokenPipeError):
        c.send(b"x", net.now)


def test_orderly_close_time_wait_then_finished():
    """Active closer: FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT (60 s) -> finished; passive: LAST_ACK -> CLOSE."""
    net, c, s = make_pair()
    c.close(net.now)
    assert c.state == "FIN_WAIT1"
    net.run(duration=300 * MS)
    assert s.state == "CLOSE_WAIT" and c.state == "FIN_WAIT2"
    assert s.recv(10, net.now) == b""
    s.close(net.now)
    assert s.state == "LAST_ACK"
    net.run(duration=1 * S)
    assert s.state == "CLOSE" and s.finished
    assert c.state == "TIME_WAIT" and c.in_time_wait and not c.finished
    # TIME_WAIT began within the last second: 58 s on it has not lasted 60 s, 61 s has
    net.run(duration=58 * S)
    assert c.state == "TIME_WAIT" and c.in_time_wait and not c.finished
    net.run(duration=3 * S)
    assert c.finished and not c.in_time_wait


def test_simultaneous_close_goes_through_closing():
    """Both close at once: FIN_WAIT1 -> CLOSING -> TIME_WAIT on both sides."""
    net, c, s = make_pair()
    c.close(net.now)
    s.close(net.now)
    seen = set()
    c.trace = lambda kind, now, f: seen.add(f.get("new"))
    net.run(duration=1 * S)
    assert "CLOSING" in seen
    assert c.state == "TIME_WAIT" and s.state == "TIME_WAIT"


def test_close_with_unread_data_sends_rst():
    """close() with unread received data sends RST: peer's recv raises ECONNRESET once, then b''."""
    net, c, s = make_pair()
    c.send(b"unread", net.now)
    net.run(duration=100 * MS)
    s.close(net.now)
    assert s.finished
    net.run(duration=100 * MS)
    with pytest.raises(ConnectionResetError):
        c.recv(10, net.now)
    assert c.recv(10, net.now) == b""
    with pytest.raises(BrokenPipeError):
        c.send(b"x", net.now)


def test_linger_zero_close_is_abortive():
    """SO_LINGER 0: close() sends RST, no FIN, no TIME_WAIT."""
    cfg = TcpConfig(congestion="reno", linger=0)
    net, c, s = make_pair(cfg_a=cfg)
    c.close(net.now)
    assert c.finished and not c.in_time_wait
    net.run(duration=100 * MS)
    assert s.state == "CLOSE"
    assert s.take_error() == errno.ECONNRESET and s.take_error() == 0


def test_rst_errno_sequence_for_send():
    """After the peer's RST: first send raises ECONNRESET, later sends EPIPE (measured on Linux)."""
    net, c, s = make_pair()
    c.abort(net.now)
    net.run(duration=100 * MS)
    assert s.poll() & (EPOLLERR | EPOLLHUP) == EPOLLERR | EPOLLHUP
    with pytest.raises(ConnectionResetError):
        s.send(b"x", net.now)
    for _ in range(3):
        with pytest.raises(BrokenPipeError):
            s.send(b"x", net.now)
    assert s.recv(1, net.now) == b""


def test_recv_after_rst_returns_queued_data_first():
    """RST with data queued: recv returns the data, then ECONNRESET once, then b'' forever."""
    net, c, s = make_pair()
    c.send(b"hello", net.now)
    net.run(duration=100 * MS)
    c.abort(net.now)
    net.run(duration=100 * MS)
    assert [s.recv(2, net.now) for _ in range(3)] == [b"he", b"ll", b"o"]
    with pytest.raises(ConnectionResetError):
        s.recv(2, net.now)
    assert s.recv(2, net.now) == b"" and s.recv(2, net.now) == b""


def test_send_after_peer_fin_succeeds_then_epipe():
    """Peer closed (FIN): the first send succeeds; its RST answer makes the next send EPIPE."""
    net, c, s = make_pair()
    s.close(net.now)
    net.run(duration=100 * MS)
    assert c.state == "CLOSE_WAIT"
    assert c.send(b"a", net.now) == 1
    net.run(duration=100 * MS)
    for _ in range(3):
        with pytest.raises(BrokenPipeError):
            c.send(b"a", net.now)
    assert c.recv(1, net.now) == b""
    assert c.take_error() == 0


def test_connect_refused():
    """SYN to a port nobody listens on: RST -> ECONNREFUSED via SO_ERROR, then 0."""
    net = Net()
    c = net.add(TcpConnection(("10.0.0.1", 5), ("10.0.0.2", 9), TcpConfig(), iss=7), "A")
    c.connect(0)
    net.run(duration=1 * S)
    assert c.state == "CLOSE"
    assert c.poll() & EPOLLERR
    assert c.take_error() == errno.ECONNREFUSED and c.take_error() == 0
    assert not c.poll() & EPOLLERR


def test_syn_retransmits_with_backoff_then_etimedout():
    """Unanswered SYN (Linux >= 6.5, tcp_syn_linear_timeouts=4): sent at 0, 1, 2, 3, 4, 5 s,
    then backed off: 7, 11, 19, 35, 67 s; ETIMEDOUT at the first timer past 127 s
    (tcp_model_timeout for tcp_syn_retries=6), 131 s. Measured on 6.18: 134 s with jiffies."""
    net = Net()
    net.drop = lambda seg, side: True
    c = net.add(TcpConnection(("10.0.0.1", 5), ("10.0.0.2", 9), TcpConfig(), iss=7), "A")
    c.connect(0)
    net.run(duration=200 * S)
    times = [t for t, side, seg, what in net.log if seg.flags & SYN]
    assert times == [x * S for x in (0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67)]
    assert c.state == "CLOSE" and c.take_error() == errno.ETIMEDOUT
    assert c.stats()["retransmits"] == 10


@pytest.mark.parametrize("one_way_ms, cwnd", [(1300, 10), (10, 10)])
def test_slow_syn_ack_to_the_first_syn_keeps_the_initial_window(one_way_ms, cwnd):
    """A SYN-ACK that echoes the *first* SYN's timestamp after two retransmissions shows the
    SYN was slow, not lost (tcp_try_undo_spurious_syn): cwnd stays at the initial window.
    (When the SYNs were really lost, cwnd starts at 1: tests/conformance/test_syn_cookies.py.)"""
    from simsock.tcp.listener import TcpListener
    net = Net(delay=one_way_ms * MS)
    net.listen(TcpListener(("10.0.0.2", 80), 8, lambda src_addr: TcpConfig()), "B")
    c = net.add(TcpConnection(("10.0.0.1", 5), ("10.0.0.2", 80), TcpConfig(), iss=7), "A")
    net.run(duration=5 * MS)
    c.connect(net.now)
    net.run(duration=6 * S)
    assert c.state == "ESTABLISHED" and c.tp.snd_cwnd == cwnd
    assert c.stats_retransmits == (2 if one_way_ms > 1000 else 0)
