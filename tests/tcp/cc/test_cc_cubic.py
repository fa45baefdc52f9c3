"""CUBIC's window curve, fast convergence and Reno-friendly region (RFC 9438, tcp_cubic.c).

The reference curve is RFC 9438's W_cubic(t) = C (t - K)^3 + W_max with C = 0.4,
beta = 0.7 and K = cbrt((W_max - cwnd_epoch) / C), computed in floating point; the
algorithm under test uses Linux's integer arithmetic (beta = 717/1024, C = 410/1024,
time in jiffies and 1/1024 s), so they agree within rounding.
"""

from __future__ import annotations

import pytest

from simsock.tcp.cc.base import CA_EVENT_TX_START, CA_LOSS
from simsock.tcp.cc.cubic import Cubic, cube_root, jiffies

from tests.tcp.cc.fake_tp import FakeTp, ack, ack_clock

C, BETA = 0.4, 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # RFC 9438 section 4.3, Reno-friendly growth per RTT
START_US = 10_000_000


def after_loss(cc: Cubic, w_max: int, rtt_us: int, start_us: int = START_US) -> FakeTp:
    """A connection in congestion avoidance at ``w_max`` that has just lost a segment and
    finished recovery: cwnd = ssthresh = the algorithm's answer."""
    tp = FakeTp(snd_cwnd=w_max, snd_ssthresh=w_max, now_us=start_us, srtt_us=rtt_us)
    cc.init(tp)
    cc.pkts_acked(tp, 1, rtt_us)  # one RTT sample: delay_min
    tp.snd_ssthresh = cc.ssthresh(tp)
    tp.snd_cwnd = tp.snd_ssthresh
    return tp


def w_cubic(t: float, w_max: float, cwnd_epoch: float) -> float:
    k = ((w_max - cwnd_epoch) / C) ** (1 / 3)
    return C * (t - k) ** 3 + w_max


