"""Queue disciplines: what a router or a host's interface does with packets it cannot send yet.

A packet handed to a link that is busy waits in the link's *qdisc* (Linux's name, from
``tc(8)``). A qdisc decides three things: whether an arriving packet is admitted
(``enqueue``), which packet leaves next (``dequeue``), and which packets it discards along
the way. Three classic disciplines live here:

- :class:`DropTail` — a FIFO that discards arrivals once full; Linux's ``pfifo``/``bfifo``
  (``net/sched/sch_fifo.c``) and the ``txqueuelen`` queue of every interface.
- :class:`RED` — Random Early Detection (Floyd & Jacobson, "Random Early Detection Gateways
  for Congestion Avoidance", IEEE/ACM ToN 1993, Fig. 2), with the "gentle" variant from
  Floyd's note "Recommendation on using the gentle_ variant of RED" (2000). Drops arrivals
  at random with a probability that grows with the *average* queue length.
- :class:`CoDel` — Controlled Delay (RFC 8289, section 5 pseudo-code; Linux
  ``include/net/codel_impl.h``). Drops at the head, at dequeue, once packets have waited
  longer than ``target`` for at least ``interval``, at a rate that grows with sqrt(drops).

The interface, which a user may implement for a discipline of their own::

    on_drop: Callable[[Packet, str, int], None] | None   # set by the owner: (pkt, reason, now)
    packets: int; bytes: int                             # current occupancy
    attach(rng, rate_bps)      # called once by the owner, before the first packet
    enqueue(pkt, now) -> bool  # False if the packet was dropped
    dequeue(now) -> Packet | None
    peek_len() -> int          # size in bytes of the head packet (0 if empty)
    __len__() -> int           # packets queued
    stats() -> dict
    fifo_drop_tail: bool       # see below

Every discarded packet goes through :meth:`Qdisc._drop`, which counts it under a reason and
calls ``on_drop`` — so the owner sees every drop, whether it happens at enqueue (tail drop,
RED) or at dequeue (CoDel). Counters obey, at every instant::

    enqueued == dequeued + dropped + packets

where ``enqueued`` counts every packet offered to ``enqueue`` (including those refused).

``fifo_drop_tail`` is True only for a plain FIFO whose every decision depends on occupancy
at enqueue time: the link may then compute each packet's departure when it arrives, without
scheduling a dequeue event per packet (DESIGN.md, "Speed"). AQMs that decide at dequeue time
or draw random numbers leave it False.

Times are integer nanoseconds. Parameters that are durations accept an ``int`` number of
nanoseconds or a string with a unit (``"5ms"``), read by :func:`simsock.units.parse_time`.
Randomness comes only from the ``random.Random`` passed to ``attach`` (the owner's named
stream for this qdisc), so runs are reproducible.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Callable

from simsock.net.packet import Packet
from simsock.units import NS_PER_S, ns_duration, positive_int

__all__ = ["Qdisc", "DropTail", "RED", "CoDel"]

DropCallback = Callable[[Packet, str, int], None]


class Qdisc:
    """Base class of queue disciplines: a FIFO of packets, occupancy and drop counters.

    Subclasses override :meth:`enqueue` and :meth:`dequeue` and build them from the helpers
    :meth:`_accept` (append and count), :meth:`_pop` (remove the head and count) and
    :meth:`_drop` (count under a reason and tell the owner). ``DROP_REASONS`` lists the
    reasons a subclass uses, so that ``stats()`` always has the same keys.
    """

    fifo_drop_tail: bool = False
    DROP_REASONS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.on_drop: DropCallback | None = None
        self.packets = 0
        self.bytes = 0
        self.enqueued = 0
        self.dequeued = 0
        self.dropped = 0
        self.drops: dict[str, int] = {reason: 0 for reason in self.DROP_REASONS}
        self._queue: deque[Packet] = deque()
        self._rng: random.Random | None = None
        self._rate_bps: int | None = None

    def attach(self, rng: random.Random, rate_bps: int) -> None:
        """Called once by the owner: the qdisc's own random stream and the link's rate in
        bits per second (0 for a link without a rate limit)."""
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random (the qdisc's named stream), not {type(rng).__name__}")
        if isinstance(rate_bps, bool) or not isinstance(rate_bps, int) or rate_bps < 0:
            raise ValueError(f"rate_bps must be an int number of bits per second (0: no rate limit), got {rate_bps!r}")
        self._rng = rng
        self._rate_bps = rate_bps

    # -- the interface -------------------------------------------------------------------

    def enqueue(self, pkt: Packet, now: int) -> bool:
        raise NotImplementedError

    def dequeue(self, now: int) -> Packet | None:
        raise NotImplementedError

    def peek_len(self) -> int:
        """Size in bytes of the packet at the head (0 if empty).

        For a qdisc that drops at dequeue (CoDel) this is a hint: the head may be dropped
        and a later packet sent instead.
        """
        return self._queue[0].size if self._queue else 0

    def __len__(self) -> int:
        return self.packets

    def stats(self) -> dict:
        """Counters: ``enqueued`` (offered), ``dequeued``, ``dropped`` (total), ``drops`` by
        reason, and the current ``packets``/``bytes``."""
        return {
            "enqueued": self.enqueued,
            "dequeued": self.dequeued,
            "dropped": self.dropped,
            "drops": dict(self.drops),
            "packets": self.packets,
            "bytes": self.bytes,
        }

    # -- helpers for subclasses ------------------------------------------------------------

    def _accept(self, pkt: Packet, now: int) -> bool:
        pkt.enqueued_at = now
        self._queue.append(pkt)
        self.packets += 1
        self.bytes += pkt.size
        return True

    def _pop(self) -> Packet | None:
        if not self._queue:
            return None
        pkt = self._queue.popleft()
        self.packets -= 1
        self.bytes -= pkt.size
        return pkt

    def _drop(self, pkt: Packet, reason: str, now: int) -> None:
        self.dropped += 1
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if self.on_drop is not None:
            self.on_drop(pkt, reason, now)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(packets={self.packets}, bytes={self.bytes})"


class DropTail(Qdisc):
    """FIFO that drops arrivals that do not fit: Linux ``pfifo`` (packets) / ``bfifo`` (bytes).

    A packet is admitted if the queue holds fewer than ``packets`` packets
    (``sch_fifo.c: pfifo_enqueue``) and if ``bytes`` queued plus its size do not exceed
    ``bytes`` (``bfifo_enqueue``); either limit or both may be given, and with neither the
    limit is 1000 packets, the default ``txqueuelen`` of an Ethernet interface. A refused
    packet is dropped with reason ``"queue_full"``.
    """

    fifo_drop_tail = True
    DROP_REASONS = ("queue_full",)
    DEFAULT_PACKETS = 1000   # txqueuelen default (ether_setup in net/ethernet/eth.c)

    def __init__(self, packets: int | None = None, bytes: int | None = None) -> None:
        super().__init__()
        if packets is None and bytes is None:
            packets = self.DEFAULT_PACKETS
        self.limit_packets = None if packets is None else positive_int(packets, "DropTail(packets=)", 64)
        self.limit_bytes = None if bytes is None else positive_int(bytes, "DropTail(bytes=)", 96_000)

    def enqueue(self, pkt: Packet, now: int) -> bool:
        self.enqueued += 1
        if ((self.limit_packets is not None and self.packets >= self.limit_packets)
                or (self.limit_bytes is not None and self.bytes + pkt.size > self.limit_bytes)):
            self._drop(pkt, "queue_full", now)
            return False
        return self._accept(pkt, now)

    def dequeue(self, now: int) -> Packet | None:
        pkt = self._pop()
        if pkt is not None:
            self.dequeued += 1
        return pkt

    def __repr__(self) -> str:
        return f"DropTail(packets={self.limit_packets}, bytes={self.limit_bytes})"


class RED(Qdisc):
    """Random Early Detection, as in Floyd & Jacobson 1993, Fig. 2, measured in packets.

    On every arrival the average queue length is updated:

    - queue non-empty: ``avg = (1 - w_q) * avg + w_q * q`` (``q`` = packets queued before
      this arrival);
    - queue empty: ``avg = (1 - w_q) ** m * avg`` where ``m`` is the number of packets of
      ``mean_pkt_size`` bytes the link (``rate_bps`` from ``attach``) could have sent since
      the queue went empty — the paper's ``m = f(time - q_time)``, here not rounded (a link
      with no rate limit, ``rate_bps = 0``, decays avg to 0 after any idle time).

    Then, with ``count`` the packets since the last drop (−1 while ``avg < min_th``):

    - ``avg < min_th``: admit, ``count = -1``;
    - ``min_th <= avg < max_th``: ``count += 1``, ``p_b = max_p (avg - min_th) / (max_th -
      min_th)``, ``p_a = p_b / (1 - count * p_b)`` (1 once ``count * p_b >= 1``), drop with
      probability ``p_a`` (reason ``"red_early"``) and reset ``count = 0``. This spreads drops
      evenly: the gap between drops is uniform on 1..1/p_b;
    - ``avg >= max_th``: drop (reason ``"red_forced"``), ``count = 0``.

    With ``gentle=True`` (Floyd 2000), the range ``max_th <= avg < 2 max_th`` is early-drop
    too, with ``p_b = max_p + (1 - max_p) (avg - max_th) / max_th``; only ``avg >= 2 max_th``
    forces drops. An admitted packet that finds ``limit_packets`` queued is dropped with
    reason ``"queue_full"`` (the physical buffer; ``count`` resets as for any drop).

    One uniform draw from the attached rng is made per arrival that reaches the
    probabilistic branch, and none otherwise. RED has no ECN marking here.
    """

    DROP_REASONS = ("red_early", "red_forced", "queue_full")

    def __init__(self, limit_packets: int, min_th: float, max_th: float, max_p: float = 0.1,
                 w_q: float = 0.002, gentle: bool = False, mean_pkt_size: int = 1000) -> None:
        super().__init__()
        self.limit_packets = positive_int(limit_packets, "RED(limit_packets=)", 100)
        for name, v in (("min_th", min_th), ("max_th", max_th), ("max_p", max_p), ("w_q", w_q)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"RED({name}=) must be a finite number, got {v!r}")
        if not 0 <= min_th < max_th:
            raise ValueError(f"RED needs 0 <= min_th < max_th (in packets), got min_th={min_th!r}, max_th={max_th!r}")
        if not 0 < max_p <= 1:
            raise ValueError(f"RED(max_p=) is a probability in (0, 1], e.g. 0.1; got {max_p!r}")
        if not 0 < w_q <= 1:
            raise ValueError(f"RED(w_q=) is the EWMA weight in (0, 1], e.g. 0.002; got {w_q!r}")
        self.mean_pkt_size = positive_int(mean_pkt_size, "RED(mean_pkt_size=)", 1000)
        self.min_th = float(min_th)
        self.max_th = float(max_th)
        self.max_p = float(max_p)
        self.w_q = float(w_q)
        self.gentle = bool(gentle)
        self.avg = 0.0
        self.count = -1
        self.idle_since: int | None = 0   # q_time: when the queue last went empty (None: busy)

    def _update_avg(self, now: int) -> None:
        if self.packets:
            self.avg = (1.0 - self.w_q) * self.avg + self.w_q * self.packets
        elif self.avg:
            idle = now - self.idle_since
            if not self._rate_bps:
                # A link without a rate limit could have sent any number of packets.
                if idle > 0:
                    self.avg = 0.0
                return
            # Packets the link could have sent while idle (the paper's m = f(time - q_time)).
            m = idle * self._rate_bps / (8 * self.mean_pkt_size * NS_PER_S)
            self.avg *= (1.0 - self.w_q) ** m

    def _drop_probability(self) -> float:
        """p_b for the current avg (only called in the probabilistic range)."""
        if self.avg < self.max_th:
            return self.max_p * (self.avg - self.min_th) / (self.max_th - self.min_th)
        return self.max_p + (1.0 - self.max_p) * (self.avg - self.max_th) / self.max_th

    def enqueue(self, pkt: Packet, now: int) -> bool:
        if self._rng is None:
            raise RuntimeError("RED needs attach(rng, rate_bps) before the first enqueue")
        self.enqueued += 1
        self._update_avg(now)
        avg = self.avg
        forced_th = 2.0 * self.max_th if self.gentle else self.max_th
        if avg < self.min_th:
            self.count = -1
        elif avg < forced_th:
            self.count += 1
            p_b = self._drop_probability()
            denominator = 1.0 - self.count * p_b
            p_a = 1.0 if denominator <= p_b else p_b / denominator
            if self._rng.random() < p_a:
                self.count = 0
                self._drop(pkt, "red_early", now)
                return False
        else:
            self.count = 0
            self._drop(pkt, "red_forced", now)
            return False
        if self.packets >= self.limit_packets:
            self.count = 0
            self._drop(pkt, "queue_full", now)
            return False
        self.idle_since = None
        return self._accept(pkt, now)

    def dequeue(self, now: int) -> Packet | None:
        pkt = self._pop()
        if pkt is None:
            return None
        self.dequeued += 1
        if not self.packets:
            self.idle_since = now
        return pkt

    def stats(self) -> dict:
        s = super().stats()
        s["avg"] = self.avg
        return s

    def __repr__(self) -> str:
        return (f"RED(limit_packets={self.limit_packets}, min_th={self.min_th}, max_th={self.max_th}, "
                f"max_p={self.max_p}, w_q={self.w_q}, gentle={self.gentle})")


class CoDel(Qdisc):
    """Controlled Delay AQM: RFC 8289 section 5 (the Linux variant of the count rule).

    Decisions are made at dequeue from each packet's sojourn time ``now - enqueued_at``:

    - ``dodequeue``: take the head; if its sojourn is below ``target`` or what remains queued
      is at most ``mtu`` bytes (RFC: ``bytes() <= MAXPACKET``), forget ``first_above_time``.
      Otherwise, the first time set ``first_above_time = now + interval``; once ``now`` reaches
      it the packet is ``ok_to_drop``.
    - not dropping and ``ok_to_drop``: drop it (reason ``"codel"``), take the next, enter the
      dropping state. ``count`` restarts at 1, unless the last dropping state ended recently
      (``now - drop_next < 16 * interval``) and dropped more than one packet beyond the
      count it started from, in which case it resumes at that difference. Then
      ``drop_next = now + interval / sqrt(count)``.
    - dropping: leave the state when a packet is not ``ok_to_drop``; otherwise, while
      ``now >= drop_next``, drop, ``count += 1``, take the next and schedule
      ``drop_next += interval / sqrt(count)`` (the control law).

    ``interval / sqrt(count)`` is computed exactly in integers, rounded down to a nanosecond
    (``isqrt(interval**2 // count)``). ``first_above_time == 0`` means "not above" as in the
    RFC (``now + interval`` is never 0). Arrivals that find ``limit`` packets queued are
    dropped with reason ``"queue_full"`` (``sch_codel.c``). No ECN marking.
    """

    DROP_REASONS = ("codel", "queue_full")

    def __init__(self, target="5ms", interval="100ms", limit: int = 1000, mtu: int = 1500) -> None:
        super().__init__()
        self.target = ns_duration(target, "CoDel(target=)", "5ms")
        self.interval = ns_duration(interval, "CoDel(interval=)", "100ms")
        if self.interval <= 0:
            raise ValueError(f"CoDel(interval=) must be positive, e.g. '100ms'; got {interval!r}")
        self.limit = positive_int(limit, "CoDel(limit=)", 1000)
        self.mtu = positive_int(mtu, "CoDel(mtu=)", 1500)
        self.first_above_time = 0
        self.drop_next = 0
        self.count = 0
        self.lastcount = 0
        self.dropping = False

    def control_law(self, t: int, count: int) -> int:
        """``t + interval / sqrt(count)`` in whole nanoseconds (rounded down)."""
        return t + math.isqrt(self.interval * self.interval // count)

    def enqueue(self, pkt: Packet, now: int) -> bool:
        self.enqueued += 1
        if self.packets >= self.limit:
            self._drop(pkt, "queue_full", now)
            return False
        return self._accept(pkt, now)

    def _dodequeue(self, now: int) -> tuple[Packet | None, bool]:
        pkt = self._pop()
        if pkt is None:
            self.first_above_time = 0
            return None, False
        if now - pkt.enqueued_at < self.target or self.bytes <= self.mtu:
            self.first_above_time = 0
            return pkt, False
        if self.first_above_time == 0:
            self.first_above_time = now + self.interval
            return pkt, False
        return pkt, now >= self.first_above_time

    def dequeue(self, now: int) -> Packet | None:
        pkt, ok_to_drop = self._dodequeue(now)
        if self.dropping:
            if not ok_to_drop:
                self.dropping = False
            while self.dropping and now >= self.drop_next:
                self._drop(pkt, "codel", now)
                self.count += 1
                pkt, ok_to_drop = self._dodequeue(now)
                if not ok_to_drop:
                    self.dropping = False
                else:
                    self.drop_next = self.control_law(self.drop_next, self.count)
        elif ok_to_drop:
            self._drop(pkt, "codel", now)
            pkt, ok_to_drop = self._dodequeue(now)
            self.dropping = True
            delta = self.count - self.lastcount
            self.count = delta if delta > 1 and now - self.drop_next < 16 * self.interval else 1
            self.drop_next = self.control_law(now, self.count)
            self.lastcount = self.count
        if pkt is not None:
            self.dequeued += 1
        return pkt

    def stats(self) -> dict:
        s = super().stats()
        s["count"] = self.count
        s["dropping"] = self.dropping
        return s

    def __repr__(self) -> str:
        return f"CoDel(target={self.target}, interval={self.interval}, limit={self.limit}, mtu={self.mtu})"
