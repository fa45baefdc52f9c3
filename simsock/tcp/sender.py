"""The sending half of a TCP connection: transmission and send-buffer space.

A mixin of :class:`simsock.tcp.connection.TcpConnection`. The send-side fields (snd_una,
snd_nxt, the peer's window, the send queue) are the connection's; what is in flight is the
recovery scoreboard (``conn.scoreboard``, recovery.py); the timers this module arms and the
retransmission, probe and loss-probe code they run are in timers.py.

Transmission follows tcp_write_xmit: retransmissions of segments marked lost first, then new
data, each segment cut at ``mss_now`` and at skb boundaries, allowed while
``packets_in_flight < cwnd`` (tcp_cwnd_test) and the segment ends inside the peer's window
(tcp_snd_wnd_test, which is also the sender side of silly-window avoidance), and held back by
Nagle as tcp_nagle_check does (Minshall's variant: a sub-MSS tail segment waits only while an
earlier sub-MSS segment is unacknowledged; TCP_CORK holds every sub-MSS tail).

Loss detection and recovery (SACK scoreboard, RACK or RFC 6675 marking, NewReno without
SACK, PRR) live in recovery.py and run from ACK processing (tcp_ack, ack.py); this module
retransmits records marked lost, in sequence order, ahead of new data.
The retransmission timer (tcp_retransmit_timer) enters Loss: every unSACKed segment marked
lost (tcp_timeout_mark_lost), cwnd = in flight + 1, resent as cwnd reopens, RTO doubled up to
rto_max, and the connection fails
with ETIMEDOUT once the time since the first retransmission exceeds what ``retries2``
backoffs would take (retransmits_timed_out / tcp_model_timeout). The persist timer
(tcp_probe_timer) sends zero-window probes — Linux's are zero-length segments with sequence
``snd_una - 1``, which the receiver answers with a duplicate ACK carrying its window — with
the same exponential backoff. A retransmission (or loss probe) resends only what fits the
peer's window, splitting the segment at its edge (__tcp_retransmit_skb / tcp_fragment); into
a zero window only the head goes, one MSS, as a zero-window probe, and an RTO facing a zero
window neither counts toward tcp_retries2 nor times out while the peer keeps answering
(tcp_retransmit_timer, tcp_rtx_probe0_timed_out: 240 s of silence). Tail loss probes: see
recovery.py. Pacing (tcp_pacing_check before each skb, for modules that ask for it or
under fq) and delivery-rate sampling: rate.py. Not modelled here: TSO autosizing beyond
paced bursts, autocorking, TCP_USER_TIMEOUT, keepalive.
"""

from __future__ import annotations

from simsock.signals import SIG_OUT
from simsock.tcp.buffers import SKB_PSH, SendQueue
from simsock.tcp.cc.base import CA_CWR, CA_EVENT_TX_START, CA_LOSS, CA_RECOVERY
from simsock.tcp.config import TcpConfig
from simsock.tcp.congestion import CongestionState, get_ops
from simsock.tcp.recovery import R_EVER, R_LOST, R_RETRANS, R_SACKED, Scoreboard
from simsock.tcp.rtt import RttEstimator
from simsock.tcp.sack import max_sack_blocks
from simsock.tcp.segment import ACK, FIN, PSH

#: SKB_TRUESIZE pieces used by tcp_sndbuf_expand (x86_64): MAX_TCP_HEADER, skb_shared_info,
#: sk_buff, all SKB_DATA_ALIGN'ed.
_MAX_TCP_HEADER = 320
_SHINFO = 320
_SKB = 256


