"""The router experiments (router_congestion, qdisc_compare) run, their claims hold with small
parameters, they are deterministic, they draw their figures and GIF; and the measures they
share (experiments/_bottleneck.py) agree with their definitions."""

import importlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from experiments import _bottleneck as bn
from simsock import experiment
from simsock.timeseries import StepSeries

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "100"))

SMALL = {
    "router_congestion": {"duration": 3.0, "flood_start": 1.5, "warmup": 0.5, "settle": 0.3, "frames": 8},
    "qdisc_compare": {"duration": 5.0, "warmup": 1.5},
}


def _run(name, seed=1, **over):
    m = importlib.import_module(f"experiments.{name}")
    params = {**m.PARAMS, **SMALL[name], **over}
    return m, json.loads(json.dumps(m.run(params, seed), allow_nan=False))


@pytest.mark.parametrize("name", ["router_congestion", "qdisc_compare"])
def test_claims_hold_with_small_parameters(name):
    m, result = _run(name)
    assert [str(c) for c in m.check(result) if c.status != "PASS"] == []


def test_router_congestion_numbers_say_what_the_claims_say():
    """Phase 1: fair shares, few drops; phase 2: UDP has the link, TCP has (almost) nothing,
    the drops are UDP's. The check passes on these numbers, and fails when they are not so."""
    m, r = _run("router_congestion")
    p1, p2 = r["phases"]["tcp_alone"], r["phases"]["flood"]
    assert p1["jain_tcp"] > 0.9 and p1["share"][bn.FLOOD] == 0.0
    assert p2["share"][bn.FLOOD] > 0.9
    assert p2["drop_share_by_flow"][bn.FLOOD] > 0.75
    assert p2["drop_fraction"] > 0.3 > 0.02 > p1["drop_fraction"]
    # Conservation at the bottleneck port: what was offered was sent, dropped or is queued.
    offered = sum(r["bottleneck"]["offered"])
    dropped = sum(r["bottleneck"]["drops"])
    assert dropped <= offered
    # A "flood" at just 1.01x the link rate still takes the link from TCP (TCP backs off,
    # UDP does not), but the router no longer drops heavily: the check says so, with numbers.
    _, mild = _run("router_congestion", flood_factor=1.01)
    failures = [str(c) for c in m.check(mild) if c.status == "FAIL"]
    assert failures and all(f.startswith("C5.5") for f in failures)
    assert mild["phases"]["flood"]["share"][bn.FLOOD] > 0.9
    # TCP that kept its share would refute C5.7.
    kept = json.loads(json.dumps(r))
    kept["phases"]["flood"]["tcp_goodput_total_bps"] = kept["phases"]["tcp_alone"]["tcp_goodput_total_bps"] / 2
    assert any(c.status == "FAIL" and str(c).startswith("C5.7: TCP's total goodput during the flood / before = 50 %")
               for c in m.check(kept))


def test_bottleneck_record_adds_up_bin_by_bin():
    """The record comes from one run's monitor series; bin by bin they must agree with each
    other: every bottleneck drop is some flow's and has a reason, a drop-tail port drops no
    more than it was offered, r1 drops at least what its bottleneck port does, and bytes read
    by a TCP reader never run ahead of bytes delivered to its host."""
    record = bn.run_dumbbell(2, n_tcp=2, duration=2.0, bin_ms=25.0, bottleneck_rate="5Mbit",
                             bottleneck_delay="10ms", access_rate="50Mbit", access_delay="1ms", queue=20,
                             flood_factor=1.5, flood_start=1.0)
    n = record["n_bins"]
    bott = record["bottleneck"]
    flows = record["flows"]
    assert n == 80 and all(len(v) == n for v in (bott["offered"], bott["drops"], bott["utilisation"]))
    assert sum(bott["drops"]) > 0 and set(bott["drops_by_reason"]) == {"queue_full"}
    for k in range(n):
        assert bott["drops"][k] == sum(f["bottleneck_drops"][k] for f in flows) == \
            sum(v[k] for v in bott["drops_by_reason"].values())
        assert bott["drops"][k] <= bott["offered"][k]
        assert record["routers"]["r1"]["drops"][k] >= bott["drops"][k]
    for f in flows[:2]:
        read = delivered = 0
        for k in range(n):
            read, delivered = read + f["read"][k], delivered + f["delivered"][k]
            assert read <= delivered
        assert read > 0
    # r2 receives over the bottleneck what r1 sent on it (one bottleneck delay later)
    assert sum(record["routers"]["r2"]["received"]) > 0.9 * (sum(bott["offered"]) - sum(bott["drops"]))


