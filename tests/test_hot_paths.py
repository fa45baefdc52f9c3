"""The fast paths added for benchmarks/c10k.py keep the behaviour of the code they replace.

* TCP timers live in one heap per host with one SimPy event for all of them
  (kernel/tcp_stack.py ``_arm``): every connection's timer still fires at exactly its deadline,
  entries no longer needed cost no event, and many connections share one pending event.
* ``Simulation.run`` steps SimPy's queue itself (``sim._run_events``) and raises the young
  GC generation's threshold while it runs, restoring it afterwards.
* ``TcpConnection.recv_or_none`` is ``recv`` with None for EAGAIN.
"""

from __future__ import annotations

import gc
from functools import partial

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SOCK_STREAM
from simsock.sim import GC_YOUNG_THRESHOLD


class StubConn:
    """What TcpStack.pump and the timer heap use of a connection, with a settable deadline."""

    def __init__(self, i: int):
        self.local = ("10.0.0.1", 1000 + i)
        self.remote = ("10.0.0.2", 80)
        self.deadline = None
        self.finished = False
        self.signals = 0
        self.listener = None
        self.fired: list[int] = []

    def segments_to_send(self, now):
        return []

    def next_deadline(self):
        return self.deadline

    def handle_timer(self, now):
        assert self.deadline is not None and self.deadline <= now, (self.deadline, now)
        self.fired.append(now)
        self.deadline = None


def expected_fires(ops, n_conns, until):
    """Reference semantics: a timer fires at its deadline if nothing changed it before."""
    fires = {i: [] for i in range(n_conns)}
    current = {i: None for i in range(n_conns)}
    for t, i, d in sorted(ops, key=lambda o: o[0]):
        for j in range(n_conns):
            if current[j] is not None and current[j] < t:
                fires[j].append(current[j])
                current[j] = None
        current[i] = d
    for j in range(n_conns):
        if current[j] is not None and current[j] <= until:
            fires[j].append(current[j])
    return fires


# Operations at even nanoseconds, deadlines at odd ones: no ties between a change and a
# deadline, so the reference order is unambiguous.
op = st.tuples(st.integers(0, 500).map(lambda x: 2 * x), st.integers(0, 5),
               st.one_of(st.none(), st.integers(0, 300).map(lambda x: 2 * x + 1)))


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=40), st.booleans())
def test_timer_heap_fires_every_connection_exactly_at_its_deadline(ops, absolute_deadlines):
    """Random arming, re-arming (earlier or later) and stopping of six connections' timers:
    each fires exactly when the reference says, never early, never twice."""
    sim = simsock.Simulation(seed=1, trace=False)
    host = sim.add_host("h")
    stack = host.tcp
    conns = [StubConn(i) for i in range(6)]
    until = 2000
    # Deadlines are "now + offset": make them absolute for the reference.
    resolved = []
    for t, i, off in ops:
        d = None if off is None else t + off
        resolved.append((t, i, d))

    def apply(_ev, i, d):
        conns[i].deadline = d
        stack.pump(conns[i])

    # Same-time operations run in list order in both the simulation and the reference.
    for k, (t, i, d) in enumerate(sorted(resolved, key=lambda o: o[0])):
        ev = simpy.Event(sim.env)
        ev._ok, ev._value = True, None
        ev.callbacks.append(partial(apply, i=i, d=d))
        sim.env.schedule(ev, 1, t)
    sim.run(until=until / 1e9)
    want = expected_fires(resolved, len(conns), until)
    assert {i: c.fired for i, c in enumerate(conns)} == want
    # Entries still waiting belong to connections whose deadline is still ahead.
    for c in conns:
        if c.deadline is not None and c.deadline > until:
            assert stack.timer_at.get(c) is not None and stack.timer_at[c] <= c.deadline


