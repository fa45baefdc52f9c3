"""Compact time series for what monitors watch: queue lengths, cwnd, bytes delivered.

A simulation may record millions of samples, so samples are kept in ``array.array`` columns
(8 bytes per time, 8 per value), never as one Python object per sample (DESIGN.md, "Speed").
Two shapes cover what experiments need:

- :class:`StepSeries` — a value that holds until it changes (queue occupancy, cwnd, state).
  ``record(now, value)`` stores a point only when the value changes, so a value set on every
  packet but rarely changing costs nothing. It answers ``at(t)``, ``time_average(t0, t1)``
  (the integral of the step function over the window), ``max()``.
- :class:`BinnedCounter` — amounts added into fixed time bins (bytes delivered per flow per
  100 ms), which become rates with ``rates_per_s()`` (throughput).

:func:`to_csv` writes several series side by side on one time axis, deterministically.
Times are integer nanoseconds.
"""

from __future__ import annotations

import csv
from array import array
from bisect import bisect_right
from typing import Iterable, Mapping

from simsock.units import NS_PER_S

__all__ = ["StepSeries", "BinnedCounter", "to_csv"]

_TYPECODES = ("q", "d")


def _check_time(now, what: str = "now") -> int:
    if isinstance(now, bool) or not isinstance(now, int):
        raise TypeError(f"{what} must be an int number of nanoseconds, not {type(now).__name__} {now!r}")
    return now


class StepSeries:
    """A piecewise-constant value recorded at its changes.

    ``typecode`` is ``"q"`` for integer values (64-bit) or ``"d"`` for floats. Times must not
    decrease. Recording the value already held is skipped; recording twice at the same time
    keeps the later value (the earlier one held for zero time). O(1) amortised per record.
    """

    __slots__ = ("name", "times", "values")

    def __init__(self, typecode: str = "q", name: str = "") -> None:
        if typecode not in _TYPECODES:
            raise ValueError(f"typecode must be 'q' (integers) or 'd' (floats), got {typecode!r}")
        self.name = name
        self.times = array("q")
        self.values = array(typecode)

    def record(self, now: int, value) -> None:
        """The value is ``value`` from ``now`` on."""
        times, values = self.times, self.values
        if times:
            if value == values[-1]:
                return
            last = times[-1]
            if now == last:
                # Overwrite: the previous value never held. Drop the point entirely if the
                # value returns to the one before it, so stored points are always changes.
                if len(values) > 1 and values[-2] == value:
                    times.pop()
                    values.pop()
                else:
                    values[-1] = value
                return
            if now < last:
                raise ValueError(f"time went backwards: record at {now} after {last}")
        times.append(_check_time(now))
        values.append(value)

    def __len__(self) -> int:
        return len(self.times)

    def at(self, t: int, default=None):
        """The value holding at time ``t`` (the last recorded at or before ``t``), or
        ``default`` if ``t`` precedes the first record."""
        i = bisect_right(self.times, t)
        return self.values[i - 1] if i else default

    def time_average(self, t0: int, t1: int) -> float:
        """Mean of the step function over ``[t0, t1]``: integral / (t1 - t0).

        The series must have a value at ``t0``. With ``t0 == t1`` this is ``at(t0)``.
        Integer series integrate exactly (Python ints) before the one division.
        """
        if t1 < t0:
            raise ValueError(f"time_average needs t0 <= t1, got t0={t0}, t1={t1}")
        times, values = self.times, self.values
        i = bisect_right(times, t0)
        if i == 0:
            raise ValueError(f"no value at t0={t0}: the first record is at "
                             f"{times[0] if times else 'never (empty series)'}")
        if t1 == t0:
            return float(values[i - 1])
        total = 0
        start, value = t0, values[i - 1]
        n = len(times)
        while i < n and times[i] < t1:
            total += value * (times[i] - start)
            start, value = times[i], values[i]
            i += 1
        total += value * (t1 - start)
        return total / (t1 - t0)

    def max(self):
        """Largest value recorded."""
        if not self.values:
            raise ValueError("max() of an empty StepSeries")
        return max(self.values)

    def to_lists(self) -> tuple[list[int], list]:
        """``(times, values)`` as plain lists (for JSON results and plotting)."""
        return self.times.tolist(), self.values.tolist()

    def __repr__(self) -> str:
        return f"StepSeries({self.name!r}, {len(self)} points)"


