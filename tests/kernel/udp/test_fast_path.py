"""The UDP call fast path (benchmarks/udp_blast.py) changes speed, never behaviour.

send/sendto/recv/recvfrom run their body as a plain function and create a coroutine only
when they must wait (kernel/socket.py, ``syscall_may_wait``); sendto caches the last
resolved destination. These tests pin what must stay as it was: the calls are coroutine
functions whose errors appear when awaited, an unawaited call does nothing, and the
destination cache never returns what parsing the address would not (CPython's errors
included, checked against a real socket).
"""

import inspect
import os
import socket as real_socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock
from simsock import AF_INET, SOCK_DGRAM
from simsock.kernel.udp import UdpSocket

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "40"))


def world(trace=False):
    sim = simsock.Simulation(seed=3, trace=trace)
    a = sim.add_host("a")
    b = sim.add_host("b")
    c = sim.add_host("c")
    sim.add_link(a, b, rate="1Gbit", delay="1ms")
    sim.add_link(a, c, rate="1Gbit", delay="1ms")
    return sim, a, b, c


def receivers(hosts, port, got):
    for h in hosts:
        async def rx(k, name=h.name):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.bind(("0.0.0.0", port))
            s.settimeout(0.05)
            try:
                while True:
                    data, src = await s.recvfrom(4096)
                    got.append((name, k.now_ns, data, src[1]))
            except TimeoutError:
                pass
        h.spawn(rx)


@pytest.mark.parametrize("name", ["send", "sendto", "recv", "recvfrom"])
def test_fast_calls_stay_coroutine_functions(name):
    method = getattr(UdpSocket, name)
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters)[0] == "self"


def test_unawaited_or_bad_calls_do_nothing_until_awaited():
    sim, a, b, _ = world(trace=True)
    out = {}

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        pending = s.sendto(b"x", ("b", 9))        # never awaited: sends nothing
        bad = s.sendto("text", ("b", 9))          # a bad argument raises only when awaited
        pending.close()
        try:
            await bad
        except TypeError as exc:
            out["error"] = str(exc)
        out["sent"] = s.sent_datagrams
        r = s.recv(-1)
        r.close()

    a.spawn(prog)
    sim.run()
    assert out == {"error": "a bytes-like object is required, not 'str'", "sent": 0}
    calls = [r["call"] for r in sim.trace.syscalls(host="a")]
    assert calls == ["socket", "sendto"]            # only the awaited call is recorded
    assert sim.stats()["hosts"]["a"]["ip"]["OutRequests"] == 0


def test_cached_destination_does_not_hide_a_bad_port():
    """After ("b", 9000) was sent to, ("b", 9000.0) (equal as a tuple) still raises as
    CPython does; the message is CPython's."""
    real = real_socket.socket(real_socket.AF_INET, real_socket.SOCK_DGRAM)
    try:
        real.sendto(b"x", ("127.0.0.1", 9))
        with pytest.raises(TypeError) as real_err:
            real.sendto(b"x", ("127.0.0.1", 9.0))
    finally:
        real.close()
    sim, a, b, _ = world()
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x", ("b", 9000))
        try:
            await s.sendto(b"x", ("b", 9000.0))
        except TypeError as exc:
            out.append(str(exc))

    a.spawn(prog)
    sim.run()
    assert out == [str(real_err.value)]


def test_mutable_host_in_address_is_resolved_again():
    """A bytearray host name changed between calls sends to the new name."""
    sim, a, b, c = world()
    got = []
    receivers([b, c], 7000, got)

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        name = bytearray(b"b")
        addr = (name, 7000)
        await s.sendto(b"1", addr)
        name[:] = b"c"
        await s.sendto(b"2", addr)

    a.spawn(prog)
    sim.run()
    assert sorted((h, d) for h, _, d, _ in got) == [("b", b"1"), ("c", b"2")]


address_forms = st.sampled_from(["same", "equal", "other", "ip", "bytes", "float", "short", "unknown"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms=st.lists(address_forms, min_size=1, max_size=25), trace=st.booleans(),
       connected=st.booleans())
def test_destination_cache_never_changes_results(forms, trace, connected):
    """Invariant: a sequence of sendto calls with any mix of address shapes gives the same
    outcomes, deliveries and trace with the destination cache as with the cache emptied
    before every call (the slow path)."""

    def run(use_cache):
        sim, a, b, c = world(trace=trace)
        got = []
        receivers([b, c], 7000, got)
        outcomes = []
        same = ("b", 7000)

        async def prog(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            if connected:
                await s.connect(("c", 7000))
            for i, form in enumerate(forms):
                addr = {"same": same, "equal": ("b", int("7000")), "other": ("c", 7000),
                        "ip": (b.address, 7000), "bytes": (b"c", 7000), "float": ("b", 7000.0),
                        "short": ("b",), "unknown": ("nohost", 7000)}[form]
                if not use_cache:
                    s._dest_cache = None
                try:
                    outcomes.append(await s.sendto(bytes([i]) * (i + 1), addr))
                except Exception as exc:
                    outcomes.append(repr(exc))
                if connected and i % 3 == 0:
                    outcomes.append(await s.send(b"connected"))
                await k.sleep(1e-5)

        a.spawn(prog)
        sim.run()
        records = list(sim.trace.records()) if trace else None
        return outcomes, got, records, sim.env.now

    assert run(True) == run(False)
