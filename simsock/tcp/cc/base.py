"""The congestion-control hook interface, shaped like Linux's ``struct tcp_congestion_ops``.

Linux splits congestion control in two. The connection (``net/ipv4/tcp_input.c``) owns loss
detection and recovery: it counts duplicate ACKs and SACKs, runs the ``ca_state`` machine
(Open, Disorder, CWR, Recovery, Loss), reduces cwnd during recovery (PRR, RFC 6937) and
decides when a reduction can be undone. A pluggable module (``tcp_reno``, ``tcp_cubic``,
...) owns only the window *policy*, through a handful of hooks:

- ``ssthresh(tp)`` is asked once when a loss is detected (entering Recovery or Loss, or
  CWR on ECN): it returns the new slow-start threshold and may update the module's own
  memory of the loss (CUBIC remembers W_max here).
- ``cong_avoid(tp, ack, acked)`` runs for every ACK that advances ``snd_una`` while the
  connection is not reducing its window (``tcp_cong_control`` ->
  ``tcp_cong_avoid``). ``acked`` is the number of segments newly acknowledged, and Linux
  grows by all of them (RFC 3465's byte counting, in segments and without its limit L
  of 2 segments per ACK). The hook grows ``tp.snd_cwnd`` itself.
- ``pkts_acked(tp, acked, rtt_us)`` sees each ACK's RTT sample (``rtt_us < 0`` when the
  ACK gave none, e.g. only retransmitted data was acknowledged); Linux calls it before
  ``cong_avoid``, after ``snd_una`` has advanced.
- ``set_state(tp, new_state)`` hears of ``ca_state`` changes; ``cwnd_event(tp, event)`` of
  the events in :data:`CA_EVENT_TX_START` and friends; ``undo_cwnd(tp)`` returns the cwnd
  to restore when a reduction proves spurious; ``init(tp)`` runs when the connection is
  established (``tcp_init_congestion_control``) or the algorithm is changed on an open
  socket.

One :class:`CongestionOps` instance belongs to one connection: its attributes are the
algorithm's private state, as ``icsk_ca_priv`` is in Linux. ``tp`` is the connection's
state; the hooks read and write only these attributes of it: ``snd_cwnd``,
``snd_ssthresh``, ``snd_cwnd_cnt``, ``snd_cwnd_clamp`` (all in segments), ``mss_cache``,
``srtt_us`` (plain microseconds, 0 before the first sample; Linux keeps it shifted left
by 3), ``now_us`` (the connection's clock, like ``tcp_mstamp``), ``packets_out``,
``is_cwnd_limited``, ``prior_cwnd`` and ``ca_state``; ``max_packets_out`` when present.

The helpers below are the ones ``net/ipv4/tcp_cong.c`` and ``include/net/tcp.h`` export to
modules, with the same arithmetic: ``tcp_slow_start``, ``tcp_cong_avoid_ai``,
``tcp_in_slow_start``, ``tcp_is_cwnd_limited`` and Reno's three hooks, which other
algorithms reuse (CUBIC's ``undo_cwnd`` is ``tcp_reno_undo_cwnd``).

A module may instead take over the whole per-ACK window and pacing decision with
``cong_control(tp, ack, flag, rs)`` (BBR does): Linux's ``tcp_cong_control`` then calls it
instead of PRR and ``cong_avoid``, with the ACK's delivery-rate sample ``rs``
(:class:`simsock.tcp.rate.RateSample`, from ``tcp_rate.c``). Such a module sets
``wants_rate_sample`` so that the connection keeps the per-segment delivery records, and
``needs_pacing`` (``sk_pacing_status = SK_PACING_NEEDED``) so that the connection paces its
transmissions at ``tp.pacing_rate`` (bytes per second; Linux's internal TCP pacing).
``sndbuf_expand(tp)`` is the number of congestion windows the send buffer is sized for
(``tcp_sndbuf_expand``: 2 unless the module says otherwise; BBR says 3), and
``min_tso_segs(tp)`` the smallest burst a paced connection sends at once.

Differences from Linux: no ``in_ack_event``, ``get_info``, ``release``; ``ssthresh`` and
one of ``cong_avoid``/``cong_control`` are required, as ``tcp_validate_congestion_control``
requires them, while ``undo_cwnd`` defaults to Reno's instead of being mandatory.
"""

