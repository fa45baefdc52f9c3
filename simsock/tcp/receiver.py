"""The receiving half of a TCP connection: segment acceptance, data queueing, FIN, ACK timing.

A mixin of :class:`simsock.tcp.connection.TcpConnection`; its state is :class:`ReceiveState`
(``conn.rcv``). Follows
tcp_rcv_state_process / tcp_rcv_established (tcp_validate_incoming: tcp_sequence, RST and
SYN checks with RFC 5961 challenge ACKs), tcp_data_queue / tcp_data_queue_ofo, tcp_fin,
tcp_event_data_recv, tcp_measure_rcv_mss, __tcp_ack_snd_check and tcp_send_delayed_ack.
"""

from __future__ import annotations

import errno as E

from simsock.signals import SIG_IN, SIG_STATE
from simsock.tcp.segment import ACK, FIN, PSH, RST, SYN, TIMESTAMP_OPTION, Segment, unwrap
from simsock.tcp.states import (ABORT, CLOSE, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1,
                                FIN_WAIT2, LAST_ACK, LISTEN, RCV_FIN, RCV_RST,
                                RCV_SHUTDOWN, RCV_SYN, SYN_RECV, SYN_SENT,
                                TIME_WAIT)

_NO_CONNECTION = (CLOSE, LISTEN)
_PEER_FIN_SEEN = (CLOSE_WAIT, CLOSING, LAST_ACK)
_OUR_FIN_SENT = (FIN_WAIT1, FIN_WAIT2)
_FIN_TO_CLOSE_WAIT = (ESTABLISHED, SYN_RECV)


class ReceiveState:
    """The receiving half's state: tcp_sock's rcv_* sequence and window fields, the receive
    buffer autotuning sample (rcvq_space) and inet_connection_sock's delayed-ACK state
    (icsk_ack). The send side reads rcv_nxt and the window for the ACK it puts on each
    segment, and clears the ACK state when one goes out (_ack_sent)."""

    __slots__ = ("irs", "rcv_nxt", "rcv_wup", "copied_seq", "rcv_wnd", "scaling_ratio",
                 "window_clamp", "rcv_ssthresh", "rcv_mss", "rcvq_space", "rcvq_seq", "rcvq_time",
                 "ack_pending", "ack_now", "ack_nomem", "ack_pushed", "quick", "pingpong", "ato",
                 "lrcvtime", "delack_at", "fin_rcv_seq", "last_seg_size")

    def __init__(self, config) -> None:
        self.irs = self.rcv_nxt = self.rcv_wup = self.copied_seq = 0
        self.rcv_wnd = 0                 # the window last advertised, from rcv_wup
        self.scaling_ratio = config.default_scaling_ratio
        self.window_clamp = 0
        self.rcv_ssthresh = 0
        self.rcv_mss = 536
        # tcp_rcv_space_adjust's sample: bytes read per RTT, from copied_seq at rcvq_time
        self.rcvq_space = 0
        self.rcvq_seq = 0
        self.rcvq_time = 0
        # delayed ACK (struct inet_connection_sock.icsk_ack)
        self.ack_pending = False
        self.ack_now = False
        self.ack_nomem = False           # ICSK_ACK_NOMEM: advertise a zero window next
        self.ack_pushed = 0
        self.quick = 0
        self.pingpong = 0
        self.ato = 0
        self.lrcvtime = 0
        self.delack_at: int | None = None
        self.fin_rcv_seq: int | None = None   # an out-of-order FIN waiting for the data below it
        self.last_seg_size = -1


