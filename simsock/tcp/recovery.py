"""Loss detection and recovery: the SACK scoreboard, RACK or RFC 6675 marking, NewReno, PRR.

A mixin of :class:`simsock.tcp.connection.TcpConnection` whose state is :class:`Scoreboard`
(``conn.scoreboard``), following
net/ipv4/tcp_input.c and tcp_recovery.c of Linux 6.x.

*Scoreboard.* Every segment in flight is a record ``[start, end, sent_ns, flags]`` in
sequence order (``self.scoreboard.records``); ``flags`` are Linux's ``TCP_SKB_CB(skb)->sacked`` bits:
SACKED (TCPCB_SACKED_ACKED), LOST (TCPCB_LOST), RETRANS (TCPCB_SACKED_RETRANS: a
retransmission is in flight) and EVER (TCPCB_EVER_RETRANS). ``sacked_out``, ``lost_out`` and
``retrans_out`` count them, and ``packets_in_flight = packets_out - (sacked_out + lost_out) +
retrans_out`` (tcp_packets_in_flight, RFC 6675's "pipe"). An incoming ACK's SACK blocks mark
records they cover entirely (tcp_sacktag_write_queue, with its validity checks,
tcp_is_sackblock_valid, and D-SACK detection, tcp_check_dsack: a first block below the
cumulative ACK or inside the second block reports a duplicate and marks nothing). A SACK
below the highest SACKed sequence for a never-retransmitted segment is reordering: it raises
``reordering`` (tp->reordering, from net.ipv4.tcp_reordering = 3, up to
tcp_max_reordering = 300) and sets ``reord_seen`` (tcp_check_sack_reordering).

*Loss marking* (tcp_identify_packet_loss), chosen by ``TcpConfig.recovery`` as
net.ipv4.tcp_recovery chooses it:

- RACK (RFC 8985, tcp_rack_mark_lost; ``recovery=1``, Linux's default): each (S)ACKed
  segment advances ``rack`` to the most recently *sent* delivered segment (ignoring a
  retransmission ACKed sooner than min_rtt, which may be the original's ACK). A segment sent
  before it that is still unacknowledged after ``rack_rtt + reo_wnd`` since its
  transmission is lost. ``reo_wnd`` is 0 in recovery, or once ``reordering`` segments are
  SACKed (RACK's DUPACK-threshold rule), while no reordering has been seen; otherwise
  ``min_rtt/4 * reo_wnd_steps`` capped at srtt, the steps growing with each D-SACK
  (tcp_rack_update_reo_wnd). A segment not yet due arms the reordering timer
  (ICSK_TIME_REO_TIMEOUT, remaining time + TCP_TIMEOUT_MIN) in place of the RTO timer.
  Lost retransmissions are found the same way, without waiting for the RTO.
- RFC 6675 (``recovery=0``, tcp_update_scoreboard / tcp_mark_head_lost): recovery starts
  when ``sacked_out + 1 > reordering`` (tcp_dupack_heuristics); a hole is lost once more
  than ``reordering`` - 1 ... i.e. ``reordering`` SACKed segments lie above it (IsLost).
- without SACK, NewReno (tcp_newreno_mark_lost): duplicate ACKs count as SACKed segments
  (tcp_add_reno_sack); ``reordering`` of them mark the head lost, and in recovery every
  partial ACK marks the new head lost (RFC 6582).

*Recovery* (tcp_fastretrans_alert). Loss evidence in Open/Disorder enters Recovery
(tcp_enter_recovery: ssthresh from the congestion module, ``high_seq = snd_nxt``); until
snd_una reaches high_seq, cwnd follows PRR (RFC 6937, tcp_cwnd_reduction, with Linux 6.x's
slow-start reduction bound: ``sndcnt = max(prr_delivered - prr_out, newly delivered) + 1``
when snd_una advanced without new losses) and the sender retransmits records marked lost,
in sequence order, before new data (tcp_xmit_retransmit_queue, then tcp_write_xmit). At the
end cwnd = ssthresh (tcp_end_cwnd_reduction). An RTO (tcp_enter_loss) marks every unSACKed
record lost except, with RACK, ones sent too recently to be overdue (tcp_timeout_mark_lost);
a SACKed head at RTO time means the receiver reneged, and all SACK marks are dropped.

*Tail loss probes* (RFC 8985 section 7, timers.py: tcp_schedule_loss_probe,
tcp_send_loss_probe, tcp_process_tlp_ack; net.ipv4.tcp_early_retrans=3): in Open/CWR with
SACK, the timer after new data or an ACK is a probe timeout of 2*srtt (+2 ms, or +200 ms with
one segment in flight), capped at the RTO; it sends one new segment if the window allows, else
retransmits the last one, once per episode; an ACK beyond the probe without a D-SACK for it
reduces cwnd once (CWR).

Not modelled: undo of spurious reductions (DSACK/timestamp undo, F-RTO), ECN, pacing, RACK's min_rtt window (min_rtt here is the
minimum over the connection's life, Linux's over tcp_min_rtt_wlen = 300 s).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

from simsock.tcp.cc.base import (CA_CWR, CA_DISORDER, CA_EVENT_COMPLETE_CWR, CA_LOSS, CA_OPEN,
                                CA_RECOVERY)
from simsock.tcp.segment import unwrap

# TCP_SKB_CB(skb)->sacked bits.
R_EVER = 1       # TCPCB_EVER_RETRANS
R_SACKED = 2     # TCPCB_SACKED_ACKED
R_LOST = 4       # TCPCB_LOST
R_RETRANS = 8    # TCPCB_SACKED_RETRANS

# tcp_ack's flag bits (net/ipv4/tcp_input.c).
FLAG_DATA = 0x01
FLAG_WIN_UPDATE = 0x02
FLAG_DATA_ACKED = 0x04
FLAG_RETRANS_DATA_ACKED = 0x08
FLAG_DATA_SACKED = 0x20
FLAG_LOST_RETRANS = 0x80
FLAG_SND_UNA_ADVANCED = 0x400
FLAG_DSACKING_ACK = 0x800
FLAG_DSACK_TLP = 0x20000    # the D-SACK is for the loss probe's retransmission
FLAG_NOT_DUP = FLAG_DATA | FLAG_WIN_UPDATE | FLAG_DATA_ACKED
FLAG_CA_ALERT = FLAG_DATA_SACKED | FLAG_DSACKING_ACK
FLAG_FORWARD_PROGRESS = FLAG_DATA_ACKED | FLAG_DATA_SACKED

TCP_REORDERING = 3          # net.ipv4.tcp_reordering
TCP_MAX_REORDERING = 300    # net.ipv4.tcp_max_reordering
TCP_RACK_RECOVERY_THRESH = 16


def _start_key(rec: list) -> int:
    return rec[0]


class Scoreboard:
    """The sender's record of what is in flight (tcp_sock's packets_out/sacked_out/lost_out/
    retrans_out with the rtx queue's TCP_SKB_CB marks), RACK's state (struct tcp_rack), PRR's
    counters and the recovery and loss-probe episode marks (high_seq, tlp_high_seq).

    The send side appends a record per transmission and the ACK path removes what is
    cumulatively acknowledged; everything else here is read and written by the loss
    detection and recovery code of this module."""

    __slots__ = ("records", "lost_out", "retrans_out", "sacked_out", "dupacks", "fack",
                 "reordering", "reord_seen", "rack_mstamp", "rack_end_seq", "rack_rtt",
                 "rack_advanced", "rack_dsack_seen", "rack_reo_wnd_steps", "rack_reo_wnd_persist",
                 "rtx_sent", "prr_delivered", "prr_out", "ack_delivered", "newly_lost",
                 "reo_armed", "sack_first_sent", "high_seq", "tlp_high_seq", "tlp_retrans")

    def __init__(self, iss: int) -> None:
        self.records: deque[list] = deque()  # in flight: [start, end, sent_ns, flags]
        self.lost_out = self.retrans_out = self.sacked_out = self.dupacks = 0
        self.fack = iss                  # end of the highest SACKed record
        self.reordering = TCP_REORDERING
        self.reord_seen = 0
        # tcp_rack: the most recently sent segment known delivered, and its RTT
        self.rack_mstamp = self.rack_end_seq = self.rack_rtt = 0
        self.rack_advanced = self.rack_dsack_seen = False
        self.rack_reo_wnd_steps = 1
        self.rack_reo_wnd_persist = 0
        self.rtx_sent: list[tuple[int, list]] = []   # (sent_ns, record) in retransmission order
        self.prr_delivered = self.prr_out = 0
        # this ACK's deliveries and losses found (tcp_ack's "delivered", rs->losses)
        self.ack_delivered = self.newly_lost = 0
        self.reo_armed = False           # this ACK armed the reordering timer
        self.sack_first_sent = None      # first transmission of the earliest newly SACKed record
        self.high_seq = iss              # snd_nxt when Recovery/Loss/CWR began
        # tail loss probe (RFC 8985 section 7, tcp_send_loss_probe): snd_nxt after the probe,
        # and whether it was a retransmission
        self.tlp_high_seq: int | None = None
        self.tlp_retrans = False


class Recovery:
    # ------------------------------------------------------------------ scoreboard
    def _in_flight(self) -> int:
        """tcp_packets_in_flight (RFC 6675 "pipe")."""
        sb = self.scoreboard
        return len(sb.records) - sb.sacked_out - sb.lost_out + sb.retrans_out

    def _highest_sack(self) -> int:
        """tcp_highest_sack_seq: end of the highest SACKed record, or snd_una."""
        return self.scoreboard.fack if self.scoreboard.fack > self.snd_una else self.snd_una

    def _sacktag(self, blocks, now: int) -> tuple[int, int]:
        """tcp_sacktag_write_queue: mark records covered by SACK blocks.

        Returns (newly SACKed segments, ack flags to add).
        """
        sb = self.scoreboard
        una = self.snd_una
        nxt = self.snd_nxt
        sblocks = [(unwrap(s, una), unwrap(e, una)) for s, e in blocks]
        flag = 0
        first = 0
        # tcp_check_dsack (RFC 2883): the first block reports a duplicate.
        s0, e0 = sblocks[0]
        if s0 < una or (len(sblocks) > 1 and sblocks[1][0] <= s0 and e0 <= sblocks[1][1]):
            if s0 < e0:
                flag |= FLAG_DSACKING_ACK
                self.stats_dsacks_received += 1
                sb.rack_dsack_seen = True
                if e0 - s0 <= self.mss_cache and e0 == sb.tlp_high_seq:
                    flag |= FLAG_DSACK_TLP      # tcp_dsack_seen
            first = 1
        records = sb.records
        newly = 0
        reord = None
        fack = self._highest_sack()
        for s, e in sorted(sblocks[first:]):
            if not (s < e <= nxt and e > una):     # tcp_is_sackblock_valid
                continue
            i = bisect_left(records, s, key=_start_key)
            n = len(records)
            while i < n:
                rec = records[i]
                if rec[1] > e:
                    break
                i += 1
                if rec[0] < s:
                    continue
                f = rec[3]
                if f & R_SACKED:
                    continue
                # tcp_sacktag_one
                if not f & R_EVER and rec[1] <= fack and (reord is None or rec[0] < reord):
                    reord = rec[0]
                if f & R_LOST:
                    sb.lost_out -= 1
                if f & R_RETRANS:
                    sb.retrans_out -= 1
                if not f & (R_EVER | R_RETRANS) and sb.sack_first_sent is None:
                    sb.sack_first_sent = rec[2]
                rec[3] = (f & ~(R_LOST | R_RETRANS)) | R_SACKED
                if self.rate_on:
                    self._rate_skb_delivered(rec, True)
                sb.sacked_out += 1
                newly += 1
                if rec[1] > sb.fack:
                    sb.fack = rec[1]
                self._rack_advance(f, rec[1], rec[2], now)
        if newly:
            flag |= FLAG_DATA_SACKED
        if reord is not None:
            self._check_sack_reordering(reord, fack)
        return newly, flag

    def _check_sack_reordering(self, low_seq: int, fack: int) -> None:
        """tcp_check_sack_reordering: data below the highest SACK arrived late."""
        sb = self.scoreboard
        if low_seq >= fack:
            return
        mss = self.mss_cache
        metric = fack - low_seq
        if mss and metric > sb.reordering * mss:
            sb.reordering = min((metric + mss - 1) // mss, TCP_MAX_REORDERING)
        sb.reord_seen += 1

    def _mark_lost(self, rec: list) -> None:
        """tcp_mark_skb_lost (a lost retransmission becomes retransmittable again)."""
        sb = self.scoreboard
        f = rec[3]
        if f & R_SACKED:
            return
        if f & R_LOST:
            if f & R_RETRANS:
                rec[3] = f & ~R_RETRANS
                sb.retrans_out -= 1
                self.stats_lost_retransmits += 1
        else:
            rec[3] = f | R_LOST
            sb.lost_out += 1
        sb.newly_lost += 1
        self.tp.lost += 1           # tp->lost (tcp_sum_lost), read by rate sampling and BBR

    # ------------------------------------------------------------------ RACK (RFC 8985)
    def _rack_advance(self, f: int, end: int, sent: int, now: int) -> None:
        """tcp_rack_advance: remember the most recently sent segment that was delivered."""
        sb = self.scoreboard
        rtt = now - sent
        if f & (R_EVER | R_RETRANS) and rtt < self.min_rtt:
            return    # maybe the original's ACK: ambiguous
        sb.rack_advanced = True
        sb.rack_rtt = rtt
        if sent > sb.rack_mstamp or (sent == sb.rack_mstamp and end > sb.rack_end_seq):
            sb.rack_mstamp = sent
            sb.rack_end_seq = end

    def _rack_reo_wnd(self) -> int:
        """tcp_rack_reo_wnd."""
        sb = self.scoreboard
        if not sb.reord_seen:
            if self.tp.ca_state >= CA_RECOVERY:
                return 0
            if sb.sacked_out >= sb.reordering:
                return 0
        min_rtt = self.min_rtt if self.min_rtt < (1 << 62) else 0
        return min((min_rtt >> 2) * sb.rack_reo_wnd_steps, self.rtt.srtt)

    def _rack_detect_loss(self, now: int) -> int:
        """tcp_rack_detect_loss: mark overdue segments lost; return the longest wait left (ns).

        Linux walks the segments in transmission order and stops at the first one sent after
        the RACK segment. Never-retransmitted records are in transmission order already;
        retransmitted ones are walked in the order of ``rtx_sent``.
        """
        sb = self.scoreboard
        reo_wnd = self._rack_reo_wnd()
        wait = 0
        mstamp, end_seq, rtt = sb.rack_mstamp, sb.rack_end_seq, sb.rack_rtt
        for rec in sb.records:
            f = rec[3]
            if f & (R_EVER | R_SACKED | R_LOST):
                continue
            sent = rec[2]
            if not (mstamp > sent or (mstamp == sent and end_seq > rec[1])):
                break
            remaining = rtt + reo_wnd - (now - sent)
            if remaining <= 0:
                self._mark_lost(rec)
            elif remaining > wait:
                wait = remaining
        if sb.rtx_sent:
            una = self.snd_una
            keep = []
            for sent, rec in sb.rtx_sent:
                f = rec[3]
                if rec[2] != sent or rec[1] <= una or f & R_SACKED or not f & R_RETRANS:
                    continue       # acked, SACKed, sent again, or already marked lost
                keep.append((sent, rec))
                if not (mstamp > sent or (mstamp == sent and end_seq > rec[1])):
                    continue
                remaining = rtt + reo_wnd - (now - sent)
                if remaining <= 0:
                    self._mark_lost(rec)
                    keep.pop()
                elif remaining > wait:
                    wait = remaining
            sb.rtx_sent = keep
        return wait

    def _rack_mark_lost(self, now: int) -> bool:
        """tcp_rack_mark_lost; True if it armed the reordering timer."""
        if not self.scoreboard.rack_advanced:
            return False
        self.scoreboard.rack_advanced = False
        wait = self._rack_detect_loss(now)
        if wait:
            self.rto_kind = "reo"
            self.rto_at = now + wait + self.config.timeout_min
            return True
        return False

    def _reo_timer(self, now: int) -> None:
        """tcp_rack_reo_timeout: the reordering window of some segment ran out."""
        sb = self.scoreboard
        prior = self._in_flight()
        sb.newly_lost = 0
        self._rack_detect_loss(now)
        if prior != self._in_flight():
            if self.tp.ca_state != CA_RECOVERY:
                self._enter_recovery(now)
                if self.cc.cong_control is None:
                    self._cwnd_reduction(1, sb.newly_lost, 0)
            self.rtx_reason = "fast"
        if sb.records and self.rto_kind is None:
            self._arm_rto(now)

    # ------------------------------------------------------------------ loss marking
    def _identify_packet_loss(self, flag: int, now: int) -> int:
        """tcp_identify_packet_loss; returns flags to add (FLAG_LOST_RETRANS)."""
        sb = self.scoreboard
        if not sb.records:
            return 0
        if not self.sack_ok:
            self._newreno_mark_lost(bool(flag & FLAG_SND_UNA_ADVANCED))
        elif self.config.recovery & 1:
            prior_retrans = sb.retrans_out
            if self._rack_mark_lost(now):
                sb.reo_armed = True
            if prior_retrans > sb.retrans_out:
                return FLAG_LOST_RETRANS
        return 0

    def _newreno_mark_lost(self, una_advanced: bool) -> None:
        """tcp_newreno_mark_lost: the head is lost after dupthresh dupacks or a partial ACK."""
        sb = self.scoreboard
        state = self.tp.ca_state
        if ((state < CA_RECOVERY and sb.sacked_out >= sb.reordering)
                or (state == CA_RECOVERY and una_advanced)):
            head = sb.records[0]
            if not head[3] & R_LOST:
                self._mark_lost(head)

    def _mark_head_lost(self, packets: int, mark_head: bool) -> None:
        """tcp_mark_head_lost (RFC 6675 IsLost): holes with more than ``packets`` SACKed below
        them stay unmarked; the others, up to snd_nxt, are lost."""
        cnt = 0
        for rec in self.scoreboard.records:
            f = rec[3]
            if f & R_SACKED:
                cnt += 1
            if cnt > packets:
                break
            if not f & R_LOST:
                self._mark_lost(rec)
            if mark_head:
                break

    def _update_scoreboard(self, fast_rexmit: bool) -> None:
        """tcp_update_scoreboard (recovery=0)."""
        upto = self.scoreboard.sacked_out - self.scoreboard.reordering
        if upto >= 0:
            self._mark_head_lost(upto, False)
        elif fast_rexmit:
            self._mark_head_lost(1, True)

    def _time_to_recover(self) -> bool:
        """tcp_time_to_recover."""
        sb = self.scoreboard
        if sb.lost_out:
            return True
        if self.sack_ok and not self.config.recovery & 1:
            return sb.sacked_out + 1 > sb.reordering   # tcp_dupack_heuristics
        return False

    # ------------------------------------------------------------------ NewReno counting
    def _add_reno_sack(self, num_dupack: int) -> int:
        """tcp_add_reno_sack: a duplicate ACK stands for one segment that left the network."""
        sb = self.scoreboard
        if not num_dupack:
            return 0
        prior = sb.sacked_out
        sb.sacked_out = min(prior + num_dupack, max(len(sb.records) - sb.lost_out, 0))
        if sb.sacked_out + sb.lost_out > len(sb.records):
            sb.sacked_out = max(len(sb.records) - sb.lost_out, 0)
        return max(sb.sacked_out - prior, 0)

    def _remove_reno_sacks(self, acked: int) -> int:
        """tcp_remove_reno_sacks: one ACK filled a hole; the rest ate duplicate ACKs."""
        sb = self.scoreboard
        if acked <= 0:
            return 0
        delivered = max(acked - sb.sacked_out, 1)
        if acked - 1 >= sb.sacked_out:
            sb.sacked_out = 0
        else:
            sb.sacked_out -= acked - 1
        return delivered

    # ------------------------------------------------------------------ state machine
    def _enter_recovery(self, now: int) -> None:
        """tcp_enter_recovery + tcp_init_cwnd_reduction."""
        sb = self.scoreboard
        tp = self.tp
        if tp.ca_state not in (CA_CWR, CA_RECOVERY):
            tp.packets_out = len(sb.records)
            sb.high_seq = self.snd_nxt
            tp.snd_cwnd_cnt = 0
            tp.prior_cwnd = tp.snd_cwnd
            sb.prr_delivered = 0
            sb.prr_out = 0
            tp.snd_ssthresh = self.cc.ssthresh(tp)
            sb.tlp_high_seq = None
        self.stats_recoveries += 1
        self.rtx_reason = "fast"
        self._set_ca_state(CA_RECOVERY, now)

    def _end_cwnd_reduction(self) -> None:
        """tcp_end_cwnd_reduction (no undo is modelled, so cwnd always becomes ssthresh)."""
        tp = self.tp
        if self.cc.cong_control is not None:
            return                  # the module (BBR) restores its own cwnd
        if tp.snd_ssthresh < 0x7FFFFFFF:
            tp.snd_cwnd = tp.snd_ssthresh
        self.cc.cwnd_event(tp, CA_EVENT_COMPLETE_CWR)

    def _cwnd_reduction(self, delivered: int, newly_lost: int, flag: int) -> None:
        """tcp_cwnd_reduction: Proportional Rate Reduction (RFC 6937, PRR-SSRB)."""
        sb = self.scoreboard
        tp = self.tp
        if delivered <= 0 or not tp.prior_cwnd:
            return
        in_flight = self._in_flight()
        delta = tp.snd_ssthresh - in_flight
        sb.prr_delivered += delivered
        if delta < 0:
            sndcnt = (tp.snd_ssthresh * sb.prr_delivered + tp.prior_cwnd - 1) // tp.prior_cwnd \
                - sb.prr_out
        else:
            sndcnt = max(sb.prr_delivered - sb.prr_out, delivered)
            if flag & FLAG_SND_UNA_ADVANCED and not newly_lost:
                sndcnt += 1
            sndcnt = min(delta, sndcnt)
        sndcnt = max(sndcnt, 0 if sb.prr_out else 1)   # the fast retransmit goes at once
        tp.snd_cwnd = in_flight + sndcnt

    def _try_to_open(self, now: int) -> None:
        """tcp_try_to_open / tcp_try_keep_open."""
        sb = self.scoreboard
        if not sb.retrans_out:
            self.retrans_stamp = 0
        tp = self.tp
        if tp.ca_state != CA_CWR:
            state = CA_DISORDER if (sb.sacked_out or sb.lost_out or sb.retrans_out) else CA_OPEN
            if tp.ca_state != state:
                self._set_ca_state(state, now)
                sb.high_seq = self.snd_nxt

    def _fastretrans_alert(self, num_dupack: int, flag: int, now: int) -> int:
        """tcp_fastretrans_alert: the ca_state machine on a dubious ACK; returns ack flags."""
        sb = self.scoreboard
        tp = self.tp
        sack = self.sack_ok
        do_lost = bool(num_dupack) or bool(flag & FLAG_DATA_SACKED and self._force_fast_retransmit())
        if not sb.records and sb.sacked_out:
            sb.sacked_out = 0
        state = tp.ca_state
        if state == CA_OPEN:
            if not sb.retrans_out:
                self.retrans_stamp = 0
        elif self.snd_una >= sb.high_seq:
            if state == CA_CWR:
                if self.snd_una != sb.high_seq:
                    self._end_cwnd_reduction()
                    self._set_ca_state(CA_OPEN, now)
            elif state == CA_RECOVERY:
                if not sack:
                    sb.sacked_out = 0                 # tcp_reset_reno_sack
                # tcp_try_undo_recovery, nothing to undo: NewReno holds Recovery until
                # something above high_seq is ACKed (RFC 6582's false fast retransmits).
                if self.snd_una == sb.high_seq and not sack:
                    if not sb.retrans_out:
                        self.retrans_stamp = 0
                    return flag
                self._set_ca_state(CA_OPEN, now)
                self._end_cwnd_reduction()
                if sb.rack_reo_wnd_persist:
                    sb.rack_reo_wnd_persist -= 1
                else:
                    sb.rack_reo_wnd_steps = 1
        state = tp.ca_state
        fast_rexmit = False
        if state == CA_RECOVERY:
            if not flag & FLAG_SND_UNA_ADVANCED and not sack:
                sb.ack_delivered += self._add_reno_sack(num_dupack)
            flag |= self._identify_packet_loss(flag, now)
        else:
            if state == CA_LOSS:
                flag = self._process_loss(flag, num_dupack, now)
                flag |= self._identify_packet_loss(flag, now)
                if not (tp.ca_state == CA_OPEN or flag & FLAG_LOST_RETRANS):
                    return flag
                # retransmissions were lost again (or Loss ended): as in Open/Disorder
            if not sack:
                if flag & FLAG_SND_UNA_ADVANCED:
                    sb.sacked_out = 0             # tcp_reset_reno_sack
                sb.ack_delivered += self._add_reno_sack(num_dupack)
            flag |= self._identify_packet_loss(flag, now)
            if not self._time_to_recover():
                self._try_to_open(now)
                return flag
            self._enter_recovery(now)
            fast_rexmit = True
        if sack and do_lost and not self.config.recovery & 1:
            self._update_scoreboard(fast_rexmit)
        return flag

    def _force_fast_retransmit(self) -> bool:
        """tcp_force_fast_retransmit: SACKs reach more than ``reordering`` segments past snd_una."""
        return self._highest_sack() > self.snd_una + self.scoreboard.reordering * self.mss_cache

    def _process_loss(self, flag: int, num_dupack: int, now: int) -> int:
        """tcp_process_loss without F-RTO and undo."""
        sb = self.scoreboard
        if self.snd_una >= sb.high_seq:
            self._set_ca_state(CA_OPEN, now)            # tcp_try_undo_recovery: nothing to undo
            return flag
        if not self.sack_ok:
            if self.snd_nxt > sb.high_seq and num_dupack:
                sb.ack_delivered += self._add_reno_sack(num_dupack)
            elif flag & FLAG_SND_UNA_ADVANCED:
                sb.sacked_out = 0
        return flag

    def _timeout_mark_lost(self, now: int) -> None:
        """tcp_timeout_mark_lost: at RTO every unSACKed record is lost (RACK spares recent ones)."""
        sb = self.scoreboard
        records = sb.records
        head = records[0]
        reneg = bool(head[3] & R_SACKED)
        if reneg:
            sb.sacked_out = 0
            sb.fack = self.snd_una
            self.stats_sack_reneging += 1
        elif not self.sack_ok:
            sb.sacked_out = 0
        rack = self.sack_ok and self.config.recovery & 1
        rtt = sb.rack_rtt
        for rec in records:
            if reneg:
                rec[3] &= ~R_SACKED
            elif rack and rec is not head and rtt - (now - rec[2]) > 0:
                continue
            self._mark_lost(rec)
