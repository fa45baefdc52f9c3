"""The congestion state handed to a congestion-control module, and how one is chosen.

:class:`CongestionState` carries exactly the fields Linux's tcp_congestion_ops read and
write on ``struct tcp_sock`` (``snd_cwnd``, ``snd_ssthresh``, ...), in segments and plain
microseconds. The connection owns loss recovery (when to retransmit, which state it is in);
the module only decides cwnd and ssthresh. :func:`get_ops` asks ``simsock.tcp.cc.get`` and
falls back to a minimal Reno (tcp_reno_* in net/ipv4/tcp_cong.c) while that is absent.
"""

from __future__ import annotations

CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = 0, 1, 2, 3, 4
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF


class CongestionState:
    __slots__ = ("snd_cwnd", "snd_ssthresh", "snd_cwnd_cnt", "snd_cwnd_clamp", "mss_cache",
                 "srtt_us", "now_us", "packets_out", "is_cwnd_limited", "prior_cwnd",
                 "ca_state", "ca_priv", "snd_una", "snd_nxt", "lsndtime_us",
                 "max_packets_out", "__dict__")

    def __init__(self, init_cwnd: int, mss: int) -> None:
        self.snd_cwnd = init_cwnd
        self.snd_ssthresh = TCP_INFINITE_SSTHRESH
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = 0xFFFFFFFF
        self.mss_cache = mss
        self.srtt_us = 0
        self.now_us = 0
        self.packets_out = 0
        self.is_cwnd_limited = False
        self.prior_cwnd = 0
        self.ca_state = CA_OPEN
        self.ca_priv = None  # free slot for the module's private state
        # Optional extras some modules read with getattr (cubic's HyStart, tcp_is_cwnd_limited).
        self.snd_una = 0
        self.snd_nxt = 0
        self.lsndtime_us = 0
        self.max_packets_out = 0


class RenoOps:
    """tcp_reno_cong_avoid / tcp_reno_ssthresh / tcp_reno_undo_cwnd."""

    name = "reno"

    def init(self, tp) -> None:
        pass

    def ssthresh(self, tp) -> int:
        return max(tp.snd_cwnd >> 1, 2)

    def cong_avoid(self, tp, ack, acked) -> None:
        if not tp.is_cwnd_limited:
            return
        if tp.snd_cwnd < tp.snd_ssthresh:           # tcp_slow_start
            cwnd = min(tp.snd_cwnd + acked, tp.snd_ssthresh)
            acked -= cwnd - tp.snd_cwnd
            tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
            if not acked:
                return
        w = tp.snd_cwnd                             # tcp_cong_avoid_ai
        if tp.snd_cwnd_cnt >= w:
            tp.snd_cwnd_cnt = 0
            tp.snd_cwnd += 1
        tp.snd_cwnd_cnt += acked
        if tp.snd_cwnd_cnt >= w:
            delta = tp.snd_cwnd_cnt // w
            tp.snd_cwnd_cnt -= delta * w
            tp.snd_cwnd += delta
        tp.snd_cwnd = min(tp.snd_cwnd, tp.snd_cwnd_clamp)

    def set_state(self, tp, state) -> None:
        pass

    def cwnd_event(self, tp, event) -> None:
        pass

    def pkts_acked(self, tp, acked, rtt_us) -> None:
        pass

    def undo_cwnd(self, tp) -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)


def get_ops(name: str):
    """The congestion-control module ``name`` from simsock.tcp.cc, else Reno."""
    try:
        from simsock.tcp import cc
        getter = cc.get
    except (ImportError, AttributeError):
        return RenoOps()
    return getter(name)