def test_stopped_timers_cost_no_event():
    """100 connections arm a timer 200 ms out and stop it 2 ms later, 20 times over: the
    host schedules a handful of SimPy events for them, not one per arming."""
    sim = simsock.Simulation(seed=1, trace=False)
    host = sim.add_host("h")
    stack = host.tcp
    conns = [StubConn(i) for i in range(100)]
    scheduled = []
    original = stack._schedule_timers

    def counting(at, now):
        scheduled.append(at)
        original(at, now)

    stack._schedule_timers = counting

    def arm(_ev, c):
        c.deadline = sim.env.now + 200_000_000
        stack.pump(c)

    def stop(_ev, c):
        c.deadline = None
        stack.pump(c)

    for r in range(20):
        for i, c in enumerate(conns):
            t = r * 100_000_000 + i * 1000
            for delay, fn in ((t, arm), (t + 2_000_000, stop)):
                ev = simpy.Event(sim.env)
                ev._ok, ev._value = True, None
                ev.callbacks.append(partial(fn, c=c))
                sim.env.schedule(ev, 1, delay)
    sim.run(until=3.0)
    assert all(c.fired == [] for c in conns)
    assert len(scheduled) <= 20, len(scheduled)        # ~ one per 100 ms wave, not 2000
    assert not stack.timer_at


def _echo_world(n_clients: int, seconds: float):
    from models.clients import game_client, new_record
    from models.servers_readiness import epoll_et_server, new_server_record
    sim = simsock.Simulation(seed=1, trace=False)
    server = sim.add_host("server", cores=1)
    clients = sim.add_host("clients", cores=2)
    sim.add_link(server, clients, rate="1Gbit", delay="1ms")
    srec, crec = new_server_record(), new_record()
    server.spawn(partial(epoll_et_server, record=srec, size=100), 7200, name="srv")
    for i in range(n_clients):
        clients.spawn(partial(game_client, period=0.1, size=100, start_delay=0.01 + i / n_clients / 10,
                              record=crec), ("server", 7200), name=f"c{i}")
    sim.run(until=seconds)
    return sim, crec


def test_game_clients_need_few_events_per_update():
    """The c10k workload (benchmarks/c10k.py) in small: about 6.6 SimPy events per update
    (data, echo and ACK arrivals, two wake-ups, the client's sleep); it was 8.3 when every
    connection's retransmission timer had its own SimPy event."""
    sim, crec = _echo_world(50, 2.0)
    assert crec["errors"] == [] and crec["sent"] >= 900 and crec["received"] >= crec["sent"] - 50
    per_update = next(sim.env._eid) / crec["sent"]
    assert per_update < 7.2, per_update


def test_run_raises_gc_threshold_only_while_running():
    seen = []
    before = gc.get_threshold()
    sim = simsock.Simulation(seed=1, trace=False)
    host = sim.add_host("h")

    async def prog(k):
        seen.append(gc.get_threshold())
        await k.sleep(0.001)
        seen.append(gc.get_threshold())

    host.spawn(prog)
    sim.run()
    assert gc.get_threshold() == before
    if gc.isenabled() and 0 < before[0] < GC_YOUNG_THRESHOLD:
        assert seen == [(GC_YOUNG_THRESHOLD, *before[1:])] * 2


def test_run_until_includes_events_at_until_and_stops_the_clock_there():
    sim = simsock.Simulation(seed=1, trace=False)
    got = []
    for t in (5, 10, 10, 11):
        ev = sim.env.timeout(t)
        ev.callbacks.append(lambda _e, t=t: got.append((t, sim.env.now)))
    sim.run(until=10e-9)
    assert got == [(5, 5), (10, 10), (10, 10)] and sim.env.now == 10
    sim.run(until=20e-9)
    assert got[-1] == (11, 11) and sim.env.now == 20
    sim.run()
    assert sim.env.now == 20


def test_run_raises_a_failed_event_nobody_handled():
    sim = simsock.Simulation(seed=1, trace=False)
    ev = simpy.Event(sim.env)
    ev.fail(KeyError("boom"))
    with pytest.raises(KeyError, match="boom"):
        sim.run()


def test_recv_or_none_is_recv_without_the_eagain():
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="1Gbit", delay="1ms")
    out = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        s, _ = await ls.accept()
        conn = s.conn
        out["none"] = conn.recv_or_none(100, k.now_ns)
        with pytest.raises(BlockingIOError):
            conn.recv(100, k.now_ns)
        out["data"] = await s.recv(100)
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            await s.recv(100)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("b", 80))
        await k.sleep(0.01)
        await s.sendall(b"x" * 10)
        await k.sleep(0.1)

    b.spawn(server)
    a.spawn(client)
    sim.run()
    assert out == {"none": None, "data": b"x" * 10}
