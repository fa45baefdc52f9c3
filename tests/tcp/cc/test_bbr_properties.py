"""BBR's invariants under arbitrary delivery-rate samples, losses and timing (hypothesis),
driving :class:`simsock.tcp.cc.bbr.Bbr` directly with a stand-in connection state."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from simsock.tcp.cc.base import CA_LOSS, CA_OPEN, CA_RECOVERY
from simsock.tcp.cc.bbr import Bbr
from simsock.tcp.rate import RateSample

#: the state changes tcp_bbr.c can make
ALLOWED = {("STARTUP", "STARTUP"), ("STARTUP", "DRAIN"), ("DRAIN", "PROBE_BW"), ("PROBE_BW", "PROBE_RTT"),
           ("STARTUP", "PROBE_RTT"), ("DRAIN", "PROBE_RTT"), ("PROBE_RTT", "PROBE_BW"),
           ("PROBE_RTT", "STARTUP"), ("PROBE_BW", "PROBE_BW")}

events = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 200_000), st.integers(0, 64), st.integers(-1, 2_000_000),
              st.integers(-1, 500), st.integers(-1, 300_000), st.booleans(), st.integers(0, 5)),
    st.tuples(st.just("state"), st.sampled_from([CA_OPEN, CA_RECOVERY, CA_LOSS])),
    st.tuples(st.just("idle"), st.integers(0, 20_000_000)),
)


def _tp(cwnd: int, clamp: int):
    return SimpleNamespace(snd_cwnd=cwnd, snd_ssthresh=0x7FFFFFFF, snd_cwnd_cnt=0, snd_cwnd_clamp=clamp,
                           mss_cache=1448, srtt_us=0, now_us=1000, clock_ns=1_000_000, packets_out=0,
                           is_cwnd_limited=True, prior_cwnd=0, ca_state=CA_OPEN, delivered=0,
                           delivered_mstamp=1000, app_limited=0, lost=0, pacing_rate=0, wstamp_ns=0,
                           in_flight=0, min_rtt_us=0xFFFFFFFF, rand_seed=1)


@settings(max_examples=200, deadline=None)
@given(cwnd=st.integers(1, 3000), clamp_extra=st.integers(0, 3000), history=st.lists(events, max_size=120))
def test_bbr_invariants(cwnd, clamp_extra, history):
    """cwnd stays within [1, snd_cwnd_clamp] and at most 4 in PROBE_RTT; the pacing rate is
    never negative; every state change is one tcp_bbr.c can make."""
    ops = Bbr()
    tp = _tp(cwnd, cwnd + clamp_extra)
    ops.init(tp)
    for ev in history:
        if ev[0] == "ack":
            _, dt, acked, interval, delivered, rtt, app_limited, losses = ev
            tp.now_us += dt
            tp.clock_ns = tp.now_us * 1000
            tp.delivered += acked
            tp.lost += losses
            if acked:
                tp.delivered_mstamp = tp.now_us
            tp.in_flight = max(tp.snd_cwnd - acked, 0)
            rs = RateSample()
            rs.acked_sacked, rs.losses, rs.rtt_us = acked, losses, rtt
            rs.delivered, rs.interval_us, rs.is_app_limited = delivered, interval, app_limited
            rs.prior_delivered = max(tp.delivered - max(delivered, 0), 0)
            rs.prior_in_flight = tp.in_flight + acked
            rs.prior_mstamp = 1
            ops.cong_control(tp, 0, 0, rs)
        elif ev[0] == "state":
            ops.set_state(tp, ev[1])
            if ev[1] == CA_LOSS:
                ops.ssthresh(tp)
                tp.snd_cwnd = tp.in_flight + 1
            tp.ca_state = ev[1]
        else:
            tp.now_us += ev[1]
            tp.clock_ns = tp.now_us * 1000
            tp.app_limited = tp.delivered + tp.in_flight or 1
            ops.cwnd_event(tp, 0)
        assert 1 <= tp.snd_cwnd <= tp.snd_cwnd_clamp or tp.snd_cwnd == tp.in_flight + 1
        if ops.mode_name == "PROBE_RTT":
            assert tp.snd_cwnd <= 4 or ev[0] != "ack"
        assert tp.pacing_rate >= 0
    for _, old, new in ops.transitions:
        assert (old, new) in ALLOWED, ops.transitions
