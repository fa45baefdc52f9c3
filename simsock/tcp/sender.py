"""The sending half of a TCP connection: transmission, ACK processing, loss recovery, timers.

This is a mixin of :class:`simsock.tcp.connection.TcpConnection`, split off to keep each
module to one concept; the state it touches is declared there.

Transmission follows tcp_write_xmit: retransmissions of segments marked lost first, then new
data, each segment cut at ``mss_now`` and at skb boundaries, allowed while
``packets_in_flight < cwnd`` (tcp_cwnd_test) and the segment ends inside the peer's window
(tcp_snd_wnd_test, which is also the sender side of silly-window avoidance), and held back by
Nagle as tcp_nagle_check does (Minshall's variant: a sub-MSS tail segment waits only while an
earlier sub-MSS segment is unacknowledged; TCP_CORK holds every sub-MSS tail).

Loss detection and recovery (SACK scoreboard, RACK or RFC 6675 marking, NewReno without
SACK, PRR) live in recovery.py; this module runs them from ACK processing (tcp_ack:
tcp_sacktag_write_queue, tcp_clean_rtx_queue, tcp_fastretrans_alert on a "dubious" ACK,
then tcp_cong_control: PRR while in Recovery, the congestion module's cong_avoid otherwise)
and retransmits records marked lost, in sequence order, ahead of new data.
The retransmission timer (tcp_retransmit_timer) enters Loss: every unSACKed segment marked
lost (tcp_timeout_mark_lost), cwnd = in flight + 1, resent as cwnd reopens, RTO doubled up to
rto_max, and the connection fails
with ETIMEDOUT once the time since the first retransmission exceeds what ``retries2``
backoffs would take (retransmits_timed_out / tcp_model_timeout). The persist timer
(tcp_probe_timer) sends zero-window probes — Linux's are zero-length segments with sequence
``snd_una - 1``, which the receiver answers with a duplicate ACK carrying its window — with
the same exponential backoff. Not modelled here: TSO autosizing/pacing, autocorking,
TCP_USER_TIMEOUT, keepalive.
"""

from __future__ import annotations

from simsock.tcp.congestion import CA_CWR, CA_DISORDER, CA_LOSS, CA_RECOVERY
from simsock.tcp.recovery import (FLAG_CA_ALERT, FLAG_DATA, FLAG_DATA_ACKED, FLAG_DSACKING_ACK,
                                  FLAG_FORWARD_PROGRESS, FLAG_NOT_DUP, FLAG_RETRANS_DATA_ACKED,
                                  FLAG_SND_UNA_ADVANCED, FLAG_WIN_UPDATE, R_EVER, R_LOST,
                                  R_RETRANS, R_SACKED, TCP_REORDERING)
from simsock.tcp.sack import max_sack_blocks
from simsock.tcp.segment import ACK, FIN, PSH, Segment
from simsock.tcp.signals import SIG_SPACE

CA_EVENT_TX_START = 0
CA_EVENT_LOSS = 3
#: SKB_TRUESIZE pieces used by tcp_sndbuf_expand (x86_64): MAX_TCP_HEADER, skb_shared_info,
#: sk_buff, all SKB_DATA_ALIGN'ed.
_MAX_TCP_HEADER = 320
_SHINFO = 320
_SKB = 256


