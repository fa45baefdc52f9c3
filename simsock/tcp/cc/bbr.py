"""BBR v1: model the path (bottleneck bandwidth, round-trip propagation time) and pace at it.

Linux's ``net/ipv4/tcp_bbr.c`` (Cardwell et al., "BBR: Congestion-Based Congestion Control",
ACM Queue 2016; draft-cardwell-iccrg-bbr-congestion-control-00), rebuilt from its description
and from reading that file, with its constants and fixed-point units:

- **Model.** ``max_bw``: a windowed maximum of delivery-rate samples (:mod:`simsock.tcp.rate`)
  over the last 10 round trips (``bbr_bw_rtts`` = cycle length + 2), in packets per
  microsecond scaled by 2**24 (``BW_SCALE``); app-limited samples count only when they exceed
  it. ``min_rtt_us``: the smallest RTT seen in the last 10 s (``bbr_min_rtt_win_sec``).
  A *round* starts when a segment sent after the previous round began is delivered
  (``next_rtt_delivered``).
- **Control.** pacing rate = gain x bw x (1 - 1 % margin) (``bbr_set_pacing_rate``; never
  lowered before the pipe is full); cwnd = cwnd_gain x BDP + ACK-aggregation allowance,
  plus 3 bursts of ``tso_segs_goal`` and rounded to even (``bbr_quantization_budget``),
  approached by ``acked`` per ACK, never below 4 segments; packet conservation on entering
  fast recovery, the pre-loss cwnd restored when it ends.
- **States.** STARTUP (gains 2/ln2 = 2.885) until the bandwidth grew by less than 25 % for 3
  rounds (``full_bw_reached``); DRAIN (pacing gain 1/2.885) until what is in flight is
  down to one BDP; PROBE_BW cycling the pacing gain through 1.25, 0.75, 1 x6 (one phase per
  min RTT; the 1.25 phase lasts until losses or inflight reach 1.25 BDP, the 0.75 phase ends
  early once inflight is down to one BDP), starting at a random phase other than 0.75;
  PROBE_RTT when min_rtt has not been refreshed for 10 s: cwnd 4 for at least 200 ms and one
  round, then back to the previous state with the saved cwnd.
- **Long-term bandwidth** (``lt_bw``): a policer shows as sustained loss (>= 20 %) at a steady
  rate over 4+ rounds; two such intervals within 12.5 % (or 4 kbit/s) make BBR use their
  average as its bandwidth, pacing gain 1, for 48 rounds.
- ``sndbuf_expand`` is 3 (room for the larger in-flight BBR keeps while probing), and BBR
  asks for pacing (``SK_PACING_NEEDED``), which the connection does internally.

Time: Linux stamps ``min_rtt_stamp`` and the PROBE_RTT deadline in jiffies; here in
milliseconds (HZ=1000, the common configuration). The random starting phase comes from a
generator seeded by the connection (deterministic per simulation seed) instead of
``get_random_u32_below``.

Differences from Linux: ACK-delay marks (``is_ack_delayed``) are never set, and a SACK's RTT
sample is that of the oldest newly SACKed segment (see :mod:`simsock.tcp.rate`).
"""

from __future__ import annotations

import random
from typing import Any

from simsock.tcp.cc.base import (
    CA_LOSS,
    CA_OPEN,
    CA_RECOVERY,
    TCP_INFINITE_SSTHRESH,
    CongestionOps,
)
from simsock.tcp.rate import RateSample

BBR_SCALE = 8
BBR_UNIT = 1 << BBR_SCALE
BW_SCALE = 24
BW_UNIT = 1 << BW_SCALE

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = 0, 1, 2, 3
MODE_NAMES = ("STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT")

