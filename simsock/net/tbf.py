"""The token bucket filter: ``tc qdisc add dev X root tbf rate R burst B limit L``.

A shaper, not a scheduler: packets wait in a byte-limited FIFO and leave only when a bucket
holds enough tokens for them (Linux ``net/sched/sch_tbf.c``):

- The bucket fills at ``rate`` and holds at most ``burst`` bytes' worth; it starts full. Linux
  keeps tokens as *time* (nanoseconds of transmission at ``rate``, ``psched_l2t_ns``); a
  packet of ``len`` bytes needs ``len * 1e9 / rate`` ns of tokens. ``tbf_dequeue`` takes the
  head when ``min(now - t_c, buffer) + tokens - l2t(len) >= 0``; otherwise it arms its
  watchdog for the moment the tokens will suffice (``qdisc_watchdog_schedule_ns``) and counts
  an ``overlimit``.
- ``peakrate`` (optional) adds a second bucket of ``mtu`` bytes filled at ``peakrate``,
  limiting how fast a burst itself may leave; both must allow the packet.
- ``limit``: the inner ``bfifo``'s byte limit; an arrival that would take the backlog past it
  is dropped (``queue_full``). ``latency`` instead of ``limit`` gives, as ``tc`` computes it,
  ``rate * latency + burst`` (or, with a peak rate, the smaller of that and
  ``peakrate * latency + mtu``).
- A packet larger than the bucket (``max_size``: ``burst``, or ``mtu`` with a peak rate) can
  never be sent and is dropped at enqueue (``too_big``; Linux segments a GSO packet instead).

Lengths are what a qdisc sees, ``qdisc_pkt_len``: the IP packet plus the 14-byte Ethernet
header (no FCS, preamble or gap), so ``rate 1mbit`` carries 1e6/8 bytes per second of
*frames*. Units: ``rate``/``peakrate`` in bits per second (int) or strings read by
:func:`simsock.units.parse_rate`; sizes in bytes or :func:`~simsock.units.parse_size`
strings. :meth:`TBF.from_tc` reads a ``tc`` command line with ``tc``'s own units (``kb`` =
1024 bytes, ``mbit`` = 10^6 bit/s, ``mbps`` = 10^6 *bytes*/s), so a real setup can be pasted.

Checked against ``tc qdisc ... tbf`` on a veth pair in namespaces (tests/net/test_tbf_linux.py):
delivered and dropped counts of a UDP blast agree.

Differences from Linux: tokens are exact nanoseconds (Linux rounds ``rate`` through a
reciprocal multiply, ``psched_ratecfg_precompute``, an error below 1e-6); no ``linklayer``/
``overhead`` (ATM cells, extra per-packet bytes) and no child qdisc other than bfifo.
"""

from __future__ import annotations

import re

from simsock.net.packet import Packet
from simsock.net.qdisc import Qdisc
from simsock.units import positive_int
from simsock.units import parse_rate, parse_size, parse_time

__all__ = ["ETH_HEADER", "TBF"]

#: ETH_HLEN: what qdisc_pkt_len adds to an IP packet on an Ethernet (or veth) device.
ETH_HEADER = 14
_NS = 1_000_000_000


def _rate(value, what: str) -> int:
    if isinstance(value, str):
        return parse_rate(value, what=what)
    return positive_int(value, what, 1_000_000)


def _size(value, what: str) -> int:
    if isinstance(value, str):
        return parse_size(value, what=what)
    return positive_int(value, what, 10_000)


