"""Simulated threads: failures, spawning, joining, sleeping, running in steps."""

import asyncio

import pytest

import simsock
from tests.worlds import NO_CPU_COSTS, one_host


def test_exception_in_thread_becomes_simulation_error():
    """A program that raises stops sim.run with SimulationError naming host, thread and the
    time; __cause__ is the original exception (same object)."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    original = KeyError("boom")

    async def bad(k):
        await k.sleep("5ms")
        raise original

    a.spawn(bad, name="worker")
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until="1s")
    err = info.value
    assert str(err) == "thread 'worker' on host 'a' failed at t=0.005000000s: KeyError: 'boom'"
    assert err.__cause__ is original
    assert err.host == "a" and err.thread == "worker"
    assert isinstance(err, RuntimeError)
    assert sim.now_ns == 5_000_000


def test_exception_at_start_names_default_thread_name():
    """Without name=, the thread is named after its function (second one gets '-2')."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    async def idle(k):
        await k.sleep(1)

    async def crash(k):
        raise ValueError("nope")

    a.spawn(idle)
    t2 = a.spawn(idle)
    assert t2.name == "idle-2"
    a.spawn(crash)
    with pytest.raises(simsock.SimulationError, match=r"^thread 'crash' on host 'a' failed at t=0.000000000s: "
                                                      r"ValueError: nope$") as info:
        sim.run(until="1s")
    assert isinstance(info.value.__cause__, ValueError)


def test_oserror_from_a_call_propagates_with_errno():
    """An unhandled OSError from a socket call is the __cause__, errno intact."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    async def prog(k):
        s = k.socket(simsock.AF_INET, simsock.SOCK_DGRAM)
        s.setblocking(False)
        s.bind(("127.0.0.1", 5000))
        await s.recv(10)

    a.spawn(prog)
    with pytest.raises(simsock.SimulationError, match="BlockingIOError") as info:
        sim.run(until="1s")
    assert isinstance(info.value.__cause__, BlockingIOError)
    assert info.value.__cause__.errno == 11


def test_asyncio_sleep_zero_gives_clear_error():
    """Awaiting asyncio.sleep(0) inside a program is reported clearly: the message says
    programs may only await simsock calls and names asyncio."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    async def prog(k):
        await asyncio.sleep(0)

    a.spawn(prog)
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until="1s")
    assert isinstance(info.value.__cause__, TypeError)
    assert "programs may only await simsock calls" in str(info.value.__cause__)
    assert "asyncio" in str(info.value)


def test_asyncio_sleep_positive_gives_clear_error():
    """Awaiting asyncio.sleep(0.1) (which needs a running asyncio loop) is also reported
    with a message that says asyncio does not run inside simsock, not just 'no running
    event loop'."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    async def prog(k):
        await asyncio.sleep(0.1)

    a.spawn(prog)
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until="1s")
    assert "simsock" in str(info.value) and "asyncio" in str(info.value), str(info.value)


def test_spawn_non_async_function_is_type_error():
    """spawn() of a plain function raises TypeError at once, explaining programs are async."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    def plain(k):
        return 1

    with pytest.raises(TypeError, match=r"^'plain' is not an async function: programs are 'async def f\(k, \.\.\.\)'"):
        a.spawn(plain)
    with pytest.raises(TypeError, match=r"^spawn\(\) needs an async function, got 5$"):
        a.spawn(5)
    with pytest.raises(TypeError, match="thread name must be a str, not int"):
        a.spawn(plain, name=3)


def test_k_spawn_and_join_returns_value():
    """k.spawn starts a thread on the same host; await handle.join() returns its value at
    the time it finishes."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    seen = []

    async def child(k, x, y):
        await k.sleep("7ms")
        return (k.host, x + y)

    async def parent(k):
        h = k.spawn(child, 2, 3, name="kid")
        assert h.name == "kid" and h.alive
        value = await h.join()
        seen.append((value, k.now_ns, h.alive))
        # joining a finished thread returns at once with the same value
        seen.append((await h.join(), k.now_ns))

    a.spawn(parent)
    sim.run(until="1s")
    assert seen == [(("a", 5), 7_000_000, False), (("a", 5), 7_000_000)]


def test_sleep_timing_exact():
    """k.sleep accepts strings and seconds; wake-ups are exact in ns."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    times = []

    async def prog(k):
        await k.sleep("10ms")
        times.append(k.now_ns)
        await k.sleep(0.0025)
        times.append(k.now_ns)
        await k.sleep(0)
        times.append(k.now_ns)
        await k.sleep("1ns")
        times.append(k.now_ns)
        times.append(k.now)

    a.spawn(prog)
    sim.run(until="1s")
    assert times == [10_000_000, 12_500_000, 12_500_000, 12_500_001, 0.012500001]


def test_sleep_negative_is_value_error():
    """k.sleep(-1) raises ValueError naming the sleep time."""
    sim, a = one_host(profile=NO_CPU_COSTS)

    async def prog(k):
        await k.sleep(-1)

    a.spawn(prog)
    with pytest.raises(simsock.SimulationError, match="sleep time must not be negative"):
        sim.run(until="1s")


def test_run_until_twice_continues():
    """sim.run(until=...) twice continues the same threads where they were."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    ticks = []

    async def ticker(k):
        while True:
            await k.sleep("100ms")
            ticks.append(k.now_ns // 1_000_000)

    a.spawn(ticker)
    sim.run(until="0.25s")
    assert ticks == [100, 200]
    sim.run(until="0.5s")
    assert ticks == [100, 200, 300, 400, 500]


def test_spawn_before_run_starts_at_zero_and_after_run_starts_at_now():
    """A thread spawned before run starts at t=0; one spawned between runs starts at the
    current time."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    starts = []

    async def prog(k):
        starts.append((k.thread, k.now_ns))

    a.spawn(prog, name="first")
    sim.run(until="2s")
    a.spawn(prog, name="second")
    sim.run(until="3s")
    assert starts == [("first", 0), ("second", 2_000_000_000)]


def test_threads_on_one_host_interleave_in_order():
    """Threads woken at the same instant run in the order they were scheduled (spawn order)."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    order = []

    async def prog(k, tag):
        for _ in range(2):
            await k.sleep("1ms")
            order.append((tag, k.now_ns))

    for tag in "xyz":
        a.spawn(prog, tag)
    sim.run(until="1s")
    assert order == [("x", 1_000_000), ("y", 1_000_000), ("z", 1_000_000),
                     ("x", 2_000_000), ("y", 2_000_000), ("z", 2_000_000)]


def test_thread_state_and_kernel_names():
    """k.host / k.thread name the running thread; host.stats() lists thread states."""
    sim, a = one_host(profile=NO_CPU_COSTS)
    seen = []

    async def prog(k):
        seen.append((k.host, k.thread, repr(k)))
        await k.sleep(10)

    a.spawn(prog, name="p")
    sim.run(until="1s")
    assert seen == [("a", "p", "<Kernel host='a' thread='p'>")]
    assert a.stats()["threads"] == {"p": "blocked"}
