"""The three-way handshake: SYN, SYN-ACK and the options they negotiate, and their timers.

A mixin of :class:`simsock.tcp.connection.TcpConnection`. Active open: tcp_v4_connect +
tcp_connect (tcp_connect_init's MSS and window), tcp_rcv_synsent_state_process for the
SYN-ACK. Passive open: tcp_conn_request (the listener hands over the SYN), tcp_check_req for
the final ACK. Both end in tcp_finish_connect / tcp_init_transfer (``_established``). The
SYN carries MSS, window scale (RFC 7323), SACK-permitted (RFC 2018), timestamps and, when
asked, a TCP Fast Open cookie request or cookie (RFC 7413); ECN is negotiated with ECE|CWR
(RFC 3168). A SYN is retransmitted with Linux's linear-then-exponential backoff until
tcp_syn_retries, a SYN-ACK until tcp_synack_retries.
"""

from __future__ import annotations

import errno as E

from simsock.errors import os_error
from simsock.tcp.cc.base import CA_LOSS, CA_OPEN
from simsock.tcp.segment import ACK, CWR, ECE, MASK, RST, SYN, TIMESTAMP_OPTION, Segment, unwrap
from simsock.tcp.states import (CLOSE, CONNECT, RCV_ACK, RCV_RST, RCV_SYN, RCV_SYNACK, SYN_RECV,
                                SYN_SENT, TIMEOUT)


