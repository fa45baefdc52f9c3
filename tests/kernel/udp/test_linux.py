"""The simulator against this machine's Linux kernel, on real loopback sockets.

The profile (simsock/profiles/linux.py) was fitted to kernel 6.18. Every comparison runs
the same scenario on a real socket pair on 127.0.0.1 and in the simulator, and asserts
equal results; a failure message names the running kernel, so a difference on another
kernel reads as "the profile does not fit kernel X", not as a random failure.
"""

import errno
import os
import platform
import socket
import sys

import pytest

import simsock
from simsock import AF_INET, SO_RCVBUF, SO_SNDBUF, SOCK_DGRAM, SOL_SOCKET
from simsock.profiles import LINUX

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(sys.platform != "linux", reason="compares with the Linux kernel"),
]

KERNEL = platform.release()
FITTED = LINUX.kernel


def where() -> str:
    return f"(running kernel {KERNEL}; the profile was fitted to Linux {FITTED})"


SENDS = 600
SIZES = [0, 100, 500, 1000, 1472, 4000, 197, 198, 645, 646, 1669, 1670, 3717, 3718, 16004, 16005, 20000]
RCVBUFS = [None, 2304, 8192, 65536]


def real_fill(size: int, rcvbuf: int | None) -> tuple[int, int]:
    """Send SENDS datagrams of ``size`` bytes to an unread real socket; return (how many
    it holds, its SO_RCVBUF)."""
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if rcvbuf is not None:
            r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        r.bind(("127.0.0.1", 0))
        r.setblocking(False)
        s.setblocking(False)
        s.settimeout(0)
        dest = r.getsockname()
        data = b"\x5a" * size
        for _ in range(SENDS):
            try:
                s.sendto(data, dest)
            except BlockingIOError:          # never on loopback, but do not hang
                pass
        held = 0
        while True:
            try:
                r.recv(65536)
            except BlockingIOError:
                break
            held += 1
        return held, r.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        r.close()
        s.close()


def sim_fill(size: int, rcvbuf: int | None) -> tuple[int, int]:
    """The same on a simulated host, over its loopback to 127.0.0.1."""
    sim = simsock.Simulation()
    h = sim.add_host("h")
    out = {}

    async def prog(k):
        r = k.socket(AF_INET, SOCK_DGRAM)
        s = k.socket(AF_INET, SOCK_DGRAM)
        if rcvbuf is not None:
            r.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
        r.bind(("127.0.0.1", 0))
        r.setblocking(False)
        s.setblocking(False)
        dest = r.getsockname()
        data = b"\x5a" * size
        for _ in range(SENDS):
            try:
                await s.sendto(data, dest)
            except BlockingIOError:
                pass
        await k.sleep(0)                     # let the loopback deliveries finish
        held = 0
        while True:
            try:
                await r.recv(65536)
            except BlockingIOError:
                break
            held += 1
        out["result"] = (held, r.getsockopt(SOL_SOCKET, SO_RCVBUF))

    h.spawn(prog)
    sim.run(until="1s")
    return out["result"]


@pytest.mark.parametrize("rcvbuf", RCVBUFS, ids=lambda v: f"rcvbuf={v or 'default'}")
@pytest.mark.parametrize("size", SIZES, ids=lambda v: f"size={v}")
def test_receive_buffer_holds_same_number_of_datagrams(size, rcvbuf):
    """An unread UDP socket holds exactly as many datagrams of a given payload size in the
    simulator as on this machine's kernel (the per-datagram truesize charge and the
    'fits, or the queue is empty' rule), for default and set SO_RCVBUF values."""
    real = real_fill(size, rcvbuf)
    sim = sim_fill(size, rcvbuf)
    assert sim == real, (f"payload {size} B, SO_RCVBUF {rcvbuf or 'default'}: the simulator holds "
                         f"{sim[0]} datagrams (SO_RCVBUF {sim[1]}), the kernel {real[0]} (SO_RCVBUF {real[1]}) "
                         f"{where()}")


def test_default_buffer_holds_256_small_datagrams():
    """The documented headline fact: a default 212992-byte buffer holds 256 datagrams of
    100 bytes (832 bytes of truesize each), in the simulator and on this kernel."""
    assert sim_fill(100, None) == (256, 212992)
    assert real_fill(100, None)[0] == 256, f"the kernel holds {real_fill(100, None)[0]} {where()}"


