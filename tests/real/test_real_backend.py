"""The real backend: simsock programs on the machine's own sockets, recorded like the simulator's.

Hosts share the loopback (127.0.0.1 is every host's own ``lo``; host N is also 127.0.1.N),
unless the world is built with ``namespaces=True``, where each host is a network namespace
and links are rate-limited veth pairs.
"""

import errno
import os
import select
import socket
import subprocess
import time

import pytest

from simsock.constants import AF_INET, EPOLLIN, SOCK_DGRAM, SOCK_STREAM
from simsock.errors import SimulationError
from simsock.real import RealWorld, namespaces_available

pytestmark = pytest.mark.real


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_udp_echo_between_two_hosts_by_name():
    """A host name in an address resolves through the world; each host is seen at its 127.0.1.N."""
    port = free_port(socket.SOCK_DGRAM)
    seen = {}

    async def server(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("server", port))
        data, addr = await s.recvfrom(100)
        seen["server got from"] = addr
        await s.sendto(data.upper(), addr)
        s.close()

    async def client(k):
        await k.sleep(0.05)
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"ping", ("server", port))
        seen["reply"] = await s.recvfrom(100)
        s.close()

    w = RealWorld()
    w.add_host("server").spawn(server)
    w.add_host("client").spawn(client)
    w.add_link("client", "server")   # hosts without a link cannot reach each other, as simulated
    w.run(until=3)
    assert seen["reply"] == (b"PING", ("127.0.1.1", port))
    assert seen["server got from"][0] == "127.0.1.2"


def test_names_resolve_through_the_world_table():
    got = {}

    async def prog(k):
        got["server"] = k.gethostbyname("server")
        got["me"] = k.gethostbyname("client")
        got["localhost"] = k.gethostbyname("localhost")
        s = k.socket(AF_INET, SOCK_DGRAM)
        with pytest.raises(socket.gaierror):
            await s.sendto(b"x", ("nosuchhost", 9))
        with pytest.raises(socket.gaierror):
            k.gethostbyname("nosuchhost")
        s.close()

    w = RealWorld()
    w.add_host("server")
    w.add_host("client").spawn(prog)
    w.run(until=2)
    assert got == {"server": "127.0.1.1", "me": "127.0.1.2", "localhost": "127.0.0.1"}


def test_recv_timeout_raises_timeout_error_and_is_traced_as_timeout():
    caught = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
        try:
            await s.recv(10)
        except TimeoutError as e:
            caught.append(e)
        s.close()

    w = RealWorld()
    w.add_host("a").spawn(prog)
    w.run(until=2)
    assert len(caught) == 1 and str(caught[0]) == "timed out"
    recv = [r for r in w.trace.syscalls() if r["call"] == "recv"]
    assert recv[0]["errno"] == "timeout" and recv[0]["result"] is None


def test_nonblocking_recv_and_accept_raise_eagain():
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        with pytest.raises(BlockingIOError) as info:
            await s.recv(10)
        assert info.value.errno == errno.EAGAIN
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)
        ls.setblocking(False)
        with pytest.raises(BlockingIOError):
            await ls.accept()
        s.close()
        ls.close()

    w = RealWorld()
    w.add_host("a").spawn(prog)
    w.run(until=2)
    errs = [(r["call"], r["errno"]) for r in w.trace.syscalls() if r["errno"]]
    assert errs == [("recv", "EAGAIN"), ("accept", "EAGAIN")]


def test_trace_records_have_the_simulators_shape():
    """One syscall record per call, keys in the trace's order, data as length and crc32,
    accepted sockets as {"fd": n}; threads are named after their function, as in the simulator."""
    port = free_port()

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", port))
        ls.listen(16)
        conn, addr = await ls.accept()
        h = k.spawn(echo, conn)
        await h.join()
        ls.close()

    async def echo(k, conn):
        while data := await conn.recv(4096):
            await conn.sendall(data)
        conn.close()

    async def client(k):
        await k.sleep(0.05)
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("server", port))
        await s.sendall(b"hello")
        assert await s.recv(100) == b"hello"
        s.shutdown(socket.SHUT_WR)
        assert await s.recv(100) == b""
        s.close()

    w = RealWorld()
    w.add_host("server").spawn(server)
    w.add_host("client").spawn(client)
    w.add_link("client", "server")   # hosts without a link cannot reach each other, as simulated
    w.run(until=3)
    recs = w.trace.syscalls()
    assert all(list(r) == ["t", "type", "host", "thread", "call", "fd", "args", "result", "errno"] for r in recs)
    assert [r["t"] for r in recs] == sorted(r["t"] for r in recs)
    threads = {(r["host"], r["thread"]) for r in recs}
    assert threads == {("server", "server"), ("server", "echo"), ("client", "client")}
    by = {r["call"]: r for r in recs if r["host"] == "server" and r["thread"] == "server"}
    conn_fd, peer = by["accept"]["result"]
    assert set(conn_fd) == {"fd"} and peer[0] == "127.0.1.2"
    assert by["bind"]["args"] == [["0.0.0.0", port]]
    assert by["listen"]["args"] == [16]
    send = next(r for r in recs if r["call"] == "sendall" and r["thread"] == "client")
    assert send["args"] == [{"len": 5, "crc32": 907060870}]
    echo_calls = [r["call"] for r in recs if r["thread"] == "echo"]
    assert echo_calls == ["recv", "sendall", "recv", "close"]
    assert all(r["fd"] == conn_fd["fd"] for r in recs if r["thread"] == "echo")


