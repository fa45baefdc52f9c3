"""Round-trip time estimation and the retransmission timeout (RFC 6298, Linux flavour).

Linux's tcp_rtt_estimator keeps srtt and mdev as RFC 6298 does (gains 1/8 and 1/4), and
__tcp_set_rto computes ``rto = srtt + max(4*rttvar, rto_min)`` in effect: tcp_rto_min is a
floor on the variance term (rttvar >= TCP_RTO_MIN), not on the RTO itself. That is why a
loopback connection shows ``rto:201`` in ``ss -ti``, not 200. Before any sample the RTO is
TCP_TIMEOUT_INIT (1 s). Karn's rule: no sample from a retransmitted segment.
"""

from __future__ import annotations


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "rto_min", "rto_max", "has_sample")

    def __init__(self, rto_init: int, rto_min: int, rto_max: int) -> None:
        self.srtt = 0          # ns
        self.rttvar = 0        # ns
        self.rto = rto_init    # ns, before backoff
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.has_sample = False

    def sample(self, rtt: int) -> None:
        rtt = max(rtt, 1000)  # Linux measures in usec; a sample is at least 1 us
        if not self.has_sample:
            self.srtt = rtt
            self.rttvar = rtt // 2
            self.has_sample = True
        else:
            err = rtt - self.srtt
            self.rttvar += (abs(err) - self.rttvar) >> 2
            self.srtt += err >> 3
        self.rto = min(self.srtt + max(4 * self.rttvar, self.rto_min), self.rto_max)
