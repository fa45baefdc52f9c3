"""Delivery-rate sampling and internal pacing: what BBR reads and what it asks for.

*Delivery rate* (Linux's ``net/ipv4/tcp_rate.c``, draft-cheng-iccrg-delivery-rate-estimation).
The connection counts ``delivered`` (segments cumulatively ACKed or SACKed, each once) and
remembers when that count last moved (``delivered_mstamp``). Each transmission stamps its
segment with the count and the time as they were then, and with ``first_tx_mstamp`` (the
send time of the segment whose delivery last moved the count). When an ACK delivers
segments, the most recently sent of them gives the sample: ``delivered - its delivered``
segments in the longer of the send interval (its send time minus its ``first_tx_mstamp``) and
the ACK interval (now minus its ``delivered_mstamp``) -- the longer, so that ACK compression
cannot inflate the rate. Intervals shorter than the minimum RTT are discarded.

*Application-limited marking* (``tcp_rate_check_app_limited``): when the sender has less than
one MSS unsent, is not cwnd-limited and has retransmitted every lost segment, the samples of
segments sent until the current flight is delivered are marked app-limited: they show what
the application offered, not what the path can carry, and BBR uses them only when they
exceed its estimate.

*Internal pacing* (``tcp_output.c``: ``tcp_pacing_check``, ``tcp_update_skb_after_send``;
used when the congestion module asks for pacing, ``SK_PACING_NEEDED``, and there is no fq
qdisc, which simsock does not model). The connection keeps ``wstamp_ns``, the earliest time
its next skb may leave; each data skb sent moves it by ``len * 1e9 / pacing_rate``, less a
credit of up to half of that for time the sender sat idle (OS jitter), and not at all for
the first 10 data segments of a connection (as sch_fq). A connection whose ``wstamp_ns`` is in
the future stops transmitting and arms its pacing timer (Linux's ``pacing_timer`` hrtimer),
which is one more deadline in ``next_deadline()``. Segments leave in bursts of
``tcp_tso_autosize`` segments: about 1 ms of the pacing rate (``sk_pacing_shift`` 10) plus, on
short paths, up to a whole GSO packet (``tcp_tso_rtt_log``), at least the module's
``min_tso_segs``.

The ACK's RTT handed to the module (``rs.rtt_us``) is Linux's ``ca_rtt_us``: the RTT of the
newest segment the ACK covers, or of the first newly SACKed one.

Differences from Linux: rate sampling and pacing run only for a connection whose module asks
for them (BBR), so the classic algorithms run exactly as before; for SACKed segments the RTT
is that of the oldest newly SACKed one (Linux: the newest, ``last_sackt``); ECN-marked
deliveries are not counted.
"""

from __future__ import annotations

#: NSEC_PER_SEC and USEC_PER_SEC, for the units conversions below.
_NS = 1_000_000_000
#: sk_pacing_shift (sk_pacing_shift_update default): TSO bursts of ~1/1024 s of the rate.
PACING_SHIFT = 10
#: net.ipv4.tcp_tso_rtt_log (default 9, Linux >= 5.18): bigger bursts below 512 us of RTT.
TSO_RTT_LOG = 9


class RateSample:
    """``struct rate_sample``: one ACK's delivery-rate sample (times in microseconds)."""

    __slots__ = (
        "acked_sacked",
        "delivered",
        "interval_us",
        "is_ack_delayed",
        "is_app_limited",
        "is_retrans",
        "last_end_seq",
        "last_sent",
        "losses",
        "prior_delivered",
        "prior_in_flight",
        "prior_mstamp",
        "rtt_us",
    )

    def __init__(self) -> None:
        self.prior_mstamp = 0
        self.prior_delivered = 0
        self.delivered = -1
        self.interval_us = -1
        self.rtt_us = -1
        self.losses = 0
        self.acked_sacked = 0
        self.prior_in_flight = 0
        self.is_app_limited = False
        self.is_retrans = False
        self.last_sent = -1          # the chosen segment's send time (ns), for ordering
        self.last_end_seq = 0
        self.is_ack_delayed = False