def test_integer_cube_root_is_exact():
    """cube_root(a) is the largest x with x**3 <= a, across the range K needs."""
    for a in list(range(2000)) + [10**12, 2**40 // 410 * 30, 2**63 - 1, 2**64 - 1]:
        x = cube_root(a)
        assert x**3 <= a < (x + 1) ** 3


def test_loss_sets_ssthresh_to_beta_times_cwnd_and_remembers_w_max():
    """ssthresh = cwnd * 717 / 1024 (at least 2); W_max = cwnd without fast convergence."""
    cc = Cubic()
    assert cc.ssthresh(FakeTp(snd_cwnd=100)) == 70
    assert cc.last_max_cwnd == 100
    assert Cubic().ssthresh(FakeTp(snd_cwnd=2)) == 2


def test_k_is_computed_as_linux_does():
    """K, in 1/1024 s, is cbrt(2^40 / 410 * (W_max - cwnd)), i.e. cbrt((W_max - cwnd) / C)
    seconds with C = 0.4004."""
    cc = Cubic()
    tp = after_loss(cc, 100, 100_000)
    ack(cc, tp, tp.now_us + 1000, 1, 100_000)
    assert cc.bic_K == cube_root((1 << 40) // 410 * 30) == 4316
    assert cc.bic_K / 1024 == pytest.approx(((100 - 70) / C) ** (1 / 3), rel=1e-3)
    assert cc.bic_origin_point == 100


@pytest.mark.parametrize("rtt_us", [100_000, 300_000])
def test_cwnd_follows_the_cubic_curve(rtt_us):
    """After a loss at W_max = 100 the window traces C (t - K)^3 + W_max: concave up to
    W_max, a plateau around t = K, then convex; within 2% or 2 segments at every RTT."""
    cc = Cubic()
    tp = after_loss(cc, 100, rtt_us)
    k = ((100 - 70) / C) ** (1 / 3)
    trace = ack_clock(cc, tp, rtt_us, START_US + int(2 * k * 1e6))
    for start, cwnd in trace:
        expected = w_cubic((start - START_US) / 1e6, 100, 70)
        assert abs(cwnd - expected) <= max(2, 0.02 * expected), (start, cwnd, expected)
    assert trace[-1][1] > 120  # the convex region was reached


def test_window_reaches_w_max_at_about_k_and_lingers_there():
    """The plateau: cwnd stays within 1 segment of W_max for about 1.5 s around K."""
    cc = Cubic()
    tp = after_loss(cc, 100, 100_000)
    trace = ack_clock(cc, tp, 100_000, START_US + 8_000_000)
    near = [t - START_US for t, cwnd in trace if 99 <= cwnd <= 101]
    assert near[0] < 4.2e6 < near[-1]
    assert near[-1] - near[0] >= 1.5e6


def test_fast_convergence_lowers_w_max():
    """A loss below the previous W_max remembers (1 + beta) / 2 of cwnd as the new W_max
    (RFC 9438 section 4.7), so the flow yields to newcomers; without it, W_max = cwnd."""
    for fast, expected in ((True, 90 * 1741 // 2048), (False, 90)):
        cc = Cubic(fast_convergence=fast)
        cc.ssthresh(FakeTp(snd_cwnd=100))
        assert cc.ssthresh(FakeTp(snd_cwnd=90)) == 90 * 717 // 1024
        assert cc.last_max_cwnd == expected
    cc = Cubic()
    cc.ssthresh(FakeTp(snd_cwnd=100))
    cc.ssthresh(FakeTp(snd_cwnd=120))  # above the old W_max: no reduction
    assert cc.last_max_cwnd == 120


def test_reno_friendly_region_at_short_rtt():
    """At a 20 ms RTT the cubic curve grows slower than Reno would; CUBIC then follows
    the Reno estimate W_est = beta W_max + alpha t / RTT (RFC 9438 section 4.3)."""
    rtt = 20_000
    cc = Cubic()
    tp = after_loss(cc, 100, rtt)
    trace = ack_clock(cc, tp, rtt, START_US + 3_000_000)
    for start, cwnd in trace[10:]:
        rounds = (start - START_US) / rtt
        assert cwnd == pytest.approx(70 + ALPHA * rounds, rel=0.03)
    assert trace[-1][1] > 140 > w_cubic(3.0, 100, 70)


def test_without_friendliness_short_rtt_flows_follow_the_curve():
    rtt = 20_000
    cc = Cubic(tcp_friendliness=False)
    tp = after_loss(cc, 100, rtt)
    for start, cwnd in ack_clock(cc, tp, rtt, START_US + 3_000_000):
        expected = w_cubic((start - START_US) / 1e6, 100, 70)
        assert abs(cwnd - expected) <= max(2, 0.02 * expected)


def test_before_any_loss_growth_is_at_least_five_percent_per_rtt():
    """With no W_max yet (after an RTO reset), cnt is capped at 20: cwnd grows >= 5%/RTT
    above ssthresh even where the curve is flat."""
    cc = Cubic(tcp_friendliness=False)
    tp = FakeTp(snd_cwnd=100, snd_ssthresh=100, now_us=START_US)
    cc.init(tp)
    cc.set_state(tp, CA_LOSS)
    trace = ack_clock(cc, tp, 100_000, START_US + 1_000_000)
    for (_, a), (_, b) in zip(trace, trace[1:]):
        assert b >= a * 1.05 - 1


def test_growth_is_at_most_one_segment_per_two_acked():
    """cnt >= 2: even far below the curve cwnd grows at most 1.5x per RTT."""
    cc = Cubic()
    tp = after_loss(cc, 1000, 100_000)
    cc.last_max_cwnd = 100_000  # a W_max far above: the curve wants a huge jump
    trace = ack_clock(cc, tp, 100_000, START_US + 500_000)
    for (_, a), (_, b) in zip(trace, trace[1:]):
        assert b <= a * 3 // 2 + 1
    assert trace[1][1] == 700 * 3 // 2  # the first round ran at the cap


def test_rto_forgets_the_curve():
    """set_state(CA_LOSS) resets W_max, the epoch and delay_min, as cubictcp_state does."""
    cc = Cubic()
    tp = after_loss(cc, 100, 100_000)
    ack_clock(cc, tp, 100_000, START_US + 1_000_000)
    cc.set_state(tp, CA_LOSS)
    assert (cc.last_max_cwnd, cc.epoch_start, cc.delay_min, cc.bic_K) == (0, 0, 0, 0)


def test_idle_time_is_not_time_on_the_curve():
    """After an idle period, CA_EVENT_TX_START moves the epoch start later by the idle
    time (since the last transmission), so cwnd resumes where it left the curve."""
    cc = Cubic()
    tp = after_loss(cc, 100, 100_000)
    ack_clock(cc, tp, 100_000, START_US + 1_000_000)
    epoch = cc.epoch_start
    tp.lsndtime_us = tp.now_us - 100_000  # last data sent one RTT before the last ACK
    tp.now_us += 5_000_000
    cc.cwnd_event(tp, CA_EVENT_TX_START)
    assert cc.epoch_start == (epoch + 5_100) & 0xFFFF_FFFF


def test_idle_shift_without_lsndtime_uses_the_last_ack():
    """A connection without lsndtime_us: the shift is the time since the last ACK."""
    cc = Cubic()
    tp = after_loss(cc, 100, 100_000)
    ack_clock(cc, tp, 100_000, START_US + 1_000_000)
    epoch = cc.epoch_start
    tp.now_us += 5_000_000
    cc.cwnd_event(tp, CA_EVENT_TX_START)
    assert cc.epoch_start == (epoch + 5_000) & 0xFFFF_FFFF
    assert cc.epoch_start != 0 and cc.epoch_start != jiffies(tp.now_us)


def test_curve_is_unchanged_across_the_jiffies_wrap():
    """Jiffies start 300 s before wrapping, as in Linux; an epoch spanning the wrap
    traces the same window as one that does not."""
    def run(start_us):
        cc = Cubic()
        tp = after_loss(cc, 100, 100_000, start_us)
        return [cwnd for _, cwnd in ack_clock(cc, tp, 100_000, start_us + 6_000_000)]

    assert jiffies(297_000_000) > jiffies(301_000_000)  # the wrap is inside the second run
    assert run(START_US) == run(297_000_000)


def test_undo_is_renos():
    assert Cubic().undo_cwnd(FakeTp(snd_cwnd=7, prior_cwnd=70)) == 70