from __future__ import annotations

from typing import Any

# enum tcp_ca_state (include/uapi/linux/tcp.h): the connection's loss-recovery state.
CA_OPEN = 0
CA_DISORDER = 1
CA_CWR = 2
CA_RECOVERY = 3
CA_LOSS = 4

# enum tcp_ca_event (include/net/tcp.h), in the kernel's order.
CA_EVENT_TX_START = 0  # first transmit when no packets in flight
CA_EVENT_CWND_RESTART = 1  # congestion window restart after idle
CA_EVENT_COMPLETE_CWR = 2  # end of congestion recovery
CA_EVENT_LOSS = 3  # loss timeout
CA_EVENT_ECN_NO_CE = 4  # ECT set, but not CE marked
CA_EVENT_ECN_IS_CE = 5  # received CE marked IP packet

#: ``TCP_INFINITE_SSTHRESH`` (include/net/tcp.h): ssthresh before the first loss.
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF

#: TCP_CA_NAME_MAX (include/net/tcp.h): names are at most 15 bytes plus the NUL.
TCP_CA_NAME_MAX = 16


def tcp_in_slow_start(tp: Any) -> bool:
    """``tcp_in_slow_start``: cwnd is below ssthresh (RFC 5681 section 3.1 uses <, too)."""
    return tp.snd_cwnd < tp.snd_ssthresh


def tcp_is_cwnd_limited(tp: Any) -> bool:
    """``tcp_is_cwnd_limited``: may the window grow on this ACK?

    True when the sender was limited by cwnd during the last window (``is_cwnd_limited``,
    maintained by the connection as ``tcp_cwnd_validate`` does). In slow start Linux also
    lets cwnd grow until it is twice the most packets that were in flight in the last
    window (``max_packets_out``), so an application-limited sender still reaches a window
    it could use; without ``max_packets_out`` only ``is_cwnd_limited`` counts (RFC 7661's
    rule that a non-validated window must not grow).
    """
    if tp.is_cwnd_limited:
        return True
    if tcp_in_slow_start(tp):
        max_packets_out = getattr(tp, "max_packets_out", None)
        if max_packets_out is not None:
            return tp.snd_cwnd < 2 * max_packets_out
    return False


def tcp_slow_start(tp: Any, acked: int) -> int:
    """``tcp_slow_start``: grow cwnd by ``acked`` segments, up to ssthresh and the clamp.

    Returns the ACKed segments left over once cwnd reached ssthresh, which the caller
    spends on congestion avoidance. Only meaningful in slow start (cwnd < ssthresh), as
    in Linux, where a call outside slow start would lower cwnd to ssthresh.
    """
    cwnd = min(tp.snd_cwnd + acked, tp.snd_ssthresh)
    acked -= cwnd - tp.snd_cwnd
    tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
    return acked


def tcp_cong_avoid_ai(tp: Any, w: int, acked: int) -> None:
    """``tcp_cong_avoid_ai``: additive increase of one segment per ``w`` segments ACKed.

    ``snd_cwnd_cnt`` carries the credit between ACKs. Credit earned while ``w`` was larger
    than it is now is paid as a single segment, not in bulk (Linux's "apply them gently").
    """
    if tp.snd_cwnd_cnt >= w:
        tp.snd_cwnd_cnt = 0
        tp.snd_cwnd += 1
    tp.snd_cwnd_cnt += acked
    if tp.snd_cwnd_cnt >= w:
        delta = tp.snd_cwnd_cnt // w
        tp.snd_cwnd_cnt -= delta * w
        tp.snd_cwnd += delta
    tp.snd_cwnd = min(tp.snd_cwnd, tp.snd_cwnd_clamp)


