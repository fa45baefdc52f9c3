"""A listening TCP socket: SYN handling, the accept queue and its overflow, as Linux does it.

tcp_conn_request answers a SYN with a SYN-ACK from a new connection in SYN_RECV (Linux keeps
a lighter request sock; simsock uses a full :class:`TcpConnection` that the kernel registers
under its 4-tuple). When the handshake's final ACK arrives the connection asks to join the
accept queue (tcp_check_req -> inet_csk_complete_hashdance). The queue holds ``backlog + 1``
connections (sk_acceptq_is_full is ``len > backlog``; backlog is clamped to somaxconn).
With the queue full:

* a new SYN is dropped (the client retransmits it with backoff);
* a final ACK is dropped (tcp_abort_on_overflow=0), so the server side stays in SYN_RECV and
  retransmits its SYN-ACK up to tcp_synack_retries times while the *client* is already
  ESTABLISHED and may send data, which is dropped too. Once the application accepts, the
  next retransmitted ACK (or data segment) completes the handshake.

close() resets the connections waiting in the accept queue (inet_csk_listen_stop ->
tcp_disconnect sends RST) and silently forgets those still in SYN_RECV.
"""

from __future__ import annotations

import errno as E
import zlib
from collections import deque

from simsock.constants import EPOLLIN, EPOLLRDNORM, SOMAXCONN
from simsock.errors import os_error
from simsock.tcp.connection import MASK, TcpConnection
from simsock.tcp.segment import ACK, FIN, RST, SYN, Segment
from simsock.tcp.signals import SIG_ACCEPT, SIG_STATE


def reset_for(seg: Segment) -> Segment | None:
    """tcp_v4_send_reset: the RST answering a segment that reaches no socket (none for a RST)."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return Segment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
    return Segment(seg.dport, seg.sport, 0, (seg.seq + seg.seq_len) & MASK, RST | ACK, 0)


class TcpListener:
    def __init__(self, local: tuple[str, int], backlog: int, config_factory) -> None:
        self.local = local
        self.backlog = min(max(backlog, 0), SOMAXCONN)
        self.config_factory = config_factory
        self.accept_queue: deque[TcpConnection] = deque()
        self.syn_recv: dict[tuple[str, int], TcpConnection] = {}   # insertion-ordered
        self.signals = 0
        self.closed = False
        self.trace = None
        self.state = "LISTEN"
        self.syn_drops = 0
        self.ack_drops = 0

    def receive_segment(self, seg: Segment, src: tuple[str, int], now: int,
                        iss: int | None = None) -> TcpConnection | None:
        """A segment for the listening port that matched no connection.

        A SYN returns a new SYN_RECV connection (its SYN-ACK is in its segments_to_send), or
        None when the accept queue is full. Anything else returns None; the kernel answers a
        non-RST with :func:`reset_for`, as tcp_v4_rcv does for an ACK with no request sock.
        """
        if self.closed or seg.flags & (RST | ACK | FIN) or not seg.flags & SYN:
            return None
        if len(self.accept_queue) > self.backlog:
            self.syn_drops += 1        # tcp_conn_request: sk_acceptq_is_full -> drop
            return None
        if iss is None:
            # secure_tcp_seq: a keyed hash of the 4-tuple plus a 4 us clock; deterministic here.
            key = f"{self.local}{src}".encode()
            iss = (zlib.crc32(key) + now // 64) & MASK
        conn = TcpConnection(self.local, src, self.config_factory(), iss)
        conn.trace = self.trace
        conn._listener = self
        conn._passive_open(seg, now)
        self.syn_recv[src] = conn
        return conn

    def _handshake_done(self, conn: TcpConnection, now: int) -> bool:
        if self.closed:
            return False
        if len(self.accept_queue) > self.backlog:
            self.ack_drops += 1
            return False
        self.syn_recv.pop(conn.remote, None)
        self.accept_queue.append(conn)
        self.signals |= SIG_ACCEPT
        return True

    def _forget(self, conn: TcpConnection) -> None:
        if self.syn_recv.get(conn.remote) is conn:
            del self.syn_recv[conn.remote]

    def accept(self, now: int) -> TcpConnection:
        if self.closed:
            raise os_error(E.EINVAL)
        if not self.accept_queue:
            raise os_error(E.EAGAIN)
        conn = self.accept_queue.popleft()
        conn._listener = None
        return conn

    def poll(self) -> int:
        return EPOLLIN | EPOLLRDNORM if self.accept_queue else 0

    def take_signals(self) -> int:
        s, self.signals = self.signals, 0
        return s

    def close(self, now: int) -> list[TcpConnection]:
        """Stop listening; return the connections whose RSTs the kernel must now send."""
        self.closed = True
        self.state = "CLOSE"
        reset = []
        while self.accept_queue:
            conn = self.accept_queue.popleft()
            conn._listener = None
            conn.orphan = True
            conn.abort(now)
            reset.append(conn)
        for conn in list(self.syn_recv.values()):
            conn._listener = None
            conn._done(now)
        self.syn_recv.clear()
        self.signals |= SIG_STATE
        return reset
