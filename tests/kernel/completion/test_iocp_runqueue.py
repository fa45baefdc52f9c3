"""The IOCP concurrency limit with more threads than cores.

Windows counts a thread released by GetQueuedCompletionStatus as running from that moment
until it blocks again; being preempted or waiting for a core does not lower the port's
count, and a thread whose wait (elsewhere) ends counts again at once, before it gets a
core. These tests keep an independent account of which worker threads the port must
count — released by ``get`` and not blocked in another wait — and check the port against
it at every instant the port could release a thread.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock.kernel.thread import wait_event


def _run(cores: int, concurrency: int, workers: int, packets: list[int], cpu_us: list[int], sleep_us: list[int],
         until: float = 0.5):
    """``workers`` threads serve a port fed with one packet per entry of ``packets`` (µs
    between posts); each packet costs ``cpu_us`` of work, a blocking wait of ``sleep_us``,
    and more work. Returns the record of every release."""
    sim = simsock.Simulation(seed=5)
    host = sim.add_host("h", cores=cores)
    # runnable_counted: at moments the port could release a thread (a packet queued, a thread
    # waiting), how many released threads were waiting in the run queue — so a test can
    # show it exercised the case it is about.
    rec = {"releases": [], "violations": [], "runnable_counted": 0, "done": 0}
    in_get: dict = {}          # thread -> True while it is in get() (not counted)
    asleep: dict = {}          # thread -> True while blocked in the wait between the two works

    def truth(port):
        return sum(1 for t in in_get if not in_get[t] and not asleep.get(t, False) and t.state != "exited")

    def instrument(port):
        enter, release, waking = port._enter_get, port._release, port._wake_waiters

        def _enter_get(thread):
            enter(thread)
            in_get[thread] = True

        def _release(thread):
            now = sim.env.now
            should = truth(port)
            if should >= concurrency:
                rec["violations"].append(f"t={now}: released {thread.name} with {should} threads running or "
                                         f"runnable (limit {concurrency})")
            if port.active != should:
                rec["violations"].append(f"t={now}: port counts {port.active} active, truth is {should}")
            in_get[thread] = False
            packet = release(thread)
            rec["releases"].append((now, thread.name, port.active))
            return packet

        def _wake_waiters():
            if port.active != truth(port):
                rec["violations"].append(f"t={sim.env.now}: port counts {port.active} active, "
                                         f"truth is {truth(port)}")
            if port.queued and port.waiting_threads:
                # a moment the port could release a thread: count the runnable ones it holds back for
                rec["runnable_counted"] += sum(1 for t in in_get if not in_get[t] and t.state == "runnable")
            waking()

        port._enter_get, port._release, port._wake_waiters = _enter_get, _release, _wake_waiters

    async def worker(k, port, n):
        env = sim.env
        step = 0
        while True:
            await port.get()
            rec["done"] += 1
            step += 1
            await k.compute(cpu_us[(n + step) % len(cpu_us)] / 1e6)
            ev = env.timeout(sleep_us[(n + step) % len(sleep_us)] * 1000)
            me = sim.current_thread
            ev.callbacks.append(lambda _ev, me=me: asleep.__setitem__(me, False))    # before the thread's wake
            asleep[me] = True
            await wait_event(ev)
            await k.compute(cpu_us[(n + 2 * step) % len(cpu_us)] / 2e6)

    async def main(k):
        port = k.iocp(concurrency=concurrency)
        instrument(port)
        rec["port"] = port
        for n in range(workers):
            k.spawn(worker, port, n, name=f"worker{n}")
        for i, gap in enumerate(packets):
            await k.sleep(gap / 1e6)
            port.post(i)

    host.spawn(main)
    sim.run(until=until)
    return rec


def test_a_thread_waiting_for_a_core_counts_as_running():
    """One core, concurrency 1, three workers. worker0 takes packet 0 and sleeps; that lets
    worker1 take packet 1 and compute. worker0's sleep ends while worker1 holds the core, so
    worker0 waits in the run queue — and counts: when worker1 then blocks, the port must not
    release worker2 for the queued packet 2 (worker0 is runnable, the count is still 1)."""
    rec = _run(cores=1, concurrency=1, workers=3, packets=[10, 10, 10, 10, 10, 10],
               cpu_us=[100], sleep_us=[30])
    assert rec["violations"] == []
    assert rec["done"] == 6
    assert rec["runnable_counted"] > 0, "the scenario never had a released thread waiting for a core"
    # the limit is never exceeded by a release
    assert all(active <= 1 for _t, _name, active in rec["releases"])
    assert rec["port"].stats()["max_active_at_release"] == 1


def test_preempted_threads_keep_counting():
    """Long work on one core with concurrency 2 and four workers: threads are preempted at
    their slice end and wait in the run queue; each stays counted throughout."""
    rec = _run(cores=1, concurrency=2, workers=4, packets=[0] * 8, cpu_us=[9000, 7000], sleep_us=[50, 5])
    assert rec["violations"] == []
    assert rec["done"] == 8
    assert rec["runnable_counted"] > 0
    assert rec["port"].stats()["max_active_at_release"] <= 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cores=st.integers(1, 2), concurrency=st.integers(1, 3), extra=st.integers(1, 4),
       packets=st.lists(st.integers(0, 200), min_size=1, max_size=12),
       cpu_us=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
       sleep_us=st.lists(st.integers(5, 400), min_size=1, max_size=5))
def test_the_limit_holds_at_every_release_with_more_threads_than_cores(cores, concurrency, extra, packets,
                                                                      cpu_us, sleep_us):
    """Threads > cores: at every moment the port may release a thread, its active count
    equals the threads released and not blocked elsewhere (running, preempted or waiting
    for a core), and it releases only while that number is below the limit."""
    workers = cores + extra
    rec = _run(cores, concurrency, workers, packets, cpu_us, sleep_us, until=0.2)
    assert rec["violations"] == []
    assert rec["port"].stats()["max_active_at_release"] <= concurrency


def test_a_thread_paying_a_large_debt_before_it_blocks_still_counts():
    """A thread whose CPU debt exceeds the batch bound when it blocks first runs that debt
    as a (preemptible) burst — it is still running, so the port must not release another
    thread until the burst is over and the thread has really blocked."""
    from simsock.kernel.completion import charge_cpu

    sim = simsock.Simulation(seed=5)
    host = sim.add_host("h", cores=1)
    got = {}

    async def worker(k, port):
        await port.get()
        got.setdefault("released", []).append((k.thread, sim.env.now))
        charge_cpu(sim, 2_000_000)                        # 2 ms of work charged to this thread
        got.setdefault("blocks", []).append((k.thread, sim.env.now))
        await wait_event(sim.env.timeout(1_000_000))
        await k.sleep(1)

    async def main(k):
        port = k.iocp(concurrency=1)
        for n in range(2):
            k.spawn(worker, port, name=f"worker{n}")
        await k.sleep(0.001)
        port.post("a")
        port.post("b")

    host.spawn(main)
    sim.run(until=0.1)
    (first, t_first), (second, t_second) = got["released"]
    assert first != second
    # the second release waits for the first thread's 2 ms burst to end (it was running)
    assert t_second >= t_first + 2_000_000, got
