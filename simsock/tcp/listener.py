"""A listening TCP socket: SYN handling, the accept queue and its overflow, as Linux does it.

tcp_conn_request answers a SYN with a SYN-ACK from a new connection in SYN_RECV (Linux keeps
a lighter request sock; simsock uses a full :class:`TcpConnection` that the kernel registers
under its 4-tuple). When the handshake's final ACK arrives the connection asks to join the
accept queue (tcp_check_req -> inet_csk_complete_hashdance). The queue holds ``backlog + 1``
connections (sk_acceptq_is_full is ``len > backlog``; backlog is clamped to somaxconn).
With the queue full:

* a new SYN is dropped (the client retransmits it with backoff), SYN cookies or not;
* a final ACK is dropped (tcp_abort_on_overflow=0), so the server side stays in SYN_RECV and
  retransmits its SYN-ACK up to tcp_synack_retries times while the *client* is already
  ESTABLISHED and may send data, which is dropped too. Once the application accepts, the
  next retransmitted ACK (or data segment) completes the handshake.

*SYN cookies* (net.ipv4.tcp_syncookies=1, the default). The SYN queue -- connections in
SYN_RECV -- holds ``backlog + 1`` too (inet_csk_reqsk_queue_is_full is ``len > backlog``).
A SYN that finds it full while the accept queue still has room is answered statelessly
(tcp_syn_flood_action, "Possible SYN flooding ... Sending cookies"): a SYN-ACK whose ISS is a
cookie (cookie_v4_init_sequence) encoding the client's MSS as one of 536/1300/1440/1460
(msstab), with the client's window scale and SACK permission in the low 6 bits of the
timestamp (cookie_init_timestamp). Nothing is kept and nothing is retransmitted. When an ACK
then reaches the listener with a valid cookie (ack - 1, for the last two 64-second counter
periods: cookie_v4_check), the connection is created ESTABLISHED and joins the accept queue
-- unless the queue is full, in which case the ACK is dropped (tcp_v4_syn_recv_sock,
exit_overflow) and the client, which believes it is connected, completes the handshake only
with a later segment: its data or their retransmissions. An ACK with no valid cookie is
answered with RST. The cookie connection's MSS is the msstab value (1448 with timestamps
on lo, not 65483); without timestamps it has no window scaling and no SACK.
tcp_syncookies=2 sends cookies for every SYN; 0 drops SYNs when the SYN queue is full.
Checked on Linux 6.18 loopback: tests/conformance/test_syn_cookies.py.

close() resets the connections waiting in the accept queue (inet_csk_listen_stop ->
tcp_disconnect sends RST) and silently forgets those still in SYN_RECV.
"""

from __future__ import annotations

import errno as E
import zlib
from collections import deque
from typing import Callable

from simsock.constants import EPOLLIN, EPOLLRDNORM, SOMAXCONN
from simsock.errors import os_error
from simsock.signals import SIG_IN, SIG_STATE
from simsock.tcp.config import TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.segment import ACK, FIN, MASK, RST, SYN, Segment
from simsock.tcp.states import ABORT, CLOSE, CLOSE_CALL, LISTEN_CALL, SYN_RECV, transition

#: msstab (net/ipv4/syncookies.c): the MSS values a cookie can carry.
COOKIE_MSSTAB = (536, 1300, 1440, 1460)
_COOKIE_PERIOD_NS = 64 * 1_000_000_000      # the cookie counter ticks every 64 s (tcp_cookie_time)
_TS_OPT_MASK = 0x3F                          # low bits of the cookie SYN-ACK's TSval: wscale, sack
_TS_NO_WSCALE = 0xF