class Sender:
    def _init_send_state(self, config: TcpConfig, iss: int) -> None:
        """The send side at connect/accept time: sequence space and the peer's window, the
        send queue, the scoreboard, RTT and congestion state (``mss_cache`` set first)."""
        self.snd_una = self.snd_nxt = iss
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.max_window = 0
        self.sndbuf = config.sndbuf
        self.sendq = SendQueue(iss + 1, config.skb_tx_overhead)
        self.fin_queued = self.fin_sent = False
        self.send_eor = False            # the socket's send() has MSG_EOR (SendQueue.append)
        self.send_more = False           # ... MSG_MORE: no PSH mark, corked push (tcp_push)
        self.push_cork = False           # the next _write_xmit holds sub-MSS tails (TCP_NAGLE_CORK)
        self.push_now = False            # the next _write_xmit ignores cork and Nagle (TCP_NAGLE_PUSH)
        self.scoreboard = Scoreboard(iss)   # segments in flight, SACK, RACK, PRR (recovery.py)
        self.min_rtt = 1 << 62
        self.snd_sml = iss
        self.max_packets_out = 0
        self.cwnd_usage_seq = iss       # tp->cwnd_usage_seq (tcp_cwnd_validate)
        self.retrans_stamp = 0
        self.backoff = self.retransmits = self.probes_out = 0
        self.rtx_reason = "timeout"
        self.rtt_backed_off = False
        self.rtt = RttEstimator(config.rto_init, config.rto_min, config.rto_max)
        self.tp = CongestionState(config.init_cwnd, self.mss_cache)
        self.cc = get_ops(config.congestion)
        self.tp.rand_seed = iss          # a per-connection seed for the module (BBR's cycle phase)
        self._rate_init()
        self.rcv_tstamp = 0              # when the last ACK arrived (tp->rcv_tstamp)
        # what limited the sender, for the chrono stats (_limit_state); index: 0 none, 1 rwnd,
        # 2 cwnd, 3 app (queues empty), 4 app with data in flight
        self.limited_ns = [0, 0, 0, 0, 0]
        self.limit_kind = 0
        self.limit_since = 0

    # ------------------------------------------------------------------ sizes
    def mss_now(self) -> int:
        """tcp_current_mss: mss_cache less the room SACK blocks take on this segment."""
        mss = self.mss_cache         # already bounded to half the peer's max window (_sync_mss)
        sack = self.sack_rx
        if sack.blocks or sack.dsack is not None:
            # tcp_current_mss: SACK blocks on this segment take room from the payload.
            n = len(sack.blocks) + (sack.dsack is not None)
            mss -= 4 + 8 * min(n, max_sack_blocks(self.ts_ok))
        return mss

    def size_goal(self, mss: int) -> int:
        """tcp_xmit_size_goal: a GSO skb of whole segments up to gso_max_size and half the window."""
        goal = self.config.gso_max_size - 1 - _MAX_TCP_HEADER
        mw = self.max_window
        if mw > 536 and goal > mw >> 1:
            goal = mw >> 1
        return max((goal // mss) * mss, mss)

    def _sndbuf_expand(self) -> None:
        """tcp_sndbuf_expand: room for ``ca_ops->sndbuf_expand`` cwnds of full-size skbs (2
        unless the module says otherwise; BBR's 3: checked against Linux 6.18 loopback, where a
        fresh connection's SO_SNDBUF is 2626560 with cubic and 3939840 with bbr), unless
        SO_SNDBUF was set."""
        if self.config.sndbuf_locked:
            return
        per_mss = max(self.peer_mss, self.mss_cache, 1) + _MAX_TCP_HEADER + _SHINFO   # max(mss_clamp, mss_cache)
        per_mss = (1 << (per_mss - 1).bit_length()) + _SKB
        segs = max(self.config.init_cwnd, self.tp.snd_cwnd)
        need = self.cc.sndbuf_expand(self.tp) * segs * per_mss
        if self.sndbuf < need:
            self.sndbuf = min(need, self.config.tcp_wmem[2])

    # ------------------------------------------------------------------ transmit
    def _push_pending(self, now: int) -> int:
        """A push in the middle of tcp_sendmsg_locked (__tcp_push_pending_frames /
        tcp_push_one): transmit what may go now; returns snd_nxt."""
        self._write_xmit(now, self._out)
        return self.snd_nxt

    def _write_xmit(self, now: int, out: list) -> None:
        """tcp_write_xmit: retransmissions of lost records, then new data, then the
        bookkeeping of what limited the sender (_xmit_finish)."""
        sb = self.scoreboard
        # the nonagle of this push: TCP_NAGLE_CORK after a MSG_MORE send, TCP_NAGLE_PUSH
        # after setsockopt(TCP_NODELAY, 1); later pushes use the socket's setting
        push_cork, push_now = self.push_cork, self.push_now
        self.push_cork = self.push_now = False
        if self.snd_nxt >= self.sendq.end and sb.retrans_out >= sb.lost_out and (self.fin_sent or not self.fin_queued):
            # Nothing to send (most calls: after a read, an ACK, a timer): only the
            # bookkeeping that ends the loop below, which would stop application-limited
            # (tcp_write_xmit calls tcp_cwnd_validate only when it sent or hit cwnd).
            # segments_to_send has this case inlined: keep the two alike.
            app = 4 if sb.records else 3      # data in flight: Linux's TCP_CHRONO_BUSY
            if self.limit_kind != app:
                self._limit_state(app, now)
            return
        cwnd = self.tp.snd_cwnd
        mss = self.mss_now()
        sent_pkts = self._xmit_retransmit_queue(now, out) if sb.retrans_out < sb.lost_out else 0
        prior_out = len(sb.records)
        limited, sent_new = self._xmit_new_data(now, out, mss, cwnd, push_cork, push_now)
        self._xmit_finish(limited, sent_pkts + sent_new, sent_new > 0, prior_out, cwnd, now)

    def _xmit_new_data(self, now: int, out: list, mss: int, cwnd: int, push_cork: bool,
                       push_now: bool) -> tuple[int, int]:
        """tcp_write_xmit's loop over unsent data (and a bare FIN): segments while cwnd, the
        peer's window, pacing and Nagle allow; returns what stopped it (0 pacing, 1 rwnd,
        2 cwnd, 3 app) and how many segments went out."""
        tp = self.tp
        records = self.scoreboard.records
        sq = self.sendq
        wnd_end = self.snd_una + self.snd_wnd
        sent = 0
        # tcp_tso_segs: at most a GSO packet's worth of segments per skb (the pacing-rate
        # bound of tcp_tso_autosize is not modelled); at least tcp_min_tso_segs (2).
        max_segs = max((self.config.gso_max_size - 1 - _MAX_TCP_HEADER) // mss, 2)
        at_head = True          # snd_nxt starts an unsent skb
        pacing = self.pacing_on
        while True:
            nxt = self.snd_nxt
            if nxt < sq.end:
                in_flight = self._in_flight()
                if pacing and self._pacing_blocked(now):
                    return 0, sent
                if in_flight >= cwnd:
                    return 2, sent
                if at_head:
                    # tcp_grow_skb with tcp_cwnd_test's quota: min(cwnd/2, cwnd - in flight)
                    quota = min(max(cwnd >> 1, 1), cwnd - in_flight, max_segs)
                    sq.grow(nxt, quota * mss)
                skb_end = sq.skb_end(nxt)
                seg_end = min(nxt + mss, skb_end)
                at_head = seg_end == skb_end
                if seg_end > wnd_end:
                    return 1, sent
                fin = self.fin_queued and seg_end == sq.end
                if seg_end - nxt < mss and not fin and sq.is_tail_skb(nxt):
                    cfg = self.config
                    if not push_now and (cfg.cork or push_cork or (
                            not cfg.nodelay and records and self.snd_sml > self.snd_una)):
                        return 3, sent
                if not records:
                    tp.now_us = now // 1000
                    self.cc.cwnd_event(tp, CA_EVENT_TX_START)
                self._emit_data(nxt, seg_end, now, out, fin=fin)
                end = seg_end + (1 if fin else 0)
                rec = [nxt, end, now, 0]
                if self.rate_on:
                    rec.append(self._rate_skb_sent(now))
                records.append(rec)
                sent += 1
                if seg_end - nxt < mss:
                    self.snd_sml = end
                self.snd_nxt = end
                if fin:
                    self.fin_sent = True
            elif self.fin_queued and not self.fin_sent:
                if pacing and self._pacing_blocked(now):
                    return 0, sent
                if self._in_flight() >= cwnd:
                    return 2, sent
                self._send_bare_fin(nxt, now, out)
                sent += 1
            else:
                return 3, sent

    def _send_bare_fin(self, nxt: int, now: int, out: list) -> None:
        """A FIN with no data at snd_nxt (tcp_send_fin when the queue is empty)."""
        self._emit_data(nxt, nxt, now, out, fin=True)
        rec = [nxt, nxt + 1, now, 0]
        if self.rate_on:
            rec.append(self._rate_skb_sent(now))
        self.scoreboard.records.append(rec)
        self.snd_nxt = nxt + 1
        self.fin_sent = True

    def _xmit_finish(self, limited: int, sent_pkts: int, sent_any: bool, prior_out: int,
                     cwnd: int, now: int) -> None:
        """The end of tcp_write_xmit: cut the send head at snd_nxt, tcp_cwnd_validate, the
        chrono of what limited the sender, PRR's count, and the timers a transmission
        (re)arms (tcp_event_new_data_sent, tcp_check_probe_timer)."""
        sq = self.sendq
        tp = self.tp
        sb = self.scoreboard
        records = sb.records
        if self.snd_nxt < sq.end:
            sq.split_at(self.snd_nxt)
        # tcp_cwnd_validate / tcp_is_cwnd_limited
        cwnd_limited = limited == 2 or self._in_flight() >= cwnd
        if sent_pkts or cwnd_limited:
            self._cwnd_validate(cwnd_limited)
        if limited == 3 and records:
            limited = 4                          # nothing to send, data in flight: busy
        self._limit_state(limited if sq.end > self.snd_una or records else 3, now)
        if sent_pkts and tp.ca_state in (CA_CWR, CA_RECOVERY):
            sb.prr_out += sent_pkts
        if sent_any:
            tp.lsndtime_us = now // 1000
            tp.snd_nxt = self.snd_nxt
        if sent_any:
            # tcp_event_new_data_sent: (re)arm the RTO if nothing was in flight or a loss
            # probe was pending; then tcp_write_xmit schedules the next loss probe.
            if self.rto_kind is None or self.rto_kind == "tlp" or prior_out == 0:
                self._rearm_rto(now)
            self._schedule_loss_probe(now, False)
        elif self.snd_nxt < sq.end and not records and self.rto_kind is None:
            self._arm_probe(now)   # tcp_check_probe_timer
        if sent_any and self.nospace and (self.notsent_lowat or self.config.notsent_lowat) != 0xFFFFFFFF:
            self.check_space(now)  # tcp_data_snd_check: the push lowered the unsent bytes

    def _xmit_retransmit_queue(self, now: int, out: list) -> int:
        """tcp_xmit_retransmit_queue: resend records marked lost, in order, while cwnd allows.

        Each goes through __tcp_retransmit_skb's window check: only what fits the peer's
        window is resent (the record is split at the window's edge, tcp_fragment), and a
        record starting past the window stops the walk -- except the head when the window
        is zero, whose retransmission serves as a zero-window probe (one MSS).
        """
        sb = self.scoreboard
        cwnd = self.tp.snd_cwnd
        rack = self.sack_ok and self.config.recovery & 1
        in_loss = self.tp.ca_state == CA_LOSS
        n = 0
        tail = None
        if self.rate_on:
            self._rate_check_app_limited()   # a gap before retransmissions counts too
        for i, rec in enumerate(sb.records):
            if sb.retrans_out >= sb.lost_out or self._in_flight() >= cwnd:
                break
            if self.pacing_on and self._pacing_blocked(now):
                break
            f = rec[3]
            if f & R_LOST and not f & (R_SACKED | R_RETRANS):
                tail = self._fit_to_window(rec, i)
                if tail is False:
                    break
                self._emit_data(rec[0], rec[1], now, out, retransmit=True)
                if self.rate_on:
                    self._rate_stamp(rec, now)
                rec[2] = now
                rec[3] = f | R_RETRANS | R_EVER
                sb.retrans_out += 1
                self.stats_retransmits += 1
                if not in_loss:
                    self.stats_fast_retransmits += 1
                if rack:
                    sb.rtx_sent.append((now, rec))
                if not self.retrans_stamp:
                    self.retrans_stamp = now
                n += 1
                if tail is not None:
                    sb.records.insert(i + 1, tail)
                    break               # the rest starts past the window
        return n

    def _fit_to_window(self, rec: list, i: int):
        """__tcp_retransmit_skb's window test for ``rec`` (index ``i`` in records): False if
        it may not be resent now; else None, or the record for the part beyond the window
        after cutting ``rec`` there (tcp_fragment; the caller inserts it after ``rec``)."""
        start = rec[0]
        avail = self.snd_una + self.snd_wnd - start
        if avail <= 0:
            if start != self.snd_una:
                return False
            avail = self.mss_now()
        fin = 1 if self.fin_sent and rec[1] == self.sendq.end + 1 else 0
        if rec[1] - fin - start <= avail:
            return None
        cut = start + avail
        tail = rec[:]                   # the rate-sampling state is copied too (tcp_fragment)
        tail[0] = cut
        rec[1] = cut
        if tail[3] & R_LOST:
            self.scoreboard.lost_out += 1
        if cut < self.sendq.end:
            self.sendq.split_at(cut)
        return tail

    def _limit_state(self, limited: int, now: int) -> None:
        if self.limit_kind != limited:
            self.limited_ns[self.limit_kind] += now - self.limit_since
            self.limit_kind = limited
            self.limit_since = now

    def _emit_data(self, start: int, end: int, now: int, out: list, fin: bool = False,
                   retransmit: bool = False, psh: bool = False) -> None:
        rx = self.rcv
        if end > start:
            payload = self.sendq.data(start, min(end, self.sendq.end))
        else:
            payload = b""
        if retransmit and self.fin_queued and end == self.sendq.end + 1:
            fin = True
        flags = ACK
        if fin:
            flags |= FIN
        if payload and psh:
            flags |= PSH        # tcp_write_wakeup sets it on what it sends
        elif payload and self.sendq.skb_flags(start) & SKB_PSH and (
                not retransmit or start + len(payload) >= self.sendq.skb_end(start)):
            # the skb's mark (tcp_mark_push): on every TSO packet cut from it when first sent
            # (measured on 6.18), but a retransmission of its first part is a tcp_fragment,
            # which clears PSH (and FIN) on all but the last piece
            flags |= PSH
        seg = self._make_segment(start, flags, now, payload)
        if self.ecn_ok and payload and not retransmit:
            seg.ect = 2             # tcp_ecn_send: new data goes out ECT(0)
        if retransmit:
            seg.rtx = True
        if self.config.rx_coalesce:
            seg.src = self          # loopback: the peer queues a clone of this skb
        out.append(seg)
        self.stats_bytes_sent += len(payload)
        if payload:
            self.stats_data_segs_out += 1        # TCP_INFO's data_segs_out / bytes_retrans
            if retransmit:
                self.stats_bytes_retrans += len(payload)
        if self.pacing_on and payload:
            self._paced_sent(len(payload), now)
        if retransmit and self.trace is not None:
            self.trace("retransmit", now, {"seq": start, "len": end - start, "reason": self.rtx_reason})
        if payload and now - rx.lrcvtime < rx.ato:
            rx.pingpong += 1   # tcp_event_data_sent: a reply within ato of the last arrival

    def _cwnd_validate(self, is_cwnd_limited: bool) -> None:
        """tcp_cwnd_validate: per round of data (until snd_una passes the snd_nxt of the last
        reset), remember whether cwnd limited the sender, else the most packets in flight;
        tcp_is_cwnd_limited (tcp/cc/base.py) reads both, so an application-limited sender in
        slow start still grows cwnd to twice what it had in flight during the round."""
        tp = self.tp
        n = len(self.scoreboard.records)
        if self.snd_una >= self.cwnd_usage_seq or is_cwnd_limited or (
                not tp.is_cwnd_limited and n > self.max_packets_out):
            tp.is_cwnd_limited = is_cwnd_limited
            self.max_packets_out = tp.max_packets_out = n
            self.cwnd_usage_seq = self.snd_nxt

    def check_space(self, now: int) -> None:
        """tcp_check_space / tcp_new_space / sk_stream_write_space: after buffer space was
        freed, wake a writer that ran out (SIG_OUT) once the socket is writable."""
        if self.nospace:
            if not self._cwnd_full():
                self._sndbuf_expand()
            if self._writeable():
                self.nospace = False
                self.signals |= SIG_OUT

    def _cwnd_full(self) -> bool:
        return self._in_flight() >= self.tp.snd_cwnd

    def _writeable(self) -> bool:
        """__sk_stream_is_writeable(sk, wake=1): free space >= half of what is queued
        (sk_stream_min_wspace), and twice the unsent bytes below TCP_NOTSENT_LOWAT
        (tcp_stream_memory_free)."""
        q = self.sendq.wmem_queued
        return (self.sndbuf - q >= q >> 1 and q < self.sndbuf
                and (self.sendq.end - self.snd_nxt) << 1 < (self.notsent_lowat or self.config.notsent_lowat))
