"""Reno (and its alias newreno): RFC 5681's window rules as Linux's tcp_cong.c applies them."""

from __future__ import annotations

from simsock.tcp import cc
from simsock.tcp.cc.reno import NewReno, Reno

from tests.tcp.cc.fake_tp import FakeTp, ack, ack_clock, send_window


def test_slow_start_doubles_cwnd_each_round_trip():
    """Every ACKed segment adds one to cwnd, so a window's worth of ACKs doubles it."""
    reno, tp = Reno(), FakeTp(snd_cwnd=10)
    reno.init(tp)
    trace = ack_clock(reno, tp, rtt_us=50_000, until_us=250_000)
    assert [cwnd for _, cwnd in trace] == [10, 20, 40, 80, 160]


def test_slow_start_doubles_with_delayed_acks_too():
    """Linux counts segments, not ACKs: one ACK per two segments still doubles cwnd."""
    reno, tp = Reno(), FakeTp(snd_cwnd=10)
    for expected in (20, 40, 80):
        send_window(tp)
        for _ in range(tp.snd_cwnd // 2):
            ack(reno, tp, tp.now_us + 1000, acked=2)
        assert tp.snd_cwnd == expected


def test_ssthresh_halves_cwnd_with_a_floor_of_two():
    reno = Reno()
    assert reno.ssthresh(FakeTp(snd_cwnd=100)) == 50
    assert reno.ssthresh(FakeTp(snd_cwnd=101)) == 50
    assert reno.ssthresh(FakeTp(snd_cwnd=3)) == 2
    assert reno.ssthresh(FakeTp(snd_cwnd=1)) == 2


def test_congestion_avoidance_adds_one_segment_per_window_acked():
    """Above ssthresh cwnd grows by one for each cwnd segments ACKed: one per round trip."""
    reno, tp = Reno(), FakeTp(snd_cwnd=20, snd_ssthresh=20)
    trace = ack_clock(reno, tp, rtt_us=50_000, until_us=50_000 * 30)
    assert [cwnd for _, cwnd in trace] == list(range(20, 50))


def test_slow_start_leftover_goes_to_congestion_avoidance():
    """An ACK that crosses ssthresh spends the rest on additive increase."""
    reno, tp = Reno(), FakeTp(snd_cwnd=8, snd_ssthresh=10)
    ack(reno, tp, 1000, acked=5)
    assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (10, 3)


def test_no_growth_when_not_cwnd_limited():
    """An application-limited sender does not grow its window (RFC 7661)."""
    reno, tp = Reno(), FakeTp(snd_cwnd=10, is_cwnd_limited=False)
    ack(reno, tp, 1000, acked=5)
    assert tp.snd_cwnd == 10


def test_undo_restores_the_window_from_before_the_reduction():
    reno = Reno()
    assert reno.undo_cwnd(FakeTp(snd_cwnd=5, prior_cwnd=40)) == 40
    assert reno.undo_cwnd(FakeTp(snd_cwnd=50, prior_cwnd=40)) == 50


def test_newreno_is_reno_under_another_name():
    """newreno's cwnd rules are Reno's; the name documents the recovery it runs under."""
    assert issubclass(NewReno, Reno)
    assert "RFC 6582" in NewReno.__doc__
    a, b = cc.get("reno"), cc.get("newreno")
    ta, tb = FakeTp(snd_cwnd=4, snd_ssthresh=30), FakeTp(snd_cwnd=4, snd_ssthresh=30)
    assert ack_clock(a, ta, 10_000, 200_000) == ack_clock(b, tb, 10_000, 200_000)
    assert a.ssthresh(ta) == b.ssthresh(tb)
    assert (a.name, b.name) == ("reno", "newreno")
