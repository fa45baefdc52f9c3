"""One TCP connection as Linux runs it, without I/O: segments in, segments out, timers as data.

What is modelled, and where it comes from
-----------------------------------------
*States and close.* RFC 793's machine with Linux's names (``tcp_set_state``). close()
(tcp_close) discards the receive queue; if it held unread data the connection sends RST and
goes to CLOSE at once (RFC 2525 2.17), as it does with SO_LINGER 0; otherwise
tcp_close_state sends FIN (FIN_WAIT1 or LAST_ACK). An orphan in FIN_WAIT2 lingers
tcp_fin_timeout; TIME_WAIT lasts 60 s (TCP_TIMEWAIT_LEN) and ends early on RST
(tcp_rfc1337=0). Data arriving after close()/shutdown(SHUT_RD) in FIN_WAIT1/2 is answered
with RST (tcp_rcv_state_process, RFC 1122 4.2.2.13).

*Errors* (tcp_reset, tcp_sendmsg_locked, tcp_recvmsg_locked, sk_stream_error). RST in
SYN_SENT -> ECONNREFUSED; in CLOSE_WAIT -> EPIPE; otherwise ECONNRESET. The pending error
(sk_err) is read and cleared by whichever comes first: send, recv, or SO_ERROR
(take_error). send() after a reset or shutdown(SHUT_WR) raises the pending error once, then
EPIPE; recv() returns queued data first, then the pending error once, then b"" forever. A
send on a never-connected socket is EPIPE (sk_stream_wait_connect), a recv is ENOTCONN.
These sequences were measured on Linux 6.18 loopback (tests/tcp/test_linux_facts.py).

*Buffers* (buffers.py): send space charged per skb truesize, receive window computed from
free receive memory through ``scaling_ratio`` (tcp_win_from_space, Linux >= 6.6), window
scaling (RFC 7323), never shrinking the right edge (tcp_select_window) except to advertise a
zero window after dropping a segment for lack of memory (ICSK_ACK_NOMEM; receiver.py
_prune_queue: tcp_clamp_window, out-of-order pruning, an empty receive queue always takes
the next in-sequence segment), silly-window
avoidance on both sides (__tcp_select_window advertises 0 rather than less than an MSS;
tcp_snd_wnd_test sends only segments that fit), window-update ACKs when a read at least
doubles the window (tcp_cleanup_rbuf), receive-buffer autotuning once per RTT
(tcp_rcv_space_adjust) and send-buffer growth with cwnd (tcp_sndbuf_expand) unless the
application set SO_RCVBUF / SO_SNDBUF. writability is sk_stream_is_writeable: free space >=
half of the queued memory, and SIG_OUT fires only for a writer that ran out (SOCK_NOSPACE).

*ACK timing* (tcp_input.c __tcp_ack_snd_check, tcp_event_data_recv, tcp_send_delayed_ack):
quickack mode for the first segments (up to 16), immediate ACK once more than one full
segment is unacknowledged, for out-of-order or duplicate data, otherwise a delayed ACK after
``ato`` (40 ms minimum, adapted to inter-arrival times, capped at 200 ms in interactive
"pingpong" mode). A reply sent within ato of an arrival enters pingpong mode, which ends
quickacks: hence Nagle + delayed ACK stalls write-write-read by ~40 ms after the first round.

*Sending, recovery, timers*: sender.py, recovery.py, timers.py; the handshake: handshake.py;
the state changes: the table in states.py. RTT/RTO: rtt.py (RFC 6298). Handshake: SYN with
MSS, window scale, SACK-permitted and timestamp options; SYN retransmitted with backoff from
1 s and given up (ETIMEDOUT) after tcp_syn_retries (127 s at 6); SYN-ACK retransmitted
synack_retries times by a passive connection; an established connection gives up after
tcp_retries2 worth of backoff (~924 s). Simultaneous open is not modelled.

Sequence numbers are unbounded Python ints starting at ``iss``; only the wire fields are
taken modulo 2**32, and incoming ones are unwrapped around the expected value.
"""

from __future__ import annotations

import errno as E