CYCLE_LEN = 8
BW_RTTS = CYCLE_LEN + 2            # bbr_bw_rtts: window of the max-bandwidth filter, in rounds
MIN_RTT_WIN_MS = 10_000            # bbr_min_rtt_win_sec
PROBE_RTT_MODE_MS = 200            # bbr_probe_rtt_mode_ms
MIN_TSO_RATE = 1_200_000           # bbr_min_tso_rate, bits/s
PACING_MARGIN_PERCENT = 1
HIGH_GAIN = BBR_UNIT * 2885 // 1000 + 1
DRAIN_GAIN = BBR_UNIT * 1000 // 2885
CWND_GAIN = BBR_UNIT * 2
PACING_GAIN = (BBR_UNIT * 5 // 4, BBR_UNIT * 3 // 4) + (BBR_UNIT,) * 6
CYCLE_RAND = 7
CWND_MIN_TARGET = 4
FULL_BW_THRESH = BBR_UNIT * 5 // 4
FULL_BW_CNT = 3
LT_INTVL_MIN_RTTS = 4
LT_LOSS_THRESH = 50                # 50/256 = 20 %
LT_BW_RATIO = BBR_UNIT // 8
LT_BW_DIFF = 4000 // 8             # bytes/s
LT_BW_MAX_RTTS = 48
EXTRA_ACKED_GAIN = BBR_UNIT
EXTRA_ACKED_WIN_RTTS = 5
ACK_EPOCH_ACKED_RESET_THRESH = 1 << 20
EXTRA_ACKED_MAX_US = 100_000
TCP_INIT_CWND = 10
GSO_BURST_MAX = 65536 - 1 - 320    # GSO_LEGACY_MAX_SIZE - 1 - MAX_TCP_HEADER
_NO_RTT = 0xFFFFFFFF


class WindowedMax:
    """lib/win_minmax.c's running maximum: the best, second and third best samples of a
    sliding window, so that the maximum over the window is kept in constant space."""

    __slots__ = ("s",)

    def __init__(self) -> None:
        self.s = [(0, 0), (0, 0), (0, 0)]     # (time, value)

    def reset(self, t: int, v: int) -> None:
        self.s = [(t, v), (t, v), (t, v)]

    def get(self) -> int:
        return self.s[0][1]

    def update(self, win: int, t: int, v: int) -> int:
        s = self.s
        if v >= s[0][1] or t - s[2][0] > win:
            self.reset(t, v)
            return v
        if v >= s[1][1]:
            s[1] = s[2] = (t, v)
        elif v >= s[2][1]:
            s[2] = (t, v)
        # subwindow bookkeeping (minmax_subwin_update)
        dt = t - s[0][0]
        if dt > win:
            s[0], s[1], s[2] = s[1], s[2], (t, v)
            if t - s[0][0] > win:
                s[0], s[1] = s[1], s[2]
        elif s[1][0] == s[0][0] and dt > win // 4:
            s[1] = s[2] = (t, v)
        elif s[2][0] == s[1][0] and dt > win // 2:
            s[2] = (t, v)
        return s[0][1]


class Bbr(CongestionOps):
    """Linux's ``bbr`` module (v1); attribute names follow ``struct bbr``."""

    name = "bbr"
    wants_rate_sample = True
    needs_pacing = True

    def __init__(self) -> None:
        self.mode = STARTUP
        self.min_rtt_us = _NO_RTT
        self.min_rtt_stamp = 0
        self.probe_rtt_done_stamp = 0
        self.bw = WindowedMax()
        self.rtt_cnt = 0
        self.next_rtt_delivered = 0
        self.cycle_mstamp = 0
        self.prev_ca_state = CA_OPEN
        self.packet_conservation = False
        self.round_start = False
        self.idle_restart = False
        self.probe_rtt_round_done = False
        self.lt_is_sampling = False
        self.lt_rtt_cnt = 0
        self.lt_use_bw = False
        self.lt_bw = 0
        self.lt_last_delivered = self.lt_last_stamp = self.lt_last_lost = 0
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN
        self.full_bw_reached = False
        self.full_bw_cnt = 0
        self.cycle_idx = 0
        self.has_seen_rtt = False
        self.prior_cwnd = 0
        self.full_bw = 0
        self.ack_epoch_mstamp = 0
        self.ack_epoch_acked = 0
        self.extra_acked_win_rtts = 0
        self.extra_acked_win_idx = 0
        self.extra_acked = [0, 0]
        self.rng = random.Random(0)
        #: (time ns, old mode, new mode) of every state change, for tests and traces.
        self.transitions: list[tuple[int, str, str]] = []

    # ------------------------------------------------------------------ hooks
    def init(self, tp: Any) -> None:
        self.rng = random.Random(getattr(tp, "rand_seed", 0))
        self.prior_cwnd = 0
        tp.snd_ssthresh = TCP_INFINITE_SSTHRESH
        self.rtt_cnt = 0
        self.next_rtt_delivered = tp.delivered
        self.prev_ca_state = CA_OPEN
        self.packet_conservation = False
        self.probe_rtt_done_stamp = 0
        self.probe_rtt_round_done = False
        self.min_rtt_us = getattr(tp, "min_rtt_us", _NO_RTT)
        self.min_rtt_stamp = tp.now_us // 1000
        self.bw.reset(self.rtt_cnt, 0)
        self.has_seen_rtt = False
        self._init_pacing_rate_from_rtt(tp)
        self.round_start = self.idle_restart = self.full_bw_reached = False
        self.full_bw = self.full_bw_cnt = 0
        self.cycle_mstamp = 0
        self.cycle_idx = 0
        self._reset_lt_bw_sampling(tp)
        self._set_mode(tp, STARTUP)
        self.ack_epoch_mstamp = tp.now_us
        self.ack_epoch_acked = 0
        self.extra_acked_win_rtts = self.extra_acked_win_idx = 0
        self.extra_acked = [0, 0]

    def ssthresh(self, tp: Any) -> int:
        self._save_cwnd(tp)
        return tp.snd_ssthresh

    def undo_cwnd(self, tp: Any) -> int:
        self.full_bw = 0
        self.full_bw_cnt = 0
        self._reset_lt_bw_sampling(tp)
        return tp.snd_cwnd

    def cong_avoid(self, tp: Any, ack: int, acked: int) -> None:   # pragma: no cover
        """Never called: :meth:`cong_control` replaces it (Linux's bbr has no cong_avoid)."""

    def set_state(self, tp: Any, new_state: int) -> None:
        if new_state == CA_LOSS:
            self.prev_ca_state = CA_LOSS
            self.full_bw = 0
            self.round_start = True     # an RTO ends the round, for lt_bw sampling
            rs = RateSample()
            rs.losses = 1
            self._lt_bw_sampling(tp, rs)

    def cwnd_event(self, tp: Any, event: int) -> None:
        if event == 0 and getattr(tp, "app_limited", 0):     # CA_EVENT_TX_START after idle
            self.idle_restart = True
            self.ack_epoch_mstamp = tp.now_us
            self.ack_epoch_acked = 0
            if self.mode == PROBE_BW:
                self._set_pacing_rate(tp, self._bw(), BBR_UNIT)
            elif self.mode == PROBE_RTT:
                self._check_probe_rtt_done(tp)

    def sndbuf_expand(self, tp: Any) -> int:
        return 3

    def min_tso_segs(self, tp: Any) -> int:
        return 1 if tp.pacing_rate < (MIN_TSO_RATE >> 3) else 2

    def cong_control(self, tp: Any, ack: int, flag: int, rs: Any) -> None:
        """bbr_main: update the model from this ACK's sample, then set pacing rate and cwnd."""
        self._update_model(tp, rs)
        bw = self._bw()
        self._set_pacing_rate(tp, bw, self.pacing_gain)
        self._set_cwnd(tp, rs, rs.acked_sacked, bw, self.cwnd_gain)

    # ------------------------------------------------------------------ helpers
    @property
    def mode_name(self) -> str:
        return MODE_NAMES[self.mode]

    def _set_mode(self, tp: Any, mode: int) -> None:
        if mode != self.mode or not self.transitions:
            self.transitions.append((getattr(tp, "clock_ns", tp.now_us * 1000),
                                     MODE_NAMES[self.mode], MODE_NAMES[mode]))
        self.mode = mode

    def _max_bw(self) -> int:
        return self.bw.get()

    def _bw(self) -> int:
        return self.lt_bw if self.lt_use_bw else self._max_bw()

    def _extra_acked(self) -> int:
        return max(self.extra_acked)

    @staticmethod
    def _rate_bytes_per_sec(tp: Any, rate: int, gain: int) -> int:
        """bbr_rate_bytes_per_sec: a bandwidth (packets/us << 24) times gain, in bytes/s,
        less the pacing margin."""
        rate *= tp.mss_cache
        rate *= gain
        rate >>= BBR_SCALE
        rate *= 1_000_000 // 100 * (100 - PACING_MARGIN_PERCENT)
        return rate >> BW_SCALE

    def _bw_to_pacing_rate(self, tp: Any, bw: int, gain: int) -> int:
        return self._rate_bytes_per_sec(tp, bw, gain)

    def _init_pacing_rate_from_rtt(self, tp: Any) -> None:
        if tp.srtt_us:
            rtt_us = max(tp.srtt_us, 1)
            self.has_seen_rtt = True
        else:
            rtt_us = 1000               # USEC_PER_MSEC: 1 ms when no RTT was measured
        bw = tp.snd_cwnd * BW_UNIT // rtt_us
        tp.pacing_rate = self._bw_to_pacing_rate(tp, bw, HIGH_GAIN)

    def _set_pacing_rate(self, tp: Any, bw: int, gain: int) -> None:
        rate = self._bw_to_pacing_rate(tp, bw, gain)
        if not self.has_seen_rtt and tp.srtt_us:
            self._init_pacing_rate_from_rtt(tp)
        if self.full_bw_reached or rate > tp.pacing_rate:
            tp.pacing_rate = rate

    def _tso_segs_goal(self, tp: Any) -> int:
        nbytes = min(tp.pacing_rate >> 10, GSO_BURST_MAX)
        segs = max(nbytes // tp.mss_cache, self.min_tso_segs(tp))
        return min(segs, 0x7F)

    def _save_cwnd(self, tp: Any) -> None:
        if self.prev_ca_state < CA_RECOVERY and self.mode != PROBE_RTT:
            self.prior_cwnd = tp.snd_cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, tp.snd_cwnd)

    def _bdp(self, bw: int, gain: int) -> int:
        if self.min_rtt_us == _NO_RTT:
            return TCP_INIT_CWND        # no RTT yet: the initial window
        w = bw * self.min_rtt_us
        return (((w * gain) >> BBR_SCALE) + BW_UNIT - 1) // BW_UNIT

    def _quantization_budget(self, tp: Any, cwnd: int) -> int:
        cwnd += 3 * self._tso_segs_goal(tp)
        cwnd = (cwnd + 1) & ~1
        if self.mode == PROBE_BW and self.cycle_idx == 0:
            cwnd += 2
        return cwnd

    def _inflight(self, tp: Any, bw: int, gain: int) -> int:
        return self._quantization_budget(tp, self._bdp(bw, gain))

    def _packets_in_net_at_edt(self, tp: Any, inflight_now: int) -> int:
        """What will still be in the network when the next paced skb leaves (EDT)."""
        now_ns = tp.clock_ns
        edt_ns = max(tp.wstamp_ns, now_ns)
        interval_us = (edt_ns - now_ns) // 1000
        interval_delivered = (self._bw() * interval_us) >> BW_SCALE
        inflight_at_edt = inflight_now
        if self.pacing_gain > BBR_UNIT:
            inflight_at_edt += self._tso_segs_goal(tp)
        if interval_delivered >= inflight_at_edt:
            return 0
        return inflight_at_edt - interval_delivered

    def _ack_aggregation_cwnd(self) -> int:
        if EXTRA_ACKED_GAIN and self.full_bw_reached:
            max_aggr_cwnd = self._bw() * EXTRA_ACKED_MAX_US // BW_UNIT
            aggr_cwnd = (EXTRA_ACKED_GAIN * self._extra_acked()) >> BBR_SCALE
            return min(aggr_cwnd, max_aggr_cwnd)
        return 0

    def _set_cwnd_to_recover_or_restore(self, tp: Any, rs: Any, acked: int) -> tuple[bool, int]:
        prev_state, state = self.prev_ca_state, tp.ca_state
        cwnd = tp.snd_cwnd
        if rs.losses > 0:
            cwnd = max(cwnd - rs.losses, 1)
        if state == CA_RECOVERY and prev_state != CA_RECOVERY:
            self.packet_conservation = True   # one round of packet conservation
            self.next_rtt_delivered = tp.delivered
            cwnd = tp.in_flight + acked
        elif prev_state >= CA_RECOVERY and state < CA_RECOVERY:
            cwnd = max(cwnd, self.prior_cwnd)  # recovery over: restore
            self.packet_conservation = False
        self.prev_ca_state = state
        if self.packet_conservation:
            return True, max(cwnd, tp.in_flight + acked)
        return False, cwnd

    def _set_cwnd(self, tp: Any, rs: Any, acked: int, bw: int, gain: int) -> None:
        cwnd = tp.snd_cwnd
        if acked:
            done, cwnd = self._set_cwnd_to_recover_or_restore(tp, rs, acked)
            if not done:
                target = self._bdp(bw, gain)
                target += self._ack_aggregation_cwnd()
                target = self._quantization_budget(tp, target)
                if self.full_bw_reached:
                    cwnd = min(cwnd + acked, target)
                elif cwnd < target or tp.delivered < TCP_INIT_CWND:
                    cwnd += acked
                cwnd = max(cwnd, CWND_MIN_TARGET)
        tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
        if self.mode == PROBE_RTT:
            tp.snd_cwnd = min(tp.snd_cwnd, CWND_MIN_TARGET)

    # ------------------------------------------------------------------ the model
    def _update_model(self, tp: Any, rs: Any) -> None:
        self._update_bw(tp, rs)
        self._update_ack_aggregation(tp, rs)
        self._update_cycle_phase(tp, rs)
        self._check_full_bw_reached(tp, rs)
        self._check_drain(tp)
        self._update_min_rtt(tp, rs)
        self._update_gains()

    def _update_bw(self, tp: Any, rs: Any) -> None:
        self.round_start = False
        if rs.delivered < 0 or rs.interval_us <= 0:
            return                       # not a valid sample
        if rs.prior_delivered >= self.next_rtt_delivered:
            self.next_rtt_delivered = tp.delivered
            self.rtt_cnt += 1
            self.round_start = True
            self.packet_conservation = False
        self._lt_bw_sampling(tp, rs)
        bw = rs.delivered * BW_UNIT // rs.interval_us
        if not rs.is_app_limited or bw >= self._max_bw():
            self.bw.update(BW_RTTS, self.rtt_cnt, bw)

    def _update_ack_aggregation(self, tp: Any, rs: Any) -> None:
        if not EXTRA_ACKED_GAIN or rs.acked_sacked <= 0 or rs.delivered < 0 or rs.interval_us <= 0:
            return
        if self.round_start:
            self.extra_acked_win_rtts = min(0x1F, self.extra_acked_win_rtts + 1)
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS:
                self.extra_acked_win_rtts = 0
                self.extra_acked_win_idx ^= 1
                self.extra_acked[self.extra_acked_win_idx] = 0
        epoch_us = tp.delivered_mstamp - self.ack_epoch_mstamp
        expected = self._bw() * epoch_us // BW_UNIT
        if (self.ack_epoch_acked <= expected
                or self.ack_epoch_acked + rs.acked_sacked >= ACK_EPOCH_ACKED_RESET_THRESH):
            self.ack_epoch_acked = 0
            self.ack_epoch_mstamp = tp.delivered_mstamp
            expected = 0
        self.ack_epoch_acked = min(0xFFFFF, self.ack_epoch_acked + rs.acked_sacked)
        extra = min(self.ack_epoch_acked - expected, tp.snd_cwnd)
        self.extra_acked[self.extra_acked_win_idx] = max(self.extra_acked[self.extra_acked_win_idx], extra)

    def _is_next_cycle_phase(self, tp: Any, rs: Any) -> bool:
        is_full_length = tp.delivered_mstamp - self.cycle_mstamp > self.min_rtt_us
        if self.pacing_gain == BBR_UNIT:
            return is_full_length
        inflight = self._packets_in_net_at_edt(tp, rs.prior_in_flight)
        bw = self._max_bw()
        if self.pacing_gain > BBR_UNIT:
            return is_full_length and (rs.losses > 0 or inflight >= self._inflight(tp, bw, self.pacing_gain))
        return is_full_length or inflight <= self._inflight(tp, bw, BBR_UNIT)

    def _advance_cycle_phase(self, tp: Any) -> None:
        self.cycle_idx = (self.cycle_idx + 1) & (CYCLE_LEN - 1)
        self.cycle_mstamp = tp.delivered_mstamp

    def _update_cycle_phase(self, tp: Any, rs: Any) -> None:
        if self.mode == PROBE_BW and self._is_next_cycle_phase(tp, rs):
            self._advance_cycle_phase(tp)

    def _reset_startup_mode(self, tp: Any) -> None:
        self._set_mode(tp, STARTUP)

    def _reset_probe_bw_mode(self, tp: Any) -> None:
        self._set_mode(tp, PROBE_BW)
        self.cycle_idx = CYCLE_LEN - 1 - self.rng.randrange(CYCLE_RAND)
        self._advance_cycle_phase(tp)     # never starts in the 0.75 phase

    def _reset_mode(self, tp: Any) -> None:
        if not self.full_bw_reached:
            self._reset_startup_mode(tp)
        else:
            self._reset_probe_bw_mode(tp)

    def _check_full_bw_reached(self, tp: Any, rs: Any) -> None:
        if self.full_bw_reached or not self.round_start or rs.is_app_limited:
            return
        if self._max_bw() >= self.full_bw * FULL_BW_THRESH >> BBR_SCALE:
            self.full_bw = self._max_bw()   # still growing by 25 % a round
            self.full_bw_cnt = 0
            return
        self.full_bw_cnt += 1
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_CNT

    def _check_drain(self, tp: Any) -> None:
        if self.mode == STARTUP and self.full_bw_reached:
            self._set_mode(tp, DRAIN)
            tp.snd_ssthresh = self._inflight(tp, self._max_bw(), BBR_UNIT)
        if self.mode == DRAIN and (self._packets_in_net_at_edt(tp, tp.in_flight)
                                   <= self._inflight(tp, self._max_bw(), BBR_UNIT)):
            self._reset_probe_bw_mode(tp)

    def _check_probe_rtt_done(self, tp: Any) -> None:
        now_ms = tp.now_us // 1000
        if not (self.probe_rtt_done_stamp and now_ms > self.probe_rtt_done_stamp):
            return
        self.min_rtt_stamp = now_ms        # wait a while before the next PROBE_RTT
        tp.snd_cwnd = max(tp.snd_cwnd, self.prior_cwnd)
        self._reset_mode(tp)

    def _update_min_rtt(self, tp: Any, rs: Any) -> None:
        now_ms = tp.now_us // 1000
        expired = now_ms > self.min_rtt_stamp + MIN_RTT_WIN_MS
        if rs.rtt_us >= 0 and (rs.rtt_us < self.min_rtt_us or (expired and not rs.is_ack_delayed)):
            self.min_rtt_us = rs.rtt_us
            self.min_rtt_stamp = now_ms
        if PROBE_RTT_MODE_MS > 0 and expired and not self.idle_restart and self.mode != PROBE_RTT:
            self._set_mode(tp, PROBE_RTT)
            self._save_cwnd(tp)
            self.probe_rtt_done_stamp = 0
        if self.mode == PROBE_RTT:
            # The samples of this flight show the drained pipe, not the path's capacity.
            tp.app_limited = (tp.delivered + tp.in_flight) or 1
            if not self.probe_rtt_done_stamp and tp.in_flight <= CWND_MIN_TARGET:
                self.probe_rtt_done_stamp = now_ms + PROBE_RTT_MODE_MS
                self.probe_rtt_round_done = False
                self.next_rtt_delivered = tp.delivered
            elif self.probe_rtt_done_stamp:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done:
                    self._check_probe_rtt_done(tp)
        if rs.delivered > 0:
            self.idle_restart = False

    def _update_gains(self) -> None:
        mode = self.mode
        if mode == STARTUP:
            self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        elif mode == DRAIN:
            self.pacing_gain = DRAIN_GAIN
            self.cwnd_gain = HIGH_GAIN
        elif mode == PROBE_BW:
            self.pacing_gain = BBR_UNIT if self.lt_use_bw else PACING_GAIN[self.cycle_idx]
            self.cwnd_gain = CWND_GAIN
        else:
            self.pacing_gain = self.cwnd_gain = BBR_UNIT

    # ------------------------------------------------------------------ lt_bw (policers)
    def _reset_lt_bw_sampling_interval(self, tp: Any) -> None:
        self.lt_last_stamp = tp.delivered_mstamp // 1000
        self.lt_last_delivered = tp.delivered
        self.lt_last_lost = tp.lost
        self.lt_rtt_cnt = 0

    def _reset_lt_bw_sampling(self, tp: Any) -> None:
        self.lt_bw = 0
        self.lt_use_bw = False
        self.lt_is_sampling = False
        self._reset_lt_bw_sampling_interval(tp)

    def _lt_bw_interval_done(self, tp: Any, bw: int) -> None:
        if self.lt_bw:
            diff = abs(bw - self.lt_bw)
            if (diff * BBR_UNIT <= LT_BW_RATIO * self.lt_bw
                    or self._rate_bytes_per_sec(tp, diff, BBR_UNIT) <= LT_BW_DIFF):
                # two consistent intervals: a policer; use their average
                self.lt_bw = (bw + self.lt_bw) >> 1
                self.lt_use_bw = True
                self.pacing_gain = BBR_UNIT
                self.lt_rtt_cnt = 0
                return
        self.lt_bw = bw
        self._reset_lt_bw_sampling_interval(tp)

    def _lt_bw_sampling(self, tp: Any, rs: Any) -> None:
        if self.lt_use_bw:
            if self.mode == PROBE_BW and self.round_start:
                self.lt_rtt_cnt += 1
                if self.lt_rtt_cnt >= LT_BW_MAX_RTTS:
                    self._reset_lt_bw_sampling(tp)   # 48 rounds: probe again
                    self._reset_probe_bw_mode(tp)
            return
        if not self.lt_is_sampling:
            if not rs.losses:
                return
            self._reset_lt_bw_sampling_interval(tp)
            self.lt_is_sampling = True
        if rs.is_app_limited:
            self._reset_lt_bw_sampling(tp)
            return
        if self.round_start:
            self.lt_rtt_cnt += 1
        if self.lt_rtt_cnt < LT_INTVL_MIN_RTTS:
            return
        if self.lt_rtt_cnt > 4 * LT_INTVL_MIN_RTTS:
            self._reset_lt_bw_sampling(tp)
            return
        if not rs.losses:
            return                       # intervals end at a loss
        lost = tp.lost - self.lt_last_lost
        delivered = tp.delivered - self.lt_last_delivered
        if not delivered or (lost << BBR_SCALE) < LT_LOSS_THRESH * delivered:
            return
        t = tp.delivered_mstamp // 1000 - self.lt_last_stamp
        if t < 1:
            return
        if t >= 0xFFFFFFFF // 1000:
            self._reset_lt_bw_sampling(tp)
            return
        bw = delivered * BW_UNIT // (t * 1000)
        self._lt_bw_interval_done(tp, bw)
