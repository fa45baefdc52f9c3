"""Listening sockets: accept queue of backlog+1, overflow leaves clients that think they're connected."""

import errno

import pytest

from simsock.constants import EPOLLIN
from simsock.tcp.config import TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.listener import TcpListener, reset_for
from simsock.tcp.segment import ACK, RST, SYN, Segment
from simsock.signals import SIG_IN
from tests.tcp.fakelink import MS, Net

S = 1000 * MS


def clients(net, n, port0=41000):
    out = []
    for i in range(n):
        c = net.add(TcpConnection(("10.0.0.1", port0 + i), ("10.0.0.2", 80),
                                  TcpConfig(congestion="reno"), iss=100 + i), "A")
        c.connect(net.now)
        out.append(c)
    return out


def test_backlog_overflow_client_established_server_syn_recv():
    """backlog=1 holds 2 connections; one is queued, then two clients connect at once (the SYN
    queue takes both: it too holds backlog + 1). The first ACK fills the accept queue; the 3rd
    client completes its side of the handshake (ESTABLISHED, may even send) while the server
    keeps it in SYN_RECV retransmitting SYN-ACKs. Accepting one makes room, and the next
    retransmission completes the third."""
    net = Net(delay=1 * MS)
    lst = net.listen(TcpListener(("10.0.0.2", 80), 1, lambda src_addr: TcpConfig(congestion="reno")), "B")
    cs = clients(net, 1)
    net.run(duration=100 * MS)
    cs += clients(net, 2, port0=41001)
    net.run(duration=500 * MS)
    assert [c.state for c in cs] == ["ESTABLISHED"] * 3
    assert len(lst.accept_queue) == 2 and lst.poll() & EPOLLIN
    assert lst.take_signals() & SIG_IN
    third = next(iter(lst.syn_recv.values()))
    assert third.state == "SYN_RECV" and lst.ack_drops >= 1
    assert cs[2].send(b"hi", net.now) == 2           # the client believes it is connected
    net.run(duration=2 * S)
    assert third.state == "SYN_RECV" and third.stats()["retransmits"] >= 1
    lst.accept(net.now)
    net.run(duration=5 * S)
    assert len(lst.accept_queue) == 2
    conns = [lst.accept(net.now), lst.accept(net.now)]
    assert third in conns and third.state == "ESTABLISHED"
    net.run(duration=1 * S)
    assert third.recv(10, net.now) == b"hi"
    with pytest.raises(BlockingIOError):
        lst.accept(net.now)


def test_syn_dropped_while_queue_full_is_retried():
    """With the accept queue full a new SYN gets no answer; the client retransmits it 1 s later."""
    net = Net(delay=1 * MS)
    lst = net.listen(TcpListener(("10.0.0.2", 80), 0, lambda src_addr: TcpConfig(congestion="reno")), "B")
    _first = clients(net, 1)   # fills the accept queue (backlog 0)
    net.run(duration=100 * MS)
    b = clients(net, 1, port0=42000)
    net.run(duration=500 * MS)
    assert b[0].state == "SYN_SENT" and lst.syn_drops == 1
    lst.accept(net.now)
    net.run(duration=2 * S)
    assert b[0].state == "ESTABLISHED" and len(lst.accept_queue) == 1


def test_listener_close_resets_queued_connections():
    """Closing a listener sends RST for every unaccepted connection: clients see ECONNRESET."""
    net = Net(delay=1 * MS)
    lst = net.listen(TcpListener(("10.0.0.2", 80), 8, lambda src_addr: TcpConfig(congestion="reno")), "B")
    cs = clients(net, 2)
    net.run(duration=100 * MS)
    reset = lst.close(net.now)
    assert len(reset) == 2
    net.run(duration=100 * MS)
    assert all(c.state == "CLOSE" and c.take_error() == errno.ECONNRESET for c in cs)


def test_reset_for():
    """tcp_v4_send_reset: RST at the ACK number for an ACK; RST|ACK covering a SYN; nothing for RST."""
    r = reset_for(Segment(1, 2, 10, 555, ACK, 100, b"abc"))
    assert (r.sport, r.dport, r.seq, r.flags) == (2, 1, 555, RST)
    r = reset_for(Segment(1, 2, 10, 0, SYN, 100))
    assert (r.seq, r.ack, r.flags) == (0, 11, RST | ACK)
    assert reset_for(Segment(1, 2, 10, 0, RST, 0)) is None


def test_syn_queue_overflow_sends_cookies_and_completes_from_the_ack():
    """Three SYNs at once for backlog=1: two request socks, a cookie SYN-ACK for the third
    (no state kept, no retransmission). Its ACK reaches the listener while the accept queue is
    full and is dropped; the client's data, once accept() made room, creates the connection
    with the cookie's MSS (1460 - 12 with timestamps)."""
    net = Net(delay=1 * MS)
    lst = net.listen(TcpListener(("10.0.0.2", 80), 1, lambda src_addr: TcpConfig(congestion="reno")), "B")
    cs = clients(net, 3)
    net.run(duration=500 * MS)
    assert [c.state for c in cs] == ["ESTABLISHED"] * 3
    assert lst.cookies_sent == 1 and len(lst.accept_queue) == 2 and not lst.syn_recv
    assert lst.cookie_ack_drops == 1
    assert cs[2].send(b"hi", net.now) == 2
    net.run(duration=100 * MS)
    assert lst.cookie_ack_drops == 2 and len(lst.accept_queue) == 2    # its data: dropped too
    lst.accept(net.now)
    net.run(duration=3 * S)                                            # the RTO resends it
    conn = lst.accept_queue[-1]
    assert conn.remote[1] == cs[2].local[1] and conn.state == "ESTABLISHED"
    assert conn.mss_cache == 1448 and conn.recv(10, net.now) == b"hi"


def test_ack_with_a_bad_cookie_is_reset():
    """An ACK for the listening port that matches no connection and no cookie gets a RST."""
    lst = TcpListener(("10.0.0.2", 80), 1, lambda src_addr: TcpConfig())
    ack = Segment(41000, 80, 1234, 5678, ACK, 100)
    assert lst.receive_segment(ack, ("10.0.0.1", 41000), 0) is None
    assert not lst.dropped and not lst.out
