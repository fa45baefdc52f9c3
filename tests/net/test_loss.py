"""Link loss models (Bernoulli, Gilbert–Elliott) and jitter."""

import math
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsock.net.loss import Bernoulli, GilbertElliott, Jitter

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "60"))


@pytest.mark.parametrize("p", [0.0, 0.001, 0.05, 0.5, 1.0])
def test_bernoulli_loss_rate_matches_p(p):
    """Over 200k seeded draws the loss rate is within 4 standard deviations of p."""
    model, rng, n = Bernoulli(p), random.Random(11), 200_000
    lost = sum(model.lose(rng) for _ in range(n))
    assert abs(lost / n - p) <= 4 * math.sqrt(p * (1 - p) / n)
    assert model.stats() == {"packets": n, "lost": lost, "loss_rate": lost / n}


def test_loss_models_draw_a_fixed_number_of_numbers_per_packet():
    """Bernoulli draws once and Gilbert–Elliott twice per packet, whatever the parameters,
    so changing a loss rate does not shift the random numbers later packets see."""
    for make, draws in ((lambda: Bernoulli(0.0), 1), (lambda: Bernoulli(1.0), 1),
                        (lambda: GilbertElliott(0.0, 1.0), 2), (lambda: GilbertElliott(0.3, 0.2, 0.1, 0.9), 2)):
        a, b, model = random.Random(5), random.Random(5), make()
        for _ in range(100):
            model.lose(a)
        for _ in range(100 * draws):
            b.random()
        assert a.random() == b.random()


def test_gilbert_elliott_mean_loss_matches_stationary_formula():
    """The long-run loss rate equals (p_bg loss_good + p_gb loss_bad) / (p_gb + p_bg)."""
    model, rng, n = GilbertElliott(0.02, 0.25, loss_good=0.01, loss_bad=0.6), random.Random(3), 400_000
    lost = sum(model.lose(rng) for _ in range(n))
    expected = (0.25 * 0.01 + 0.02 * 0.6) / 0.27
    assert model.stationary_loss_rate == pytest.approx(expected)
    assert lost / n == pytest.approx(expected, rel=0.05)
    assert model.stats()["bad_packets"] / n == pytest.approx(0.02 / 0.27, rel=0.05)


def test_gilbert_elliott_losses_are_bursty_with_mean_burst_one_over_p_bad_to_good():
    """With loss_bad = 1 and loss_good = 0 a loss burst is a stay in the bad state: mean
    length 1 / p_bad_to_good, far longer than Bernoulli's 1 / (1 - p) at the same rate."""
    model, rng = GilbertElliott(0.01, 0.2), random.Random(9)
    bursts, run = [], 0
    for _ in range(300_000):
        if model.lose(rng):
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert sum(bursts) / len(bursts) == pytest.approx(1 / 0.2, rel=0.05)
    rate = model.stats()["loss_rate"]
    assert rate == pytest.approx(0.01 / 0.21, rel=0.07)
    assert sum(bursts) / len(bursts) > 3 * (1 / (1 - rate))


@pytest.mark.parametrize("make, match", [
    (lambda: Bernoulli(1.5), "percentage"), (lambda: Bernoulli("1%"), "probability"),
    (lambda: GilbertElliott(0.1, -0.1), "p_bad_to_good"), (lambda: Jitter(0.002), "string"),
])
def test_loss_models_reject_bad_parameters(make, match):
    """Probabilities are numbers in [0, 1]; jitter takes int ns or a string like "2ms"."""
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@settings(max_examples=EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**32), reorder=st.booleans(),
       gaps=st.lists(st.integers(0, 3_000_000), min_size=1, max_size=100))
def test_jitter_bounded_and_keeps_fifo_order_unless_reorder(seed, reorder, gaps):
    """Each packet's extra delay is in [0, max] (plus any wait behind the previous packet);
    without reorder, arrival times never decrease."""
    jitter, rng = Jitter("2ms", reorder=reorder), random.Random(seed)
    base, last, arrivals = 0, 0, []
    for gap in gaps:
        base += gap
        extra = jitter.delay(rng, base, last)
        assert extra >= 0
        if reorder:
            assert extra <= 2_000_000
        else:
            assert extra <= max(2_000_000, last - base)
        last = base + extra
        arrivals.append(last)
    if not reorder:
        assert arrivals == sorted(arrivals)


def test_jitter_reorders_when_asked():
    """With reorder=True and back-to-back packets, some overtake their predecessor."""
    jitter, rng, last, arrivals = Jitter(2_000_000, reorder=True), random.Random(1), 0, []
    for i in range(100):
        last = i * 1000 + jitter.delay(rng, i * 1000, last)
        arrivals.append(last)
    assert arrivals != sorted(arrivals)