def tcp_reno_cong_avoid(tp: Any, ack: int, acked: int) -> None:
    """``tcp_reno_cong_avoid``: slow start below ssthresh, then one segment per cwnd ACKed
    (RFC 5681 section 3.1, equation 3, counted in segments as Linux does)."""
    if not tcp_is_cwnd_limited(tp):
        return
    if tcp_in_slow_start(tp):
        acked = tcp_slow_start(tp, acked)
        if not acked:
            return
    tcp_cong_avoid_ai(tp, tp.snd_cwnd, acked)


def tcp_reno_ssthresh(tp: Any) -> int:
    """``tcp_reno_ssthresh``: half of cwnd, at least 2 segments.

    RFC 5681 equation 4 halves FlightSize; Linux halves cwnd, which is the same while the
    sender is cwnd-limited.
    """
    return max(tp.snd_cwnd >> 1, 2)


def tcp_reno_undo_cwnd(tp: Any) -> int:
    """``tcp_reno_undo_cwnd``: restore the cwnd from before the spurious reduction."""
    return max(tp.snd_cwnd, tp.prior_cwnd)


class CongestionOps:
    """One connection's congestion-control algorithm: Linux's ``tcp_congestion_ops``
    together with its ``icsk_ca_priv`` state.

    Subclasses must implement :meth:`ssthresh` and :meth:`cong_avoid`; the other hooks
    default to doing nothing, and :meth:`undo_cwnd` to Reno's rule.
    """

    #: The name ``setsockopt(TCP_CONGESTION)`` selects and ``getsockopt`` reports.
    name: str = ""
    #: ``cong_control(tp, ack, flag, rs)``, when a subclass defines it, replaces PRR and
    #: ``cong_avoid`` on every ACK (``tcp_cong_control``); None means the classic path.
    cong_control = None
    #: keep tcp_rate.c's per-segment delivery state and build a RateSample per ACK.
    wants_rate_sample: bool = False
    #: SK_PACING_NEEDED: pace transmissions at ``tp.pacing_rate`` (internal TCP pacing).
    needs_pacing: bool = False

    def sndbuf_expand(self, tp: Any) -> int:
        """How many congestion windows of skbs the send buffer is sized for
        (``ca_ops->sndbuf_expand``; tcp_sndbuf_expand uses 2 when a module has none)."""
        return 2

    def min_tso_segs(self, tp: Any) -> int:
        """``ca_ops->min_tso_segs``: the smallest paced burst (``tcp_min_tso_segs`` = 2)."""
        return 2

    def init(self, tp: Any) -> None:
        """The connection is established, or switched to this algorithm."""

    def ssthresh(self, tp: Any) -> int:
        """A loss (or ECN mark) was detected: the new slow-start threshold, in segments."""
        raise NotImplementedError

    def cong_avoid(self, tp: Any, ack: int, acked: int) -> None:
        """An ACK advanced snd_una to ``ack``, newly acknowledging ``acked`` segments,
        outside recovery: grow ``tp.snd_cwnd``."""
        raise NotImplementedError

    def set_state(self, tp: Any, new_state: int) -> None:
        """``tp.ca_state`` is about to become ``new_state`` (one of ``CA_OPEN``..``CA_LOSS``)."""

    def cwnd_event(self, tp: Any, event: int) -> None:
        """One of the ``CA_EVENT_*`` events happened."""

    def pkts_acked(self, tp: Any, acked: int, rtt_us: int) -> None:
        """An ACK acknowledged ``acked`` segments; ``rtt_us`` is its RTT sample, < 0 if none."""

    def undo_cwnd(self, tp: Any) -> int:
        """The last reduction was spurious: the cwnd to restore."""
        return tcp_reno_undo_cwnd(tp)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
