"""Reno: slow start, congestion avoidance by one segment per RTT, halving on loss.

The window rules of RFC 5681 section 3.1 as Linux implements them in
``net/ipv4/tcp_cong.c`` (``tcp_reno_cong_avoid``, ``tcp_reno_ssthresh``,
``tcp_reno_undo_cwnd``; the arithmetic lives in :mod:`simsock.tcp.cc.base` because other
algorithms reuse it, as Linux modules do):

- slow start (cwnd < ssthresh): cwnd grows by every segment newly ACKed, so it doubles
  each round trip when every segment is ACKed (and with delayed ACKs too, since Linux
  counts segments, not ACKs);
- congestion avoidance: one segment per cwnd's worth of ACKed segments
  (``tcp_cong_avoid_ai``), about one segment per round trip;
- on loss: ssthresh = max(cwnd / 2, 2) (Linux halves cwnd; RFC 5681 equation 4 halves
  FlightSize, the same while the sender is cwnd-limited).

Growth happens only while the sender is cwnd-limited (``tcp_is_cwnd_limited``, RFC 7661).
Differences from Linux: none in these rules.
"""

from __future__ import annotations

from typing import Any

from simsock.tcp.cc.base import (
    CongestionOps,
    tcp_reno_cong_avoid,
    tcp_reno_ssthresh,
    tcp_reno_undo_cwnd,
)


class Reno(CongestionOps):
    """Linux's built-in ``reno`` (``tcp_reno`` in ``tcp_cong.c``); it has no private state."""

    name = "reno"

    def ssthresh(self, tp: Any) -> int:
        return tcp_reno_ssthresh(tp)

    def cong_avoid(self, tp: Any, ack: int, acked: int) -> None:
        tcp_reno_cong_avoid(tp, ack, acked)

    def undo_cwnd(self, tp: Any) -> int:
        return tcp_reno_undo_cwnd(tp)


class NewReno(Reno):
    """``newreno``: the name for Reno's window rules with NewReno loss recovery.

    NewReno (RFC 6582) is not a window-growth rule but a loss-recovery algorithm: it stays
    in fast recovery across partial ACKs, retransmitting the next hole each time, instead
    of leaving recovery at the first new ACK as the original Reno did. In Linux that
    behaviour belongs to the connection (``tcp_input.c``, used whenever SACK is not), and
    every congestion-control module, ``reno`` included, runs under it; Linux has no module
    called ``newreno`` and ``setsockopt(TCP_CONGESTION, b"newreno")`` fails there with
    ENOENT. simsock registers the name because other stacks (FreeBSD, ns-3's
    ``TcpNewReno``) use it for exactly this combination; its cwnd rules are Reno's.
    """

    name = "newreno"
