"""SO_KEEPALIVE and tcp_orphan_retries as Linux has them (issue 13.7).

The real-kernel test runs the same sequence through a veth pair between two network
namespaces made here (root and ``ip`` needed, else it skips): keepalive 1/1/2 s, the
connection answered while idle, then the peer's replies dropped (a ``pfifo limit 0`` on the
peer's egress: a local drop at the prober would count as congestion and never time out).
Measured on Linux 6.18: the blocked recv fails with ETIMEDOUT 2.6 s after the cut, then recv
returns b"", send raises EPIPE and SO_ERROR is 0.
"""

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

import simsock
from simsock import (
    AF_INET,
    IPPROTO_TCP,
    SO_ERROR,
    SO_KEEPALIVE,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOL_SOCKET,
    TCP_KEEPCNT,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
)
from tests.reliability.test_blocking_calls import Cut


def _keepalive_world(idle=1, intvl=1, cnt=2, cut_at=2.5):
    out = {}
    cut = Cut()

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 7000))
        ls.listen(1)
        conn, _ = await ls.accept()
        await k.sleep(100_000)

    async def client(k):
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(("server", 7000))
        c.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        c.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, idle)
        c.setsockopt(IPPROTO_TCP, TCP_KEEPINTVL, intvl)
        c.setsockopt(IPPROTO_TCP, TCP_KEEPCNT, cnt)
        await k.sleep(cut_at)
        c.setblocking(False)
        try:
            await c.recv(10)
        except BlockingIOError:
            out["alive_while_answered"] = True
        cut.cut = True
        t0 = k.now
        c.setblocking(True)
        try:
            await c.recv(10)
        except OSError as e:
            out["error"] = e.errno
            out["after"] = k.now - t0
        out["next_recv"] = await c.recv(10)
        try:
            await c.send(b"x")
        except OSError as e:
            out["next_send"] = e.errno
        out["so_error"] = c.getsockopt(SOL_SOCKET, SO_ERROR)

    sim = simsock.Simulation(seed=1)
    sim.add_host("server").spawn(server)
    sim.add_host("client").spawn(client)
    sim.add_link("client", "server", delay="1ms", loss=cut)
    return sim, out


def test_keepalive_times_out_an_unanswered_connection_like_linux():
    """keepalive 1/1/2 s: answered probes keep an idle connection up; once unanswered, the blocked
    recv fails with ETIMEDOUT ~2.5 s after the cut (Linux: 2.6 s), then b"", EPIPE, SO_ERROR 0."""
    sim, out = _keepalive_world()
    sim.run(until=30)
    assert out["alive_while_answered"]
    assert out["error"] == errno.ETIMEDOUT
    assert 2.0 <= out["after"] <= 3.0
    assert out["next_recv"] == b"" and out["next_send"] == errno.EPIPE and out["so_error"] == 0
    probes = [e for e in sim.trace.records() if e.get("kind") == "tcp_keepalive_probe"]
    assert len(probes) >= 3                  # two answered while idle, two unanswered


def test_keepalive_options_defaults_bounds_and_inheritance():
    """Defaults come from the profile (7200/75/9); TCP_KEEPIDLE/INTVL take 1..32767, TCP_KEEPCNT 1..127
    (else EINVAL); UDP has no TCP options (ENOPROTOOPT); an accepted socket inherits SO_KEEPALIVE."""
    out = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        out["defaults"] = [ls.getsockopt(IPPROTO_TCP, o) for o in (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT)]
        errs = []
        for opt, v in ((TCP_KEEPIDLE, 0), (TCP_KEEPIDLE, 32768), (TCP_KEEPINTVL, 0), (TCP_KEEPCNT, 0),
                       (TCP_KEEPCNT, 128)):
            try:
                ls.setsockopt(IPPROTO_TCP, opt, v)
            except OSError as e:
                errs.append(e.errno)
        ls.setsockopt(IPPROTO_TCP, TCP_KEEPCNT, 127)
        ls.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 32767)
        out["errs"] = errs
        u = k.socket(AF_INET, SOCK_DGRAM)
        try:
            u.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 5)
        except OSError as e:
            out["udp"] = e.errno
        ls.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        conn, _ = await ls.accept()
        out["inherited"] = (conn.getsockopt(SOL_SOCKET, SO_KEEPALIVE), conn.getsockopt(IPPROTO_TCP, TCP_KEEPCNT))

    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=1)
    assert out["defaults"] == [7200, 75, 9]
    assert out["errs"] == [errno.EINVAL] * 5
    assert out["udp"] == errno.ENOPROTOOPT
    assert out["inherited"] == (1, 127)


