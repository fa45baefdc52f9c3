"""Routers are addressed by name like hosts, and answer what is sent to them as a Linux
router with no socket on the port does: ICMP port unreachable for UDP, a RST for TCP
(pinned against a real forwarding namespace below)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM
from models.topologies import dumbbell


def test_names_resolve_to_hosts_and_routers_case_insensitively():
    sim, left, right, (r1, r2) = dumbbell(None, 1, 1)
    seen = {}

    async def prog(k):
        for name in ("r1", "R2", "right1", "LEFT1", "localhost"):
            seen[name] = k.gethostbyname(name)
        try:
            k.gethostbyname("r3")
        except socket.gaierror as exc:
            seen["r3"] = exc.errno

    left[0].spawn(prog)
    sim.run()
    assert seen == {"r1": r1.address, "R2": r2.address, "right1": right[0].address, "LEFT1": left[0].address,
                    "localhost": "127.0.0.1", "r3": socket.EAI_NONAME}
    assert sim.resolve_name("r1") == r1.address and sim.resolve_name("nope") is None


def test_names_differing_only_in_case_are_refused():
    sim = simsock.Simulation()
    sim.add_host("Server")
    with pytest.raises(ValueError, match="only in case"):
        sim.add_host("server")
    with pytest.raises(ValueError, match="only in case"):
        sim.add_router("SERVER")
    sim.add_router("r1")
    with pytest.raises(ValueError, match="only in case"):
        sim.add_host("R1")


@pytest.mark.parametrize("router", ["r1", "r2"])
def test_udp_to_a_router_by_name_gets_port_unreachable(router):
    """Connected UDP to a router port: the first send goes, the ICMP port unreachable that
    comes back makes the next one fail with ECONNREFUSED (r2 is one router further away)."""
    sim, left, right, routers = dumbbell(None, 1, 1, trace=False)
    target = sim.nodes[router]
    seen = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.connect((router, 53))
        assert s.getpeername() == (target.address, 53)
        for _ in range(2):
            try:
                await s.send(b"q")
                seen.append("ok")
            except OSError as exc:
                seen.append(errno.errorcode[exc.errno])
            await k.sleep(0.1)

    left[0].spawn(prog)
    sim.run()
    assert seen == ["ok", "ECONNREFUSED"]
    assert target.drops == {"no_port": 1} and target.icmp_sent == 1
    assert target.stats()["local"] == 1


@pytest.mark.parametrize("router", ["r1", "r2"])
def test_tcp_connect_to_a_router_by_name_is_refused_at_once(router):
    """connect() to a router's port: the router answers the SYN with a RST, so connect fails
    with ECONNREFUSED after one round trip (no SYN retransmission, no timeout)."""
    sim, left, right, routers = dumbbell(None, 1, 1, trace=False)
    target = sim.nodes[router]
    out = {}

    async def prog(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        t0 = k.now_ns
        try:
            await s.connect((router, 80))
            out["result"] = "connected"
        except OSError as exc:
            out["result"] = errno.errorcode[exc.errno]
        out["ns"] = k.now_ns - t0

    left[0].spawn(prog)
    sim.run()
    # round trip: access link 1 ms each way, plus the bottleneck (10 ms each way) for r2
    rtt = 2_000_000 + (20_000_000 if router == "r2" else 0)
    assert out["result"] == "ECONNREFUSED"
    assert rtt <= out["ns"] < rtt + 1_000_000
    assert target.resets_sent == 1 and target.drops == {"no_socket": 1}
    assert sim.drops == {"no_socket": 1}


def test_icmp_for_a_router_is_dropped_as_local():
    """The only ICMP a router can be sent is an error about a packet it sent; it is dropped
    (reason "local") and never answered."""
    from simsock.net.packet import PROTO_ICMP, IcmpError, Packet
    sim = simsock.Simulation(trace=False)
    h = sim.add_host("h")
    r = sim.add_router("r1")
    sim.add_link(h, r, delay="1ms")
    quoted = Packet(sim._next_uid(), r.address, h.address, PROTO_ICMP, IcmpError(3, 3, None), 0)
    h.ip_output(Packet(sim._next_uid(), h.address, r.address, PROTO_ICMP, IcmpError(3, 3, quoted), 0))
    sim.run()
    assert r.drops == {"local": 1} and r.icmp_sent == 0 and r.resets_sent == 0


# -- real Linux ------------------------------------------------------------------------------
CLIENT_SCRIPT = textwrap.dedent(r"""
    import errno, json, socket, time
    res = {}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    t0 = time.monotonic()
    try:
        s.connect(("10.67.0.254", 80)); res["tcp"] = "connected"
    except socket.timeout:
        res["tcp"] = "timeout"
    except OSError as e:
        res["tcp"] = errno.errorcode.get(e.errno, str(e.errno))
    res["tcp_fast"] = time.monotonic() - t0 < 1.0
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(("10.67.0.254", 53))
    seen = []
    for _ in range(2):
        try:
            u.send(b"q"); seen.append("ok")
        except OSError as e:
            seen.append(errno.errorcode.get(e.errno, str(e.errno)))
        time.sleep(0.2)
    res["udp"] = seen
    print(json.dumps(res))
""")


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux network namespaces")
def test_linux_router_answers_for_its_own_address():
    """Real Linux, two namespaces (client -> router with ip_forward=1 and no sockets): TCP
    connect to the router's address fails at once with ECONNREFUSED (RST) and a connected
    UDP socket's second send fails with ECONNREFUSED (ICMP port unreachable) — what the
    simulated router does (tests above)."""
    from simsock.real.netns import namespaces_available
    ok, reason = namespaces_available()
    if not ok:
        pytest.skip(reason)
    tag = f"ssrn{os.getpid() % 100000}"
    ns_c, ns_r = f"{tag}c", f"{tag}r"
    try:
        _ip("netns", "add", ns_c)
        _ip("netns", "add", ns_r)
        for ns in (ns_c, ns_r):
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns_c, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", ns_r)
        _ip("-n", ns_c, "addr", "add", "10.67.0.1/24", "dev", "v0")
        _ip("-n", ns_r, "addr", "add", "10.67.0.254/24", "dev", "v1")
        _ip("-n", ns_c, "link", "set", "v0", "up")
        _ip("-n", ns_r, "link", "set", "v1", "up")
        subprocess.run(["ip", "netns", "exec", ns_r, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True,
                       capture_output=True, timeout=10)
        out = subprocess.run(["ip", "netns", "exec", ns_c, sys.executable, "-c", CLIENT_SCRIPT],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
    finally:
        for ns in (ns_c, ns_r):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    assert res == {"tcp": "ECONNREFUSED", "tcp_fast": True, "udp": ["ok", "ECONNREFUSED"]}
