"""Invariants of every registered algorithm under arbitrary ACK, loss and timing histories.

Histories mix ACKs of 1-64 segments (with or without an RTT sample), time steps from
microseconds to minutes (crossing the 32-bit jiffies wrap), application-limited ACKs,
losses (cwnd cut to ssthresh, as recovery ends), retransmission timeouts (CA_LOSS, cwnd 1)
and idle restarts (CA_EVENT_TX_START).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simsock.tcp import cc
from simsock.tcp.cc.base import CA_EVENT_TX_START, CA_LOSS, CA_OPEN

from tests.tcp.cc.fake_tp import FakeTp, ack

#: the algorithms driven through cong_avoid (BBR's cong_control has its own tests,
#: tests/tcp/cc/test_bbr.py: it may lower cwnd on an ACK, by design)
CLASSIC = [name for name in cc.available() if cc.get(name).cong_control is None]

events = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 2_000_000), st.integers(1, 64),
              st.integers(-1, 2_000_000), st.booleans()),
    st.tuples(st.just("wait"), st.integers(0, 400_000_000)),
    st.just(("loss",)),
    st.just(("rto",)),
    st.just(("idle_restart",)),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(CLASSIC),
    cwnd=st.integers(1, 5000),
    extra_clamp=st.integers(0, 5000),
    start_us=st.integers(0, 2**40),
    history=st.lists(events, max_size=80),
)
def test_window_invariants(name, cwnd, extra_clamp, start_us, history):
    """cong_avoid never shrinks cwnd nor lifts it above snd_cwnd_clamp; ssthresh() is
    always at least 2 segments and never above cwnd."""
    ops = cc.get(name)
    tp = FakeTp(snd_cwnd=cwnd, snd_cwnd_clamp=cwnd + extra_clamp, now_us=start_us)
    ops.init(tp)
    for event in history:
        kind = event[0]
        if kind == "ack":
            _, dt, acked, rtt, limited = event
            tp.is_cwnd_limited = limited
            tp.packets_out = tp.snd_cwnd
            tp.snd_nxt = tp.snd_una + tp.snd_cwnd
            before = tp.snd_cwnd
            ack(ops, tp, tp.now_us + dt, acked, rtt)
            assert before <= tp.snd_cwnd <= tp.snd_cwnd_clamp
        elif kind == "wait":
            tp.now_us += event[1]
        elif kind == "loss":
            ssthresh = ops.ssthresh(tp)
            assert 2 <= ssthresh <= max(tp.snd_cwnd, 2)
            tp.snd_ssthresh = ssthresh
            tp.snd_cwnd = min(ssthresh, tp.snd_cwnd_clamp)
            tp.snd_cwnd_cnt = 0
        elif kind == "rto":
            ops.set_state(tp, CA_LOSS)
            ssthresh = ops.ssthresh(tp)
            assert ssthresh >= 2
            tp.snd_ssthresh = ssthresh
            tp.snd_cwnd, tp.snd_cwnd_cnt = 1, 0
            ops.set_state(tp, CA_OPEN)
        else:
            tp.packets_out = 0
            ops.cwnd_event(tp, CA_EVENT_TX_START)
        assert tp.snd_cwnd >= 1


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(CLASSIC), history=st.lists(events, max_size=40), start_us=st.integers(0, 2**36))
def test_deterministic(name, history, start_us):
    """The same history gives the same windows: no hidden clock or randomness."""
    def run():
        ops, tp = cc.get(name), FakeTp(snd_cwnd=10, now_us=start_us)
        ops.init(tp)
        out = []
        for event in history:
            if event[0] == "ack":
                _, dt, acked, rtt, _ = event
                tp.snd_nxt = tp.snd_una + tp.snd_cwnd
                ack(ops, tp, tp.now_us + dt, acked, rtt)
            elif event[0] == "loss":
                tp.snd_ssthresh = tp.snd_cwnd = ops.ssthresh(tp)
            out.append((tp.snd_cwnd, tp.snd_ssthresh, tp.snd_cwnd_cnt))
        return out

    assert run() == run()
