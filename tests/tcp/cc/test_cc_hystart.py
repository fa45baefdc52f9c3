"""HyStart in CUBIC: leaving slow start before the first loss (tcp_cubic.c hystart_update).

Slow start here is driven round by round: the window is sent at once and comes back as a
train of ACKs ``gap_us`` apart, the first one ``rtt_us`` after the round began; each ACK
acknowledges one segment. Rounds are told apart by snd_una passing the snd_nxt recorded
at the round's start, as in Linux.
"""

from __future__ import annotations

from types import SimpleNamespace

from simsock.tcp.cc.base import TCP_INFINITE_SSTHRESH
from simsock.tcp.cc.cubic import HYSTART_ACK_TRAIN, HYSTART_DELAY, Cubic

from tests.tcp.cc.fake_tp import FakeTp, ack, send_window


def slow_start(cc, tp, rtts_us, gap_us):
    """Run one round per entry of ``rtts_us``; returns (round, ack index, time, cwnd) at
    the ACK where HyStart set ssthresh, or None."""
    start = tp.now_us
    for r, rtt in enumerate(rtts_us):
        tp.srtt_us = rtt
        n = tp.snd_cwnd
        send_window(tp)
        for i in range(n):
            cwnd_before = tp.snd_cwnd
            ack(cc, tp, start + rtt + i * gap_us, 1, rtt)
            if cc.found:
                return r, i, tp.now_us - (start + rtt), cwnd_before
        start = tp.now_us
    return None


def test_ack_train_lasting_half_the_min_rtt_ends_slow_start():
    """ACKs 1 ms apart (closer than hystart_ack_delta_us = 2 ms) that keep coming for more
    than delay_min / 2 (plus at most 1 ms of TSO cushion) since the round began mean the
    pipe is full: ssthresh = cwnd at that ACK."""
    cc = Cubic(hystart_detect=HYSTART_ACK_TRAIN)
    tp = FakeTp(snd_cwnd=10)
    cc.init(tp)
    exit_at = slow_start(cc, tp, [40_000] * 6, gap_us=1000)
    assert exit_at is not None
    rnd, i, since_round_start, cwnd = exit_at
    assert rnd == 2  # windows 10, 20, 40: the first train longer than 20 ms
    assert 20_000 < since_round_start <= 21_000 + 1000
    assert tp.snd_ssthresh == cwnd == 40 + i


def test_sparse_acks_are_no_train():
    """ACKs 3 ms apart never form a train; slow start goes on."""
    cc = Cubic(hystart_detect=HYSTART_ACK_TRAIN)
    tp = FakeTp(snd_cwnd=10)
    cc.init(tp)
    assert slow_start(cc, tp, [40_000] * 5, gap_us=3000) is None
    assert tp.snd_cwnd == 320 and tp.snd_ssthresh == TCP_INFINITE_SSTHRESH


def test_rising_rtt_ends_slow_start():
    """When the smallest of a round's first 8 RTT samples exceeds delay_min by more than
    delay_min / 8 (clamped to 4..16 ms), a queue is building: exit at the 9th sample."""
    cc = Cubic(hystart_detect=HYSTART_DELAY)
    tp = FakeTp(snd_cwnd=10)
    cc.init(tp)
    exit_at = slow_start(cc, tp, [40_000] * 3 + [46_000] * 3, gap_us=100)
    assert exit_at is not None
    rnd, i, _, cwnd = exit_at
    assert (rnd, i) == (3, 8)
    assert tp.snd_ssthresh == cwnd == 88
    assert cc.delay_min == 40_000


def test_rtt_rise_below_the_threshold_is_ignored():
    """40 ms -> 44.9 ms is under the 5 ms threshold: slow start continues."""
    cc = Cubic(hystart_detect=HYSTART_DELAY)
    tp = FakeTp(snd_cwnd=10)
    cc.init(tp)
    assert slow_start(cc, tp, [40_000] * 3 + [44_900] * 2, gap_us=100) is None
    assert tp.snd_cwnd == 320


def test_delay_threshold_is_clamped_to_4_ms():
    """With delay_min = 10 ms the threshold is max(10 ms / 8, 4 ms) = 4 ms."""
    for rise, exits in ((3_900, False), (4_100, True)):
        cc = Cubic(hystart_detect=HYSTART_DELAY)
        tp = FakeTp(snd_cwnd=10)
        cc.init(tp)
        assert (slow_start(cc, tp, [10_000] * 3 + [10_000 + rise] * 2, gap_us=100) is not None) is exits


def test_no_exit_below_hystart_low_window():
    """Below 16 segments HyStart does not act, however much the RTT grows."""
    cc = Cubic()
    tp = FakeTp(snd_cwnd=2)
    cc.init(tp)
    assert slow_start(cc, tp, [10_000, 100_000, 200_000], gap_us=100) is None
    assert tp.snd_cwnd == 16 and tp.snd_ssthresh == TCP_INFINITE_SSTHRESH


def test_disabled_hystart_never_exits():
    cc = Cubic(hystart=False)
    tp = FakeTp(snd_cwnd=10)
    cc.init(tp)
    assert slow_start(cc, tp, [40_000] * 3 + [80_000] * 2, gap_us=1000) is None
    assert tp.snd_cwnd == 320


def test_rounds_without_sequence_numbers_last_one_min_rtt():
    """A connection state without snd_una/snd_nxt still gets HyStart, its rounds being
    one delay_min long."""
    cc = Cubic(hystart_detect=HYSTART_DELAY)
    tp = SimpleNamespace(**{k: v for k, v in vars(FakeTp(snd_cwnd=20)).items() if k not in ("snd_una", "snd_nxt")})
    cc.init(tp)
    now = 0
    for rtt in [40_000] * 20 + [50_000] * 40:
        now += 2_000
        tp.now_us = now
        cc.pkts_acked(tp, 1, rtt)
        cc.cong_avoid(tp, 0, 1)
        if cc.found:
            break
    assert cc.found and tp.snd_ssthresh < TCP_INFINITE_SSTHRESH


def test_rtt_samples_just_after_a_reduction_are_ignored():
    """For 1 s after the epoch starts, RTT samples do not lower delay_min (they would
    measure the queue that caused the loss draining)."""
    cc = Cubic()
    tp = FakeTp(snd_cwnd=100, snd_ssthresh=50, now_us=5_000_000)
    cc.init(tp)
    cc.pkts_acked(tp, 1, 30_000)
    ack(cc, tp, 5_001_000, 1, 30_000)  # starts the epoch
    cc.pkts_acked(tp, 1, 10_000)
    assert cc.delay_min == 30_000
    tp.now_us = 6_100_000
    cc.pkts_acked(tp, 1, 10_000)
    assert cc.delay_min == 10_000
