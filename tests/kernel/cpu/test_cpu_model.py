"""The CPU model (simsock/kernel/cpu.py): cores, run queue, time slices, costs, accounting."""


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SOCK_DGRAM
from simsock.kernel.cpu import effective_slice_ns
from simsock.profiles import LINUX, without_cpu_costs

P = LINUX


def host(cores=1, **sim_kw):
    sim = simsock.Simulation(**sim_kw)
    return sim, sim.add_host("h", cores=cores)


def cpu_stats(sim, name="h"):
    return sim.stats()["hosts"][name]["cpu"]


async def spin_until(k, port, end_s, counter):
    """A non-blocking recv loop with nothing to read (C6.5)."""
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.setblocking(False)
    while k.now < end_s:
        try:
            await s.recv(100)
        except BlockingIOError:
            counter[0] += 1


def test_blocked_thread_uses_no_cpu():
    """C1.2: a thread blocked in recv for 2 s uses only the cost of its calls (a few us),
    and the core is idle the rest of the time."""
    sim, h = host()

    async def reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        s.settimeout(2.0)
        with pytest.raises(TimeoutError):
            await s.recv(100)

    t = h.spawn(reader)
    sim.run(until=3)
    assert t.state == "exited"
    assert t.cpu_ns == 4 * P.syscall_ns            # socket, bind, settimeout, recv
    cpu = cpu_stats(sim)
    assert cpu["busy_ns"] == t.cpu_ns
    assert cpu["idle_ns"] == 3_000_000_000 - t.cpu_ns


def test_busy_poll_burns_a_core_and_time_advances():
    """C6.5: a loop of non-blocking recv that all return EAGAIN holds its core ~100% while
    simulated time advances (the loop ends when k.now reaches 1 s)."""
    sim, h = host()
    n = [0]
    t = h.spawn(spin_until, 5000, 1.0, n)
    sim.run(until=2)
    assert t.state == "exited"
    cpu = cpu_stats(sim)
    assert 1.0e9 <= cpu["busy_ns"] <= 1.0e9 + sim.cpu_batch_ns + P.sched_slice_ns
    _, used = h.cpu.utilisation(1_000_000_000)
    assert min(used) > 0.99                        # every 10 ms bin of the first second
    assert n[0] > 1000