from simsock.constants import (EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP,
                               EPOLLRDNORM, EPOLLWRNORM, SHUT_RD, SHUT_RDWR, SHUT_WR)
from simsock.errors import os_error
from simsock.signals import SIG_IN, SIG_OUT, SIG_STATE
from simsock.tcp.buffers import ReceiveQueue
from simsock.tcp.config import TcpConfig
from simsock.tcp.congestion import get_ops
from simsock.tcp.segment import ACK, MASK, RST, TIMESTAMP_OPTION, Segment
from simsock.tcp.handshake import Handshake
from simsock.tcp.rate import RateSampler
from simsock.tcp.receiver import Receiver, ReceiveState
from simsock.tcp.recovery import Recovery
from simsock.tcp.sack import SackBlocks, max_sack_blocks
from simsock.tcp.sender import Sender
from simsock.tcp.ack import AckProcessing
from simsock.tcp.timers import Timers
from simsock.tcp.states import (ABORT, CLOSE, CLOSE_CALL, CLOSE_WAIT, CLOSING,
                                ESTABLISHED, FIN_WAIT1, FIN_WAIT2, ICMP_ERROR, LAST_ACK,
                                LISTEN, RCV_ACK_OF_FIN, RCV_SHUTDOWN, SEND_SHUTDOWN, SYN_RECV,
                                SYN_SENT, transition)

_SYNCHRONIZED_SEND = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, CLOSING, LAST_ACK))
_NO_ACK_STATES = frozenset((CLOSE, SYN_SENT, LISTEN))
_HANDSHAKE = (SYN_SENT, SYN_RECV)
_OPEN_FOR_SEND = (ESTABLISHED, CLOSE_WAIT)


def _receive_field(name: str) -> property:
    """``conn.<name>`` read and written through to ``conn.rcv.<name>``."""
    return property(lambda conn: getattr(conn.rcv, name),
                    lambda conn, value: setattr(conn.rcv, name, value),
                    doc=f"ReceiveState.{name}")


