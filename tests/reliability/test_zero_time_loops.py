"""Loops that never let simulated time pass end with a clear error, never a silent hang (issue 13.2).

Where a real kernel lets time go on, so does the simulator: ``sleep(0)`` is a yield that costs a
system call (sched_yield), ``compute(0)`` in a loop spins until the next event, a join()
costs a call. What cannot take time in a simulation — a loop of calls that complete at once
under ``profiles.without_cpu_costs()``, or of plain calls — is stopped by the watchdog
(simsock/kernel/watchdog.py) with a SimulationError that names the thread, the line it loops
on and what to write instead. The limits are lowered here so that each case takes a moment.
"""

import signal

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM
from simsock import sim as _sim
from simsock.kernel import kernel as _kernel
from simsock.kernel import socket as _socket
from simsock.kernel import thread as _thread
from simsock.kernel import watchdog
from tests.worlds import NO_CPU_COSTS, run_alone


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    for mod in (watchdog, _socket, _thread, _kernel):
        if hasattr(mod, "STEP_CALL_LIMIT"):
            monkeypatch.setattr(mod, "STEP_CALL_LIMIT", 20_000)
    monkeypatch.setattr(_sim, "SAME_TIME_EVENT_LIMIT", 20_000)

    def hung(*_):
        raise AssertionError("the run hung (no watchdog)")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)             # a guard against a regression hanging the suite, not a timing
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _run(prog, costs=True, until=0.01):
    return run_alone(prog, until=until, profile="linux" if costs else NO_CPU_COSTS)


def _stuck(prog, costs=True) -> str:
    with pytest.raises(simsock.SimulationError) as info:
        _run(prog, costs)
    msg = str(info.value)
    assert "simulated time stopped" in msg and "thread 'prog' on host 'a'" in msg
    assert "test_zero_time_loops.py:" in msg             # the program's own line
    return msg


async def _sleep0(k):
    while True:
        await k.sleep(0)


def test_sleep0_loop_yields_and_time_advances_with_cpu_costs():
    """With CPU costs, sleep(0) is a yield that costs a system call: the loop lets time reach until=."""
    sim, _ = _run(_sleep0)
    assert sim.now == 0.01


def test_sleep0_loop_without_cpu_costs_is_stopped_with_advice():
    """Without CPU costs a sleep(0) loop cannot let time pass: stopped, the message says what to write."""
    async def prog(k):
        await _sleep0(k)
    msg = _stuck(prog, costs=False)
    assert "sleep(0) only yields" in msg and "k.sleep('1ms')" in msg


def test_compute0_loop_spins_and_time_advances():
    """compute(0) in a loop spins like a busy loop: time advances, with and without CPU costs."""
    async def prog(k):
        while True:
            await k.compute(0)
    for costs in (True, False):
        sim, _ = _run(prog, costs)
        assert sim.now == 0.01


def test_repeated_join_of_finished_thread():
    """Joining a finished thread again and again: time advances with costs; without, a clear error."""
    async def child(k):
        return 1

    async def prog(k):
        h = k.spawn(child)
        await h.join()
        while True:
            await h.join()
    sim, _ = _run(prog)
    assert sim.now == 0.01
    msg = _stuck(prog, costs=False)
    assert "join() of a thread that has already finished" in msg


def test_spawn_loop_without_await_is_stopped():
    """k.spawn in a loop without an await never lets the threads run: stopped, named as such."""
    async def child(k):
        return 1

    async def prog(k):
        while True:
            k.spawn(child)
    kw = {}
    sim = simsock.Simulation(seed=1, **kw)
    h = sim.add_host("a")
    h.spawn(prog)
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until=0.01)
    for t in h.threads:          # the children that never ran: closed, so Python does not warn
        if t.state == "new":
            t.coro.close()
    msg = str(info.value)
    assert "thread 'prog' on host 'a'" in msg and "test_zero_time_loops.py:" in msg
    assert "k.spawn() in a loop" in msg


def test_plain_call_loop_is_stopped_even_if_the_program_catches_exceptions():
    """A loop of getsockname() (plain calls never wait) is stopped; except Exception does not hide it."""
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        while True:
            try:
                s.getsockname()
            except Exception:
                pass
    msg = _stuck(prog)
    assert "getsockname()" in msg and "never lets the simulation go on" in msg


def test_eagain_polling_loop_without_cpu_costs():
    """A non-blocking recv/EAGAIN loop advances time with CPU costs; without them it is stopped as busy polling."""
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 5000))
        s.setblocking(False)
        while True:
            try:
                await s.recv(100)
            except BlockingIOError:
                pass
    sim, _ = _run(prog)
    assert sim.now == 0.01
    msg = _stuck(prog, costs=False)
    assert "EAGAIN" in msg and "busy polling" in msg


def test_watchdog_does_not_fire_for_a_busy_but_moving_world():
    """Many calls that let time pass (30,000 with CPU costs, more than the lowered limit) are not a
    zero-time loop, nor a finite burst of calls at one instant below the limit."""
    async def prog(k, n):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5001))
        for _ in range(n):
            await s.sendto(b"x", ("127.0.0.1", 5001))
            await s.recv(10)
    for costs, n in ((True, 30_000), (False, 5_000)):
        _, t = _run(lambda k, n=n: prog(k, n), costs, until=10)
        assert t.state == "exited"
