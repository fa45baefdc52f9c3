"""The client workloads of models.clients: when updates leave, what the record says.

Each test runs a client against a small echo server on another host (1 ms each way) and
looks at what the server received: the updates' send times and sequence numbers (their
headers, :func:`models.clients.parse_update`) and when they arrived. Every call costs the
client some CPU time (the profile's syscall and copy costs), so intervals are checked to
within :data:`SLACK_NS`.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from models.clients import MIN_UPDATE, bulk_client, game_client, new_record, parse_update

PORT = 7100
SIZE = 64
SLACK_NS = 20_000       # CPU time of the calls around one interval, far below the gaps tested


def about(intervals, expected_ns) -> bool:
    return all(expected_ns <= x <= expected_ns + SLACK_NS for x in intervals)


async def echo_server(k, seen: list, *, swap_first_two: bool = False):
    """Echo every byte back; note ``(arrival ns, client id, seq, send ns)`` per update.
    ``swap_first_two``: hold the first update and send it back after the second."""
    ls = k.socket()
    ls.bind(("0.0.0.0", PORT))
    ls.listen(8)
    conn, _ = await ls.accept()
    buf = bytearray()
    held = None
    while data := await conn.recv(65536):
        buf += data
        while len(buf) >= SIZE:
            update = bytes(buf[:SIZE])
            del buf[:SIZE]
            seen.append((k.now_ns, *parse_update(update)))
            if swap_first_two and len(seen) == 1:
                held = update
                continue
            await conn.sendall(update)
            if held is not None:
                await conn.sendall(held)
                held = None
    conn.close()


def run(client, *, until=2.0, swap_first_two=False):
    """Run ``client(k, server_addr)`` against :func:`echo_server`; returns what the server saw."""
    sim = simsock.Simulation(seed=1, trace=())
    server = sim.add_host("server")
    host = sim.add_host("client")
    sim.add_link(host, server, rate="100Mbit", delay="1ms")
    seen: list = []
    server.spawn(functools.partial(echo_server, swap_first_two=swap_first_two), seen, name="server")
    host.spawn(client, ("server", PORT), name="client")
    sim.run(until=until)
    return seen


def test_burst_with_gap_sends_one_update_per_write_gap_apart():
    """``gap`` > 0: the updates of a burst leave one by one, ``gap`` apart (their send
    times say so), and with TCP_NODELAY each arrives on its own, ``gap`` after the last."""
    rec = new_record()
    seen = run(functools.partial(game_client, period=0.01, size=SIZE, count=6, burst=3, gap=0.001,
                                 nodelay=True, record=rec, client_id=7))
    sent_ns = [s[3] for s in seen]
    assert [s[2] for s in seen] == list(range(6))
    assert {s[1] for s in seen} == {7}
    assert about([b - a for a, b in zip(sent_ns, sent_ns[1:])][:2], 1_000_000)
    arrivals = [s[0] for s in seen[:3]]
    assert about([b - a for a, b in zip(arrivals, arrivals[1:])], 1_000_000)
    assert rec["sent"] == rec["received"] == 6 and rec["done"] == 1 and rec["errors"] == []


def test_without_nodelay_nagle_holds_the_second_small_write():
    """Without ``nodelay`` the second update of a gapped burst waits in the send buffer for
    the first one's ACK (Nagle, RFC 896): it arrives about one round trip after the first,
    not ``gap`` after it."""
    seen = run(functools.partial(game_client, period=0.05, size=SIZE, count=2, burst=2, gap=0.0001))
    delay = seen[1][0] - seen[0][0]
    assert delay >= 1_900_000          # a 2 ms round trip, not 0.1 ms
    seen_nodelay = run(functools.partial(game_client, period=0.05, size=SIZE, count=2, burst=2, gap=0.0001,
                                         nodelay=True))
    assert about([seen_nodelay[1][0] - seen_nodelay[0][0]], 100_000)


def test_one_write_per_burst_without_gap():
    """``gap`` 0: a burst is one write, every update in it stamped with the same send time."""
    seen = run(functools.partial(game_client, period=0.01, size=SIZE, count=4, burst=4, nodelay=True))
    assert len({s[3] for s in seen}) == 1
    assert [s[2] for s in seen] == [0, 1, 2, 3]


@settings(max_examples=8, deadline=None)
@given(burst=st.integers(1, 4), gap_us=st.integers(0, 2000), fixed_rate=st.booleans())
def test_period_is_between_burst_starts_only_with_fixed_rate(burst, gap_us, fixed_rate):
    """Invariant: with ``fixed_rate`` bursts start exactly ``period`` apart whatever the
    burst's own sending time (to within the CPU time of the calls); without it the client
    sleeps ``period`` after the burst's last write, so starts are ``period`` plus that time
    apart."""
    period_ns = 10_000_000
    seen = run(functools.partial(game_client, period=period_ns / 1e9, size=SIZE, count=3 * burst, burst=burst,
                                 gap=gap_us / 1e6, fixed_rate=fixed_rate, nodelay=True), until=1.0)
    starts = [s[3] for s in seen if s[2] % burst == 0]
    assert len(starts) == 3
    burst_time = (burst - 1) * gap_us * 1000 if gap_us else 0
    expected = period_ns if fixed_rate else period_ns + burst_time
    assert about([b - a for a, b in zip(starts, starts[1:])], expected)


def test_reply_order_errors_count_replies_behind_a_later_one():
    """An echo that returns update 0 after update 1 costs one reply-order error; the RTTs
    are still all measured."""
    rec = new_record()
    run(functools.partial(game_client, period=0.01, size=SIZE, count=4, burst=2, gap=0.0005, nodelay=True,
                          record=rec, samples=True), swap_first_two=True)
    assert rec["reply_order_errors"] == 1
    assert rec["received"] == 4 and len(rec["rtt_ns"]) == 4
    in_order = new_record()
    run(functools.partial(game_client, period=0.01, size=SIZE, count=4, burst=2, gap=0.0005, nodelay=True,
                          record=in_order))
    assert in_order["reply_order_errors"] == 0 and in_order["received"] == 4


def test_bulk_client_sends_everything_and_reads_the_echo():
    """All ``total`` bytes go out in ``chunk``-byte writes (the last one shorter), come back,
    and the client finishes."""
    rec = new_record()
    seen = run(functools.partial(bulk_client, total=100 * SIZE, chunk=1000, record=rec))
    assert len(seen) == 100
    assert rec["bytes_sent"] == rec["bytes_received"] == 100 * SIZE
    assert rec["connected"] == rec["done"] == 1 and rec["errors"] == []


@pytest.mark.parametrize("client", [functools.partial(game_client, count=1),
                                    functools.partial(bulk_client, total=1000)])
def test_a_refused_connection_is_recorded_not_raised(client):
    sim = simsock.Simulation(seed=1, trace=())
    sim.add_host("server")
    host = sim.add_host("client")
    sim.add_link(host, "server", rate="100Mbit", delay="1ms")
    rec = new_record()
    host.spawn(functools.partial(client, record=rec), ("server", PORT))
    sim.run(until=1.0)
    assert rec["errors"] == ["ECONNREFUSED"] and rec["connected"] == 0 and rec["done"] == 0


@pytest.mark.parametrize("kwargs, word", [({"size": MIN_UPDATE - 1}, "at least"), ({"period": 0}, "positive"),
                                          ({"gap": -1}, "gap")])
def test_bad_parameters_are_refused(kwargs, word):
    async def prog(k):
        await game_client(k, ("server", PORT), **kwargs)
    sim = simsock.Simulation(seed=1, trace=())
    sim.add_host("client").spawn(prog)
    with pytest.raises(Exception, match=word):
        sim.run(until=1.0)
