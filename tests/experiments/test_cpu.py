"""The CPU experiments run with small parameters and their claims hold."""

import experiments.blocking_threads as blocking_threads
import experiments.busy_poll as busy_poll


def test_blocking_threads_claims_hold_small(tmp_path):
    """Thread per client with 5, 20, 60 clients for 1 s: one thread per client, switches
    and CPU grow about linearly, idle blocked threads cost only their calls."""
    params = dict(blocking_threads.PARAMS, clients=[5, 20, 60], duration=1.0, ramp=0.3)
    result = blocking_threads.run(params, 1)
    assert [str(c) for c in blocking_threads.check(result) if c.status != "PASS"] == []
    assert [r["threads_peak"] for r in result["runs"]] == [16, 31, 71]
    files = blocking_threads.plot(result, tmp_path)
    assert all(f.stat().st_size > 10_000 for f in files)


def test_blocking_threads_check_catches_a_cpu_burning_blocked_thread():
    """check() fails if an idle thread used CPU (the claim is stated in numbers)."""
    params = dict(blocking_threads.PARAMS, clients=[5, 20], duration=1.0, ramp=0.3)
    result = blocking_threads.run(params, 1)
    result["runs"][0]["idle_thread_cpu_ns"][0] = 1_000_000
    assert any(c.claim == "C1.2" and c.status == "FAIL" for c in blocking_threads.check(result))


def test_busy_poll_claims_hold_small(tmp_path):
    """Busy poll vs select with 6 clients over 1.5 s."""
    params = dict(busy_poll.PARAMS, clients=6, arrive_from=0.3, arrive_to=0.5, updates=4, duration=1.5)
    result = busy_poll.run(params, 1)
    assert [str(c) for c in busy_poll.check(result) if c.status != "PASS"] == []
    assert result["runs"]["busy_poll"]["idle_phase_utilisation"] == 1.0
    assert result["runs"]["select"]["idle_phase_utilisation"] < 1e-4
    files = busy_poll.plot(result, tmp_path)
    assert files[0].stat().st_size > 10_000


def test_busy_poll_is_deterministic():
    """Same parameters and seed, same result."""
    params = dict(busy_poll.PARAMS, clients=3, arrive_from=0.2, arrive_to=0.3, updates=2, duration=0.6)
    assert busy_poll.run(params, 2) == busy_poll.run(params, 2)
