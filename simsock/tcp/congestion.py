"""The congestion state handed to a congestion-control module, and how one is chosen.

:class:`CongestionState` carries exactly the fields Linux's tcp_congestion_ops read and
write on ``struct tcp_sock`` (``snd_cwnd``, ``snd_ssthresh``, ...), in segments and plain
microseconds. The connection owns loss recovery (when to retransmit, which state it is in);
the module only decides cwnd and ssthresh. :func:`get_ops` asks ``simsock.tcp.cc.get``.
"""

from __future__ import annotations

from simsock.tcp import cc
from simsock.tcp.cc.base import CA_OPEN, TCP_INFINITE_SSTHRESH


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


def get_ops(name: str):
    """A new instance of the congestion-control module ``name`` (simsock.tcp.cc's registry)."""
    return cc.get(name)