def test_select_poll_and_epoll_report_readable_sockets():
    async def prog(k):
        a = k.socket(AF_INET, SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = k.socket(AF_INET, SOCK_DGRAM)
        assert await k.select([a], [], [], 0) == ([], [], [])
        await b.sendto(b"x", a.getsockname())
        r, w, x = await k.select([a], [b], [], 1.0)
        assert r == [a] and w == [b] and x == []
        p = k.poll()
        p.register(a, select.POLLIN)
        assert await p.poll(1000) == [(a.fileno(), select.POLLIN)]
        ep = k.epoll()
        ep.register(a.fileno(), EPOLLIN)
        assert await ep.poll(1.0) == [(a.fileno(), EPOLLIN)]
        ep.close()
        with pytest.raises(OSError) as info:
            k.iocp(1)
        assert info.value.errno == errno.EOPNOTSUPP and "only in the simulator" in str(info.value)
        a.close()
        b.close()

    w = RealWorld()
    w.add_host("a").spawn(prog)
    w.run(until=3)
    calls = [r["call"] for r in w.trace.syscalls()]
    assert "select" in calls and "poll.poll" in calls and "epoll.poll" in calls
    ep_poll = next(r for r in w.trace.syscalls() if r["call"] == "epoll.poll")
    assert ep_poll["result"] == [[{"fd": ep_poll["result"][0][0]["fd"]}, EPOLLIN]]


def test_an_exception_in_a_thread_becomes_a_simulation_error_and_stops_the_rest():
    async def failing(k):
        await k.sleep(0.02)
        raise ValueError("boom")

    async def blocked(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        await s.recv(10)   # nobody sends: woken when the world stops

    w = RealWorld()
    h = w.add_host("a")
    h.spawn(failing)
    h.spawn(blocked)
    t0 = time.monotonic()
    with pytest.raises(SimulationError) as info:
        w.run(until=5)
    assert time.monotonic() - t0 < 2
    assert str(info.value).startswith("thread 'failing' on host 'a' failed at t=0.0")
    assert str(info.value).endswith("s: ValueError: boom")
    assert (info.value.thread, info.value.host) == ("failing", "a")
    assert isinstance(info.value.__cause__, ValueError)


def test_threads_still_running_at_the_bound_are_named_or_stopped():
    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        await ls.accept()

    async def sleeper(k):
        await k.sleep(60)

    w = RealWorld()
    h = w.add_host("a")
    h.spawn(server)
    h.spawn(sleeper)
    t0 = time.monotonic()
    with pytest.raises(SimulationError) as info:
        w.run(until=0.2)
    assert time.monotonic() - t0 < 1.5
    assert "server on host a (blocked in accept)" in str(info.value) and "sleeper on host a" in str(info.value)

    w = RealWorld()
    w.add_host("a").spawn(server)
    w.run(until=0.1, unfinished="stop")
    assert w.unfinished == ["server on host a"]
    assert [r["call"] for r in w.trace.syscalls()] == ["socket", "bind", "listen"]


def test_links_with_a_rate_need_namespaces_and_routers_do_not_exist():
    w = RealWorld()
    a, b = w.add_host("a"), w.add_host("b")
    w.add_link(a, b)   # hosts already share the loopback
    with pytest.raises(ValueError, match="namespaces=True"):
        w.add_link(a, b, rate="10Mbit")
    with pytest.raises(ValueError, match="namespaces=True"):
        w.add_link(a, b, delay="10ms")
    with pytest.raises(ValueError, match="no routers"):
        w.add_router("r")
    w.close()


# -- namespaces -----------------------------------------------------------------------------
_NS_OK, _NS_REASON = namespaces_available()
needs_ns = pytest.mark.skipif(not _NS_OK, reason=f"network namespaces unavailable: {_NS_REASON}")
RATE = 20_000_000   # bits per second


def _our_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"simsock-{os.getpid()}-")]


def _rate_world(server, client):
    w = RealWorld(namespaces=True)
    srv, cli = w.add_host("server"), w.add_host("client")
    w.add_link(cli, srv, rate=RATE)
    srv.spawn(server)
    cli.spawn(client)
    return w