class TcpConnection(Handshake, Receiver, Sender, AckProcessing, Recovery, Timers, RateSampler):
    """A TCP endpoint (a ``struct tcp_sock``) driven by the kernel: see the module docstring."""

    def __init__(self, local: tuple[str, int], remote: tuple[str, int], config: TcpConfig,
                 iss: int) -> None:
        self.local, self.remote, self.config = local, remote, config
        self.trace = None
        self.state = CLOSE
        self.iss = iss
        self._init_options(config)
        self._init_send_state(config, iss)          # sender.py
        self.rcvbuf = config.rcvbuf
        self.rcvq = ReceiveQueue(config.skb_rx_overhead, config.rx_coalesce)
        self.sack_rx = SackBlocks()      # receiver: blocks for the next ACK
        self.rcv = ReceiveState(config)  # sequence space, window, delayed ACK (receiver.py)
        self.rcvlowat = 1                # SO_RCVLOWAT (sk_rcvlowat): tcp_poll's readable target
        self._init_timers()                         # timers.py
        self._init_socket_state()
        self._init_stats()

    def _init_options(self, config: TcpConfig) -> None:
        """What the handshake negotiates (handshake.py), at its defaults before it."""
        self.snd_wscale = self.rcv_wscale = 0
        self.wscale_ok = False
        self.ts_ok = self.sack_ok = False
        self.ecn_ok = False              # TCP_ECN_OK: negotiated on the handshake
        self.fastopen_req = None         # TCP Fast Open client: b"" cookie request, else the cookie
        self.fastopen_cache = None       # the host's cookie cache (tcp_fastopen_cache_set)
        self.ts_recent = 0
        self.peer_mss = 536
        self.mss_cache = config.mss - (TIMESTAMP_OPTION if config.timestamps else 0)
        self.advmss = self.mss_cache     # tp->advmss: the MSS we advertised, less the timestamp option
        self.syn_spurious = False        # the SYN-ACK echoed our first SYN (tcp_try_undo_spurious_syn)
        self.peer_syn: Segment | None = None   # the SYN a passive open answered (None: active)

    def _init_socket_state(self) -> None:
        """The socket-level state: shutdown, errors, orphaning, readiness signals."""
        self.shutdown_flags = 0
        self.sock_done = False
        self.sk_err = 0
        self.sk_err_soft = 0
        self.orphan = False
        self.reset_seen = False
        self.nospace = False
        self.signals = 0
        self.in_time_wait = False
        self.finished = False
        self.listener = None             # the TcpListener whose queue holds this connection until accept()
        self.notsent_lowat = 0           # TCP_NOTSENT_LOWAT (0: the sysctl's value)
        self.user_timeout = 0            # TCP_USER_TIMEOUT in ns (0: tcp_retries2 / syn_retries)
        self._out: list[Segment] = []

    def _init_stats(self) -> None:
        """The counters behind stats() and TCP_INFO (simsock/tcp/info.py)."""
        self.stats_bytes_sent = self.stats_bytes_received = self.stats_bytes_acked = 0
        self.stats_segments_sent = self.stats_retransmits = self.stats_rto_count = 0
        self.stats_fast_retransmits = self.stats_zwp = 0
        self.stats_recoveries = self.stats_dsacks_received = self.stats_lost_retransmits = 0
        self.stats_sack_reneging = 0
        self.stats_rcvq_drops = self.stats_ofo_drops = self.stats_ofo_pruned = 0
        self.stats_tlp = self.stats_tlp_recoveries = 0
        # for TCP_INFO: tcpi_segs_in, data_segs_in/out, bytes_retrans
        self.stats_segs_in = self.stats_data_segs_in = self.stats_data_segs_out = 0
        self.stats_bytes_retrans = self.stats_synacks_sent = 0
        self.stats_rto_recoveries = 0    # tcpi_total_rto_recoveries

    # ================================================================== helpers
    def _transition(self, event: str, now: int) -> None:
        """tcp_set_state through the table (states.py); a trace record per change."""
        old = self.state
        new = transition(old, event)
        if old == new:
            return
        self.state = new
        self.signals |= SIG_STATE
        if self.trace is not None:
            self.trace("state", now, {"old": old, "new": new})

    def _make_segment(self, seq: int, flags: int, now: int, payload: bytes = b"") -> Segment:
        win = self._select_window()
        if self.trace is not None:
            self.trace("rwnd", now, {"window": win << self.rcv_wscale})
        seg = Segment(self.local[1], self.remote[1], seq & MASK, self.rcv.rcv_nxt & MASK, flags,
                      win, payload,
                      ts=((now // 1_000_000) & MASK, self.ts_recent) if self.ts_ok else None)
        sack = self.sack_rx
        if sack.blocks or sack.dsack is not None:     # bool(sack), without the call
            seg.sack = tuple((s & MASK, e & MASK)
                             for s, e in sack.take(max_sack_blocks(self.ts_ok)))
        self.stats_segments_sent += 1
        if flags & ACK:
            self._ack_sent()
        return seg

    def set_congestion(self, name: str, now: int) -> None:
        """setsockopt(TCP_CONGESTION) on an existing socket (tcp_set_congestion_control ->
        tcp_reinit_congestion_control): a fresh instance of the new module, initialised at
        once if the connection is established."""
        if name == self.cc.name:
            return
        was_pacing = self.pacing_on
        self.cc = get_ops(name)
        self._rate_init()
        # sk_pacing_status is only ever raised (bbr_init's cmpxchg NONE -> NEEDED): a socket
        # switched away from BBR stays paced, at tcp_update_pacing_rate's rate from its next ACK
        self.pacing_on = self.pacing_on or was_pacing
        if self.state not in (CLOSE, LISTEN, SYN_SENT, SYN_RECV):
            self._cc_init(now)

    def _done(self, event: str, now: int) -> None:
        """tcp_done: CLOSE, both directions shut, timers off."""
        sb = self.scoreboard
        self._transition(event, now)
        self.shutdown_flags = RCV_SHUTDOWN | SEND_SHUTDOWN
        self.rto_at = self.rto_kind = self.rcv.delack_at = self.tw_at = self.ka_at = None
        self.in_time_wait = False
        self.finished = True
        sb.records.clear()
        sb.lost_out = sb.retrans_out = sb.sacked_out = 0
        sb.rtx_sent = []
        self.sack_rx.clear()
        self.sendq.purge()
        self.signals |= SIG_STATE | SIG_IN | SIG_OUT
        if self.listener is not None:
            self.listener._forget(self)

    def _done_with_error(self, err: int, event: str, now: int) -> None:
        self.sk_err = err
        self._done(event, now)

    def _send_reset(self, now: int) -> None:
        """tcp_send_active_reset: RST|ACK at snd_nxt, with the timestamp option when the
        connection uses timestamps (it goes out through tcp_transmit_skb)."""
        self._out.append(Segment(self.local[1], self.remote[1], self.snd_nxt & MASK,
                                 self.rcv.rcv_nxt & MASK, RST | ACK, 0,
                                 ts=((now // 1_000_000) & MASK, self.ts_recent) if self.ts_ok else None))
        self.stats_segments_sent += 1

    def _enter_time_wait(self, event: str, now: int) -> None:
        self._transition(event, now)
        self.in_time_wait = True
        self.rto_at = self.rto_kind = self.rcv.delack_at = self.ka_at = None
        self.tw_at = now + self.config.time_wait
        self.shutdown_flags = RCV_SHUTDOWN | SEND_SHUTDOWN

    def _our_fin_acked(self, now: int) -> None:
        st = self.state
        if st == FIN_WAIT1:
            self._transition(RCV_ACK_OF_FIN, now)
            self.shutdown_flags |= SEND_SHUTDOWN
            if self.orphan:
                self.tw_at = now + self.config.fin_timeout
        elif st == CLOSING:
            self._enter_time_wait(RCV_ACK_OF_FIN, now)
        elif st == LAST_ACK:
            self._done(RCV_ACK_OF_FIN, now)

    # ================================================================== app side
    def send(self, data, now: int) -> int:
        """tcp_sendmsg_locked, non-blocking: bytes accepted into the send buffer.

        Like tcp_push at the end of sendmsg, the caller should collect segments_to_send()
        right after: two send() calls with no collection in between share one segment.
        """
        if self.sk_err:
            err, self.sk_err = self.sk_err, 0
            raise os_error(err)
        if self.shutdown_flags & SEND_SHUTDOWN:
            raise os_error(E.EPIPE)
        st = self.state
        if st not in _OPEN_FOR_SEND:
            if st in _HANDSHAKE:
                raise os_error(E.EAGAIN)
            raise os_error(E.EPIPE)
        if not data:
            return 0
        if self.rate_on:
            self._rate_check_app_limited()
        mss = self.mss_now()
        n = self.sendq.append(data, self.size_goal(mss), self.sndbuf, self.snd_nxt,
                              lambda: self._push_pending(now), self.max_window >> 1, eor=self.send_eor,
                              lowat=self.notsent_lowat or self.config.notsent_lowat,
                              mark_push=not self.send_more)
        if self.send_more:
            self.push_cork = True
        if n < len(data):
            self.nospace = True  # wait_for_space: SOCK_NOSPACE
        if n == 0:
            raise os_error(E.EAGAIN)
        return n

    def recv(self, n: int, now: int, peek: bool = False) -> bytes:
        """tcp_recvmsg_locked, non-blocking."""
        data = self.recv_or_none(n, now, peek)
        if data is None:
            raise os_error(E.EAGAIN)
        return data

    def recv_or_none(self, n: int, now: int, peek: bool = False) -> bytes | None:
        """:meth:`recv`, returning None instead of raising EAGAIN (which changes nothing):
        the kernel's hot path, where an exception per empty read would cost more than
        the read."""
        if self.state == LISTEN:
            raise os_error(E.ENOTCONN)
        q = self.rcvq
        if q.size and n > 0:
            data = q.read(n, peek)
            if not peek:
                self.rcv.copied_seq += len(data)
                self._rcv_space_adjust(now)
                self._cleanup_rbuf(len(data), now)
            return data
        if n <= 0:
            return b""
        if self.sock_done:
            return b""
        if self.sk_err:
            err, self.sk_err = self.sk_err, 0
            raise os_error(err)
        if self.shutdown_flags & RCV_SHUTDOWN:
            return b""
        if self.state == CLOSE:
            raise os_error(E.ENOTCONN)
        return None

    def shutdown(self, how: int, now: int) -> None:
        """inet_shutdown + tcp_shutdown."""
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise os_error(E.EINVAL)
        st = self.state
        mask = {SHUT_RD: RCV_SHUTDOWN, SHUT_WR: SEND_SHUTDOWN, SHUT_RDWR: 3}[how]
        if st == SYN_SENT:
            self._done(ABORT, now)
            return
        self.shutdown_flags |= mask
        self.signals |= SIG_STATE | SIG_IN
        if mask & SEND_SHUTDOWN and st in (ESTABLISHED, SYN_RECV, CLOSE_WAIT):
            self._close_state_send_fin(now)
        if st == CLOSE:
            raise os_error(E.ENOTCONN)

    def _close_state_send_fin(self, now: int) -> None:
        """tcp_close_state + tcp_send_fin."""
        self._transition(CLOSE_CALL, now)
        self.fin_queued = True

    def close(self, now: int) -> None:
        """tcp_close: RST if unread data or SO_LINGER 0, else FIN; the socket becomes an orphan."""
        if self.orphan:
            return
        self.orphan = True
        st = self.state
        self.shutdown_flags = RCV_SHUTDOWN | SEND_SHUTDOWN
        unread = self.rcvq.purge()
        if st == CLOSE:
            self.finished = True
            return
        if st == SYN_SENT:
            self._done(ABORT, now)
            return
        if unread or self.config.linger == 0:
            if st in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, SYN_RECV):
                self._send_reset(now)
            self._done(ABORT, now)
            return
        if st in (ESTABLISHED, SYN_RECV, CLOSE_WAIT):
            self._close_state_send_fin(now)
        elif st == FIN_WAIT2:
            self.tw_at = now + self.config.fin_timeout

    def abort(self, now: int) -> None:
        """Send RST and drop the connection (tcp_abort / SO_LINGER 0 close)."""
        if self.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, SYN_RECV,
                          CLOSING, LAST_ACK):
            self._send_reset(now)
        if not self.finished:
            self._done_with_error(E.ECONNABORTED if not self.orphan else 0, ABORT, now)

    def icmp_error(self, err: int, now: int) -> None:
        """An ICMP destination-unreachable about a segment we sent, as an errno
        (icmp_err_convert). tcp_v4_err: in SYN_SENT it ends the connection attempt with
        that error (connect() fails with EHOSTUNREACH, ENETUNREACH, ECONNREFUSED); once
        synchronised it is only remembered as the soft error (sk_err_soft) that a later
        timeout reports instead of ETIMEDOUT."""
        if self.finished:
            return
        if self.state == SYN_SENT:
            self._done_with_error(err, ICMP_ERROR, now)
        else:
            self.sk_err_soft = err

    # ================================================================== readiness
    def poll(self) -> int:
        """tcp_poll."""
        st = self.state
        if st == LISTEN:
            return 0
        mask = 0
        shut = self.shutdown_flags
        if shut == 3 or st == CLOSE:
            mask |= EPOLLHUP
        if shut & RCV_SHUTDOWN:
            mask |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP
        if st not in _HANDSHAKE:
            q = self.rcvq.size
            if q and (q >= self.rcvlowat or self._rcvlowat_ready()):
                mask |= EPOLLIN | EPOLLRDNORM
            if not shut & SEND_SHUTDOWN:
                if self._writeable():
                    mask |= EPOLLOUT | EPOLLWRNORM
                else:
                    self.nospace = True
            else:
                mask |= EPOLLOUT | EPOLLWRNORM
        if self.sk_err:
            mask |= EPOLLERR
        return mask

    def _rcvlowat_ready(self) -> bool:
        """tcp_epollin_ready below SO_RCVLOWAT: readable anyway under memory pressure
        (tcp_rmem_pressure) or once the window left is at most one segment."""
        rcvbuf = self.rcvbuf
        return (self.rcvq.rmem_alloc > rcvbuf - (rcvbuf >> 3)
                or self._receive_window() <= self.rcv.rcv_mss)

    def take_signals(self) -> int:
        s, self.signals = self.signals, 0
        return s

    def take_error(self) -> int:
        """SO_ERROR: read and clear the pending error."""
        e, self.sk_err = self.sk_err, 0
        return e

    @property
    def outq(self) -> int:
        """SIOCOUTQ (tcp_ioctl): write_seq - snd_una, where write_seq counts a queued FIN
        (tcp_send_fin): 1 more while the FIN is unacknowledged, 0 in FIN_WAIT2/TIME_WAIT."""
        if self.state in (SYN_SENT, SYN_RECV, CLOSE):
            return 0
        return self.sendq.end + (1 if self.fin_queued else 0) - self.snd_una

    @property
    def inq(self) -> int:
        return self.rcvq.size

    @property
    def wmem_queued(self) -> int:
        return self.sendq.wmem_queued

    @property
    def rmem_alloc(self) -> int:
        return self.rcvq.rmem_alloc

    # The receive-side fields the socket layer reads and sets (TCP_QUICKACK, SO_RCVBUF,
    # SIOCINQ, settle), under their tcp_sock names.
    rcv_nxt = _receive_field("rcv_nxt")
    copied_seq = _receive_field("copied_seq")
    window_clamp = _receive_field("window_clamp")
    scaling_ratio = _receive_field("scaling_ratio")
    pingpong = _receive_field("pingpong")
    quick = _receive_field("quick")
    delack_at = _receive_field("delack_at")

    def stats(self) -> dict:
        tp = self.tp
        r = self.rtt
        return {
            "bytes_sent": self.stats_bytes_sent, "bytes_acked": self.stats_bytes_acked,
            "bytes_received": self.stats_bytes_received,
            "segments_sent": self.stats_segments_sent, "retransmits": self.stats_retransmits,
            "rto_count": self.stats_rto_count, "fast_retransmits": self.stats_fast_retransmits,
            "recoveries": self.stats_recoveries, "lost_retransmits": self.stats_lost_retransmits,
            "dsacks_received": self.stats_dsacks_received, "sack": self.sack_ok,
            "reordering": self.scoreboard.reordering,
            "srtt": r.srtt, "rttvar": r.rttvar, "rto": min(r.rto << self.backoff, self.config.rto_max),
            "cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
            "rwnd_limited_ns": self.limited_ns[1], "cwnd_limited_ns": self.limited_ns[2],
            "app_limited_ns": self.limited_ns[3] + self.limited_ns[4], "zero_window_probes": self.stats_zwp,
            "loss_probes": self.stats_tlp, "loss_probe_recoveries": self.stats_tlp_recoveries,
            "rcvq_drops": self.stats_rcvq_drops, "ofo_drops": self.stats_ofo_drops,
            "ofo_pruned": self.stats_ofo_pruned,
            "sndbuf": self.sndbuf, "rcvbuf": self.rcvbuf, "mss": self.mss_cache,
        }

    # ================================================================== network side
    def segments_to_send(self, now: int) -> list[Segment] | tuple[()]:
        """What the connection transmits now (tcp_push / tcp_write_xmit, the ACK due, what
        a timer or a close queued): a list of segments, or an empty tuple when there is
        nothing (most calls: 4 of the 7 pumps per c10k update), so that no list is made
        for them."""
        out = self._out
        if self.state in _SYNCHRONIZED_SEND and (not self.shutdown_flags & SEND_SHUTDOWN or self.fin_queued):
            sb = self.scoreboard
            if (self.snd_nxt < self.sendq.end or sb.retrans_out < sb.lost_out
                    or (self.fin_queued and not self.fin_sent)):
                self._write_xmit(now, out)
            else:
                # _write_xmit's nothing-to-send case, inlined to save the call (the same
                # condition and bookkeeping: keep the two alike)
                self.push_cork = self.push_now = False
                app = 4 if sb.records else 3
                if self.limit_kind != app:
                    self._limit_state(app, now)
        if self.rcv.ack_now and self.state not in _NO_ACK_STATES and not self.finished:
            out.append(self._make_segment(self.snd_nxt, ACK, now))
        if not out:
            return ()
        self._out = []
        return out