class BinnedCounter:
    """Amounts summed into bins of ``bin_ns`` nanoseconds, starting at time 0.

    Bin ``i`` covers ``[i * bin_ns, (i + 1) * bin_ns)``. Bins are stored densely from 0 to the
    last bin touched (one 8-byte slot each), so pick ``bin_ns`` for the run's length.
    ``typecode`` ``"q"`` for integer amounts (bytes, packets), ``"d"`` for floats.
    O(1) amortised per ``add``.
    """

    __slots__ = ("name", "bin_ns", "bins")

    def __init__(self, bin_ns: int, typecode: str = "q", name: str = "") -> None:
        if isinstance(bin_ns, bool) or not isinstance(bin_ns, int) or bin_ns <= 0:
            raise ValueError(f"bin_ns must be a positive int number of nanoseconds (e.g. 100_000_000 "
                             f"for 100 ms), got {bin_ns!r}")
        if typecode not in _TYPECODES:
            raise ValueError(f"typecode must be 'q' (integers) or 'd' (floats), got {typecode!r}")
        self.name = name
        self.bin_ns = bin_ns
        self.bins = array(typecode)

    def add(self, now: int, amount=1) -> None:
        """Add ``amount`` to the bin holding ``now``."""
        if now < 0:
            raise ValueError(f"now must not be negative, got {now}")
        i = now // self.bin_ns
        bins = self.bins
        if i >= len(bins):
            bins.frombytes(bytes(bins.itemsize * (i + 1 - len(bins))))     # zeros, without a list
        bins[i] += amount

    def _padded(self, until: int | None) -> list:
        values = self.bins.tolist()
        if until is not None:
            n = -(-until // self.bin_ns)   # bins needed to cover [0, until)
            values.extend([0] * (n - len(values)))
        return values

    def total(self):
        return sum(self.bins)

    def to_lists(self, until: int | None = None) -> tuple[list[int], list]:
        """``(bin start times, amounts)``; ``until`` pads with empty bins up to that time so
        that counters of one run line up."""
        values = self._padded(until)
        return [i * self.bin_ns for i in range(len(values))], values

    def rates_per_s(self, until: int | None = None) -> list[float]:
        """Each bin's amount per second (bytes -> bytes/s; multiply by 8 for bits/s)."""
        scale = NS_PER_S / self.bin_ns
        return [v * scale for v in self._padded(until)]

    def __repr__(self) -> str:
        return f"BinnedCounter({self.name!r}, bin_ns={self.bin_ns}, {len(self.bins)} bins)"


def to_csv(path, columns: Mapping[str, StepSeries | BinnedCounter]
           | Iterable[tuple[str, StepSeries | BinnedCounter]]) -> None:
    """Write series side by side: one ``time_ns`` column, then one column per series.

    Rows are the sorted union of every series' times (StepSeries change times, BinnedCounter
    bin starts). A StepSeries cell is its value at that time (empty before its first record);
    a BinnedCounter cell is the amount in the bin holding that time (0 outside its bins).
    Columns keep the given order; floats are written with ``repr`` (shortest round-trip), so
    the same series always give the same bytes.
    """
    items = list(columns.items()) if isinstance(columns, Mapping) else list(columns)
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"column names must be distinct, got {names}")
    times: set[int] = set()
    for name, series in items:
        if isinstance(series, StepSeries):
            times.update(series.times)
        elif isinstance(series, BinnedCounter):
            times.update(range(0, len(series.bins) * series.bin_ns, series.bin_ns))
        else:
            raise TypeError(f"column {name!r}: expected a StepSeries or BinnedCounter, "
                            f"not {type(series).__name__}")

    def cell(series, t: int) -> str:
        if isinstance(series, StepSeries):
            v = series.at(t)
        else:
            i = t // series.bin_ns
            v = series.bins[i] if i < len(series.bins) else 0
        return "" if v is None else repr(v)

    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["time_ns", *names])
        for t in sorted(times):
            writer.writerow([t, *(cell(series, t) for _, series in items)])