def reset_for(seg: Segment) -> Segment | None:
    """tcp_v4_send_reset: the RST answering a segment that reaches no socket (none for a RST)."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return Segment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
    return Segment(seg.dport, seg.sport, 0, (seg.seq + seg.seq_len) & MASK, RST | ACK, 0)


class TcpListener:
    """A listening endpoint: SYN queue, accept queue, SYN cookies. ``config_factory(src_addr)``
    builds the TcpConfig of a connection from the peer at ``src_addr`` (the kernel's route
    to it decides the MSS, loopback coalescing, pacing)."""

    def __init__(self, local: tuple[str, int], backlog: int, config_factory: Callable[[str], TcpConfig],
                 syncookies: int = 1) -> None:
        self.local = local
        self.syncookies = syncookies
        self.out: list[Segment] = []     # stateless replies (cookie SYN-ACKs) for the kernel to send
        self.dropped = False             # the last segment was dropped silently (no RST)
        self.cookies_sent = self.cookie_ack_drops = self.cookies_accepted = 0
        self.backlog = min(max(backlog, 0), SOMAXCONN)
        self.config_factory = config_factory
        self.accept_queue: deque[TcpConnection] = deque()
        self.syn_recv: dict[tuple[str, int], TcpConnection] = {}   # insertion-ordered
        self.signals = 0
        self.closed = False
        self.trace = None
        self.state = transition(CLOSE, LISTEN_CALL)
        self.syn_drops = 0
        self.ack_drops = 0

    def receive_segment(self, seg: Segment, src: tuple[str, int], now: int,
                        iss: int | None = None) -> TcpConnection | None:
        """A segment for the listening port that matched no connection.

        A SYN returns a new SYN_RECV connection (its SYN-ACK is in its segments_to_send), or
        None when the accept queue is full. Anything else returns None; the kernel answers a
        non-RST with :func:`reset_for`, as tcp_v4_rcv does for an ACK with no request sock.
        """
        self.dropped = False
        if self.closed:
            return None
        if seg.flags & ACK and not seg.flags & (SYN | RST) and self.syncookies:
            return self._cookie_ack(seg, src, now)
        if seg.flags & (RST | ACK | FIN) or not seg.flags & SYN:
            return None
        want_cookie = False
        if self.syncookies == 2 or len(self.syn_recv) > self.backlog:
            # inet_csk_reqsk_queue_is_full -> tcp_syn_flood_action
            if not self.syncookies:
                self.syn_drops += 1
                self.dropped = True
                return None
            want_cookie = True
        if len(self.accept_queue) > self.backlog:
            self.syn_drops += 1        # tcp_conn_request: sk_acceptq_is_full -> drop
            self.dropped = True
            return None
        if want_cookie:
            self._send_cookie(seg, src, now)
            return None
        if iss is None:
            # secure_tcp_seq: a keyed hash of the 4-tuple plus a 4 us clock; deterministic here.
            key = f"{self.local}{src}".encode()
            iss = (zlib.crc32(key) + now // 64) & MASK
        conn = TcpConnection(self.local, src, self.config_factory(src[0]), iss)
        conn.trace = self.trace
        conn.listener = self
        conn._passive_open(seg, now)
        self.syn_recv[src] = conn
        return conn

    # -- SYN cookies -----------------------------------------------------------------------
    def _cookie(self, src: tuple[str, int], client_isn: int, count: int, mssind: int) -> int:
        """cookie_v4_init_sequence, deterministic: a hash of the 4-tuple, the client's ISN and
        the counter, with the MSS index in the low 2 bits and the counter in the top 8."""
        h = zlib.crc32(f"{self.local}{src}{client_isn}{count}".encode())
        return ((h & 0x00FFFFFC) | ((count & 0xFF) << 24) | mssind) & MASK

    def _send_cookie(self, syn: Segment, src: tuple[str, int], now: int) -> None:
        peer_mss = syn.mss if syn.mss is not None else 536
        mssind = max(i for i, m in enumerate(COOKIE_MSSTAB) if m <= peer_mss or i == 0)
        cookie = self._cookie(src, syn.seq, now // _COOKIE_PERIOD_NS, mssind)
        # The SYN-ACK a request sock would send (same options, window), but from nothing.
        tmp = TcpConnection(self.local, src, self.config_factory(src[0]), cookie)
        tmp._passive_open(syn, now)
        synack = tmp._out[0]
        if synack.ts is not None:
            opts = (syn.wscale if syn.wscale is not None else _TS_NO_WSCALE) | (0x10 if syn.sack_permitted else 0)
            synack.ts = ((synack.ts[0] & ~_TS_OPT_MASK & MASK) | opts, synack.ts[1])
        self.out.append(synack)
        self.cookies_sent += 1

    def _cookie_ack(self, seg: Segment, src: tuple[str, int], now: int) -> TcpConnection | None:
        """An ACK for the listening port with no connection: a cookie's final ACK (or a later
        segment of that connection), or nothing (None: the kernel answers with RST)."""
        cookie = (seg.ack - 1) & MASK
        client_isn = (seg.seq - 1) & MASK
        count = now // _COOKIE_PERIOD_NS
        mssind = cookie & 3
        if not any(self._cookie(src, client_isn, c, mssind) == cookie for c in (count, count - 1)):
            return None
        if len(self.accept_queue) > self.backlog:
            self.cookie_ack_drops += 1      # tcp_v4_syn_recv_sock: exit_overflow, no RST
            self.ack_drops += 1
            self.dropped = True
            return None
        # Rebuild the client's SYN from the cookie: its ISN, MSS from msstab, and (with
        # timestamps) its window scale and SACK permission from the echoed TSval.
        syn = Segment(seg.sport, seg.dport, client_isn, 0, SYN, seg.window, mss=COOKIE_MSSTAB[mssind])
        if seg.ts is not None:
            opts = seg.ts[1] & _TS_OPT_MASK
            syn.ts = (seg.ts[0], 0)
            syn.wscale = None if opts & 0xF == _TS_NO_WSCALE else opts & 0xF
            syn.sack_permitted = bool(opts & 0x10)
        conn = TcpConnection(self.local, src, self.config_factory(src[0]), cookie)
        conn.trace = self.trace
        conn.listener = self
        conn._passive_open(syn, now)
        conn._out.clear()                   # no SYN-ACK: it was sent long ago, by nobody
        conn.stats_segments_sent = conn.stats_synacks_sent = 0
        if seg.ts is not None:
            # the RTT sample comes from the timestamp echo (tcp_ack_update_rtt, >= 1 ms)
            sent_ms = (seg.ts[1] & MASK)
            conn.retrans_stamp = now - max(((now // 1_000_000) - sent_ms) & MASK, 1) * 1_000_000
        else:
            conn.retransmits = 1            # no RTT sample without timestamps (Karn)
        conn.receive_segment(seg, now)      # tcp_child_process: the ACK, and its data
        if conn.state == SYN_RECV:
            return None                     # not acceptable after all (RST queued is dropped)
        self.cookies_accepted += 1
        return conn

    def take_output(self) -> list[Segment]:
        out, self.out = self.out, []
        return out

    def _handshake_done(self, conn: TcpConnection, now: int) -> bool:
        if self.closed:
            return False
        if len(self.accept_queue) > self.backlog:
            self.ack_drops += 1
            return False
        self.syn_recv.pop(conn.remote, None)
        self.accept_queue.append(conn)
        self.signals |= SIG_IN
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
        conn.listener = None
        return conn

    def poll(self) -> int:
        return EPOLLIN | EPOLLRDNORM if self.accept_queue else 0

    def take_signals(self) -> int:
        s, self.signals = self.signals, 0
        return s

    def close(self, now: int) -> list[TcpConnection]:
        """Stop listening; return the connections whose RSTs the kernel must now send."""
        self.closed = True
        self.state = transition(self.state, CLOSE_CALL)
        reset = []
        while self.accept_queue:
            conn = self.accept_queue.popleft()
            conn.listener = None
            conn.orphan = True
            conn.abort(now)
            reset.append(conn)
        for conn in list(self.syn_recv.values()):
            conn.listener = None
            conn._done(ABORT, now)
        self.syn_recv.clear()
        self.signals |= SIG_STATE
        return reset