def _model_timeout(boundary: int, rto_base: int, rto_max: int) -> int:
    """tcp_model_timeout: how long ``boundary`` exponential backoffs from rto_base last."""
    thresh = (rto_max // rto_base).bit_length() - 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max


class Sender:
    # ------------------------------------------------------------------ sizes
    def _mss_now(self) -> int:
        """tcp_current_mss with tcp_bound_to_half_wnd: never more than half the peer's max window."""
        mss = self.mss_cache
        mw = self.max_window
        if mw > 536 and mss > mw >> 1:
            mss = max(mw >> 1, 68 - 32)
        sack = self.sack_rx
        if sack:
            # tcp_current_mss: SACK blocks on this segment take room from the payload.
            n = len(sack.blocks) + (sack.dsack is not None)
            mss -= 4 + 8 * min(n, max_sack_blocks(self.ts_ok))
        return mss

    def _size_goal(self, mss: int) -> int:
        """tcp_xmit_size_goal: a GSO skb of whole segments up to gso_max_size and half the window."""
        goal = self.config.gso_max_size - 1 - _MAX_TCP_HEADER
        mw = self.max_window
        if mw > 536 and goal > mw >> 1:
            goal = mw >> 1
        return max((goal // mss) * mss, mss)

    def _sndbuf_expand(self) -> None:
        """tcp_sndbuf_expand: room for two cwnds of full-size skbs, unless SO_SNDBUF was set."""
        if self.config.sndbuf_locked:
            return
        per_mss = max(self.mss_cache, 1) + _MAX_TCP_HEADER + _SHINFO
        per_mss = (1 << (per_mss - 1).bit_length()) + _SKB
        segs = max(self.config.init_cwnd, self.tp.snd_cwnd)
        need = 2 * segs * per_mss
        if self.sndbuf < need:
            self.sndbuf = min(need, self.config.tcp_wmem[2])

    # ------------------------------------------------------------------ transmit
    def _write_xmit(self, now: int, out: list) -> None:
        tp = self.tp
        cwnd = tp.snd_cwnd
        records = self.records
        mss = self._mss_now()
        sent_pkts = self._xmit_retransmit_queue(now, out) if self.retrans_out < self.lost_out else 0
        sq = self.sendq
        wnd_end = self.snd_una + self.snd_wnd
        limited = 0  # 1 rwnd, 2 cwnd, 3 app
        sent_any = False
        while True:
            nxt = self.snd_nxt
            if nxt < sq.end:
                seg_end = min(nxt + mss, sq.skb_end(nxt))
                if self._in_flight() >= cwnd:
                    limited = 2
                    break
                if seg_end > wnd_end:
                    limited = 1
                    break
                fin = self.fin_queued and seg_end == sq.end
                if seg_end - nxt < mss and not fin and sq.is_tail_skb(nxt):
                    cfg = self.config
                    if cfg.cork or (not cfg.nodelay and records and self.snd_sml > self.snd_una):
                        limited = 3
                        break
                if not records:
                    tp.now_us = now // 1000
                    self.cc.cwnd_event(tp, CA_EVENT_TX_START)
                self._emit_data(nxt, seg_end, now, out, fin=fin)
                end = seg_end + (1 if fin else 0)
                records.append([nxt, end, now, 0])
                sent_pkts += 1
                if seg_end - nxt < mss:
                    self.snd_sml = end
                self.snd_nxt = end
                if fin:
                    self.fin_sent = True
                sent_any = True
            elif self.fin_queued and not self.fin_sent:
                if self._in_flight() >= cwnd:
                    limited = 2
                    break
                self._emit_data(nxt, nxt, now, out, fin=True)
                records.append([nxt, nxt + 1, now, 0])
                sent_pkts += 1
                self.snd_nxt = nxt + 1
                self.fin_sent = True
                sent_any = True
            else:
                limited = 3
                break
        if self.snd_nxt < sq.end:
            sq.split_at(self.snd_nxt)
        # tcp_cwnd_validate / tcp_is_cwnd_limited
        n = len(records)
        if n > self.max_packets_out or not self.max_packets_out_valid:
            self.max_packets_out = n
            self.max_packets_out_valid = True
        if tp.snd_cwnd < tp.snd_ssthresh:
            tp.is_cwnd_limited = tp.snd_cwnd < 2 * self.max_packets_out
        else:
            tp.is_cwnd_limited = limited == 2
        self._limit_state(limited if sq.end > self.snd_una or records else 3, now)
        if sent_pkts and tp.ca_state in (CA_CWR, CA_RECOVERY):
            self.prr_out += sent_pkts
        if sent_any:
            tp.lsndtime_us = now // 1000
            tp.snd_nxt = self.snd_nxt
        tp.max_packets_out = self.max_packets_out
        if sent_any and self.rto_kind is None:
            self._arm_rto(now)
        elif self.snd_nxt < sq.end and not records and self.rto_kind is None:
            self._arm_probe(now)   # tcp_check_probe_timer

    def _xmit_retransmit_queue(self, now: int, out: list) -> int:
        """tcp_xmit_retransmit_queue: resend records marked lost, in order, while cwnd allows."""
        cwnd = self.tp.snd_cwnd
        rack = self.sack_ok and self.config.recovery & 1
        in_loss = self.tp.ca_state == CA_LOSS
        n = 0
        for rec in self.records:
            if self.retrans_out >= self.lost_out or self._in_flight() >= cwnd:
                break
            f = rec[3]
            if f & R_LOST and not f & (R_SACKED | R_RETRANS):
                self._emit_data(rec[0], rec[1], now, out, retransmit=True)
                rec[2] = now
                rec[3] = f | R_RETRANS | R_EVER
                self.retrans_out += 1
                self.stats_retransmits += 1
                if not in_loss:
                    self.stats_fast_retransmits += 1
                if rack:
                    self.rtx_sent.append((now, rec))
                if not self.retrans_stamp:
                    self.retrans_stamp = now
                n += 1
        return n

    def _limit_state(self, limited: int, now: int) -> None:
        if self.limit_kind != limited:
            self.limited_ns[self.limit_kind] += now - self.limit_since
            self.limit_kind = limited
            self.limit_since = now

    def _emit_data(self, start: int, end: int, now: int, out: list, fin: bool = False,
                   retransmit: bool = False) -> None:
        if end > start:
            payload = self.sendq.data(start, min(end, self.sendq.end))
        else:
            payload = b""
        if retransmit and self.fin_queued and end == self.sendq.end + 1:
            fin = True
        flags = ACK
        if fin:
            flags |= FIN
        if payload and start + len(payload) == self.sendq.end:
            flags |= PSH
        out.append(self._make_segment(start, flags, now, payload))
        self.stats_bytes_sent += len(payload)
        if retransmit and self.trace is not None:
            self.trace("retransmit", now, {"seq": start, "len": end - start, "reason": self.rtx_reason})
        if payload and now - self.lrcvtime < self.ato:
            self.pingpong += 1   # tcp_event_data_sent: a reply within ato of the last arrival

    # ------------------------------------------------------------------ ACK processing
    def _process_ack(self, seg: Segment, seq: int, ack: int, has_data: bool, now: int) -> None:
        """tcp_ack."""
        tp = self.tp
        prior_una = self.snd_una
        records = self.records
        flag = FLAG_DATA if has_data else 0
        sack = self.sack_ok and bool(seg.sack)
        if ack < prior_una:
            # An old ACK: only its SACK information counts (tcp_ack's old_ack path).
            if sack and records:
                self.ack_delivered = self.newly_lost = 0
                flag |= self._sacktag(seg.sack, now)[1]
                self._fastretrans_alert(0, flag, now)
            return
        window = seg.window << self.snd_wscale
        if (ack > prior_una or seq > self.snd_wl1
                or (seq == self.snd_wl1 and (window > self.snd_wnd or window == 0))):
            flag |= FLAG_WIN_UPDATE     # tcp_ack_update_window: tcp_may_update_window
            if window != self.snd_wnd:
                opened = window > 0 and self.snd_wnd == 0
                self.snd_wnd = window
                if window > self.max_window:
                    self.max_window = window
                if opened and self.rto_kind == "probe":
                    self.rto_kind = None    # tcp_ack_probe: window opened
                    self.rto_at = None
                    self.backoff = 0
            self.snd_wl1 = seq
        self.probes_out = 0
        prior_packets = len(records)
        self.ack_delivered = 0
        self.newly_lost = 0
        self.reo_armed = False
        prior_fack = self._highest_sack()
        self._sack_first_sent = None
        newly_sacked = 0
        if sack and records:
            newly_sacked, f = self._sacktag(seg.sack, now)
            flag |= f
        if self.rack_dsack_seen:
            # tcp_rack_update_reo_wnd: each D-SACK widens RACK's reordering window one step.
            self.rack_dsack_seen = False
            self.rack_reo_wnd_steps = min(self.rack_reo_wnd_steps + 1, 0xFF)
            self.rack_reo_wnd_persist = 16
        delivered = newly_sacked
        acked_pkts = 0
        if ack > prior_una:
            flag |= FLAG_SND_UNA_ADVANCED | FLAG_DATA_ACKED
            self.snd_una = ack
            self.stats_bytes_acked += ack - prior_una
            self.sendq.ack(ack)
            first_sent = None
            reord = None
            sack_ok = self.sack_ok
            while records and records[0][1] <= ack:
                rec = records.popleft()      # tcp_clean_rtx_queue
                acked_pkts += 1
                f = rec[3]
                if f & R_RETRANS:
                    self.retrans_out -= 1
                    flag |= FLAG_RETRANS_DATA_ACKED
                if f & R_LOST:
                    self.lost_out -= 1
                if not f & (R_EVER | R_RETRANS) and first_sent is None:
                    first_sent = rec[2]
                if f & R_SACKED:
                    self.sacked_out -= 1
                elif sack_ok:
                    delivered += 1
                    self._rack_advance(f, rec[1], rec[2], now)
                    if not f & R_EVER and (reord is None or rec[0] < reord):
                        reord = rec[0]
            if records and records[0][0] < ack:
                records[0][0] = ack
            if not sack_ok:
                delivered += self._remove_reno_sacks(acked_pkts)
            elif reord is not None and reord < prior_fack:
                self._check_sack_reordering(reord, prior_fack)
            rtt = -1
            if first_sent is not None and not flag & FLAG_RETRANS_DATA_ACKED:
                rtt = now - first_sent
            elif self._sack_first_sent is not None:
                rtt = now - self._sack_first_sent      # tcp_ack_update_rtt: the SACK RTT
            elif self.ts_ok and seg.ts is not None and seg.ts[1]:
                rtt = ((now // 1_000_000 - seg.ts[1]) & 0xFFFFFFFF) * 1_000_000
            if rtt >= 0:
                self._rtt_sample(rtt, now)
            self.backoff = 0
            self.retransmits = 0
            if self.retrans_out == 0:
                self.retrans_stamp = 0
            tp.packets_out = len(records)
            tp.now_us = now // 1000
            tp.snd_una = ack
            tp.snd_nxt = self.snd_nxt
            self.cc.pkts_acked(tp, acked_pkts, rtt // 1000 if rtt >= 0 else -1)
        elif self._sack_first_sent is not None:
            self._rtt_sample(now - self._sack_first_sent, now)
        if prior_packets:
            if not flag & FLAG_NOT_DUP or flag & FLAG_CA_ALERT or tp.ca_state != 0:
                # tcp_ack_is_dubious
                num_dupack = 0 if flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DSACKING_ACK) else 1
                self.dupacks += num_dupack
                before = (tp.snd_cwnd, tp.snd_ssthresh, tp.ca_state)
                flag = self._fastretrans_alert(num_dupack, flag, now)
                if self.trace is not None and before != (tp.snd_cwnd, tp.snd_ssthresh, tp.ca_state):
                    self.trace("cwnd", now, {"cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
                                             "ca_state": tp.ca_state})
            delivered += self.ack_delivered
            # tcp_cong_control
            if tp.ca_state in (CA_CWR, CA_RECOVERY):
                self._cwnd_reduction(delivered, self.newly_lost, flag)
            elif (flag & FLAG_FORWARD_PROGRESS if self.reordering > TCP_REORDERING
                  else flag & FLAG_DATA_ACKED):
                self._cong_avoid(ack, delivered)
        if ack > prior_una:
            if self.fin_sent and self.snd_una >= self.snd_nxt:
                self._our_fin_acked(now)
            if records:
                if self.rto_kind != "probe" and not self.reo_armed:
                    self._arm_rto(now)   # tcp_rearm_rto
            elif self.rto_kind in ("rto", "reo"):
                self.rto_kind = None
                self.rto_at = None
            self._check_space(now)

    def _rtt_sample(self, rtt: int, now: int) -> None:
        r = self.rtt
        r.sample(rtt)
        if rtt < self.min_rtt:
            self.min_rtt = max(rtt, 1000)
        self.tp.srtt_us = r.srtt // 1000
        if self.trace is not None:
            self.trace("rtt", now, {"sample_us": rtt // 1000, "srtt_us": r.srtt // 1000,
                                    "rto_us": r.rto // 1000})

    def _set_ca_state(self, state: int, now: int) -> None:
        tp = self.tp
        if tp.ca_state != state:
            self.cc.set_state(tp, state)
            tp.ca_state = state

    def _cong_avoid(self, ack: int, acked: int) -> None:
        tp = self.tp
        tp.packets_out = len(self.records)
        if tp.snd_cwnd < tp.snd_ssthresh:
            tp.is_cwnd_limited = tp.snd_cwnd < 2 * max(self.max_packets_out, tp.packets_out)
        self.cc.cong_avoid(tp, ack, acked)
        self.max_packets_out_valid = False

    def _check_space(self, now: int) -> None:
        """tcp_check_space / tcp_new_space / sk_stream_write_space."""
        if self.nospace:
            if not self._cwnd_full():
                self._sndbuf_expand()
            if self._writeable():
                self.nospace = False
                self.signals |= SIG_SPACE

    def _cwnd_full(self) -> bool:
        return self._in_flight() >= self.tp.snd_cwnd

    def _writeable(self) -> bool:
        """__sk_stream_is_writeable: free space >= half of what is queued (sk_stream_min_wspace)."""
        q = self.sendq.wmem_queued
        return self.sndbuf - q >= q >> 1 and q < self.sndbuf

    # ------------------------------------------------------------------ timers
    def _arm_rto(self, now: int) -> None:
        self.rto_kind = "rto"
        self.rto_at = now + min(self.rtt.rto << self.backoff, self.config.rto_max)

    def _arm_probe(self, now: int) -> None:
        self.rto_kind = "probe"
        base = max(self.rtt.rto, self.config.rto_min)
        self.rto_at = now + min(base << self.backoff, self.config.rto_max)

    def _timed_out(self, now: int, boundary: int, rto_base: int) -> bool:
        if not self.retransmits:
            return False
        limit = _model_timeout(boundary, rto_base, self.config.rto_max)
        return now - self.retrans_stamp >= limit

    def _retransmit_timer(self, now: int) -> None:
        """tcp_retransmit_timer for a synchronized connection."""
        tp = self.tp
        records = self.records
        if not records:
            self.rto_kind = None
            self.rto_at = None
            return
        if self._timed_out(now, self.config.retries2, self.config.rto_min):
            self._done_with_error(self.sk_err_soft or 110, now)  # ETIMEDOUT, tcp_write_err
            return
        # tcp_enter_loss
        if tp.ca_state <= CA_DISORDER or self.snd_una >= self.high_seq or (
                tp.ca_state == CA_LOSS and not self.retransmits):
            tp.prior_cwnd = tp.snd_cwnd
            tp.packets_out = len(records)
            tp.snd_ssthresh = self.cc.ssthresh(tp)
            self.cc.cwnd_event(tp, CA_EVENT_LOSS)
        self._timeout_mark_lost(now)
        tp.snd_cwnd = self._in_flight() + 1
        tp.snd_cwnd_cnt = 0
        if tp.ca_state <= CA_DISORDER and self.sacked_out >= TCP_REORDERING:
            self.reordering = min(self.reordering, TCP_REORDERING)
        self.high_seq = self.snd_nxt
        self._set_ca_state(CA_LOSS, now)
        if self.trace is not None:
            self.trace("cwnd", now, {"cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
                                     "ca_state": tp.ca_state})
        if not self.retrans_stamp:
            self.retrans_stamp = records[0][2]
        self.rtx_reason = "timeout"
        self.stats_rto_count += 1
        self.backoff += 1
        self.retransmits += 1
        self.rto_kind = "rto"
        self.rto_at = now + min(self.rtt.rto << self.backoff, self.config.rto_max)
        self.rtt_backed_off = True

    def _probe_timer(self, now: int, out: list) -> None:
        """tcp_probe_timer + tcp_send_probe0 + tcp_write_wakeup."""
        self.rto_kind = None
        self.rto_at = None
        if self.records or self.snd_nxt >= self.sendq.end:
            return
        mss = self._mss_now()
        room = self.snd_una + self.snd_wnd - self.snd_nxt
        if room > 0:
            # The window is open but too small for tcp_write_xmit: send what fits.
            nxt = self.snd_nxt
            end = min(nxt + min(room, mss), self.sendq.skb_end(nxt))
            fin = self.fin_queued and end == self.sendq.end
            self._emit_data(nxt, end, now, out, fin=fin)
            self.records.append([nxt, end + (1 if fin else 0), now, 0])
            self.snd_nxt = end + (1 if fin else 0)
            if fin:
                self.fin_sent = True
            self.sendq.split_at(self.snd_nxt)
            self.backoff = 0
            self.probes_out = 0
            self._arm_rto(now)
            return
        self.probes_out += 1
        if self.probes_out > self.config.retries2:
            self._done_with_error(110, now)
            return
        out.append(self._make_segment(self.snd_una - 1, ACK, now, b""))
        self.stats_zwp += 1
        if self.trace is not None:
            self.trace("zwp", now, {"seq": self.snd_una - 1, "backoff": self.backoff})
        self.backoff += 1
        self._arm_probe(now)