@needs_ns
def test_namespace_link_limits_a_tcp_transfer_to_its_rate():
    """2.5 MB over a 20 Mbit/s token bucket takes about a second: goodput within 20%
    (TCP/IP headers take ~4% of the line)."""
    size = 2_500_000
    got = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5000))   # namespaces: every host has its own port space
        ls.listen()
        conn, addr = await ls.accept()
        got["peer"] = addr[0]
        n, t0 = 0, None
        while data := await conn.recv(65536):
            t0 = k.now if t0 is None else t0
            n += len(data)
        got["bytes"], got["rate"] = n, n * 8 / (k.now - t0)

    async def client(k):
        await k.sleep(0.05)
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("server", 5000))
        await s.sendall(b"x" * size)
        s.close()

    w = _rate_world(server, client)
    w.run(until=4)
    assert got["bytes"] == size and got["peer"] == w.hosts["client"].address
    assert 0.8 * RATE <= got["rate"] <= 1.2 * RATE, got
    assert _our_namespaces() == []


@needs_ns
def test_namespace_link_limits_a_udp_blast_to_its_rate():
    """A UDP blast through a 20 Mbit/s token bucket arrives at about 20 Mbit/s, never faster.

    Both programs are threads of this process, on a machine that may be busy: a receiver that
    is not scheduled for ~50 ms overflows a default receive buffer (~90 datagrams) and a
    sender that is not scheduled leaves the link idle, so the receiver asks for a large
    buffer and the lower bound only rules out a limit that is far too low (half the rate;
    bits taken for bytes would be 8x)."""
    got = {}

    async def server(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)    # capped at net.core.rmem_max
        s.bind(("0.0.0.0", 5000))
        s.settimeout(0.3)
        n, t0, t1 = 0, None, None
        try:
            while True:
                data = await s.recv(2000)
                t0 = k.now if t0 is None else t0
                t1 = k.now
                n += len(data) + 28   # IP + UDP headers occupy the line too
        except TimeoutError:
            pass
        got["rate"] = n * 8 / (t1 - t0)

    async def client(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await k.sleep(0.05)
        end = k.now + 0.8
        while k.now < end:
            try:
                await s.sendto(b"y" * 1400, ("server", 5000))
            except OSError:   # ENOBUFS when the qdisc is full
                pass
        s.close()

    # A busy machine can only starve one side; try up to three times (a wrong limit fails all).
    rates = []
    for _ in range(3):
        w = _rate_world(server, client)
        w.run(until=4)
        rates.append(got["rate"])
        assert _our_namespaces() == []
        if 0.5 * RATE <= got["rate"] <= 1.2 * RATE:
            break
    assert 0.5 * RATE <= rates[-1] <= 1.2 * RATE, rates


@needs_ns
def test_namespaces_refuse_delay_and_loss():
    w = RealWorld(namespaces=True)
    a, b = w.add_host("a"), w.add_host("b")
    with pytest.raises(ValueError, match="netem"):
        w.add_link(a, b, rate="10Mbit", delay="5ms")
    with pytest.raises(ValueError, match="netem"):
        w.add_link(a, b, loss=0.01)
    w.close()
    assert _our_namespaces() == []


def test_time_sleep_compute_settle_and_spawned_threads():
    """k.now counts from the run's start; compute burns CPU; settle returns once sockets are
    drained (bounded); a spawned thread's result comes back through join()."""
    seen = {}

    async def child(k, x):
        await k.sleep(0.02)
        return x * 2

    async def prog(k):
        t0 = k.now
        await k.compute(0.05)
        seen["compute"] = k.now - t0
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x" * 1000, ("127.0.0.1", 9))
        t1 = k.now
        await k.settle()
        seen["settle"] = k.now - t1
        h = k.spawn(child, 21)
        seen["join"] = await h.join()
        seen["host"], seen["thread"], seen["child"] = k.host, k.thread, h.name
        s.close()

    w = RealWorld()
    w.add_host("a").spawn(prog)
    w.run(until=3)
    assert seen["compute"] >= 0.05
    assert 0.02 <= seen["settle"] < 0.3
    assert (seen["join"], seen["host"], seen["thread"], seen["child"]) == (42, "a", "prog", "child")


def test_threads_are_named_like_the_simulators():
    """The function's name, then name-2, name-3 for more threads of it on the same host."""
    async def worker(k):
        pass

    w = RealWorld()
    a, b = w.add_host("a"), w.add_host("b")
    names = [a.spawn(worker).name, a.spawn(worker).name, a.spawn(worker, name="boss").name,
             a.spawn(worker).name, b.spawn(worker).name]
    w.run(until=2)
    assert names == ["worker", "worker-2", "boss", "worker-3", "worker"]
