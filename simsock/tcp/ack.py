"""ACK processing on the sending side of a TCP connection (tcp_ack).

A mixin of :class:`simsock.tcp.connection.TcpConnection`, beside the transmission code of
sender.py. An arriving ACK goes through tcp_ack's steps in Linux's order: the window update
(tcp_ack_update_window, tcp_may_update_window), SACK tagging (tcp_sacktag_write_queue,
recovery.py), tcp_clean_rtx_queue (freeing what the ACK covers, the RTT sample of
tcp_ack_update_rtt, the congestion module's pkts_acked), tcp_fastretrans_alert on a
"dubious" ACK (recovery.py), then tcp_cong_control: the module's own cong_control (BBR, with
the rate sample of rate.py), PRR while in CWR or Recovery, the module's cong_avoid otherwise;
then the retransmission timer is re-armed or stopped and freed buffer space is checked
(tcp_check_space, sender.py).
"""

from __future__ import annotations

from simsock.tcp.cc.base import CA_CWR, CA_RECOVERY
from simsock.tcp.rate import RateSample
from simsock.tcp.recovery import (FLAG_CA_ALERT, FLAG_DATA, FLAG_DATA_ACKED, FLAG_DSACKING_ACK,
                                  FLAG_FORWARD_PROGRESS, FLAG_NOT_DUP, FLAG_RETRANS_DATA_ACKED,
                                  FLAG_SND_UNA_ADVANCED, FLAG_WIN_UPDATE, R_EVER, R_LOST, R_RETRANS,
                                  R_SACKED, TCP_REORDERING)
from simsock.tcp.segment import Segment