BUF_VALUES = [0, 1, 1000, 1152, 2304, 2305, 4096, 8192, 10000, 65536, 212992, 10**6, 2097152, 4194304, 10**7, -1]


@pytest.mark.parametrize("value", BUF_VALUES)
def test_sockopt_buffer_readback_matches_profile(value):
    """getsockopt after setsockopt(SO_RCVBUF/SO_SNDBUF, v) on a real UDP socket equals the
    profile's stored_rcvbuf(v)/stored_sndbuf(v) and the simulated socket's value."""
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        real.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, value)
        real.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, value)
        got = (real.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
               real.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    finally:
        real.close()
    expected = (LINUX.stored_rcvbuf(value), LINUX.stored_sndbuf(value))
    assert got == expected, (f"setsockopt({value}): kernel reads back (rcv, snd) = {got}, profile {expected} "
                             f"{where()}")

    sim = simsock.Simulation()
    h = sim.add_host("h")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, value)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, value)
        out.append((s.getsockopt(SOL_SOCKET, SO_RCVBUF), s.getsockopt(SOL_SOCKET, SO_SNDBUF)))

    h.spawn(prog)
    sim.run(until="1s")
    assert out == [got]


def _proc(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@pytest.mark.parametrize("path, field, convert", [
    ("/proc/sys/net/core/rmem_default", "rmem_default", int),
    ("/proc/sys/net/core/wmem_default", "wmem_default", int),
    ("/proc/sys/net/core/rmem_max", "rmem_max", int),
    ("/proc/sys/net/core/wmem_max", "wmem_max", int),
    ("/proc/sys/net/core/somaxconn", "somaxconn", int),
    ("/proc/sys/net/ipv4/ip_local_port_range", "ip_local_port_range", lambda t: tuple(int(x) for x in t.split())),
    ("/proc/sys/net/ipv4/tcp_rmem", "tcp_rmem", lambda t: tuple(int(x) for x in t.split())),
    ("/proc/sys/net/ipv4/tcp_wmem", "tcp_wmem", lambda t: tuple(int(x) for x in t.split())),
    ("/proc/sys/net/ipv4/ip_default_ttl", "ip_default_ttl", int),
    ("/proc/sys/net/ipv4/ipfrag_time", "ipfrag_time_ns", lambda t: int(t) * 1_000_000_000),
    ("/proc/sys/net/ipv4/icmp_ratelimit", "icmp_ratelimit_ns", lambda t: int(t) * 1_000_000),
    ("/sys/class/net/lo/mtu", "loopback_mtu", int),
])
def test_profile_defaults_equal_this_machine(path, field, convert):
    """The Linux profile's sysctl-derived defaults equal this machine's /proc values."""
    if not os.path.exists(path):
        pytest.skip(f"{path} not available")
    actual = convert(_proc(path))
    assert getattr(LINUX, field) == actual, (f"profile {field} = {getattr(LINUX, field)!r} but {path} says "
                                             f"{actual!r} {where()}")


def test_new_socket_buffer_defaults_equal_proc():
    """A new real UDP socket's SO_RCVBUF/SO_SNDBUF are rmem_default/wmem_default, as in
    the simulator."""
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        got = (real.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
               real.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    finally:
        real.close()
    assert got == (int(_proc("/proc/sys/net/core/rmem_default")), int(_proc("/proc/sys/net/core/wmem_default")))
    assert got == (LINUX.rmem_default, LINUX.wmem_default), f"kernel {got} {where()}"


def test_max_udp_payload_matches_kernel():
    """65507 bytes go through loopback, 65508 fail with EMSGSIZE, on the kernel and in the
    profile."""
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        r.bind(("127.0.0.1", 0))
        r.settimeout(2)
        assert s.sendto(b"x" * 65507, r.getsockname()) == 65507
        assert len(r.recv(70000)) == 65507
        with pytest.raises(OSError) as info:
            s.sendto(b"x" * 65508, r.getsockname())
        assert info.value.errno == errno.EMSGSIZE
    finally:
        r.close()
        s.close()
    assert LINUX.udp_max_payload == 65507
