"""CUBIC: a window that grows as a cubic function of the time since the last loss.

CUBIC (RFC 9438, which obsoletes RFC 8312) forgets the round trip: after a loss at window
W_max it cuts cwnd to beta * W_max and then steers it toward

    W_cubic(t) = C * (t - K)^3 + W_max,      K = cbrt(W_max * (1 - beta) / C)

where t is the time since the window was cut, C = 0.4 and beta = 0.7. The curve is
concave up to W_max (fast recovery of the lost window, then a plateau around W_max where
the last loss happened) and convex beyond it (probing for more). Each ACK raises cwnd by
1/cnt, where cnt is chosen so that cwnd reaches W_cubic(t + RTT) one RTT from now.
Around it sit:

- *fast convergence*: a loss below the previous W_max means a new flow is taking
  bandwidth, so CUBIC remembers a W_max lower still, (1 + beta) / 2 of cwnd, to yield;
- the *Reno-friendly region* (Linux's ``tcp_friendliness``): CUBIC also tracks the window
  a Reno flow with the same loss history would have (growing by 3(1-beta)/(1+beta)
  segments per RTT) and never grows slower than it, which matters at short RTTs;
- *HyStart* (Ha and Rhee, "Taming the Elephants: New TCP Slow Start", 2008), which ends
  slow start before the first loss, at the cwnd where it sees either a train of closely
  spaced ACKs lasting half the minimum RTT (the pipe is full), or the RTT of a round
  rising above the minimum by 1/8, clamped to 4-16 ms (a queue is building).

This module follows Linux's ``net/ipv4/tcp_cubic.c`` (``bictcp_update``,
``cubictcp_cong_avoid``, ``cubictcp_recalc_ssthresh``, ``cubictcp_state``,
``cubictcp_cwnd_event``, ``cubictcp_acked``, ``hystart_update``) with the kernel's integer
arithmetic: beta = 717/1024, C = 410/1024 ~= 0.4004 (``cube_rtt_scale``: bic_scale = 41
times 10, a historical 100 ms reference RTT that cancels out),
time in jiffies at HZ = 1000 (derived from ``tp.now_us``, offset by ``INITIAL_JIFFIES``
as in a freshly booted kernel, so 32-bit wrap-around is exercised as there), the curve in
units of 1/1024 s (BICTCP_HZ), K = cbrt(cube_factor * (W_max - cwnd)) with
cube_factor = 2^40 / 410, and the same u32/u64 truncations. Tunables are Linux's module
parameters, passed to the constructor.

Differences from Linux:

- the cube root is the exact integer floor of the cube root; Linux's ``cubic_root`` uses a
  lookup table and one Newton step (about 0.2% error), so K may differ from the kernel's
  by a unit or two of 1/1024 s;
- HyStart's rounds are delimited by ``tp.snd_una`` and ``tp.snd_nxt`` when the connection
  has them (as Linux's ``end_seq``); without them a round ends after one minimum RTT;
- after idle, ``cwnd_event(CA_EVENT_TX_START)`` shifts the epoch by the time since
  ``tp.lsndtime_us`` (the last transmission, Linux's ``lsndtime``) when the connection
  provides it; otherwise by the time since the last ACK this module saw, which is never
  longer;
- HyStart's ACK-train cushion (``hystart_ack_delay``) derives ``sk_pacing_rate`` as
  ``tcp_update_pacing_rate`` does (from mss, cwnd, packets_out and srtt, or from
  ``tp.pacing_rate`` in bytes/s if present) with ``sk_gso_max_size`` = 65536; the
  threshold is halved as for an unpaced socket unless ``fq_pacing=True`` (a socket under
  the ``fq`` qdisc).
"""

from __future__ import annotations

from typing import Any

from simsock.tcp.cc.base import (
    CA_EVENT_TX_START,
    CA_LOSS,
    CongestionOps,
    tcp_cong_avoid_ai,
    tcp_in_slow_start,
    tcp_is_cwnd_limited,
    tcp_slow_start,
)

_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF

#: Jiffies per second: the common CONFIG_HZ=1000.
HZ = 1000
#: include/linux/jiffies.h: jiffies start 300 s before wrapping, to catch wrap bugs early.
INITIAL_JIFFIES = (-300 * HZ) & _U32

BICTCP_BETA_SCALE = 1024  # beta is in units of 1/1024
BICTCP_HZ = 10  # the curve's time unit is 2^-10 s

HYSTART_ACK_TRAIN = 0x1
HYSTART_DELAY = 0x2
HYSTART_MIN_SAMPLES = 8  # RTT samples per round before the delay test applies
HYSTART_DELAY_MIN = 4000  # us
HYSTART_DELAY_MAX = 16000  # us

