"""A connection's timers, as data: deadlines the kernel asks for and fires.

A mixin of :class:`simsock.tcp.connection.TcpConnection`. Sans-IO: the connection keeps
absolute deadlines in nanoseconds (``rto_at`` with its ``rto_kind``, ``delack_at``,
``tw_at``, ``ka_at``, ``pacing_at``); the kernel reads :meth:`next_deadline` and calls
:meth:`handle_timer` when it passes, as aioquic's get_timer()/handle_timer() do.

``rto_at`` is inet_connection_sock's one retransmission timer, and ``rto_kind`` says what
it is armed for, as icsk_pending does: ``rto`` (tcp_retransmit_timer: enter Loss, mark
every unSACKed segment lost, back off; give up with ETIMEDOUT after what tcp_retries2
backoffs take, tcp_model_timeout), ``probe`` (tcp_probe_timer: zero-window probes,
``snd_una - 1`` with no data), ``tlp`` (a tail loss probe, RFC 8985 section 7:
tcp_schedule_loss_probe / tcp_send_loss_probe / tcp_process_tlp_ack), ``reo`` (RACK's
reordering timeout, recovery.py), ``syn`` and ``synack`` (handshake.py). Keepalive is
sk_timer (tcp_keepalive_timer); TIME_WAIT's and FIN_WAIT2's end is ``tw_at``.
"""

from __future__ import annotations

import errno as E

from simsock.tcp.cc.base import CA_CWR, CA_DISORDER, CA_EVENT_LOSS, CA_LOSS, CA_OPEN
from simsock.tcp.recovery import (FLAG_DATA_SACKED, FLAG_DSACK_TLP, FLAG_NOT_DUP,
                                  FLAG_SND_UNA_ADVANCED, R_EVER, TCP_REORDERING)
from simsock.tcp.segment import ACK
from simsock.tcp.states import (CLOSE_TIMER, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1, FIN_WAIT2,
                                LAST_ACK, TIMEOUT)