def test_default_keepalive_probes_after_two_hours_idle():
    """With the defaults an idle keepalive connection sends its first probe 7200 s after the last
    segment it received, then (answered) every 7200 s."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)
        await c.connect(ls.getsockname())
        conn, _ = await ls.accept()
        await k.sleep(20_000)

    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=20_000)
    times = [r["t"] / 1e9 for r in sim.trace.records() if r.get("kind") == "tcp_keepalive_probe"]
    assert len(times) == 2 and 7200 <= times[0] < 7200.01 and 14400 <= times[1] < 14400.02


def _orphan_death(orphan_retries=None):
    """A connection closed by its application with unacknowledged data on a cut path: when its
    last copy is gone (seconds after the close)."""
    cut = Cut()
    out = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 7000))
        ls.listen(1)
        conn, _ = await ls.accept()
        await k.sleep(100_000)

    async def client(k):
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(("server", 7000))
        cut.cut = True
        await c.send(b"x" * 1000)
        c.close()
        out["closed_at"] = k.now

    profile = simsock.get_profile("linux")
    if orphan_retries is not None:
        import dataclasses
        profile = dataclasses.replace(profile, tcp_orphan_retries=orphan_retries)
    sim = simsock.Simulation(seed=1, profile=profile)
    sim.add_host("server").spawn(server)
    client_host = sim.add_host("client")
    client_host.spawn(client)
    sim.add_link("client", "server", delay="1ms", loss=cut)
    sim.run(until=2000)
    closes = [r["t"] / 1e9 for r in sim.trace.records()
              if r.get("kind") == "tcp_state" and r["where"].startswith("client:")
              and r["fields"]["new"] == "CLOSE"]
    return closes[-1] - out["closed_at"]


def test_orphan_retries_bound_a_closed_sockets_retransmissions():
    """tcp_orphan_retries=0 (Linux's default) means 8: a closed socket retransmitting into a dead
    path gives up after ~102 s (8 backoffs from 200 ms), not after tcp_retries2's ~924 s; 3 gives ~3 s."""
    default = _orphan_death()
    assert 95 <= default <= 110, default
    assert _orphan_death(orphan_retries=3) < 10
    assert _orphan_death(orphan_retries=15) > 800


# -- the real kernel ------------------------------------------------------------------------
SERVER = textwrap.dedent("""
    import socket, sys, time
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], 7000)); ls.listen(1)
    print("ready", flush=True)
    conn, _ = ls.accept()
    time.sleep(12)
""")

CLIENT = textwrap.dedent("""
    import socket, subprocess, sys, time, json
    out = {}
    c = socket.socket()
    c.settimeout(5)
    c.connect((sys.argv[1], 7000))
    c.settimeout(None)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    time.sleep(2.5)
    c.setblocking(False)
    try:
        c.recv(10)
    except BlockingIOError:
        out["alive_while_answered"] = True
    subprocess.run(sys.argv[2], shell=True, check=True)
    t0 = time.time()
    c.setblocking(True)
    try:
        c.recv(10)
    except OSError as e:
        out["error"] = e.errno
        out["after"] = time.time() - t0
    out["next_recv"] = c.recv(10).decode()
    try:
        c.send(b"x")
    except OSError as e:
        out["next_send"] = e.errno
    out["so_error"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    print(json.dumps(out))
""")


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.mark.real
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"),
                    reason="needs Linux, root, ip and tc to make two network namespaces")
def test_keepalive_on_the_real_kernel(tmp_path):
    """The real kernel, through a veth pair between two namespaces of this test: the same outcome as the simulator."""
    a, b = f"simsock-ka-{os.getpid()}-a", f"simsock-ka-{os.getpid()}-b"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", "vka", "netns", a, "type", "veth", "peer", "name", "vkb", "netns", b)
        _ip("-n", a, "addr", "add", "10.77.0.1/24", "dev", "vka")
        _ip("-n", b, "addr", "add", "10.77.0.2/24", "dev", "vkb")
        _ip("-n", a, "link", "set", "vka", "up")
        _ip("-n", b, "link", "set", "vkb", "up")
        (tmp_path / "server.py").write_text(SERVER)
        (tmp_path / "client.py").write_text(CLIENT)
        server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, str(tmp_path / "server.py"), "10.77.0.2"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            drop = f"ip netns exec {b} tc qdisc add dev vkb root pfifo limit 0"
            client = subprocess.run(["ip", "netns", "exec", a, sys.executable, str(tmp_path / "client.py"),
                                     "10.77.0.2", drop], capture_output=True, text=True, timeout=30)
        finally:
            server.kill()
            server.wait()
        assert client.returncode == 0, client.stderr
        import json
        real = json.loads(client.stdout)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    sim, out = _keepalive_world()
    sim.run(until=30)
    assert real["alive_while_answered"] and out["alive_while_answered"]
    assert real["error"] == out["error"] == errno.ETIMEDOUT
    assert abs(real["after"] - out["after"]) < 0.5
    assert real["next_recv"] == "" and out["next_recv"] == b""
    assert real["next_send"] == out["next_send"] == errno.EPIPE
    assert real["so_error"] == out["so_error"] == 0
    time.sleep(0)