def test_busy_poll_sees_data_as_soon_as_it_arrives():
    """A spinning thread notices a datagram within one batch of its arrival."""
    sim, h = host(cores=2)
    got = []

    async def poller(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        s.setblocking(False)
        while not got:
            try:
                await s.recv(100)
                got.append(k.now_ns)
            except BlockingIOError:
                pass

    async def sender(k):
        await k.sleep(0.3)
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x", ("127.0.0.1", 5000))

    h.spawn(poller)
    h.spawn(sender)
    sim.run(until=1)
    assert got and 300_000_000 <= got[0] <= 300_000_000 + 2 * sim.cpu_batch_ns


def test_two_cpu_bound_threads_share_one_core_in_slices():
    """On one core, two threads each computing 100 ms both progress: they finish within a
    slice of each other at ~200 ms, with ~elapsed / slice involuntary switches."""
    sim, h = host()
    done = {}

    async def hog(k, name):
        for _ in range(20):
            await k.compute("5ms")
        done[name] = k.now_ns

    a = h.spawn(hog, "a")
    b = h.spawn(hog, "b")
    sim.run()
    slice_ns = effective_slice_ns(P.sched_slice_ns, 1)
    assert abs(done["a"] - done["b"]) <= slice_ns + P.context_switch_ns
    assert 200_000_000 <= max(done.values()) <= 200_000_000 + 300 * P.context_switch_ns
    switches = a.nivcsw + b.nivcsw
    expected = 200_000_000 / slice_ns
    assert 0.9 * expected <= switches <= 1.1 * expected
    assert a.nvcsw == b.nvcsw == 0
    assert cpu_stats(sim)["core_changes"] == switches + 1 or cpu_stats(sim)["core_changes"] == switches


def test_cpu_bound_threads_run_in_parallel_on_two_cores():
    """Two cores: two 50 ms computations end at 50 ms, neither preempted."""
    sim, h = host(cores=2)
    a = h.spawn(lambda k: k.compute("50ms"))
    b = h.spawn(lambda k: k.compute("50ms"))
    sim.run()
    assert sim.now_ns == 50_000_000
    assert a.nivcsw == b.nivcsw == 0
    assert cpu_stats(sim)["per_core_busy_ns"] == [50_000_000, 50_000_000]


def test_slice_scales_with_cores_like_linux():
    """sysctl_sched_base_slice x (1 + ilog2(min(cores, 8)))."""
    assert [effective_slice_ns(750_000, c) for c in (1, 2, 3, 4, 8, 64)] == \
        [750_000, 1_500_000, 1_500_000, 2_250_000, 3_000_000, 3_000_000]


def test_wakeup_latency_and_context_switch_cost_on_one_core():
    """A datagram over loopback wakes the blocked reader wakeup_ns later; the core changes
    from the sender to the reader, which costs the reader context_switch_ns."""
    sim, h = host()
    seen = []

    async def reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        await s.recv(100)
        seen.append(k.now_ns)

    async def sender(k):
        await k.sleep(0.001)
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x" * 1000, ("127.0.0.1", 5000))
        seen.append(k.now_ns)

    r = h.spawn(reader)
    s = h.spawn(sender)
    sim.run()
    sent_at = seen[0]
    assert seen[1] == sent_at + P.wakeup_ns
    assert r.wakeups == 1 and r.nvcsw == 1
    # reader: socket, bind, recv (100 bytes copied), one switch back onto the core (it
    # started on an unused core: no switch)
    assert r.cpu_ns == 3 * P.syscall_ns + 100 * P.copy_ps_per_byte // 1000 + P.context_switch_ns
    assert s.cpu_ns == 2 * P.syscall_ns + 1000 * P.copy_ps_per_byte // 1000 + P.context_switch_ns


def test_zero_costs_make_calls_free():
    """With without_cpu_costs() a program's calls take no simulated time and no CPU."""
    sim, h = host(profile=without_cpu_costs())
    seen = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        for _ in range(1000):
            await s.sendto(b"x", ("127.0.0.1", 5000))
            await s.recv(10)
        seen.append(k.now_ns)

    t = h.spawn(prog)
    sim.run()
    assert seen == [0] and t.cpu_ns == 0


def test_sleep_starts_after_the_work_is_paid():
    """compute then sleep: the thread is away for work + sleep; calls before a sleep delay it
    by their cost."""
    sim, h = host()
    seen = []

    async def prog(k):
        await k.compute("2ms")
        await k.sleep("1ms")
        seen.append(k.now_ns)
        _s = k.socket(AF_INET, SOCK_DGRAM)   # one system call, charged before the next sleep
        await k.sleep("1ms")
        seen.append(k.now_ns)
        assert k.cpu_time == pytest.approx((2_000_000 + P.syscall_ns) / 1e9)

    h.spawn(prog)
    sim.run()
    assert seen == [3_000_000, 4_000_000 + P.syscall_ns]


def test_compute_rejects_bad_durations():
    """k.compute takes seconds or a string like k.sleep, and says what was wrong."""
    sim, h = host()
    errors = []

    async def prog(k):
        for bad in ("fast", -1.0):
            try:
                await k.compute(bad)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))

    h.spawn(prog)
    sim.run()
    assert len(errors) == 2 and all("compute time" in e for e in errors)


def test_many_plain_calls_before_blocking_are_paid_preemptibly():
    """A large debt from plain calls (no await) is paid as a burst, then the thread waits."""
    sim, h = host()

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(1000):
            s.getsockname()
        await k.sleep(0)
        return k.now_ns

    t = h.spawn(prog)
    sim.run()
    # socket + 1000 getsockname + the sleep(0) itself, a yield that costs a system call (sched_yield)
    assert t.result == 1002 * P.syscall_ns and t.bursts == 1


def test_run_queue_waits_for_a_core():
    """Three threads wake at once on one core: they run one after another, each paying a
    context switch; stats count wake-ups and switches."""
    sim, h = host()
    ends = []

    async def worker(k, i):
        await k.sleep("1ms")
        await k.compute("1ms")
        ends.append((i, k.now_ns))

    for i in range(3):
        h.spawn(worker, i)
    sim.run()
    assert [i for i, _ in ends] == [0, 1, 2]
    assert ends[2][1] >= 4_000_000
    cpu = cpu_stats(sim)
    assert cpu["wakeups"] == 3 and cpu["voluntary_switches"] == 3
    assert cpu["threads_peak"] == 3 and cpu["threads_alive"] == 0


def _workload(sim, h, plan):
    async def prog(k, steps, port):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        s.settimeout(0.002)
        for kind, amount in steps:
            if kind == "compute":
                await k.compute(amount * 1e-5)
            elif kind == "sleep":
                await k.sleep(amount * 1e-5)
            elif kind == "recv":
                try:
                    await s.recv(10)
                except TimeoutError:
                    pass
            elif kind == "send":
                await s.sendto(b"y" * (amount * 100), ("127.0.0.1", 6000 + (port + 1) % 6))
            else:
                s.setblocking(False)
                for _ in range(amount * 5):
                    try:
                        await s.recv(10)
                    except BlockingIOError:
                        pass
                s.settimeout(0.002)
    for i, steps in enumerate(plan):
        h.spawn(prog, steps, 6000 + i)


