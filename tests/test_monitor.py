"""Compact time series: StepSeries, BinnedCounter, to_csv."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsock.timeseries import BinnedCounter, StepSeries, to_csv

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "100"))


def test_step_series_time_average_on_hand_examples():
    """0 for 10 ns, 4 for 30 ns, 2 for 60 ns -> (0*10 + 4*30 + 2*60) / 100 = 2.4; windows that
    start or end inside a step count only their part of it."""
    s = StepSeries()
    s.record(0, 0)
    s.record(10, 4)
    s.record(40, 2)
    assert s.time_average(0, 100) == 2.4
    assert s.time_average(20, 50) == (4 * 20 + 2 * 10) / 30
    assert s.time_average(50, 60) == 2.0
    assert s.time_average(10, 10) == 4.0
    assert s.max() == 4
    f = StepSeries("d")
    f.record(0, 0.5)
    f.record(2, 1.5)
    assert f.time_average(0, 4) == 1.0
    with pytest.raises(ValueError, match="no value"):
        s.time_average(-1, 5)


def test_step_series_stores_only_changes():
    """Recording the held value adds nothing; a value overwritten at the same instant never
    held, and a return to the previous value removes the point."""
    s = StepSeries()
    for t, v in [(0, 1), (5, 1), (7, 2), (7, 3), (9, 3), (12, 1), (12, 3)]:
        s.record(t, v)
    assert s.to_lists() == ([0, 7], [1, 3])
    with pytest.raises(ValueError, match="backwards"):
        s.record(3, 9)
    assert s.times.itemsize == 8 and s.times.typecode == "q"


@settings(max_examples=EXAMPLES, deadline=None)
@given(points=st.lists(st.tuples(st.integers(0, 50), st.integers(-3, 3)), max_size=60),
       probes=st.lists(st.integers(-5, 2000), max_size=30))
def test_step_series_at_is_the_last_value_recorded_at_or_before_t(points, probes):
    """For any records with non-decreasing times, at(t) is the value of the last record made
    at a time <= t (None before the first), and time_average equals the brute-force mean."""
    s, t, log = StepSeries(), 0, []
    for gap, value in points:
        t += gap
        s.record(t, value)
        log.append((t, value))
    for p in probes:
        before = [v for (tt, v) in log if tt <= p]
        assert s.at(p) == (before[-1] if before else None)
    if log and probes:
        t0 = log[0][0]
        t1 = t0 + abs(max(probes)) + 1
        brute = sum(s.at(x) for x in range(t0, t1)) / (t1 - t0)
        assert s.time_average(t0, t1) == pytest.approx(brute, abs=1e-12)


def test_binned_counter_rates():
    """Bytes added into 100 ms bins become bytes per second; padding aligns counters."""
    c = BinnedCounter(100_000_000)
    c.add(0, 1000)
    c.add(99_999_999, 500)
    c.add(250_000_000, 2000)
    assert c.to_lists() == ([0, 100_000_000, 200_000_000], [1500, 0, 2000])
    assert c.rates_per_s() == [15000.0, 0.0, 20000.0]
    assert c.to_lists(until=500_000_000)[1] == [1500, 0, 2000, 0, 0]
    assert c.total() == 3500
    with pytest.raises(ValueError, match="bin_ns"):
        BinnedCounter(0)


def test_to_csv_is_deterministic_and_aligned(tmp_path):
    """Columns in the given order on the union of times; empty before a series starts."""
    q = StepSeries(name="q")
    q.record(50, 3)
    q.record(150, 1)
    c = BinnedCounter(100)
    c.add(10, 7)
    c.add(120, 1)
    path = tmp_path / "out.csv"
    to_csv(path, {"queue": q, "bytes": c})
    first = path.read_bytes()
    assert first.decode().splitlines() == [
        "time_ns,queue,bytes", "0,,7", "50,3,7", "100,3,1", "150,1,1"]
    to_csv(path, [("queue", q), ("bytes", c)])
    assert path.read_bytes() == first
    with pytest.raises(TypeError, match="StepSeries"):
        to_csv(path, {"x": [1, 2]})