def test_router_congestion_is_deterministic():
    _, a = _run("router_congestion", seed=3)
    _, b = _run("router_congestion", seed=3)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_qdisc_compare_refuses_an_aqm_that_does_not_manage_the_queue():
    """With RED's thresholds near the buffer size, RED promises nothing drop-tail does not
    already give: the check says there is nothing for it to remove. And a RED that missed
    its own bound is reported."""
    m, r = _run("qdisc_compare", red_min_th=150.0, red_max_th=199.0, duration=5.0)
    failed = [str(c) for c in m.check(r) if c.status == "FAIL" and c.claim == "C5.5"]
    assert len(failed) == 1 and failed[0].startswith("C5.5: drop-tail's standing delay (from ")
    assert "twice RED's bound" in failed[0]
    _, good = _run("qdisc_compare", duration=5.0)
    good["red_bound_ms"] = 1.0            # pretend RED promised 1 ms
    assert any(f.startswith("C5.5: RED's standing delay = ") and "expected <= 1 ms" in f
               for f in map(str, m.check(good)))


def test_router_congestion_writes_its_figures_and_gif(tmp_path):
    outcome = experiment.run_experiment("router_congestion", 1, SMALL["router_congestion"], tmp_path)
    assert outcome.passed, outcome.failures
    names = sorted(p.name for p in outcome.figures)
    assert names == sorted(importlib.import_module("experiments.router_congestion").FIGURES)
    for path in outcome.figures:
        with Image.open(path) as im:
            assert im.format == ("GIF" if path.suffix == ".gif" else "PNG")
            if im.format == "GIF":
                assert im.n_frames > 1
        assert path.stat().st_size < 2_000_000


def test_qdisc_compare_writes_its_figures(tmp_path):
    outcome = experiment.run_experiment("qdisc_compare", 1, SMALL["qdisc_compare"], tmp_path)
    assert outcome.passed, outcome.failures
    assert len(outcome.figures) == 3 and all(p.stat().st_size > 10_000 for p in outcome.figures)


def test_bad_parameters_are_refused_clearly():
    m = importlib.import_module("experiments.router_congestion")
    with pytest.raises(ValueError, match="flood_factor must be > 1"):
        m.run({**m.PARAMS, "flood_factor": 0.5}, 1)
    with pytest.raises(ValueError, match="warmup < flood_start < duration"):
        m.run({**m.PARAMS, "flood_start": 9.0}, 1)
    with pytest.raises(ValueError, match="datagram must be"):
        m.run({**m.PARAMS, "datagram": 9000}, 1)


# -- the shared measures ------------------------------------------------------------------

steps = st.lists(st.tuples(st.integers(1, 50), st.integers(0, 20)), min_size=1, max_size=30)


def _series(points):
    s = StepSeries()
    t = 0
    for gap, value in points:
        s.record(t, value)
        t += gap
    return s, t


@settings(max_examples=EXAMPLES, deadline=None)
@given(steps, st.data())
def test_step_stats_match_the_step_function(points, data):
    """The mean is StepSeries.time_average; quantile 0 is the smallest value held and 100 the
    largest; quantiles never decrease; every quantile is a value the series held."""
    s, end = _series(points)
    t0 = data.draw(st.integers(0, end))
    t1 = data.draw(st.integers(t0 + 1, end + 10))
    times, values = s.to_lists()
    stats = bn.step_stats(times, values, t0, t1)
    assert stats["mean"] == pytest.approx(s.time_average(t0, t1))
    held = [s.at(t) for t in range(t0, t1)]
    assert stats["quantiles"][0] == min(held) and stats["quantiles"][100] == max(held) == stats["max"]
    assert stats["quantiles"] == sorted(stats["quantiles"])
    assert set(stats["quantiles"]) <= set(held)


@settings(max_examples=EXAMPLES, deadline=None)
@given(steps, st.integers(1, 40))
def test_window_minima_are_brute_force_minima(points, width):
    s, end = _series(points)
    times, values = s.to_lists()
    got = bn.window_minima(times, values, 0, end + 5, width)
    want = [min(s.at(t) for t in range(k * width, (k + 1) * width)) for k in range((end + 5) // width)]
    assert got == want


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=20))
def test_jain_index_is_between_one_over_n_and_one(xs):
    j = bn.jain(xs)
    assert 1 / len(xs) - 1e-9 <= j <= 1 + 1e-9
    if len(set(xs)) == 1:
        assert j == pytest.approx(1.0)