step = st.tuples(st.sampled_from(["compute", "sleep", "recv", "send", "spin"]), st.integers(0, 300))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cores=st.integers(1, 4), plan=st.lists(st.lists(step, max_size=8), min_size=1, max_size=6),
       probes=st.lists(st.integers(1, 20_000_000), min_size=1, max_size=6))
def test_cpu_time_is_conserved(cores, plan, probes):
    """At any instant, per host: each core's busy time is between 0 and the elapsed time and
    grows no faster than time; busy + idle = elapsed x cores; the threads' CPU time adds up
    to the cores' busy time; the utilisation bins add up to the busy time."""
    sim, h = host(cores=cores)
    _workload(sim, h, plan)
    last = [0] * cores
    last_t = 0
    for t in sorted(set(probes)) + [60_000_000]:
        sim.run(until=t / 1e9)
        now = sim.now_ns
        busy = [c.busy_at(now) for c in h.cpu.cores]
        for i, b in enumerate(busy):
            assert 0 <= b <= now
            assert 0 <= b - last[i] <= now - last_t
        cpu = cpu_stats(sim)
        assert cpu["busy_ns"] + cpu["idle_ns"] == now * cores
        threads_cpu = sum(th.cpu_ns - max(0, th.run_until - now) for th in h.threads)
        assert threads_cpu == sum(busy)
        last, last_t = busy, now
    sim.run()
    # (a thread's last debt may extend past the last event: compare committed totals)
    assert sum(sum(c.bins.bins) for c in h.cpu.cores) == sum(c.busy_ns for c in h.cpu.cores)


def _stats_of_run(seed):
    sim, h = host(cores=2, seed=seed)
    _workload(sim, h, [[("compute", 50), ("send", 3), ("recv", 0)], [("spin", 4), ("recv", 1)],
                       [("sleep", 10), ("send", 5), ("compute", 200)]])
    sim.run(until=0.05)
    return sim.stats()["hosts"]["h"]["cpu"], [(t.cpu_ns, t.nvcsw, t.nivcsw) for t in h.threads]


def test_deterministic():
    """The same world twice gives identical CPU accounting."""
    assert _stats_of_run(3) == _stats_of_run(3)


def test_thread_handle_reports_cpu():
    """ThreadHandle exposes cpu_time, context switches and wake-ups."""
    sim, h = host()
    out = {}

    async def child(k):
        await k.compute("3ms")
        await k.sleep("1ms")

    async def parent(k):
        handle = k.spawn(child)
        await handle.join()
        out.update(cpu=handle.cpu_time, sw=handle.context_switches, wake=handle.wakeups)

    h.spawn(parent)
    sim.run()
    assert out["cpu"] == pytest.approx(0.003 + P.context_switch_ns / 1e9)
    assert out["sw"] == {"voluntary": 1, "involuntary": 0} and out["wake"] == 1


def test_cpu_batch_setting_validates():
    """Simulation(cpu_bin=...) must be positive; both accept durations as strings."""
    with pytest.raises(ValueError, match="cpu_bin"):
        simsock.Simulation(cpu_bin=0)
    sim = simsock.Simulation(cpu_batch="5us", cpu_bin="1ms")
    assert sim.cpu_batch_ns == 5000 and sim.cpu_bin_ns == 1_000_000


@pytest.mark.parametrize("mechanism", ["select", "poll", "epoll"])
def test_zero_timeout_notification_loop_is_spinning(mechanism):
    """A loop of select/poll/epoll with a zero timeout that finds nothing ready burns its
    core like an EAGAIN loop, and is fast-forwarded the same way (few calls per quiet
    interval), while one that finds a ready socket counts as progress."""
    sim, h = host()
    n = [0]

    async def poller(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 5000))
        if mechanism == "poll":
            p = k.poll()
            p.register(s, simsock.POLLIN)        # a UDP socket is always writable
        elif mechanism == "epoll":
            p = k.epoll()
            p.register(s, simsock.EPOLLIN)
        while k.now < 1.0:
            n[0] += 1
            if mechanism == "select":
                await k.select([s], [], [], 0)
            elif mechanism == "poll":
                await p.poll(0)
            else:
                await p.poll(0)

    t = h.spawn(poller)
    sim.run(until=2)
    assert t.state == "exited"
    cpu = cpu_stats(sim)
    assert 1.0e9 <= cpu["busy_ns"] <= 1.0e9 + sim.cpu_batch_ns + P.sched_slice_ns
    # one second of 0.5 µs calls would be ~2 million; spinning is fast-forwarded
    assert 100 < n[0] < 200_000
