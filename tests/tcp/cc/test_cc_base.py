"""The helpers Linux exports to congestion-control modules, and the hook defaults."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simsock.tcp.cc import base
from simsock.tcp.cc.base import (
    CongestionOps,
    tcp_cong_avoid_ai,
    tcp_in_slow_start,
    tcp_is_cwnd_limited,
    tcp_slow_start,
)

from tests.tcp.cc.fake_tp import FakeTp


def test_constants_are_linux_enum_values():
    """ca_state and cwnd events carry the values of enum tcp_ca_state / tcp_ca_event."""
    assert (base.CA_OPEN, base.CA_DISORDER, base.CA_CWR, base.CA_RECOVERY, base.CA_LOSS) == (0, 1, 2, 3, 4)
    assert (base.CA_EVENT_TX_START, base.CA_EVENT_CWND_RESTART,
            base.CA_EVENT_COMPLETE_CWR, base.CA_EVENT_LOSS) == (0, 1, 2, 3)
    assert base.TCP_INFINITE_SSTHRESH == 0x7FFFFFFF


def test_slow_start_grows_by_acked_up_to_ssthresh_and_returns_the_rest():
    """tcp_slow_start adds every ACKed segment until ssthresh; the excess is returned
    for congestion avoidance."""
    tp = FakeTp(snd_cwnd=10, snd_ssthresh=14)
    assert tcp_slow_start(tp, 3) == 0 and tp.snd_cwnd == 13
    assert tcp_slow_start(tp, 5) == 4 and tp.snd_cwnd == 14


def test_slow_start_respects_the_clamp():
    """snd_cwnd_clamp caps the window even below ssthresh (the leftover ignores the clamp,
    as in Linux)."""
    tp = FakeTp(snd_cwnd=10, snd_ssthresh=100, snd_cwnd_clamp=12)
    assert tcp_slow_start(tp, 5) == 0
    assert tp.snd_cwnd == 12


def test_cong_avoid_ai_adds_one_segment_per_w_acked():
    """tcp_cong_avoid_ai keeps credit in snd_cwnd_cnt and adds one segment per w ACKed,
    several at once for a large stretch ACK."""
    tp = FakeTp(snd_cwnd=10)
    for _ in range(9):
        tcp_cong_avoid_ai(tp, 10, 1)
    assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (10, 9)
    tcp_cong_avoid_ai(tp, 10, 1)
    assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (11, 0)
    tcp_cong_avoid_ai(tp, 10, 25)
    assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (13, 5)


def test_cong_avoid_ai_pays_old_credit_gently():
    """Credit earned at a larger w is paid as one segment, not all at once."""
    tp = FakeTp(snd_cwnd=10, snd_cwnd_cnt=50)
    tcp_cong_avoid_ai(tp, 5, 1)
    assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (11, 1)


def test_cong_avoid_ai_respects_the_clamp():
    tp = FakeTp(snd_cwnd=10, snd_cwnd_clamp=10)
    tcp_cong_avoid_ai(tp, 2, 10)
    assert tp.snd_cwnd == 10


def test_in_slow_start_is_cwnd_below_ssthresh():
    assert tcp_in_slow_start(FakeTp(snd_cwnd=9, snd_ssthresh=10))
    assert not tcp_in_slow_start(FakeTp(snd_cwnd=10, snd_ssthresh=10))


def test_cwnd_limited_flag_always_allows_growth():
    assert tcp_is_cwnd_limited(FakeTp(is_cwnd_limited=True, snd_cwnd=50, snd_ssthresh=10))


@pytest.mark.parametrize("cwnd, max_out, expected", [(19, 10, True), (20, 10, False), (40, 30, True)])
def test_slow_start_may_grow_to_twice_max_packets_out(cwnd, max_out, expected):
    """An application-limited sender in slow start still grows until cwnd is twice the
    most it had in flight (Linux's tcp_is_cwnd_limited)."""
    tp = SimpleNamespace(is_cwnd_limited=False, snd_cwnd=cwnd, snd_ssthresh=1000, max_packets_out=max_out)
    assert tcp_is_cwnd_limited(tp) is expected


def test_without_max_packets_out_only_the_flag_counts():
    """A tp without max_packets_out is cwnd-limited exactly when is_cwnd_limited says so."""
    assert not tcp_is_cwnd_limited(FakeTp(is_cwnd_limited=False, snd_cwnd=2, snd_ssthresh=1000))
    tp = SimpleNamespace(is_cwnd_limited=False, snd_cwnd=50, snd_ssthresh=10, max_packets_out=100)
    assert not tcp_is_cwnd_limited(tp)  # the 2x rule is for slow start only


def test_base_defaults_are_linux_like():
    """Optional hooks do nothing, undo_cwnd is Reno's, ssthresh/cong_avoid must be written."""
    ops = CongestionOps()
    tp = FakeTp(snd_cwnd=5, prior_cwnd=20)
    ops.init(tp)
    ops.set_state(tp, base.CA_LOSS)
    ops.cwnd_event(tp, base.CA_EVENT_TX_START)
    ops.pkts_acked(tp, 1, 1000)
    assert tp == FakeTp(snd_cwnd=5, prior_cwnd=20)
    assert ops.undo_cwnd(tp) == 20
    with pytest.raises(NotImplementedError):
        ops.ssthresh(tp)
    with pytest.raises(NotImplementedError):
        ops.cong_avoid(tp, 0, 1)
