"""Conversions at the public edge: seconds and rates in, integer nanoseconds and bits out.

Inside simsock every time is an ``int`` number of nanoseconds (DESIGN.md, principle 1);
public calls accept a number of seconds (int or float) or a string with a unit, and convert
here, once. Rates are bits per second, sizes are bytes.
"""

from __future__ import annotations

import math
import re

NS_PER_S = 1_000_000_000

_TIME_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS_PER_S,
    "min": 60 * NS_PER_S, "m": 60 * NS_PER_S, "h": 3600 * NS_PER_S,
}
_RATE_UNITS = {
    "bit": 1, "bps": 1, "kbit": 10**3, "kbps": 10**3, "mbit": 10**6, "mbps": 10**6,
    "gbit": 10**9, "gbps": 10**9, "tbit": 10**12,
    "b": 8, "kb": 8 * 10**3, "mb": 8 * 10**6, "gb": 8 * 10**9,  # bytes per second (x8)
}
_SIZE_UNITS = {
    "b": 1, "": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "kib": 1024, "ki": 1024, "mib": 1024**2, "mi": 1024**2, "gib": 1024**3, "gi": 1024**3,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ/]*)\s*$")


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    m = _NUMBER_UNIT.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a {what}; write a number with a unit, e.g. {example!r}")
    return float(m.group(1)), m.group(2)


def _check_number(value, what: str, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number or a string like {example!r}, not {type(value).__name__}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def parse_time(value, *, what: str = "time") -> int:
    """Seconds (number) or a string such as ``"10ms"`` -> integer nanoseconds (rounded)."""
    if isinstance(value, str):
        number, unit = _split(value, what, "10ms")
        unit = unit.lower() if unit != "µs" else unit
        if unit == "":
            unit = "s"
        if unit not in _TIME_UNITS:
            raise ValueError(f"unknown time unit {unit!r} in {value!r}; use one of ns, us, ms, s, min, h "
                             f"(in {what})")
        ns = number * _TIME_UNITS[unit]
    else:
        ns = _check_number(value, what, "10ms") * NS_PER_S
    if ns < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return int(round(ns))


def parse_rate(value, *, what: str = "rate") -> int:
    """Bits per second (number) or a string such as ``"100Mbit"`` -> integer bits per second.

    A lower-case ``b`` is a bit and an upper-case ``B`` a byte, as in SI and IEC usage:
    ``bit``/``kbit``/``Mbit``/``Gbit`` (tc(8)'s spellings), ``Mb``, ``Mbps`` and ``Mbit/s``
    are bits per second; ``B``, ``kB``, ``MB``, ``MBps``, ``MB/s`` are bytes per second (x8).
    The prefix's case does not matter (``mbit`` = ``Mbit``).
    """
    if isinstance(value, str):
        number, unit = _split(value, what, "100Mbit")
        base = unit.removesuffix("/s").removesuffix("ps")
        if base.endswith("B") and base[:-1].lower() in ("", "k", "m", "g"):
            key = base.lower()                  # bytes per second
        else:
            key = base.lower()
            if key in ("", "bit", "bits", "b"):
                key = "bit"
            elif key.endswith("bits"):
                key = key[:-1]
            elif key.endswith("b"):
                key += "it"                     # Mb -> mbit
        if key not in _RATE_UNITS:
            raise ValueError(f"unknown rate unit {unit!r} in {value!r}; use bit, kbit, Mbit, Gbit (or kB, MB for "
                             f"bytes/s) (in {what})")
        bps = number * _RATE_UNITS[key]
    else:
        bps = _check_number(value, what, "100Mbit")
    if bps <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return int(round(bps))


def parse_size(value, *, what: str = "size") -> int:
    """Bytes (int) or a string such as ``"64KiB"`` -> integer bytes."""
    if isinstance(value, str):
        number, unit = _split(value, what, "64KiB")
        key = unit.lower()
        if key not in _SIZE_UNITS:
            raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KB, KiB, MB, MiB (in {what})")
        size = number * _SIZE_UNITS[key]
        if not float(size).is_integer():
            raise ValueError(f"{what} must be a whole number of bytes, got {value!r}")
    else:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{what} must be a whole number of bytes, got {value!r}")
        size = _check_number(value, what, "64KiB")
    if size < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return int(size)


def ns_to_s(ns: int) -> float:
    """Integer nanoseconds -> float seconds (for results and figures only)."""
    return ns / NS_PER_S


# Checks of numeric arguments shared by the world's values (simsock/validate.py) and the
# constructors of queue disciplines and loss models (simsock/net/), which validate.py builds.
def shown(value) -> str:
    """A value as an error message shows it: its type and repr."""
    return f"{type(value).__name__} {value!r}"


def positive_int(value, what: str, example: int) -> int:
    """An int >= 1 (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int (e.g. {example}), not {shown(value)}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return value


def ns_duration(value, what: str, example: str = "5ms") -> int:
    """A duration given as int nanoseconds or a string with a unit -> int nanoseconds.

    Floats are refused: inside simsock a bare number is nanoseconds here (queue disciplines
    and loss models), and ``0.005`` would be ambiguous (5 ms in seconds, or 0.005 ns?).
    """
    if isinstance(value, str):
        return parse_time(value, what=what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int number of nanoseconds or a string such as "
                        f"{example!r}, not {shown(value)}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return value