class AckProcessing:
    def _process_ack(self, seg: Segment, seq: int, ack: int, has_data: bool, now: int) -> None:
        """tcp_ack: the window update, SACK tagging (recovery.py), tcp_clean_rtx_queue, the
        recovery state machine and tcp_cong_control, then the timers."""
        sb = self.scoreboard
        tp = self.tp
        prior_una = self.snd_una
        records = sb.records
        flag = FLAG_DATA if has_data else 0
        sack = self.sack_ok and bool(seg.sack)
        rate_on = self.rate_on
        if rate_on:
            rs = self.rs = RateSample()
            rs.prior_in_flight = self._in_flight()
            prior_lost = tp.lost
        else:
            prior_lost = 0
        if ack < prior_una:
            # An old ACK: only its SACK information counts (tcp_ack's old_ack path).
            if sack and records:
                sb.ack_delivered = sb.newly_lost = 0
                newly, f = self._sacktag(seg.sack, now)
                flag |= f
                if rate_on:
                    tp.delivered += newly
                self._fastretrans_alert(0, flag, now)
            return
        flag |= self._ack_update_window(seg, seq, ack, prior_una)

        self.probes_out = 0
        self.rcv_tstamp = now
        prior_packets = len(records)
        sb.ack_delivered = 0
        sb.newly_lost = 0
        sb.reo_armed = False
        prior_fack = self._highest_sack()
        sb.sack_first_sent = None
        newly_sacked = 0
        if sack and records:
            newly_sacked, f = self._sacktag(seg.sack, now)
            flag |= f
        if sb.rack_dsack_seen:
            # tcp_rack_update_reo_wnd: each D-SACK widens RACK's reordering window one step.
            sb.rack_dsack_seen = False
            sb.rack_reo_wnd_steps = min(sb.rack_reo_wnd_steps + 1, 0xFF)
            sb.rack_reo_wnd_persist = 16
        delivered = newly_sacked
        if ack > prior_una:
            flag, delivered = self._clean_rtx_queue(seg, ack, prior_una, prior_fack, flag,
                                                    delivered, now)
        elif sb.sack_first_sent is not None:
            self._rtt_sample(now - sb.sack_first_sent, now)
            if rate_on:
                rs.rtt_us = (now - sb.sack_first_sent) // 1000
        if sb.tlp_high_seq is not None:
            self._process_tlp_ack(ack, flag, now)
        if prior_packets:
            self._cong_control(ack, flag, delivered, prior_lost, now)
        if ack > prior_una:
            if self.fin_sent and self.snd_una >= self.snd_nxt:
                self._our_fin_acked(now)
            if records:
                if self.rto_kind != "probe" and not sb.reo_armed:
                    self._set_xmit_timer(now)   # FLAG_SET_XMIT_TIMER
            elif self.rto_kind in ("rto", "reo", "tlp"):
                self.rto_kind = None
                self.rto_at = None
            self.check_space(now)

    def _ack_update_window(self, seg: Segment, seq: int, ack: int, prior_una: int) -> int:
        """tcp_ack_update_window: take the peer's window if tcp_may_update_window allows
        (FLAG_WIN_UPDATE returned), re-bounding the MSS when max_window grows; a window
        opening ends zero-window probing (tcp_ack_probe)."""
        window = seg.window << self.snd_wscale
        if (ack > prior_una or seq > self.snd_wl1
                or (seq == self.snd_wl1 and (window > self.snd_wnd or window == 0))):
            if window != self.snd_wnd:
                opened = window > 0 and self.snd_wnd == 0
                self.snd_wnd = window
                if window > self.max_window:
                    self.max_window = window
                    self._sync_mss()        # tcp_ack_update_window
                if opened and self.rto_kind == "probe":
                    self.rto_kind = None    # tcp_ack_probe: window opened
                    self.rto_at = None
                    self.backoff = 0
            self.snd_wl1 = seq
            return FLAG_WIN_UPDATE
        return 0

    def _clean_rtx_queue(self, seg: Segment, ack: int, prior_una: int, prior_fack: int, flag: int,
                         delivered: int, now: int) -> tuple[int, int]:
        """tcp_clean_rtx_queue for an ACK that advanced snd_una: free what it covers, take
        the RTT sample (tcp_ack_update_rtt) and tell the congestion module (pkts_acked);
        returns the ACK's flags and the segments delivered so far."""
        sb = self.scoreboard
        tp = self.tp
        records = sb.records
        rate_on = self.rate_on
        acked_pkts = 0
        flag |= FLAG_SND_UNA_ADVANCED | FLAG_DATA_ACKED
        self.snd_una = ack
        self.stats_bytes_acked += ack - prior_una
        self.sendq.ack(ack)
        first_sent = last_sent = None
        reord = None
        sack_ok = self.sack_ok
        while records and records[0][1] <= ack:
            rec = records.popleft()      # tcp_clean_rtx_queue
            acked_pkts += 1
            f = rec[3]
            if f & (R_RETRANS | R_EVER):      # TCPCB_RETRANS: a loss probe counts too
                if f & R_RETRANS:
                    sb.retrans_out -= 1
                flag |= FLAG_RETRANS_DATA_ACKED
            if f & R_LOST:
                sb.lost_out -= 1
            if not f & (R_EVER | R_RETRANS) and first_sent is None:
                first_sent = rec[2]
            if rate_on:
                self._rate_skb_delivered(rec, False)
                if not f & (R_EVER | R_RETRANS | R_SACKED):
                    last_sent = rec[2]      # last_ackt: the newest original transmission
            if f & R_SACKED:
                sb.sacked_out -= 1
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
        elif sb.sack_first_sent is not None:
            rtt = now - sb.sack_first_sent      # tcp_ack_update_rtt: the SACK RTT
        elif self.ts_ok and seg.ts is not None and seg.ts[1]:
            rtt = ((now // 1_000_000 - seg.ts[1]) & 0xFFFFFFFF) * 1_000_000
        if rtt >= 0:
            self._rtt_sample(rtt, now)
        self.backoff = 0
        self.retransmits = 0
        if sb.retrans_out == 0:
            self.retrans_stamp = 0
        tp.packets_out = len(records)
        tp.now_us = now // 1000
        tp.snd_una = ack
        tp.snd_nxt = self.snd_nxt
        self.cc.pkts_acked(tp, acked_pkts, rtt // 1000 if rtt >= 0 else -1)
        if rate_on:
            # ca_rtt_us (tcp_clean_rtx_queue): the RTT of the newest segment ACKed
            if last_sent is not None and first_sent is not None and not flag & FLAG_RETRANS_DATA_ACKED:
                self.rs.rtt_us = (now - last_sent) // 1000
            else:
                self.rs.rtt_us = rtt // 1000 if rtt >= 0 else -1
        return flag, delivered

    def _cong_control(self, ack: int, flag: int, delivered: int, prior_lost: int, now: int) -> None:
        """A dubious ACK through tcp_fastretrans_alert, then tcp_cong_control: the module's
        own cong_control (BBR, with the rate sample), PRR while reducing, or cong_avoid."""
        sb = self.scoreboard
        tp = self.tp
        records = sb.records
        rate_on = self.rate_on
        if not flag & FLAG_NOT_DUP or flag & FLAG_CA_ALERT or tp.ca_state != 0:
            # tcp_ack_is_dubious
            num_dupack = 0 if flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DSACKING_ACK) else 1
            sb.dupacks += num_dupack
            before = (tp.snd_cwnd, tp.snd_ssthresh, tp.ca_state)
            flag = self._fastretrans_alert(num_dupack, flag, now)
            if self.trace is not None and before != (tp.snd_cwnd, tp.snd_ssthresh, tp.ca_state):
                self.trace("cwnd", now, {"cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
                                         "ca_state": tp.ca_state})
        delivered += sb.ack_delivered
        # tcp_cong_control
        if self.cc.cong_control is not None:
            # tcp_rate_gen, then the module's own control (BBR) instead of PRR/cong_avoid
            if rate_on:
                tp.delivered += delivered
                self._rate_gen(delivered, tp.lost - prior_lost, now)
            tp.now_us = now // 1000
            tp.clock_ns = now
            tp.packets_out = len(records)
            tp.in_flight = self._in_flight()
            self.cc.cong_control(tp, ack, flag, self.rs)
            if self.trace is not None:
                self._trace_cc_state(now)
        elif tp.ca_state in (CA_CWR, CA_RECOVERY):
            self._cwnd_reduction(delivered, sb.newly_lost, flag)
        elif (flag & FLAG_FORWARD_PROGRESS if sb.reordering > TCP_REORDERING
              else flag & FLAG_DATA_ACKED):
            self._cong_avoid(ack, delivered)
        if self.pacing_on and self.cc.cong_control is None:
            self._update_pacing_rate()

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
        tp.packets_out = len(self.scoreboard.records)
        self.cc.cong_avoid(tp, ack, acked)