class Receiver:
    def receive_segment(self, seg: Segment, now: int) -> None:
        """Process one segment addressed to this connection (the kernel demultiplexed it)."""
        rx = self.rcv
        if self.finished:
            return
        self.stats_segs_in += 1                  # tcp_segs_in (TCP_INFO)
        st = self.state
        if st == SYN_SENT:
            self._rcv_synsent(seg, now)
            return
        if st == TIME_WAIT:
            self._rcv_timewait(seg, now)
            return
        if st in _NO_CONNECTION:
            return
        flags = seg.flags
        seq = unwrap(seg.seq, rx.rcv_nxt)
        plen = len(seg.payload)
        if plen:
            self.stats_data_segs_in += 1
        end_seq = seq + plen + (1 if flags & FIN else 0) + (1 if flags & SYN else 0)
        # tcp_sequence; rcv_nxt + _receive_window(), inlined (hot path: every segment)
        if end_seq < rx.rcv_wup or seq > max(rx.rcv_wup + rx.rcv_wnd, rx.rcv_nxt):
            if not flags & RST:
                rx.ack_now = True      # tcp_send_dupack
            return
        if self.ts_ok and seg.ts is not None and seq <= rx.rcv_wup:
            self.ts_recent = seg.ts[0]   # tcp_store_ts_recent
        if flags & RST:
            if seq == rx.rcv_nxt:
                self._reset(now)
            else:
                rx.ack_now = True      # RFC 5961 3.2 challenge ACK
            return
        if flags & SYN:
            if st == SYN_RECV and seq == rx.irs:
                self._send_syn(now, self.peer_syn)   # retransmitted SYN: resend SYN-ACK
            else:
                rx.ack_now = True      # RFC 5961 4.2
            return
        if not flags & ACK:
            return
        if st == SYN_RECV:
            if not self._rcv_synrecv(seg, seq, now):
                return
        else:
            ack = unwrap(seg.ack, self.snd_una)
            if ack > self.snd_nxt:
                rx.ack_now = True      # ACK of unsent data: drop, answer with an ACK
                return
            self._process_ack(seg, seq, ack, bool(plen or flags & FIN), now)
            if self.finished:
                return
        if plen or flags & FIN:
            self._data_queue(seg, seq, plen, flags, now)
        if not self.finished:
            self._ack_snd_check(now)



        # RST without ACK is ignored; a bare SYN would be a simultaneous open (not modelled).

    def _rcv_timewait(self, seg: Segment, now: int) -> None:
        """tcp_timewait_state_process (RFC 1337 off: RST kills TIME_WAIT).

        A SYN above rcv_nxt ends TIME_WAIT (``finished`` becomes True): the kernel should then
        hand that SYN to the listener, as Linux does for TCP_TW_SYN.
        """
        rx = self.rcv
        flags = seg.flags
        if flags & RST:
            self._done(RCV_RST, now)
            return
        seq = unwrap(seg.seq, rx.rcv_nxt)
        if flags & SYN and seq > rx.rcv_nxt:
            self._done(RCV_SYN, now)
            return
        if flags & FIN:
            self.tw_at = now + self.config.time_wait
        rx.ack_now = True

    def _reset(self, now: int) -> None:
        """tcp_reset: the peer reset us."""
        st = self.state
        self.reset_seen = True
        if st == SYN_RECV and self.listener is not None:
            self._done(RCV_RST, now)       # request dropped silently
            return
        err = E.EPIPE if st == CLOSE_WAIT else E.ECONNRESET
        self._done_with_error(err, RCV_RST, now)

    # ------------------------------------------------------------------ data
    def _data_queue(self, seg: Segment, seq: int, plen: int, flags: int, now: int) -> None:
        rx = self.rcv
        st = self.state
        fin = flags & FIN
        rcv_nxt = rx.rcv_nxt
        if st in _PEER_FIN_SEEN and seq >= rcv_nxt:
            return                              # data after the peer's FIN is ignored
        if (self.shutdown_flags & RCV_SHUTDOWN and st in _OUR_FIN_SENT
                and plen and seq + plen > rcv_nxt):
            self._send_reset(now)               # RFC 1122: data for a closed reader -> RST
            self._done_with_error(E.ECONNRESET, ABORT, now)
            return
        end = seq + plen
        sack = self.sack_ok
        if end + (1 if fin else 0) <= rcv_nxt:
            self._enter_quickack()              # duplicate: tcp_send_dupack (D-SACK)
            if sack and plen and self.config.dsack:
                self.sack_rx.set_dsack(seq, end)
            rx.ack_now = True
            return
        payload = seg.payload
        q = self.rcvq
        if seq > rcv_nxt:                       # out of order: tcp_data_queue_ofo
            if seq >= rcv_nxt + self._receive_window():
                rx.ack_now = True             # out_of_window: tcp_send_dupack
                return
            if q.rmem_alloc > self.rcvbuf and self._prune_queue(seq):
                self.stats_ofo_drops += 1       # tcp_try_rmem_schedule failed: dropped, no ACK
                self.signals |= SIG_IN          # sk_data_ready: let the reader drain
                return
            if plen:
                if q.add_ooo(seq, payload):
                    if sack:
                        self.sack_rx.new_ofo(seq, end)
                elif sack and self.config.dsack:
                    self.sack_rx.set_dsack(seq, end)
            if fin:
                rx.fin_rcv_seq = end
            rx.ack_pending = True
            rx.ack_now = True
            return
        if plen and end > rcv_nxt:
            if rx.rcv_wup + rx.rcv_wnd <= rcv_nxt:     # _receive_window() == 0, inlined
                self._enter_quickack()          # zero window: drop, ACK at once
                rx.ack_now = True
                return
            if q.rmem_alloc > self.rcvbuf and self._prune_queue(seq):
                # tcp_try_rmem_schedule failed: sk_rmem_alloc is already over sk_rcvbuf and
                # tcp_prune_queue could not help. Linux 6.x (queue_and_out) then answers at
                # once with a zero window (ICSK_ACK_NOMEM, see _select_window) and drops the
                # segment -- unless the receive queue is empty, when it is accepted anyway
                # (sk_forced_mem_schedule): an empty queue is never left waiting for data
                # it refused, whatever SO_RCVBUF says.
                rx.ack_nomem = True
                rx.ack_now = True
                self.signals |= SIG_IN          # sk_data_ready
                if q.chunks:
                    self.stats_rcvq_drops += 1  # LINUX_MIB_TCPRCVQDROP
                    return
            if seq < rcv_nxt:
                if sack and self.config.dsack:
                    self.sack_rx.set_dsack(seq, rcv_nxt)
                payload = payload[rcv_nxt - seq:]
            q.push(payload, rcv_nxt, seg.src)
            n = len(payload)
            rx.rcv_nxt = rcv_nxt = rcv_nxt + n
            self.stats_bytes_received += n
            self.signals |= SIG_IN
            self._event_data_recv(plen, flags, now)
            if q.ooo:
                new = q.pop_in_order(rcv_nxt)
                self.stats_bytes_received += new - rcv_nxt
                rx.rcv_nxt = rcv_nxt = new
                rx.ack_now = True             # a hole was filled: ACK now
            if self.sack_rx.blocks:
                self.sack_rx.remove_below(rcv_nxt, not q.ooo)
        if fin and end == rcv_nxt:
            self._fin(now)
        elif rx.fin_rcv_seq == rcv_nxt and not self.sock_done:
            self._fin(now)

    # ------------------------------------------------------------------ memory
    def _prune_queue(self, in_seq: int) -> bool:
        """tcp_prune_queue for an arriving segment at ``in_seq``; True if receive memory is
        still over rcvbuf afterwards (the caller drops the segment).

        tcp_clamp_window first (an application that never set SO_RCVBUF gets rcvbuf raised
        to what is allocated, up to tcp_rmem[2]); then out-of-order data above ``in_seq`` is
        discarded from the highest sequence down, rcvbuf/8 at a time, until memory fits
        (tcp_prune_ofo_queue). Not modelled: tcp_collapse / tcp_collapse_ofo_queue, which
        first copy queued skbs into compact ones (they only help skbs whose truesize is large
        for their length, which this model's fixed per-segment overhead never is).
        """
        q = self.rcvq
        if q.rmem_alloc >= self.rcvbuf:
            self._clamp_window()
        if q.rmem_alloc <= self.rcvbuf:
            return False
        self._prune_ofo_queue(in_seq)
        return q.rmem_alloc > self.rcvbuf

    def _clamp_window(self) -> None:
        """tcp_clamp_window: receive memory ran over rcvbuf."""
        rx = self.rcv
        rx.quick = 0
        q = self.rcvq
        cfg = self.config
        rmem2 = cfg.tcp_rmem[2]
        if self.rcvbuf < rmem2 and not cfg.rcvbuf_locked:
            self.rcvbuf = min(q.rmem_alloc, rmem2)
        if q.rmem_alloc > self.rcvbuf:
            rx.rcv_ssthresh = min(rx.window_clamp, 2 * cfg.mss)   # 2 * advmss

    def _prune_ofo_queue(self, in_seq: int) -> bool:
        """tcp_prune_ofo_queue (Linux >= 6.1): drop out-of-order segments from the highest
        down, never one at or below the arriving segment; resets the SACK blocks."""
        rx = self.rcv
        q = self.rcvq
        ooo = q.ooo
        goal = self.rcvbuf >> 3
        lowest = None
        while ooo:
            seq = ooo[-1][0]
            if in_seq > seq:
                break
            _, _, payload = ooo.pop()
            lowest = seq
            truesize = len(payload) + q.overhead
            q.rmem_alloc -= truesize
            goal -= truesize
            if not ooo or goal <= 0:
                if q.rmem_alloc <= self.rcvbuf:
                    break
                goal = self.rcvbuf >> 3
        if lowest is None:
            return False
        self.stats_ofo_pruned += 1
        if rx.fin_rcv_seq is not None and rx.fin_rcv_seq >= lowest:
            rx.fin_rcv_seq = None             # the FIN went with the pruned segment
        if self.sack_ok:
            self.sack_rx.clear()                # tcp_sack_reset
        return True

    def _fin(self, now: int) -> None:
        """tcp_fin."""
        rx = self.rcv
        rx.rcv_nxt += 1
        self.shutdown_flags |= RCV_SHUTDOWN
        self.sock_done = True
        self.rcvq.ooo.clear()
        self.sack_rx.blocks.clear()             # tcp_sack_reset
        rx.ack_pending = True
        self.signals |= SIG_IN | SIG_STATE
        st = self.state
        if st in _FIN_TO_CLOSE_WAIT:
            self._transition(RCV_FIN, now)
            rx.pingpong = max(rx.pingpong, 1)   # inet_csk_enter_pingpong_mode: delay the ACK
        elif st == FIN_WAIT1:
            self._transition(RCV_FIN, now)
            rx.ack_now = True
        elif st == FIN_WAIT2:
            self._enter_time_wait(RCV_FIN, now)
            rx.ack_now = True

    def _event_data_recv(self, plen: int, flags: int, now: int) -> None:
        """tcp_event_data_recv: schedule an ACK, adapt ato, grow rcv_ssthresh."""
        rx = self.rcv
        rx.ack_pending = True
        self._measure_rcv_mss(plen, flags)
        cfg = self.config
        if not rx.ato:
            self._incr_quickack()
            rx.ato = cfg.delack_min
        else:
            m = now - rx.lrcvtime
            if m <= cfg.delack_min // 2:
                rx.ato = (rx.ato >> 1) + cfg.delack_min // 2
            elif m < rx.ato:
                rx.ato = min((rx.ato >> 1) + m, self.rtt.rto)
            elif m > self.rtt.rto:
                self._incr_quickack()
        rx.lrcvtime = now
        if plen >= 128 and rx.rcv_ssthresh < rx.window_clamp:   # tcp_grow_window
            space = self.rcvbuf - self.rcvq.rmem_alloc
            free = (space * rx.scaling_ratio) >> 8 if space > 0 else 0   # _win_from_space, inlined
            if rx.rcv_ssthresh < free:
                rx.rcv_ssthresh = min(rx.rcv_ssthresh + 2 * self.advmss,
                                        rx.window_clamp, free)

    def _measure_rcv_mss(self, plen: int, flags: int) -> None:
        """tcp_measure_rcv_mss, with Linux 6.x's scaling_ratio update."""
        rx = self.rcv
        if plen >= rx.rcv_mss:
            if plen != rx.rcv_mss:
                ratio = (plen << 8) // (plen + self.rcvq.overhead)
                if ratio != rx.scaling_ratio:
                    rx.scaling_ratio = max(ratio, 1)
                    rx.window_clamp = max(rx.window_clamp, self._win_from_space(self.rcvbuf)) \
                        if not self.config.rcvbuf_locked else self._win_from_space(self.rcvbuf)
            rx.rcv_mss = min(plen, self.config.mss)
        else:
            if plen >= 536 or (plen >= 88 and not flags & PSH):
                if plen == rx.last_seg_size:
                    rx.rcv_mss = plen
                    return
                rx.last_seg_size = plen
            rx.ack_pushed = 2 if rx.ack_pushed else 1

    def _incr_quickack(self) -> None:
        rx = self.rcv
        quickacks = rx.rcv_wnd // (2 * max(rx.rcv_mss, 1)) or 2
        rx.quick = min(max(rx.quick, quickacks), self.config.max_quickacks)

    def _enter_quickack(self) -> None:
        """tcp_enter_quickack_mode."""
        self._incr_quickack()
        self.rcv.pingpong = 0
        self.rcv.ato = self.config.delack_min

    def _ack_snd_check(self, now: int) -> None:
        """__tcp_ack_snd_check: ACK now, or arm the delayed-ACK timer."""
        rx = self.rcv
        if not rx.ack_pending or rx.ack_now:
            return
        if ((rx.rcv_nxt - rx.rcv_wup > rx.rcv_mss
             and (rx.copied_seq == rx.rcv_nxt or self._raw_select_window() >= rx.rcv_wnd))
                or (rx.quick and rx.pingpong < 1) or self.rcvq.ooo):
            rx.ack_now = True
        else:
            self._send_delayed_ack(now)

    def _send_delayed_ack(self, now: int) -> None:
        """tcp_send_delayed_ack."""
        rx = self.rcv
        cfg = self.config
        # icsk_ack.ato is 0 until the first data segment (tcp_event_data_recv sets it): an
        # ACK scheduled before any data (a FIN, a window update) is due at once, as Linux's
        # timer armed at jiffies + 0 fires on the next tick
        ato = rx.ato
        if ato > cfg.delack_min:
            max_ato = 500_000_000
            if rx.pingpong >= 1 or rx.ack_pushed:
                max_ato = cfg.delack_max
            if self.rtt.srtt:
                rtt = max(self.rtt.srtt, cfg.delack_min)
                if rtt < max_ato:
                    max_ato = rtt
            ato = min(ato, max_ato)
        timeout = now + ato
        if rx.delack_at is not None:
            if rx.delack_at <= now + (ato >> 2):
                rx.ack_now = True
                return
            if timeout >= rx.delack_at:
                timeout = rx.delack_at
        rx.delack_at = timeout

    # ------------------------------------------------------------------ window and ACKs sent
    def _win_from_space(self, space: int) -> int:
        return (space * self.rcv.scaling_ratio) >> 8 if space > 0 else 0

    def _receive_window(self) -> int:
        rx = self.rcv
        return max(rx.rcv_wup + rx.rcv_wnd - rx.rcv_nxt, 0)

    def _raw_select_window(self) -> int:
        """__tcp_select_window."""
        rx = self.rcv
        mss = rx.rcv_mss
        # _win_from_space of the free and of the whole buffer, inlined (this runs for every
        # segment sent and most received: tcp_bulk and c10k pay a call each otherwise)
        ratio = rx.scaling_ratio
        rcvbuf = self.rcvbuf
        space = rcvbuf - self.rcvq.rmem_alloc
        free = (space * ratio) >> 8 if space > 0 else 0
        allowed = (rcvbuf * ratio) >> 8 if rcvbuf > 0 else 0
        full = min(rx.window_clamp, allowed)
        if mss > full:
            mss = full
            if mss <= 0:
                return 0
        if free < full >> 1:
            rx.quick = 0
            free = (free >> self.rcv_wscale) << self.rcv_wscale
            if free < allowed >> 4 or free < mss:
                return 0
        if free > rx.rcv_ssthresh:
            free = rx.rcv_ssthresh
        if self.rcv_wscale:
            s = 1 << self.rcv_wscale
            return (free + s - 1) & ~(s - 1)
        window = rx.rcv_wnd
        if window <= free - mss or window > free:
            window = (free // mss) * mss
        elif mss == full and free > window + (full >> 1):
            window = free
        return window

    def _select_window(self) -> int:
        """tcp_select_window: the raw header field; never shrinks the advertised right edge,
        except after a segment was dropped for lack of memory (ICSK_ACK_NOMEM): then the
        window is 0 and rcv_wup/rcv_wnd say so (Linux >= 6.14 and stable 6.13.2, commit
        8c670bdfa58e), so that the reader's next read sends a window update
        (tcp_cleanup_rbuf sees a zero window)."""
        rx = self.rcv
        if rx.ack_nomem:
            rx.rcv_wnd = 0
            rx.rcv_wup = rx.rcv_nxt
            return 0
        # _receive_window() inlined (every segment sent); unclamped, as a negative value
        # compares with new (>= 0) as 0 would
        cur = rx.rcv_wup + rx.rcv_wnd - rx.rcv_nxt
        new = self._raw_select_window()
        if new < cur:
            s = 1 << self.rcv_wscale
            new = (cur + s - 1) & ~(s - 1)
        rx.rcv_wnd = new
        rx.rcv_wup = rx.rcv_nxt
        return min(new, 65535 << self.rcv_wscale) >> self.rcv_wscale

    def _ack_sent(self) -> None:
        """tcp_event_ack_sent / tcp_dec_quickack_mode."""
        rx = self.rcv
        if rx.ack_pending:
            if rx.quick:
                rx.quick -= 1
                if not rx.quick:
                    rx.ato = self.config.delack_min
            rx.ack_pending = False
        rx.ack_now = False
        rx.ack_nomem = False           # icsk_ack.pending = 0
        rx.ack_pushed = 0
        rx.delack_at = None

    def _init_receive_side(self, active: bool = False) -> None:
        """tcp_select_initial_window + tcp_init_buffer_space. An active open chooses its
        window for the full advmss (tcp_connect_init: no timestamp is known yet, so 65495 on
        lo, where the passive side's request sock uses 65483; measured by TCP_INFO's
        rcv_ssthresh and rcv_space, tests/conformance/test_tcp_info.py)."""
        rx = self.rcv
        cfg = self.config
        space = self._win_from_space(self.rcvbuf)
        if cfg.window_scaling:
            # SO_RCVBUF set: window_clamp is tcp_full_space (win_from_space(rcvbuf)), which
            # caps the space the scale is chosen for (tcp_connect_init/tcp_openreq_init_rwin)
            big = space if cfg.rcvbuf_locked else max(self.rcvbuf, cfg.tcp_rmem[2], cfg.rmem_max)
            self.rcv_wscale = min(max(big.bit_length() - 1 - 15, 0), 14)
        mss = cfg.mss - (TIMESTAMP_OPTION if cfg.timestamps and not active else 0)
        init = min(space, 65535)
        rx.rcv_wnd = (init // mss) * mss if init > mss else init
        rx.rcv_ssthresh = rx.rcv_wnd
        rx.window_clamp = space
        rx.rcv_mss = min(mss, 536)

    def _cleanup_rbuf(self, copied: int, now: int) -> None:
        """tcp_cleanup_rbuf: ACK now if due, or if the read at least doubled the window."""
        rx = self.rcv
        time_to_ack = False
        if rx.ack_pending:
            if (rx.rcv_nxt - rx.rcv_wup > rx.rcv_mss
                    or (copied > 0 and (rx.ack_pushed >= 2 or (rx.ack_pushed and rx.pingpong < 1))
                        and not self.rcvq.rmem_alloc)):
                time_to_ack = True
        if copied > 0 and not time_to_ack and not self.shutdown_flags & RCV_SHUTDOWN:
            cur = max(rx.rcv_wup + rx.rcv_wnd - rx.rcv_nxt, 0)    # _receive_window(), inlined
            if 2 * cur <= rx.window_clamp:
                new = self._raw_select_window()
                if new and new >= 2 * cur:
                    time_to_ack = True
        if time_to_ack:
            rx.ack_now = True

    def _rcv_space_adjust(self, now: int) -> None:
        """tcp_rcv_space_adjust: once per RTT, size rcvbuf for twice what the reader took."""
        rx = self.rcv
        srtt = self.rtt.srtt
        if not srtt or now - rx.rcvq_time < srtt:
            return
        copied = rx.copied_seq - rx.rcvq_seq - self.rcvq.size
        if copied > rx.rcvq_space:
            if not self.config.rcvbuf_locked:
                rcvwin = 2 * copied + 16 * self.advmss
                grow = rcvwin * (copied - rx.rcvq_space) // max(rx.rcvq_space, 1)
                rcvwin += 2 * grow
                rcvbuf = min((rcvwin << 8) // rx.scaling_ratio, self.config.tcp_rmem[2])
                if rcvbuf > self.rcvbuf:
                    self.rcvbuf = rcvbuf
                    rx.window_clamp = self._win_from_space(rcvbuf)
            rx.rcvq_space = copied
        rx.rcvq_seq = rx.copied_seq
        rx.rcvq_time = now