def _model_timeout(boundary: int, rto_base: int, rto_max: int) -> int:
    """tcp_model_timeout: how long ``boundary`` exponential backoffs from rto_base last."""
    thresh = (rto_max // rto_base).bit_length() - 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max


class Timers:
    def _init_timers(self) -> None:
        """No timer armed. The retransmission, probe and SYN timers share one deadline
        (icsk_retransmit_timer), its kind in ``rto_kind``."""
        self.rto_at: int | None = None
        self.rto_kind: str | None = None
        self.tw_at: int | None = None
        self.ka_at: int | None = None    # the keepalive timer (icsk's sk_timer), see _keepalive_timer

    # ------------------------------------------------------------------ deadlines, dispatch
    def next_deadline(self) -> int | None:
        best = self.rto_at
        t = self.pacing_at
        if t is not None and (best is None or t < best):
            best = t
        t = self.rcv.delack_at
        if t is not None and (best is None or t < best):
            best = t
        t = self.tw_at
        if t is not None and (best is None or t < best):
            best = t
        t = self.ka_at
        if t is not None and (best is None or t < best):
            best = t
        return best

    # ------------------------------------------------------------------ keepalive
    # tcp_set_keepalive, tcp_keepalive_timer, keepalive_time_elapsed (tcp_timer.c). An idle
    # connection with SO_KEEPALIVE sends a probe (seq snd_una - 1, no data: the peer answers
    # with an ACK) once nothing has been received for keepalive_time, then every
    # keepalive_intvl; after keepalive_probes unanswered probes it sends RST and fails with
    # ETIMEDOUT (tcp_write_err). Data in flight or queued suspends it (the retransmission
    # timer watches the connection then). Any ACK resets the count (tcp_ack: probes_out = 0).
    # Checked on Linux 6.18 through veth with 1/1/2 s: tests/reliability/test_keepalive.py.
    _KA_STATES = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK)

    def set_keepalive(self, on: bool, now: int) -> None:
        """SO_KEEPALIVE: turning it on arms the timer keepalive_time from now; off stops it."""
        was = self.config.keepalive
        self.config.keepalive = on
        if not on:
            self.ka_at = None
        elif not was and self.state in self._KA_STATES and not self.finished:
            self.ka_at = now + self.config.keepalive_time

    def keepalive_idle_changed(self, now: int) -> None:
        """TCP_KEEPIDLE set while keepalive is on: re-arm for what is left of the new idle time."""
        if self.config.keepalive and self.state in self._KA_STATES and not self.finished:
            left = self.config.keepalive_time - (now - max(self.rcv.lrcvtime, self.rcv_tstamp))
            self.ka_at = now + max(left, 0)

    def _keepalive_timer(self, now: int) -> None:
        cfg = self.config
        if not cfg.keepalive or self.state not in self._KA_STATES or self.in_time_wait:
            return
        if self.scoreboard.records or self.snd_nxt < self.sendq.end:
            self.ka_at = now + cfg.keepalive_time     # "It is alive without keepalive 8)"
            return
        elapsed = now - max(self.rcv.lrcvtime, self.rcv_tstamp)
        if elapsed >= cfg.keepalive_time:
            if self.probes_out >= cfg.keepalive_probes:
                self._send_reset(now)
                self._done_with_error(self.sk_err_soft or E.ETIMEDOUT, TIMEOUT, now)
                return
            self._out.append(self._make_segment(self.snd_una - 1, ACK, now, b""))
            self.probes_out += 1
            if self.trace is not None:
                self.trace("keepalive_probe", now, {"seq": self.snd_una - 1, "probes": self.probes_out})
            self.ka_at = now + cfg.keepalive_intvl
        else:
            self.ka_at = now + cfg.keepalive_time - elapsed

    def handle_timer(self, now: int) -> None:
        rx = self.rcv
        if self.pacing_at is not None and self.pacing_at <= now:
            self.pacing_at = None       # tcp_pace_kick: the pump transmits what may go now
        if self.tw_at is not None and self.tw_at <= now:
            self.tw_at = None
            self._done(CLOSE_TIMER, now)
            return
        if self.ka_at is not None and self.ka_at <= now:
            self.ka_at = None
            self._keepalive_timer(now)
            if self.finished:
                return
        if rx.delack_at is not None and rx.delack_at <= now:
            rx.delack_at = None
            if rx.ack_pending:
                if rx.pingpong < 1:
                    rx.ato = min(rx.ato << 1, self.rtt.rto)
                else:
                    rx.pingpong = 0
                    rx.ato = self.config.delack_min
                rx.ack_now = True
        if self.rto_at is not None and self.rto_at <= now:
            kind = self.rto_kind
            self.rto_at = None
            self.rto_kind = None
            if kind == "syn":
                self._syn_timer(now)
            elif kind == "synack":
                self._synack_timer(now)
            elif kind == "rto":
                self._retransmit_timer(now)
            elif kind == "probe":
                self._probe_timer(now, self._out)
            elif kind == "reo":
                self._reo_timer(now)
            elif kind == "tlp":
                self._send_loss_probe(now, self._out)

    # ------------------------------------------------------------------ retransmission, probes
    def _arm_rto(self, now: int) -> None:
        self.rto_kind = "rto"
        self.rto_at = now + min(self.rtt.rto << self.backoff, self.config.rto_max)

    def _rearm_rto(self, now: int) -> None:
        """tcp_rearm_rto: the RTO from now -- or, replacing a pending loss-probe or
        reordering timer, from the head segment's last transmission (tcp_rto_delta_us)."""
        if not self.scoreboard.records:
            if self.rto_kind in ("rto", "reo", "tlp"):
                self.rto_kind = self.rto_at = None
            return
        rto = min(self.rtt.rto << self.backoff, self.config.rto_max)
        if self.rto_kind in ("reo", "tlp"):
            rto = max(self.scoreboard.records[0][2] + rto - now, 1000)
        self.rto_kind = "rto"
        self.rto_at = now + rto

    def _set_xmit_timer(self, now: int) -> None:
        """tcp_set_xmit_timer: a loss probe if one may be scheduled, else the RTO."""
        if not self._schedule_loss_probe(now, True):
            self._rearm_rto(now)

    def _schedule_loss_probe(self, now: int, advancing_rto: bool) -> bool:
        """tcp_schedule_loss_probe (RFC 8985 section 7.2): arm the probe timeout (PTO).

        Only for SACK connections in Open or CWR with data in flight, when
        net.ipv4.tcp_early_retrans is 3 or 4 (3 is the default). PTO = 2*srtt, plus
        TCP_RTO_MIN when a single segment is in flight (its ACK may be delayed) or plus
        TCP_TIMEOUT_MIN (2 ms) otherwise; 1 s before any RTT sample; never later than the
        RTO would fire (the full RTO when ``advancing_rto``, else what is left of it
        counted from the head's transmission). The probe timer takes the RTO's place.
        """
        sb = self.scoreboard
        cfg = self.config
        if (cfg.early_retrans not in (3, 4) or not sb.records or not self.sack_ok
                or self.tp.ca_state not in (CA_OPEN, CA_CWR)):
            return False
        srtt = self.rtt.srtt
        if srtt:
            timeout = 2 * srtt + (cfg.rto_min if len(sb.records) == 1 else cfg.timeout_min)
        else:
            timeout = cfg.rto_init
        rto = min(self.rtt.rto << self.backoff, cfg.rto_max)
        rto_delta = rto if advancing_rto else sb.records[0][2] + rto - now
        if rto_delta > 0:
            timeout = min(timeout, rto_delta)
        self.rto_kind = "tlp"
        self.rto_at = now + timeout
        return True

    def _send_loss_probe(self, now: int, out: list) -> None:
        """tcp_send_loss_probe: the PTO fired. Send one new segment if the window allows
        (regardless of cwnd, Nagle off), else retransmit the last segment in flight; at most
        one probe per episode (``tlp_high_seq``). Then the RTO is rearmed: from now if a
        probe went out, else from the head's transmission."""
        sb = self.scoreboard
        self.rto_kind = "tlp"               # icsk_pending stays LOSS_PROBE until a probe leaves
        if sb.tlp_high_seq is None and sb.records:
            sb.tlp_retrans = False
            sent = self._probe_new_data(now, out)
            probe = sb.records[-1]
            if not sent:
                i = len(sb.records) - 1
                tail = self._fit_to_window(probe, i)
                if tail is not False:
                    if tail is not None:
                        sb.records.insert(i + 1, tail)
                    reason, self.rtx_reason = self.rtx_reason, "tlp"
                    self._emit_data(probe[0], probe[1], now, out, retransmit=True)
                    self.rtx_reason = reason
                    if self.rate_on:
                        self._rate_stamp(probe, now)
                    probe[2] = now
                    probe[3] |= R_EVER
                    self.stats_retransmits += 1
                    sb.tlp_retrans = sent = True
            if sent:
                sb.tlp_high_seq = self.snd_nxt
                self.stats_tlp += 1
                if self.trace is not None:
                    self.trace("tlp", now, {"seq": probe[0], "len": probe[1] - probe[0],
                                            "retransmit": sb.tlp_retrans})
                self.rto_kind = None        # the RTO restarts from now
        self._rearm_rto(now)

    def _probe_new_data(self, now: int, out: list) -> bool:
        """The new-data half of a loss probe: tcp_write_xmit(push_one=2) when the next
        segment passes tcp_snd_wnd_test."""
        sq = self.sendq
        nxt = self.snd_nxt
        if nxt < sq.end:
            mss = self.mss_now()
            seg_end = min(nxt + mss, sq.skb_end(nxt))
            if seg_end > self.snd_una + self.snd_wnd:
                return False
            fin = self.fin_queued and seg_end == sq.end
        elif self.fin_queued and not self.fin_sent:
            seg_end, fin = nxt, True
        else:
            return False
        self._emit_data(nxt, seg_end, now, out, fin=fin)
        end = seg_end + (1 if fin else 0)
        rec = [nxt, end, now, 0]
        if self.rate_on:
            rec.append(self._rate_skb_sent(now))
        self.scoreboard.records.append(rec)
        if seg_end - nxt < self.mss_now():
            self.snd_sml = end
        self.snd_nxt = end
        if fin:
            self.fin_sent = True
        if self.snd_nxt < sq.end:
            sq.split_at(self.snd_nxt)
        tp = self.tp
        tp.lsndtime_us = now // 1000
        tp.snd_nxt = self.snd_nxt
        return True

    def _process_tlp_ack(self, ack: int, flag: int, now: int) -> None:
        """tcp_process_tlp_ack: an ACK during a loss-probe episode. A probe of new data,
        or a retransmission the receiver reports as a duplicate (D-SACK), or a pure
        duplicate ACK ends the episode with nothing lost; an ACK beyond the probe shows
        that the probe repaired a loss, so cwnd is reduced once (CWR, cwnd = ssthresh)."""
        sb = self.scoreboard
        high = sb.tlp_high_seq
        if ack < high:
            return
        if not sb.tlp_retrans or flag & FLAG_DSACK_TLP:
            sb.tlp_high_seq = None
        elif ack > high:
            tp = self.tp
            # tcp_init_cwnd_reduction, CWR, tcp_end_cwnd_reduction, tcp_try_keep_open
            sb.tlp_high_seq = None
            sb.high_seq = self.snd_nxt
            tp.snd_cwnd_cnt = 0
            tp.prior_cwnd = tp.snd_cwnd
            sb.prr_delivered = sb.prr_out = 0
            tp.packets_out = len(sb.records)
            tp.snd_ssthresh = self.cc.ssthresh(tp)
            self._set_ca_state(CA_CWR, now)
            self._end_cwnd_reduction()
            state = CA_DISORDER if (sb.sacked_out or sb.lost_out or sb.retrans_out
                                    or (sb.records and sb.records[0][3] & R_EVER)) else CA_OPEN
            self._set_ca_state(state, now)
            sb.high_seq = self.snd_nxt
            self.stats_tlp_recoveries += 1
            if self.trace is not None:
                self.trace("cwnd", now, {"cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
                                         "ca_state": tp.ca_state})
        elif not flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_DATA_SACKED):
            sb.tlp_high_seq = None

    def _arm_probe(self, now: int) -> None:
        self.rto_kind = "probe"
        base = max(self.rtt.rto, self.config.rto_min)
        self.rto_at = now + min(base << self.backoff, self.config.rto_max)

    def _timed_out(self, now: int, boundary: int, rto_base: int) -> bool:
        """retransmits_timed_out: TCP_USER_TIMEOUT, when set, replaces the time that
        ``boundary`` backoffs would take."""
        if not self.retransmits:
            return False
        limit = self.user_timeout or _model_timeout(boundary, rto_base, self.config.rto_max)
        return now - self.retrans_stamp >= limit

    def _rto_alive(self) -> bool:
        """tcp_write_timeout's ``alive``: the backed-off RTO is still below TCP_RTO_MAX."""
        return (self.rtt.rto << self.backoff) < self.config.rto_max

    def _orphan_retries(self) -> int:
        """tcp_orphan_retries: net.ipv4.tcp_orphan_retries, where 0 (the default) means 8
        while the connection is alive; 0 after an ICMP error once it is not."""
        alive = self._rto_alive()
        retries = self.config.orphan_retries
        if self.sk_err_soft and not alive:
            retries = 0
        if retries == 0 and alive:
            retries = 8
        return retries

    def _retry_until(self) -> int:
        """How many backoffs a retransmitting connection survives: tcp_retries2, or for an
        orphan (closed by its application: SOCK_DEAD) tcp_orphan_retries (tcp_write_timeout)."""
        return self._orphan_retries() if self.orphan else self.config.retries2

    def _clamp_rto_to_user_timeout(self, rto: int, now: int) -> int:
        """tcp_clamp_rto_to_user_timeout: the next retransmission timeout never comes later
        than the user timeout (once it has passed, the timer fires after one jiffy)."""
        if not self.user_timeout:
            return rto
        remaining = self.user_timeout - (now - self.retrans_stamp)
        if remaining <= 0:
            return 1_000_000_000 // 250          # one jiffy (CONFIG_HZ 250)
        return min(rto, remaining)

    def _retransmit_timer(self, now: int) -> None:
        """tcp_retransmit_timer for a synchronized connection."""
        sb = self.scoreboard
        tp = self.tp
        records = sb.records
        if not records:
            self.rto_kind = None
            self.rto_at = None
            return
        sb.tlp_high_seq = None
        zero_wnd = not self.snd_wnd and not self.orphan
        if zero_wnd:
            # "Receiver dastardly shrinks window": the retransmission below is a zero-window
            # probe, and the connection fails only when the peer has not answered anything
            # for 2 * TCP_RTO_MAX (tcp_rtx_probe0_timed_out), not after tcp_retries2; nor
            # does it count toward tcp_retries2 (no tcp_update_rto_stats: icsk_retransmits
            # stays, so retransmits_timed_out stays false once the window reopens).
            limit = 2 * self.config.rto_max
            if (now - self.rcv_tstamp > limit and self.retrans_stamp
                    and now - self.retrans_stamp > limit):
                self._done_with_error(self.sk_err_soft or 110, TIMEOUT, now)
                return
        elif self._timed_out(now, self._retry_until(), self.config.rto_min):
            self._done_with_error(self.sk_err_soft or 110, TIMEOUT, now)  # ETIMEDOUT, tcp_write_err
            return
        # tcp_enter_loss
        if tp.ca_state <= CA_DISORDER or self.snd_una >= sb.high_seq or (
                tp.ca_state == CA_LOSS and not self.retransmits):
            tp.prior_cwnd = tp.snd_cwnd
            tp.packets_out = len(records)
            tp.snd_ssthresh = self.cc.ssthresh(tp)
            self.cc.cwnd_event(tp, CA_EVENT_LOSS)
        self._timeout_mark_lost(now)
        tp.snd_cwnd = self._in_flight() + 1
        tp.snd_cwnd_cnt = 0
        if tp.ca_state <= CA_DISORDER and sb.sacked_out >= TCP_REORDERING:
            sb.reordering = min(sb.reordering, TCP_REORDERING)
        sb.high_seq = self.snd_nxt
        self._set_ca_state(CA_LOSS, now)
        if self.trace is not None:
            self.trace("cwnd", now, {"cwnd": tp.snd_cwnd, "ssthresh": tp.snd_ssthresh,
                                     "ca_state": tp.ca_state})
        if not self.retrans_stamp:
            # tcp_retransmit_skb: "Save stamp of the first (attempted) retransmit" (the skb's
            # timestamp after it went out again): retransmits_timed_out and TCP_USER_TIMEOUT
            # count from here (measured with packetdrill on 6.18: a 1 s user timeout ends
            # 1 s after the first retransmission)
            self.retrans_stamp = now
        self.rtx_reason = "timeout"
        if not zero_wnd:
            self.stats_rto_count += 1
            if not self.retransmits:
                self.stats_rto_recoveries += 1     # tcp_update_rto_stats: a new RTO episode
            self.retransmits += 1
        self.backoff += 1
        self.rto_kind = "rto"
        self.rto_at = now + self._clamp_rto_to_user_timeout(
            min(self.rtt.rto << self.backoff, self.config.rto_max), now)
        self.rtt_backed_off = True

    def _probe_timer(self, now: int, out: list) -> None:
        """tcp_probe_timer + tcp_send_probe0 + tcp_write_wakeup."""
        self.rto_kind = None
        self.rto_at = None
        if self.scoreboard.records or self.snd_nxt >= self.sendq.end:
            return
        mss = self.mss_now()
        room = self.snd_una + self.snd_wnd - self.snd_nxt
        if room > 0:
            # The window is open but too small for tcp_write_xmit: send what fits.
            nxt = self.snd_nxt
            end = min(nxt + min(room, mss), self.sendq.skb_end(nxt))
            fin = self.fin_queued and end == self.sendq.end
            self._emit_data(nxt, end, now, out, fin=fin, psh=True)
            rec = [nxt, end + (1 if fin else 0), now, 0]
            if self.rate_on:
                rec.append(self._rate_skb_sent(now))
            self.scoreboard.records.append(rec)
            self.snd_nxt = end + (1 if fin else 0)
            if fin:
                self.fin_sent = True
            self.sendq.split_at(self.snd_nxt)
            self.backoff = 0
            self.probes_out = 0
            self._arm_rto(now)
            return
        self.probes_out += 1
        if self.orphan:
            # tcp_probe_timer on a dead socket: tcp_orphan_retries probes at most, and none
            # more once the backed-off RTO has reached TCP_RTO_MAX
            max_probes = self._orphan_retries()
            if not self._rto_alive() and self.backoff >= max_probes:
                self._done_with_error(110, TIMEOUT, now)
                return
        else:
            max_probes = self.config.retries2
        if self.probes_out > max_probes:
            self._done_with_error(110, TIMEOUT, now)
            return
        out.append(self._make_segment(self.snd_una - 1, ACK, now, b""))
        self.stats_zwp += 1
        if self.trace is not None:
            self.trace("zwp", now, {"seq": self.snd_una - 1, "backoff": self.backoff})
        self.backoff += 1
        self._arm_probe(now)
