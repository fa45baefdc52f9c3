"""Checks of world and profile values, where they are given.

A wrong value must fail at the call that gives it, with one line that names the parameter
and says what is expected — not at the first packet, inside SimPy, blamed on a program's
thread. Every world-building call (``add_host``, ``add_router``, ``add_link``, the queue
disciplines and loss models, ``topology.from_graph``, which calls those) and every profile
(built-in, a :class:`~simsock.profiles.Profile` made with ``dataclasses.replace``, a JSON
file) goes through the functions here. Wrong *type*: :class:`TypeError`; right type, wrong
*value* (sign, range, unit): :class:`ValueError`. Messages start with the parameter as the
caller wrote it (``add_link(rate=)``, ``profile field tcp_rmem``).

Queue sizes. ``queue=64`` (an int) is a limit in packets, as ``txqueuelen`` and ``tc ...
pfifo limit 64`` are; ``queue="64KiB"`` (a string with a byte unit: B, kB, KiB, MB, MiB)
is a limit in bytes, as ``bfifo limit 65536`` is, and becomes ``DropTail(bytes=65536)``;
``queue="64p"`` (or ``"64 packets"``) is packets again. A bare number in a string
(``"64"``) is refused as ambiguous.
"""

from __future__ import annotations

import dataclasses
import math
import re

from simsock.net.loss import Jitter
from simsock.net.qdisc import DropTail
from simsock.tcp import cc
from simsock.units import ns_duration, parse_rate, parse_size, parse_time, positive_int, shown

__all__ = ["positive_int", "ns_duration", "duration", "rate", "probability", "queue", "jitter", "loss",
           "qdisc", "host", "router", "link", "profile"]


def duration(value, what: str, example: str = "10ms") -> int:
    """Seconds (int or float) or a string such as ``"10ms"`` -> int nanoseconds, >= 0."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise TypeError(f"{what} must be seconds (a number) or a string such as {example!r}, not {shown(value)}")
    return parse_time(value, what=what)


def rate(value, what: str) -> int:
    """Bits per second (a number) or a string such as ``"100Mbit"`` -> int bits/s, >= 1."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise TypeError(f"{what} must be bits per second (a number) or a string such as '100Mbit', "
                        f"not {shown(value)}")
    bps = parse_rate(value, what=what)
    if bps < 1:
        raise ValueError(f"{what} must be at least 1 bit per second, got {value!r} (rounds to {bps}); "
                         f"rates are bits per second: write e.g. '400kbit'")
    return bps