class Handshake:
    # ------------------------------------------------------------------ active open
    def connect(self, now: int) -> None:
        """Active open (tcp_v4_connect + tcp_connect): send SYN, enter SYN_SENT."""
        if self.state != CLOSE or self.finished:
            raise os_error(E.EISCONN if self.state != CLOSE else E.EBADF)
        self._init_receive_side(active=True)
        # tcp_connect_init: advmss is the route's (timestamps are not known yet), mss_cache is
        # clamped by mss_clamp (TCP_MSS_DEFAULT 536, or TCP_MAXSEG) until the SYN-ACK comes,
        # and rcv_mss starts at TCP_MIN_MSS: 65495, 524 and 88 in TCP_INFO on lo
        cfg = self.config
        self.advmss = cfg.mss
        self.mss_cache = min(cfg.mss, cfg.extra.get("user_mss") or 536) - (TIMESTAMP_OPTION if cfg.timestamps else 0)
        self.tp.mss_cache = self.mss_cache
        self.rcv.rcv_mss = 88
        self._transition(CONNECT, now)
        self.snd_nxt = self.iss + 1
        self.retrans_stamp = now
        self._send_syn(now, peer=None)
        self.rto_kind = "syn"
        self.rto_at = now + self.rtt.rto

    def _send_syn(self, now: int, peer: Segment | None) -> None:
        flags = SYN if peer is None and self.state == SYN_SENT else SYN | ACK
        if flags == SYN and self.config.ecn == 1:
            flags |= ECE | CWR           # tcp_ecn_send_syn
        elif flags & ACK and self.ecn_ok:
            flags |= ECE                 # tcp_ecn_make_synack
        win = min(self.rcv.rcv_wnd, 65535)
        seg = Segment(self.local[1], self.remote[1], self.iss & MASK,
                      self.rcv.rcv_nxt & MASK if flags & ACK else 0, flags, win)
        self._syn_options(seg, peer if peer is not None else self.peer_syn)
        if self.config.timestamps and (not flags & ACK or self.ts_ok):
            seg.ts = ((now // 1_000_000) & MASK, self.ts_recent if flags & ACK else 0)
        self._out.append(seg)
        self.stats_segments_sent += 1
        if flags & ACK:
            self.stats_synacks_sent += 1     # sent by the request sock in Linux: not in tcpi_segs_out

    def _syn_options(self, seg: Segment, peer: Segment | None) -> None:
        cfg = self.config
        seg.mss = cfg.mss
        if cfg.window_scaling and (peer is None or peer.wscale is not None):
            seg.wscale = self.rcv_wscale
        if cfg.sack and (peer is None or peer.sack_permitted):
            seg.sack_permitted = True
        if peer is None and self.fastopen_req is not None:
            seg.fastopen = self.fastopen_req         # tcp_connect: cookie request or the cached cookie

    def _negotiate(self, peer: Segment) -> None:
        cfg = self.config
        if not (cfg.window_scaling and peer.wscale is not None):
            self.rcv_wscale = 0
            self.snd_wscale = 0
        else:
            self.snd_wscale = min(peer.wscale, 14)
            self.wscale_ok = True
        self.ts_ok = cfg.timestamps and peer.ts is not None
        self.sack_ok = cfg.sack and peer.sack_permitted
        f = peer.flags
        if not f & ACK:      # the peer's SYN asks for ECN with ECE|CWR (tcp_ecn_create_request)
            self.ecn_ok = bool(cfg.ecn and f & ECE and f & CWR and not peer.ect)
        else:                # our SYN asked; a SYN-ACK with ECE alone accepts (tcp_ecn_rcv_synack)
            self.ecn_ok = cfg.ecn == 1 and bool(f & ECE) and not f & CWR
        self.peer_mss = peer.mss if peer.mss is not None else 536
        self.advmss = cfg.mss - (TIMESTAMP_OPTION if self.ts_ok else 0)
        self._sync_mss()
        if peer.ts is not None:
            self.ts_recent = peer.ts[0]

    def _sync_mss(self) -> None:
        """tcp_sync_mss: mss_cache is the path's MSS less the timestamp option, bounded to
        half the peer's largest window (tcp_bound_to_half_wnd). Linux calls it when the
        handshake sets max_window and again whenever max_window grows (tcp_ack_update_window),
        so TCP_INFO's snd_mss, TCP_MAXSEG and the segment sizes all see the bound: 32741
        right after a loopback connect, 47616 once the window has grown to 95232 (measured,
        tests/conformance/test_tcp_info.py)."""
        mss = min(self.config.mss, self.peer_mss) - (TIMESTAMP_OPTION if self.ts_ok else 0)
        mw = self.max_window
        cutoff = mw >> 1 if mw > 536 else mw
        if cutoff and mss > cutoff:
            mss = max(cutoff, 68 - 20 - (TIMESTAMP_OPTION if self.ts_ok else 0))
        self.mss_cache = mss
        self.tp.mss_cache = mss

    def _established(self, event: str, now: int) -> None:
        rx = self.rcv
        self._transition(event, now)
        if self.config.keepalive:        # tcp_finish_connect / tcp_create_openreq_child
            self.ka_at = now + self.config.keepalive_time
        if self.peer_syn is None:
            # tcp_init_transfer: cwnd 1 once the SYN was retransmitted more than once (RFC
            # 5681 with RFC 6298's 1 s initial RTO), else the initial window; out of CA_Loss
            tp = self.tp
            tp.ca_state = CA_OPEN
            cut = self.stats_retransmits > 1 and not self.syn_spurious
            tp.snd_cwnd = 1 if cut else self.config.init_cwnd
        self._cc_init(now)
        self._sndbuf_expand()
        rx.rcvq_space = min(rx.rcv_ssthresh, rx.rcv_wnd, self.config.init_cwnd * self.mss_cache)
        rx.rcvq_seq = rx.copied_seq
        rx.rcvq_time = now
        self.rto_at = self.rto_kind = None
        self.backoff = self.retransmits = 0
        self.retrans_stamp = 0
        self.limit_since = now

    def _cc_init(self, now: int) -> None:
        """tcp_init_congestion_control: the module's init() with the clock and min RTT."""
        tp = self.tp
        tp.now_us = now // 1000
        tp.clock_ns = now
        tp.min_rtt_us = self.min_rtt // 1000 if self.min_rtt < (1 << 62) else 0xFFFFFFFF
        self.cc.init(tp)

    # ------------------------------------------------------------------ passive open, replies
    def _passive_open(self, syn: Segment, now: int) -> None:
        """tcp_conn_request: a SYN for a listener becomes a SYN_RECV connection; send SYN-ACK."""
        rx = self.rcv
        self.peer_syn = syn
        self.stats_segs_in = 1               # the SYN (tcp_create_openreq_child)
        self._init_receive_side()
        self._negotiate(syn)
        rx.irs = syn.seq
        rx.rcv_nxt = rx.rcv_wup = rx.copied_seq = self.rcvq.origin = rx.irs + 1
        self.snd_nxt = self.iss + 1
        self.snd_wnd = self.max_window = syn.window
        self._sync_mss()
        self.snd_wl1 = rx.irs
        self._transition(RCV_SYN, now)
        self.retrans_stamp = now
        self._send_syn(now, syn)
        self.rto_kind = "synack"
        self.rto_at = now + self.config.rto_init

    def _rcv_synrecv(self, seg: Segment, seq: int, now: int) -> bool:
        """tcp_check_req: the handshake's final ACK; False if the segment is dropped."""
        ack = unwrap(seg.ack, self.snd_una)
        if ack != self.iss + 1:
            self._out.append(Segment(self.local[1], self.remote[1], seg.ack, 0, RST, 0))
            return False
        if self.listener is not None and not self.listener._handshake_done(self, now):
            return False            # accept queue full, tcp_abort_on_overflow=0: drop the ACK
        self.snd_una = ack
        self.snd_wnd = seg.window << self.snd_wscale
        self.max_window = max(self.max_window, self.snd_wnd)
        self._sync_mss()            # tcp_v4_syn_recv_sock: tcp_sync_mss with the final ACK's window
        self.snd_wl1 = seq
        if not self.retransmits:
            self._rtt_sample(now - self.retrans_stamp, now)
        self._established(RCV_ACK, now)
        return True

    def _rcv_synsent(self, seg: Segment, now: int) -> None:
        """tcp_rcv_synsent_state_process."""
        rx = self.rcv
        flags = seg.flags
        if flags & ACK:
            ack = unwrap(seg.ack, self.iss)
            if ack != self.iss + 1:
                if not flags & RST:
                    self._out.append(Segment(self.local[1], self.remote[1], seg.ack, 0, RST, 0))
                return
            if flags & RST:
                self._done_with_error(E.ECONNREFUSED, RCV_RST, now)
                return
            if not flags & SYN:
                return
            self._negotiate(seg)
            if self.fastopen_req is not None and seg.fastopen and self.fastopen_cache is not None:
                self.fastopen_cache[self.remote[0]] = seg.fastopen   # tcp_rcv_fastopen_synack
            if not self.rcv_wscale:
                rx.rcv_wnd = min(rx.rcv_wnd, 65535)
            # tcp_initialize_rcv_mss
            rx.rcv_mss = max(min(self.advmss, self.mss_cache, rx.rcv_wnd // 2, 536), 88)
            rx.irs = seg.seq
            rx.rcv_nxt = rx.rcv_wup = rx.copied_seq = self.rcvq.origin = rx.irs + 1
            self.snd_una = self.iss + 1
            self.snd_wnd = self.max_window = seg.window
            self._sync_mss()        # tcp_rcv_synsent_state_process
            self.snd_wl1 = rx.irs
            if not self.retransmits:
                self._rtt_sample(now - self.retrans_stamp, now)
            elif self.ts_ok and seg.ts is not None and seg.ts[1]:
                # a retransmitted SYN: the RTT comes from the echoed timestamp (ms, >= 1);
                # an echo of the first SYN's means it was not lost (tcp_try_undo_spurious_syn)
                self._rtt_sample(max(((now // 1_000_000) - seg.ts[1]) & MASK, 1) * 1_000_000, now)
                self.syn_spurious = seg.ts[1] == (self.retrans_stamp // 1_000_000) & MASK
            self._established(RCV_SYNACK, now)
            rx.lrcvtime = now
            if rx.pingpong >= 1:
                # TCP_QUICKACK was turned off: save one ACK (tcp_rcv_synsent_state_process),
                # send it after TCP_DELACK_MAX unless data goes first; tcp_enter_quickack_mode
                rx.ack_pending = True
                rx.quick = self.config.max_quickacks
                rx.pingpong = 0
                rx.ato = self.config.delack_min
                rx.delack_at = now + self.config.delack_max
                return
            rx.ack_now = True
            return

    # ------------------------------------------------------------------ SYN retransmission
    def _syn_timer(self, now: int) -> None:
        """tcp_retransmit_timer in SYN_SENT. Linux >= 6.5 keeps the first
        tcp_syn_linear_timeouts (4) retransmissions 1 s apart, then backs off exponentially:
        SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s. connect() gives up at the first timer
        past tcp_model_timeout(tcp_syn_retries, 1 s) (tcp_write_timeout, time-based): 3 s for
        TCP_SYNCNT 1, 7 s for 2, 19 s for 3, 131 s for the default 6 (measured on 6.18,
        tests/conformance/test_syn_cookies.py). The timeout also enters CA_Loss with cwnd 1,
        as TCP_INFO shows while the socket waits."""
        if self.state != SYN_SENT:
            return
        cfg = self.config
        if self._timed_out(now, cfg.syn_retries, cfg.rto_init):
            self._done_with_error(self.sk_err_soft or E.ETIMEDOUT, TIMEOUT, now)
            return
        if not self.retransmits:
            self.stats_rto_recoveries += 1         # tcp_update_rto_stats
        self.retransmits += 1
        if self.retransmits <= cfg.syn_linear_timeouts:
            self.backoff = 0
        else:
            self.backoff += 1
        self.stats_retransmits += 1
        self.stats_rto_count += 1
        self.tp.ca_state = CA_LOSS           # tcp_enter_loss
        self.tp.snd_cwnd = 1
        self._send_syn(now, None)
        if self.trace is not None:
            self.trace("retransmit", now, {"seq": self.iss, "len": 1, "reason": "timeout"})
        self.rto_kind = "syn"
        self.rto_at = now + min(self.rtt.rto << self.backoff, cfg.rto_max)

    def _synack_timer(self, now: int) -> None:
        if self.state != SYN_RECV:
            return
        if self.retransmits >= self.config.synack_retries:
            self._done(TIMEOUT, now)   # request dropped silently (reqsk_timer_handler)
            return
        self.retransmits += 1
        self.stats_retransmits += 1
        self._send_syn(now, self.peer_syn)
        self.rto_kind = "synack"
        self.rto_at = now + min(self.config.rto_init << self.retransmits, self.config.rto_max)