#: sk_gso_max_size for an ordinary device (GSO_LEGACY_MAX_SIZE).
GSO_MAX_SIZE = 65536
#: net.ipv4.tcp_pacing_ss_ratio / tcp_pacing_ca_ratio defaults (percent).
PACING_SS_RATIO = 200
PACING_CA_RATIO = 120
USEC_PER_SEC = 1_000_000
USEC_PER_MSEC = 1000


def _s32(x: int) -> int:
    """The u32 ``x`` read as a signed 32-bit integer, as ``(s32)`` casts do."""
    x &= _U32
    return x - (1 << 32) if x & 0x8000_0000 else x


def _after(seq1: int, seq2: int) -> bool:
    """``after()``: is ``seq1`` later than ``seq2`` in 32-bit sequence space?"""
    return _s32(seq2 - seq1) < 0


def jiffies(now_us: int) -> int:
    """``tcp_jiffies32`` at simulated time ``now_us``."""
    return (now_us // (USEC_PER_SEC // HZ) + INITIAL_JIFFIES) & _U32


def usecs_to_jiffies(us: int) -> int:
    """``usecs_to_jiffies``: microseconds to jiffies, rounding up."""
    per = USEC_PER_SEC // HZ
    return (us + per - 1) // per


def cube_root(a: int) -> int:
    """The largest integer x with x**3 <= a (Newton's method from above, in integers)."""
    if a < 0:
        raise ValueError("cube root of a negative number")
    if a == 0:
        return 0
    x = 1 << -(-a.bit_length() // 3)  # a power of two >= cbrt(a)
    while True:
        y = (2 * x + a // (x * x)) // 3
        if y >= x:
            return x
        x = y


class Cubic(CongestionOps):
    """Linux's ``cubic`` (``tcp_cubic.c``), its default congestion control since 2.6.19.

    The attributes named as ``struct bictcp``'s fields (``cnt``, ``last_max_cwnd``,
    ``epoch_start``, ``bic_K``, ``delay_min``, ...) hold the same values in the same units.
    """

    name = "cubic"

    def __init__(
        self,
        *,
        fast_convergence: bool = True,
        beta: int = 717,
        initial_ssthresh: int = 0,
        bic_scale: int = 41,
        tcp_friendliness: bool = True,
        hystart: bool = True,
        hystart_detect: int = HYSTART_ACK_TRAIN | HYSTART_DELAY,
        hystart_low_window: int = 16,
        hystart_ack_delta_us: int = 2000,
        fq_pacing: bool = False,
    ) -> None:
        # Module parameters (defaults as in tcp_cubic.c).
        self.fast_convergence = fast_convergence
        self.beta = beta
        self.initial_ssthresh = initial_ssthresh
        self.bic_scale = bic_scale
        self.tcp_friendliness = tcp_friendliness
        self.hystart = hystart
        self.hystart_detect = hystart_detect
        self.hystart_low_window = hystart_low_window
        self.hystart_ack_delta_us = hystart_ack_delta_us
        self.fq_pacing = fq_pacing
        # Precomputed as cubictcp_register does. beta_scale: ACKed segments per segment
        # of Reno-friendly growth, times 8 (= 8 * (1 + beta) / (3 * (1 - beta))).
        self.beta_scale = 8 * (BICTCP_BETA_SCALE + beta) // 3 // (BICTCP_BETA_SCALE - beta)
        self.cube_rtt_scale = bic_scale * 10  # 1024 * C / rtt, with rtt fixed at 100 ms
        self.cube_factor = (1 << (10 + 3 * BICTCP_HZ)) // (bic_scale * 10)  # 2^40 / 410
        self._reset()
        # HyStart's per-round state (outside bictcp_reset, as in Linux).
        self.sample_cnt = 0
        self.round_start = 0
        self.end_seq: int | None = 0
        self.last_ack = 0
        self.curr_rtt = _U32
        self._last_ack_seen_us: int | None = None

    def _reset(self) -> None:
        """``bictcp_reset``: forget the curve (not HyStart's round)."""
        self.cnt = 0  # cwnd grows by one segment per cnt segments ACKed
        self.last_max_cwnd = 0  # W_max
        self.last_cwnd = 0
        self.last_time = 0  # jiffies of the last cnt computation
        self.bic_origin_point = 0  # the curve's plateau, segments
        self.bic_K = 0  # time from epoch start to the plateau, 1/1024 s
        self.delay_min = 0  # minimum RTT seen, us
        self.epoch_start = 0  # jiffies when the curve started; 0 = no epoch
        self.ack_cnt = 0  # segments ACKed since the Reno estimate last grew
        self.tcp_cwnd = 0  # the Reno-friendly window estimate
        self.found = False  # HyStart found its exit point

    def _hystart_reset(self, tp: Any) -> None:
        """``bictcp_hystart_reset``: start a new HyStart round at the next flight's end."""
        now = tp.now_us & _U32
        self.round_start = self.last_ack = now
        snd_nxt = getattr(tp, "snd_nxt", None)
        self.end_seq = None if snd_nxt is None else snd_nxt & _U32
        self.curr_rtt = _U32
        self.sample_cnt = 0

    # -- hooks ---------------------------------------------------------------------------

    def init(self, tp: Any) -> None:
        self._reset()
        if self.hystart:
            self._hystart_reset(tp)
        if not self.hystart and self.initial_ssthresh:
            tp.snd_ssthresh = self.initial_ssthresh

    def cwnd_event(self, tp: Any, event: int) -> None:
        if event != CA_EVENT_TX_START:
            return
        # An application-limited (idle) pause must not count as time on the curve, or the
        # first ACK after it would find cwnd far below a target that ran on meanwhile.
        now = jiffies(tp.now_us)
        lsndtime_us = getattr(tp, "lsndtime_us", None)
        if lsndtime_us is None:
            lsndtime_us = self._last_ack_seen_us
        if lsndtime_us is None:
            return
        delta = _s32(now - jiffies(lsndtime_us))
        if self.epoch_start and delta > 0:
            self.epoch_start = (self.epoch_start + delta) & _U32
            if _after(self.epoch_start, now):
                self.epoch_start = now

    def ssthresh(self, tp: Any) -> int:
        """``cubictcp_recalc_ssthresh``: remember W_max, ssthresh = beta * cwnd (>= 2)."""
        cwnd = tp.snd_cwnd
        self.epoch_start = 0  # end of epoch
        if cwnd < self.last_max_cwnd and self.fast_convergence:
            self.last_max_cwnd = (cwnd * (BICTCP_BETA_SCALE + self.beta)) // (2 * BICTCP_BETA_SCALE)
        else:
            self.last_max_cwnd = cwnd
        return max((cwnd * self.beta) // BICTCP_BETA_SCALE, 2)

    def set_state(self, tp: Any, new_state: int) -> None:
        # A retransmission timeout (Loss) starts over: no curve, no W_max, new HyStart.
        if new_state == CA_LOSS:
            self._reset()
            self._hystart_reset(tp)

    def cong_avoid(self, tp: Any, ack: int, acked: int) -> None:
        self._last_ack_seen_us = tp.now_us
        if not tcp_is_cwnd_limited(tp):
            return
        if tcp_in_slow_start(tp):
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        self._update(tp, tp.snd_cwnd, acked)
        tcp_cong_avoid_ai(tp, self.cnt, acked)

    def pkts_acked(self, tp: Any, acked: int, rtt_us: int) -> None:
        """``cubictcp_acked``: track the minimum RTT and run HyStart."""
        self._last_ack_seen_us = tp.now_us
        if rtt_us < 0:
            return
        # RTTs right after a reduction are inflated by the queue that caused it.
        if self.epoch_start and _s32(jiffies(tp.now_us) - self.epoch_start) < HZ:
            return
        delay = (rtt_us & _U32) or 1
        if self.delay_min == 0 or self.delay_min > delay:
            self.delay_min = delay
        if not self.found and tcp_in_slow_start(tp) and self.hystart:
            self._hystart_update(tp, delay)

    # -- the curve -----------------------------------------------------------------------

    def _update(self, tp: Any, cwnd: int, acked: int) -> None:
        """``bictcp_update``: choose ``cnt`` so cwnd reaches the curve one RTT from now."""
        now = jiffies(tp.now_us)
        self.ack_cnt = (self.ack_cnt + acked) & _U32

        if self.last_cwnd == cwnd and _s32(now - self.last_time) <= HZ // 32:
            return

        # cnt changes at most once per jiffy; a reduction (epoch_start = 0) forces it.
        if not (self.epoch_start and now == self.last_time):
            self.last_cwnd = cwnd
            self.last_time = now

            if self.epoch_start == 0:
                self.epoch_start = now
                self.ack_cnt = acked
                self.tcp_cwnd = cwnd
                if self.last_max_cwnd <= cwnd:
                    self.bic_K = 0
                    self.bic_origin_point = cwnd
                else:
                    # K = cbrt((W_max - cwnd) / C) in units of 1/1024 s.
                    self.bic_K = cube_root((self.cube_factor * (self.last_max_cwnd - cwnd)) & _U64)
                    self.bic_origin_point = self.last_max_cwnd

            # t is one minimum RTT ahead: the target is where the curve will be when the
            # segments sent now are ACKed. Units of 1/1024 s.
            t = _s32(now - self.epoch_start) & _U64
            t += usecs_to_jiffies(self.delay_min)
            t = ((t << BICTCP_HZ) & _U64) // HZ
            offs = self.bic_K - t if t < self.bic_K else t - self.bic_K
            delta = (((self.cube_rtt_scale * offs * offs * offs) & _U64) >> (10 + 3 * BICTCP_HZ)) & _U32
            if t < self.bic_K:
                bic_target = (self.bic_origin_point - delta) & _U32
            else:
                bic_target = (self.bic_origin_point + delta) & _U32

            if bic_target > cwnd:
                self.cnt = cwnd // (bic_target - cwnd)
            else:
                self.cnt = 100 * cwnd  # at or above the curve: almost no growth

            # Before any loss, W_max is unknown: grow at least 5% per RTT.
            if self.last_max_cwnd == 0 and self.cnt > 20:
                self.cnt = 20

        if self.tcp_friendliness:
            # Reno-friendly estimate: +1 segment per (cwnd * beta_scale / 8) ACKed.
            delta = (cwnd * self.beta_scale) >> 3
            if self.ack_cnt > delta:
                steps = (self.ack_cnt - 1) // delta
                self.ack_cnt -= steps * delta
                self.tcp_cwnd = (self.tcp_cwnd + steps) & _U32
            if self.tcp_cwnd > cwnd:
                max_cnt = cwnd // (self.tcp_cwnd - cwnd)
                if self.cnt > max_cnt:
                    self.cnt = max_cnt

        # At most one segment per two ACKed: 1.5x per RTT.
        self.cnt = max(self.cnt, 2)

    # -- HyStart -------------------------------------------------------------------------

    def _round_ended(self, tp: Any) -> bool:
        snd_una = getattr(tp, "snd_una", None)
        if self.end_seq is not None and snd_una is not None:
            return _after(snd_una, self.end_seq)
        return _s32((tp.now_us & _U32) - self.round_start) >= max(self.delay_min, 1)

    def _hystart_ack_delay(self, tp: Any) -> int:
        """``hystart_ack_delay``: slack for TSO/GRO batching, at most 1 ms."""
        rate = getattr(tp, "pacing_rate", None)
        if rate is None:
            # tcp_update_pacing_rate: 200% (slow start) or 120% of cwnd * mss / srtt.
            rate = tp.mss_cache * ((USEC_PER_SEC // 100) << 3)
            ratio = PACING_SS_RATIO if tp.snd_cwnd < tp.snd_ssthresh // 2 else PACING_CA_RATIO
            rate *= ratio * max(tp.snd_cwnd, tp.packets_out)
            if tp.srtt_us:
                rate //= tp.srtt_us << 3  # Linux's srtt_us is scaled by 8
        if not rate:
            return 0
        return min(USEC_PER_MSEC, GSO_MAX_SIZE * 4 * USEC_PER_SEC // rate)

    def _hystart_update(self, tp: Any, delay: int) -> None:
        if self._round_ended(tp):
            self._hystart_reset(tp)

        if tp.snd_cwnd < self.hystart_low_window:
            return

        if self.hystart_detect & HYSTART_ACK_TRAIN:
            now = tp.now_us & _U32
            # ACKs arriving close together belong to one train; a train that has lasted
            # half the minimum RTT since the round began means the pipe is full.
            if _s32(now - self.last_ack) <= self.hystart_ack_delta_us:
                self.last_ack = now
                threshold = self.delay_min + self._hystart_ack_delay(tp)
                if not self.fq_pacing:
                    threshold >>= 1
                if _s32(now - self.round_start) > threshold:
                    self.found = True
                    tp.snd_ssthresh = tp.snd_cwnd

        if self.hystart_detect & HYSTART_DELAY:
            # The round's minimum RTT, once it has enough samples, against delay_min.
            if self.curr_rtt > delay:
                self.curr_rtt = delay
            if self.sample_cnt < HYSTART_MIN_SAMPLES:
                self.sample_cnt += 1
            else:
                slack = min(max(self.delay_min >> 3, HYSTART_DELAY_MIN), HYSTART_DELAY_MAX)
                if self.curr_rtt > self.delay_min + slack:
                    self.found = True
                    tp.snd_ssthresh = tp.snd_cwnd

    def stats(self) -> dict[str, int]:
        """A snapshot of the algorithm's state, in Linux's names and units."""
        return {
            "cnt": self.cnt,
            "last_max_cwnd": self.last_max_cwnd,
            "bic_origin_point": self.bic_origin_point,
            "bic_K": self.bic_K,
            "epoch_start": self.epoch_start,
            "delay_min": self.delay_min,
            "tcp_cwnd": self.tcp_cwnd,
            "hystart_found": int(self.found),
        }