def probability(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a probability between 0 and 1 (e.g. 0.01), not {shown(value)}")
    if not (0.0 <= value <= 1.0):    # also refuses NaN
        raise ValueError(f"{what} must be a probability between 0 and 1, got {value!r}")
    return float(value)


_PACKETS = re.compile(r"^\s*([0-9]+)\s*(?:p|pkt|pkts|packet|packets)\s*$", re.IGNORECASE)


def queue(value, what: str) -> tuple[str, int]:
    """A queue limit: ``("packets", n)`` for an int or ``"64p"``, ``("bytes", n)`` for a string
    with a byte unit (``"64KiB"``); see the module docstring."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be a number of packets (an int such as 64) or a byte size with a unit "
                        f"(a string such as '64KiB'), not {shown(value)}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{what} must hold at least one packet, got {value!r}")
        return "packets", value
    m = _PACKETS.match(value)
    if m:
        return "packets", positive_int(int(m.group(1)), what, 64)
    if re.fullmatch(r"\s*[0-9.eE+-]+\s*", value):
        raise ValueError(f"{what} {value!r} has no unit: write queue={value.strip()} (an int) for packets, or "
                         f"queue='{value.strip()}KiB' (or 'B', 'kB', 'MiB') for bytes")
    try:
        size = parse_size(value, what=what)
    except ValueError as exc:
        raise ValueError(f"{exc}; or write an int for packets (queue=64)") from None
    if size < 1:
        raise ValueError(f"{what} must hold at least one byte, got {value!r}")
    return "bytes", size


def jitter(value, what: str = "jitter"):
    """None, a jitter model (with ``.delay(rng, now, last)``), or a duration meaning a uniform
    extra delay in [0, value] without reordering (``simsock.Jitter(max_ns=value)``)."""
    if value is None:
        return None
    if callable(getattr(value, "delay", None)):
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        ns = parse_time(value, what=what)
        return Jitter(max_ns=ns) if ns > 0 else None
    raise TypeError(f"{what} must be a duration such as '1ms' (uniform extra delay up to it), a jitter model "
                    f"such as simsock.Jitter('2ms', reorder=True), or None; not {shown(value)}")


def loss(value, what: str = "loss"):
    if hasattr(value, "lose"):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a probability or a loss model with .lose(rng), got {value!r} (e.g. "
                        f"loss=0.01 or loss=simsock.GilbertElliott(...))")
    return probability(value, what)


def qdisc(value, what: str):
    """None, a queue discipline (``enqueue``/``dequeue``) or a callable returning one."""
    if value is None or (hasattr(value, "enqueue") and hasattr(value, "dequeue")) or callable(value):
        return value
    raise TypeError(f"{what} must be a queue discipline such as simsock.DropTail(packets=64), or a callable "
                    f"that returns a new one for each port; got {shown(value)}")


def cores(value, what: str = "add_host(cores=)") -> int:
    # a ValueError for a wrong type too, as add_host always raised
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what}: cores must be a positive int such as 4, got {shown(value)}")
    return value


def host(cores_: int) -> None:
    """``add_host``'s values (the name is checked by the simulation, with the others)."""
    cores(cores_)


def router(qdisc_, queue_, processing_delay):
    """``add_router``'s values; returns ``(qdisc, queue in packets or None)``: a byte-size
    queue becomes the ports' ``DropTail(bytes=...)``."""
    qdisc(qdisc_, "add_router(qdisc=)")
    duration(processing_delay, "router processing_delay", "50us")
    if queue_ is None:
        return qdisc_, None
    kind, n = queue(queue_, "router queue")
    if kind == "packets":
        return qdisc_, n
    if qdisc_ is not None:
        raise ValueError("add_router(queue=) in bytes and qdisc= both set the port queue: give one, e.g. "
                         "qdisc=simsock.DropTail(bytes=65536)")
    return DropTail(bytes=n), None


def link(rate_, delay, loss_, mtu, queue_, qdisc_, jitter_):
    """``add_link``'s values, checked where they are given; returns ``(queue, qdisc, jitter)``
    normalised: a packet queue as an int (or None), a byte-size queue as the qdisc
    ``DropTail(bytes=...)``, a duration jitter as a :class:`~simsock.net.loss.Jitter`.
    Per-direction settings (a pair ``(a->b, b->a)``) are checked one by one and stay pairs."""
    for v in _parts(rate_):
        rate(v, "link rate")
    for v in _parts(delay):
        duration(v, "link delay")
    for v in _parts(loss_):
        loss(v)
    for v in _parts(mtu):
        if isinstance(v, bool) or not isinstance(v, (int, str, float)):
            raise TypeError(f"mtu must be a number of bytes such as 1500, not {shown(v)}")
        n = parse_size(v, what="mtu")
        if not 68 <= n <= 65536:
            raise ValueError(f"mtu must be between 68 and 65536 bytes, got {v!r}")
    jit = tuple(jitter(v) for v in jitter_) if isinstance(jitter_, tuple) else jitter(jitter_)
    if isinstance(queue_, tuple) or isinstance(qdisc_, tuple):
        pairs = [_link_queue(q, qd) for q, qd in zip(_pair(queue_), _pair(qdisc_))]
        return tuple(q for q, _ in pairs), tuple(qd for _, qd in pairs), jit
    q, qd = _link_queue(queue_, qdisc_)
    return q, qd, jit


def _parts(value) -> list:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _pair(value) -> tuple:
    return value if isinstance(value, tuple) and len(value) == 2 else (value, value)


def _link_queue(queue_, qdisc_):
    qdisc(qdisc_, "add_link(qdisc=)")
    if queue_ is None:
        return None, qdisc_
    kind, n = queue(queue_, "queue")
    if kind == "packets":
        return n, qdisc_
    if qdisc_ is not None:
        raise ValueError("add_link(queue=) in bytes and qdisc= both set the transmit queue: give one, e.g. "
                         "qdisc=simsock.DropTail(bytes=65536)")
    return None, DropTail(bytes=n)


# -- profiles ------------------------------------------------------------------------------
_TTL_RANGE = (1, 255)
#: Profile fields with a range beyond "a non-negative int".
_RANGES = {
    "loopback_mtu": (68, 65536), "default_mtu": (68, 65536), "txqueuelen": (1, None),
    "ip_default_ttl": _TTL_RANGE, "udp_max_payload": (1, 65507), "somaxconn": (0, None),
    "sock_min_rcvbuf": (1, None), "sock_min_sndbuf": (1, None), "tcp_recovery": (0, 1),
    "tcp_early_retrans": (0, 4), "sched_slice_ns": (1, None),
}


def profile(p, source: str = "profile"):
    """Check every field of a :class:`~simsock.profiles.Profile`: type, sign and range;
    returns ``p``. ``source`` names where it came from (a file path) in the message."""
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        where = f"{source}: field {f.name}"
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if kind == "str":
            if not isinstance(v, str):
                raise TypeError(f"{where} must be a string, not {shown(v)}")
        elif kind == "bool":
            if not isinstance(v, bool):
                raise TypeError(f"{where} must be true or false, not {shown(v)}")
        elif kind == "int":
            _profile_int(v, where, *_RANGES.get(f.name, (0, None)))
        elif kind == "tuple":
            _profile_tuple(f.name, v, where)
    if p.tcp_congestion_control not in cc.available():
        raise ValueError(f"{source}: field tcp_congestion_control {p.tcp_congestion_control!r} is not an "
                         f"algorithm the simulator has (one of {', '.join(cc.available())})")
    return p


def _profile_int(v, where: str, lo: int, hi: int | None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer() and math.isfinite(v):
            raise TypeError(f"{where} must be an integer, not {v!r} (write {int(v)})")
        raise TypeError(f"{where} must be an integer, not {shown(v)}")
    if v < lo or (hi is not None and v > hi):
        expect = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{where} must be {expect}, got {v!r}")


def _profile_tuple(name: str, v, where: str) -> None:
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{where} must be a list, not {shown(v)}")
    if name in ("tcp_rmem", "tcp_wmem"):
        if len(v) != 3:
            raise ValueError(f"{where} must be [min, default, max] (3 byte counts, as the sysctl), got {list(v)!r}")
        for x in v:
            _profile_int(x, where, 1, None)
        if not v[0] <= v[1] <= v[2]:
            raise ValueError(f"{where} must be [min, default, max] with min <= default <= max, got {list(v)!r}")
    elif name == "ip_local_port_range":
        if len(v) != 2:
            raise ValueError(f"{where} must be [low, high] (2 ports), got {list(v)!r}")
        for x in v:
            _profile_int(x, where, 1, 65535)
        if v[0] > v[1]:
            raise ValueError(f"{where} must be [low, high] with low <= high, got {list(v)!r}")
    elif name == "udp_truesize_steps":
        last = -1
        for step in v:
            if not isinstance(step, (tuple, list)) or len(step) != 2:
                raise ValueError(f"{where} must be a list of [payload limit, truesize] pairs, got {step!r}")
            for x in step:
                _profile_int(x, where, 0, None)
            if step[0] <= last:
                raise ValueError(f"{where}: payload limits must increase, got {list(v)!r}")
            last = step[0]
    else:
        for x in v:
            if isinstance(x, (tuple, list)):
                for y in x:
                    _profile_int(y, where, 0, None)
            else:
                _profile_int(x, where, 0, None)