class TBF(Qdisc):
    """``tc tbf``: see the module docstring.

    ``TBF(rate="1Mbit", burst=10_000, limit=30_000)``; or ``latency="50ms"`` instead of
    ``limit``; ``peakrate=...`` together with ``mtu=...`` (``tc`` requires both).
    """

    fifo_drop_tail = False
    DROP_REASONS = ("queue_full", "too_big")

    def __init__(self, rate, burst, limit=None, *, latency=None, peakrate=None, mtu=None,
                 header: int = ETH_HEADER) -> None:
        super().__init__()
        self.rate = _rate(rate, "TBF(rate=)")
        self.burst = _size(burst, "TBF(burst=)")
        if peakrate is not None:
            self.peakrate = _rate(peakrate, "TBF(peakrate=)")
            if mtu is None:
                raise ValueError("TBF(peakrate=) needs mtu= (the peak bucket's size in bytes), as tc does")
            self.mtu = _size(mtu, "TBF(mtu=)")
            if self.peakrate <= self.rate:
                raise ValueError(f"TBF(peakrate=) must be above rate ({self.rate} bit/s), got {self.peakrate}")
        else:
            self.peakrate = None
            self.mtu = None
        if (limit is None) == (latency is None):
            raise ValueError("TBF needs exactly one of limit= (bytes) or latency= (e.g. '50ms'), as tc does")
        if limit is not None:
            self.limit = _size(limit, "TBF(limit=)")
        else:
            lat = parse_time(latency, what="TBF(latency=)") if isinstance(latency, str) else int(latency)
            lim = self.rate // 8 * lat // _NS + self.burst
            if self.peakrate is not None:
                lim = min(lim, self.peakrate // 8 * lat // _NS + self.mtu)
            self.limit = lim
        if isinstance(header, bool) or not isinstance(header, int) or header < 0:
            raise ValueError(f"TBF(header=) is the link-layer header in bytes (14 for Ethernet), got {header!r}")
        self.header = header
        self.buffer = self._l2t(self.burst, self.rate)          # bucket size, ns at rate
        self.max_size = self.burst
        self.mtu_ns = None
        if self.peakrate is not None:
            self.mtu_ns = self._l2t(self.mtu, self.peakrate)
            self.max_size = min(self.max_size, self.mtu)
        self.tokens = self.buffer
        self.ptokens = self.mtu_ns or 0
        self.t_c = 0
        self.overlimits = 0
        self.watchdog_ns: int | None = None
        self.sent_bytes = 0          # frame bytes dequeued, as ``tc -s`` "Sent N bytes"
        self.backlog = 0             # frame bytes queued (``tc -s`` "backlog"); ``bytes``: IP bytes

    @staticmethod
    def _l2t(length: int, rate_bps: int) -> int:
        """psched_l2t_ns: time to send ``length`` bytes at ``rate_bps``."""
        return length * 8 * _NS // rate_bps

    def pkt_len(self, pkt: Packet) -> int:
        """qdisc_pkt_len: the frame length tbf counts."""
        return pkt.size + self.header

    # -- tc command lines ----------------------------------------------------------------
    @classmethod
    def from_tc(cls, spec: str) -> TBF:
        """A TBF from the options of a ``tc qdisc add ... tbf`` command line, read with tc's
        units, e.g. ``TBF.from_tc("rate 1mbit burst 10kb limit 30000")``. Words before
        ``tbf`` (``tc qdisc add dev veth0 root``) are ignored."""
        words = spec.split()
        if "tbf" in words:
            words = words[words.index("tbf") + 1:]
        if len(words) % 2:
            raise ValueError(f"TBF.from_tc: options come in pairs (name value), got {spec!r}")
        kw: dict = {}
        names = {"rate": "rate", "burst": "burst", "buffer": "burst", "maxburst": "burst",
                 "limit": "limit", "latency": "latency", "peakrate": "peakrate", "mtu": "mtu",
                 "minburst": "mtu"}
        for name, value in zip(words[::2], words[1::2]):
            key = names.get(name)
            if key is None:
                raise ValueError(f"TBF.from_tc: unknown tbf option {name!r} (known: {', '.join(sorted(names))})")
            if key in ("rate", "peakrate"):
                kw[key] = tc_rate(value)
            elif key == "latency":
                kw[key] = tc_time(value)
            else:
                kw[key] = tc_size(value.split("/")[0])
        if "rate" not in kw or "burst" not in kw:
            raise ValueError("TBF.from_tc: tc requires both rate and burst")
        return cls(**kw)

    # -- the qdisc interface ---------------------------------------------------------------
    def enqueue(self, pkt: Packet, now: int) -> bool:
        self.enqueued += 1
        length = self.pkt_len(pkt)
        if length > self.max_size:
            self._drop(pkt, "too_big", now)
            return False
        if self.backlog + length > self.limit:        # bfifo_enqueue: backlog + len <= limit
            self._drop(pkt, "queue_full", now)
            return False
        self.backlog += length
        return self._accept(pkt, now)

    def _tokens_after(self, now: int, length: int) -> tuple[int, int]:
        toks = min(now - self.t_c, self.buffer)
        ptoks = 0
        if self.peakrate is not None:
            ptoks = min(toks + self.ptokens, self.mtu_ns) - self._l2t(length, self.peakrate)
        toks = min(toks + self.tokens, self.buffer) - self._l2t(length, self.rate)
        return toks, ptoks

    def dequeue(self, now: int) -> Packet | None:
        self.watchdog_ns = None
        if not self._queue:
            return None
        pkt = self._queue[0]
        length = self.pkt_len(pkt)
        toks, ptoks = self._tokens_after(now, length)
        if toks >= 0 and ptoks >= 0:
            self._pop()
            self.backlog -= length
            self.dequeued += 1
            self.sent_bytes += length
            self.t_c = now
            self.tokens = toks
            self.ptokens = ptoks
            return pkt
        self.watchdog_ns = now + max(-toks, -ptoks)
        self.overlimits += 1
        return None

    def peek_len(self) -> int:
        return self.pkt_len(self._queue[0]) if self._queue else 0

    def departure_estimate(self, now: int) -> int:
        """When the last packet queued now will have left (FIFO, nothing else arriving):
        the release time of a sender's memory for it."""
        toks = min(now - self.t_c, self.buffer) + self.tokens
        need = self._l2t(self.backlog, self.rate)
        return now + max(need - toks, 0)

    def stats(self) -> dict:
        s = super().stats()
        s.update(overlimits=self.overlimits, backlog=self.backlog, sent_bytes=self.sent_bytes, rate=self.rate, burst=self.burst,
                 limit=self.limit)
        return s

    def __repr__(self) -> str:
        peak = f", peakrate={self.peakrate}, mtu={self.mtu}" if self.peakrate is not None else ""
        return f"TBF(rate={self.rate}, burst={self.burst}, limit={self.limit}{peak})"


# -- tc's units (iproute2 tc/tc_util.c get_rate, get_size, get_time) --------------------------
_NUM = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(.*)$")
_TC_RATE = {"": 1, "bit": 1, "kibit": 1024, "kbit": 1000, "mibit": 1 << 20, "mbit": 10**6, "gibit": 1 << 30,
            "gbit": 10**9, "tibit": 1 << 40, "tbit": 10**12, "bps": 8, "kibps": 8 << 10, "kbps": 8000,
            "mibps": 8 << 20, "mbps": 8 * 10**6, "gibps": 8 << 30, "gbps": 8 * 10**9, "tibps": 8 << 40,
            "tbps": 8 * 10**12}
_TC_SIZE = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
            "kbit": 1024 / 8, "mbit": (1 << 20) / 8, "gbit": (1 << 30) / 8}
_TC_TIME = {"": 1_000, "s": _NS, "sec": _NS, "secs": _NS, "ms": 10**6, "msec": 10**6, "msecs": 10**6,
            "us": 1_000, "usec": 1_000, "usecs": 1_000}


def _tc(value: str, table: dict, what: str) -> float:
    m = _NUM.match(value.strip())
    unit = m.group(2).lower() if m else None
    if m is None or unit not in table:
        raise ValueError(f"tc {what} {value!r}: expected a number with one of the units "
                         f"{', '.join(u for u in table if u)}")
    return float(m.group(1)) * table[unit]


def tc_rate(value: str) -> int:
    """A ``tc`` rate (``1mbit``, ``100kbps`` = 800 kbit/s, bare = bit/s) in bits per second."""
    return int(_tc(value, _TC_RATE, "rate"))


def tc_size(value: str) -> int:
    """A ``tc`` size (``10kb`` = 10240 bytes, ``1mbit`` = 131072 bytes, bare = bytes)."""
    return int(_tc(value, _TC_SIZE, "size"))


def tc_time(value: str) -> int:
    """A ``tc`` time (``50ms``, bare = microseconds) in nanoseconds."""
    return int(_tc(value, _TC_TIME, "time"))
