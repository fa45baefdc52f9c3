"""A stand-in for the connection's state and an ACK clock to drive an algorithm with.

:class:`FakeTp` has exactly the attributes congestion control may touch (see
``simsock.tcp.cc.base``), plus ``snd_una``/``snd_nxt`` for HyStart's rounds.
:func:`ack_clock` plays the steady state of a cwnd-limited flow over a path of fixed RTT:
every round trip the whole window is ACKed, one segment per ACK, the ACKs evenly spread
over the RTT, each ACK first reported to ``pkts_acked`` and then to ``cong_avoid`` as
``tcp_ack`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from simsock.tcp.cc.base import CA_OPEN, TCP_INFINITE_SSTHRESH, CongestionOps


@dataclass
class FakeTp:
    snd_cwnd: int = 10
    snd_ssthresh: int = TCP_INFINITE_SSTHRESH
    snd_cwnd_cnt: int = 0
    snd_cwnd_clamp: int = 0xFFFF_FFFF
    mss_cache: int = 1448
    srtt_us: int = 0
    now_us: int = 0
    packets_out: int = 0
    is_cwnd_limited: bool = True
    prior_cwnd: int = 0
    ca_state: int = CA_OPEN
    snd_una: int = 0
    snd_nxt: int = 0


def ack(cc: CongestionOps, tp: FakeTp, now_us: int, acked: int = 1, rtt_us: int = -1) -> None:
    """One ACK at ``now_us`` newly acknowledging ``acked`` segments."""
    tp.now_us = now_us
    tp.snd_una += acked
    tp.packets_out = max(tp.packets_out - acked, 0)
    cc.pkts_acked(tp, acked, rtt_us)
    cc.cong_avoid(tp, tp.snd_una, acked)


def send_window(tp: FakeTp) -> int:
    """Fill the window: everything up to cwnd is in flight. Returns the segments sent."""
    n = tp.snd_cwnd - tp.packets_out
    tp.snd_nxt += n
    tp.packets_out = tp.snd_cwnd
    return n


def ack_clock(cc: CongestionOps, tp: FakeTp, rtt_us: int, until_us: int) -> list[tuple[int, int]]:
    """Run whole rounds from ``tp.now_us`` until ``until_us``; returns (round start, cwnd)."""
    tp.srtt_us = rtt_us
    trace = []
    start = tp.now_us
    while start < until_us:
        trace.append((start, tp.snd_cwnd))
        n = tp.snd_cwnd
        send_window(tp)
        for i in range(n):
            ack(cc, tp, start + (i + 1) * rtt_us // n, 1, rtt_us)
        start += rtt_us
    return trace