class RateSampler:
    """Mixin of :class:`~simsock.tcp.connection.TcpConnection`: tcp_rate.c and pacing.

    State (set up by :meth:`_rate_init`): ``rate_on``, ``pacing_on``, ``tp.delivered``,
    ``tp.delivered_mstamp``, ``tp.app_limited``, ``tp.lost``, ``first_tx_mstamp``,
    ``wstamp_ns``, ``pacing_at``, ``data_segs_out``, ``burst_left`` and the ACK's ``rs``.
    A record of a segment in flight carries a fifth element when rate sampling is on: the
    tuple ``(delivered, delivered_mstamp_us, first_tx_mstamp_us, is_app_limited)``, or None
    once SACKed (Linux zeroes ``tx.delivered_mstamp``).
    """

    def _rate_init(self) -> None:
        cc = self.cc
        self.rate_on = cc.wants_rate_sample
        self.pacing_on = cc.needs_pacing or self.config.fq_pacing
        tp = self.tp
        tp.delivered = getattr(tp, "delivered", 0)
        tp.delivered_mstamp = getattr(tp, "delivered_mstamp", 0)
        tp.app_limited = getattr(tp, "app_limited", 0)
        tp.lost = getattr(tp, "lost", 0)
        tp.pacing_rate = getattr(tp, "pacing_rate", 0)   # bytes/s; 0: not paced
        tp.wstamp_ns = getattr(tp, "wstamp_ns", 0)
        tp.clock_ns = 0
        tp.in_flight = 0
        self.first_tx_mstamp = getattr(self, "first_tx_mstamp", 0)
        self.pacing_at = None
        self.data_segs_out = getattr(self, "data_segs_out", 0)
        self.burst_left = 0
        self.rs = None

    # ------------------------------------------------------------------ sampling
    def _rate_skb_sent(self, now: int) -> tuple:
        """tcp_rate_skb_sent: the state a new or retransmitted segment carries."""
        tp = self.tp
        if not self.scoreboard.records:
            # (a stamp of 0 means "none" below, as in Linux, whose clock is never 0)
            self.first_tx_mstamp = tp.delivered_mstamp = now // 1000 or 1
        return (tp.delivered, tp.delivered_mstamp, self.first_tx_mstamp, bool(tp.app_limited))

    def _rate_stamp(self, rec: list, now: int) -> None:
        """tcp_rate_skb_sent for a retransmission of ``rec``."""
        tx = self._rate_skb_sent(now)
        if len(rec) > 4:
            rec[4] = tx
        else:
            rec.append(tx)

    def _rate_skb_delivered(self, rec: list, sacked: bool) -> None:
        """tcp_rate_skb_delivered: ``rec`` was just ACKed or SACKed."""
        tx = rec[4] if len(rec) > 4 else None
        if tx is None or not tx[1]:
            return
        rs = self.rs
        sent = rec[2]
        if not rs.prior_delivered or sent > rs.last_sent or (
                sent == rs.last_sent and rec[1] > rs.last_end_seq):
            rs.prior_delivered = tx[0]
            rs.prior_mstamp = tx[1]
            rs.is_app_limited = tx[3]
            rs.is_retrans = bool(rec[3] & 9)          # TCPCB_RETRANS: R_EVER | R_RETRANS
            rs.last_sent = sent
            rs.last_end_seq = rec[1]
            self.first_tx_mstamp = sent // 1000
            rs.interval_us = self.first_tx_mstamp - tx[2]
        if sacked:
            rec[4] = None

    def _rate_gen(self, delivered: int, lost: int, now: int) -> RateSample:
        """tcp_rate_gen: finish this ACK's sample."""
        tp = self.tp
        rs = self.rs
        if tp.app_limited and tp.delivered > tp.app_limited:
            tp.app_limited = 0
        if delivered:
            tp.delivered_mstamp = now // 1000 or 1
        rs.acked_sacked = delivered
        rs.losses = lost
        if not rs.prior_mstamp:
            rs.delivered = -1
            rs.interval_us = -1
            return rs
        rs.delivered = tp.delivered - rs.prior_delivered
        ack_us = now // 1000 - rs.prior_mstamp
        rs.interval_us = max(rs.interval_us, ack_us)
        min_rtt_us = self.min_rtt // 1000 if self.min_rtt < (1 << 62) else 0
        if rs.interval_us < min_rtt_us:
            rs.interval_us = -1
            return rs
        # the connection's delivery rate (tcpi_delivery_rate): the latest sample unless it is
        # app-limited and slower than the one kept
        if rs.interval_us > 0 and (not rs.is_app_limited or self.rate_interval_us == 0
                                   or rs.delivered * self.rate_interval_us
                                   >= self.rate_delivered * rs.interval_us):
            self.rate_delivered = rs.delivered
            self.rate_interval_us = rs.interval_us
            self.rate_app_limited = rs.is_app_limited
        return rs

    def _rate_check_app_limited(self) -> None:
        """tcp_rate_check_app_limited: a gap in what the application offers."""
        if not self.rate_on:
            return
        tp = self.tp
        in_flight = self._in_flight()
        if (self.sendq.end - self.snd_nxt < self.mss_cache and in_flight < tp.snd_cwnd
                and self.scoreboard.lost_out <= self.scoreboard.retrans_out):
            tp.app_limited = (tp.delivered + in_flight) or 1

    _cc_traced = 0
    rate_delivered = rate_interval_us = 0
    rate_app_limited = True

    # TCP_INFO (simsock/tcp/info.py) reads these when the connection keeps them, and falls
    # back to its own estimates otherwise (None).
    @property
    def pacing_rate(self) -> int | None:
        """sk_pacing_rate in bytes/s as a paced connection uses it (None: not paced)."""
        return self.tp.pacing_rate if self.pacing_on and self.tp.pacing_rate else None

    @property
    def delivery_rate(self) -> int | None:
        """tcp_compute_delivery_rate: bytes/s of the kept sample (rate sampling only)."""
        if not self.rate_on or not self.rate_interval_us:
            return None
        return self.rate_delivered * self.mss_cache * 1_000_000 // self.rate_interval_us

    @property
    def delivered(self) -> int | None:
        """tp->delivered, counting the handshake's SYN/SYN-ACK as Linux does (rate sampling only)."""
        return self.tp.delivered + 1 if self.rate_on else None

    def _trace_cc_state(self, now: int) -> None:
        """A ``tcp_cc_state`` trace event for each state change of the module (BBR's
        ``transitions``), with the cwnd and pacing rate it left."""
        changes = getattr(self.cc, "transitions", None)
        if not changes or len(changes) == self._cc_traced:
            return
        tp = self.tp
        for t, old, new in changes[self._cc_traced:]:
            self.trace("cc_state", now, {"cc": self.cc.name, "old": old, "new": new,
                                         "cwnd": tp.snd_cwnd, "pacing_rate": tp.pacing_rate})
        self._cc_traced = len(changes)

    # ------------------------------------------------------------------ pacing
    def _update_pacing_rate(self) -> None:
        """tcp_update_pacing_rate, for modules that do not set the rate themselves: 200 %
        (tcp_pacing_ss_ratio) of cwnd x mss / srtt while cwnd < ssthresh / 2, else 120 %
        (tcp_pacing_ca_ratio), with max(cwnd, packets_out)."""
        tp = self.tp
        srtt_us = self.rtt.srtt // 1000
        cfg = self.config
        ratio = cfg.pacing_ss_ratio if tp.snd_cwnd < tp.snd_ssthresh // 2 else cfg.pacing_ca_ratio
        rate = self.mss_cache * 10_000 * ratio * max(tp.snd_cwnd, len(self.scoreboard.records))
        tp.pacing_rate = rate // srtt_us if srtt_us else 0

    def _pacing_blocked(self, now: int) -> bool:
        """tcp_pacing_check: may the next skb leave now? If not, arm the pacing timer."""
        if self.burst_left > 0:
            return False
        w = self.tp.wstamp_ns
        if w > now:
            self.pacing_at = w
            return True
        # tcp_tso_autosize: ~1 ms of the pacing rate per burst, plus gso_max_size >> (min_rtt_us
        # >> tcp_tso_rtt_log) (whole GSO packets when the RTT is short), at least min_tso_segs.
        nbytes = self.tp.pacing_rate >> PACING_SHIFT
        gso = self.config.gso_max_size
        if self.min_rtt < (1 << 62):
            r = (self.min_rtt // 1000) >> TSO_RTT_LOG
            if r < 32:
                nbytes += gso >> r
        segs = min(nbytes, gso) // self.mss_cache
        self.burst_left = max(segs, self.cc.min_tso_segs(self.tp))
        return False

    def _paced_sent(self, nbytes: int, now: int) -> None:
        """tcp_update_skb_after_send for a data segment of ``nbytes`` just sent."""
        tp = self.tp
        prior = tp.wstamp_ns
        if now > prior:
            tp.wstamp_ns = now
        self.burst_left -= 1
        self.data_segs_out += 1
        rate = tp.pacing_rate
        if rate and self.data_segs_out >= 10:
            len_ns = nbytes * _NS // rate
            credit = tp.wstamp_ns - prior
            len_ns -= min(len_ns >> 1, credit)
            tp.wstamp_ns += len_ns
