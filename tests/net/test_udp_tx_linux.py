"""UDP's send side against the real kernel: what a datagram costs in the send buffer while it
waits in the interface's qdisc, and when a fragmented datagram fails with ENOBUFS.

A sender's datagrams are charged to its ``sk_wmem_alloc`` until they leave the device
(sock_wfree); ``sendto`` gets EAGAIN once the charge reaches SO_SNDBUF. To make them wait, the
veth end has a tbf of 1 kbit/s whose head is plugged by three 1500-byte packets (the first two
use the bucket's 1600 bytes, the third waits ~12 s for tokens), so everything sent after
stays queued. Measured on Linux 6.18 (veth, MTU 1500):

- one skb per IP packet, charged as the receive side's truesize table says for its length
  (832 up to 197 bytes of UDP payload, 1280 up to 645, 2304 up to 1472): the same for an
  unfragmented datagram, so SO_SNDBUF 65536 accepts 158, 103, 57 datagrams;
- a fragmented datagram costs the sum of its fragments: 3000 bytes 5440 (not the 4352 a
  3000-byte datagram costs on loopback), 30000 bytes 47360, 65507 bytes 102656;
- fragments after the first must fit in 2 x SO_SNDBUF (__ip_append_data): with SO_SNDBUF
  4096 (8192 stored) the largest datagram accepted on an idle socket is 11832 bytes
  (8 fragments), 11833 and 30000 fail with ENOBUFS.
"""

from __future__ import annotations

import errno
import json

import pytest

import simsock
from simsock import AF_INET, SO_SNDBUF, SOCK_DGRAM, SOL_SOCKET, TBF

pytestmark = pytest.mark.real

PLUG = "tbf rate 1kbit burst 1600 limit 100mb"
PAYLOADS = (100, 500, 1000, 1472, 1473, 3000, 30000, 65507)
LARGEST = {4096: 11832, 8192: 22192}

_REAL = r"""
import errno, json, socket, sys
dst = sys.argv[1]
payloads = json.loads(sys.argv[2]); largest = json.loads(sys.argv[3])
plug = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    plug.sendto(b"p" * 1472, (dst, 9))
keep = []
def sock(sndbuf):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf); s.setblocking(False)
    keep.append(s); return s
def send(s, n):
    try:
        s.sendto(b"x" * n, (dst, 9)); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
out = {"accepted": {}, "enobufs": {}}
for p in payloads:
    s = sock(65536); n = 0
    while n < 10000 and send(s, p) == "ok":
        n += 1
    out["accepted"][p] = n
for sb, big in largest.items():
    out["enobufs"][sb] = [send(sock(int(sb)), big), send(sock(int(sb)), big + 1), send(sock(int(sb)), 30000)]
print(json.dumps(out))
"""


def _sim() -> dict:
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Gbit", ab={"qdisc": TBF.from_tc(PLUG)})
    out = {"accepted": {}, "enobufs": {}}

    async def prog(k):
        plug = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(3):
            await plug.sendto(b"p" * 1472, ("b", 9))
        keep = []

        def sock(sndbuf):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
            s.setblocking(False)
            keep.append(s)
            return s

        async def send(s, n):
            try:
                await s.sendto(b"x" * n, ("b", 9))
                return "ok"
            except OSError as e:
                return errno.errorcode[e.errno]
        for p in PAYLOADS:
            s, n = sock(65536), 0
            while n < 10000 and await send(s, p) == "ok":
                n += 1
            out["accepted"][str(p)] = n
        for sb, big in LARGEST.items():
            out["enobufs"][str(sb)] = [await send(sock(sb), big), await send(sock(sb), big + 1),
                                       await send(sock(sb), 30000)]

    a.spawn(prog)
    sim.run(until=1)
    return out


def test_tx_truesize_and_enobufs_match_the_kernel(veth_pair):
    veth_pair.tc(PLUG)
    r = veth_pair.python(veth_pair.a, _REAL, veth_pair.ip_b, json.dumps(PAYLOADS), json.dumps(LARGEST))
    real = json.loads(r.stdout)
    sim = _sim()
    assert sim == real
    # the numbers in the module docstring
    assert real["accepted"]["100"] == 158 and real["accepted"]["30000"] == 3
    assert real["enobufs"]["4096"] == ["ok", "ENOBUFS", "ENOBUFS"]


def test_fragment_charge_without_namespaces():
    """The same rule, simulator only (runs everywhere): 30000 bytes over MTU 1500 cost 20
    full fragments of 2304 and a 428-byte one of 1280; SO_SNDBUF 4096 refuses it."""
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="1kbit", queue=100_000)
    seen = {}

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"x" * 30000, ("b", 9))
        seen["wmem"] = s.wmem_alloc
        t = k.socket(AF_INET, SOCK_DGRAM)
        t.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        try:
            await t.sendto(b"x" * 30000, ("b", 9))
        except OSError as e:
            seen["errno"] = e.errno
        seen["wmem_after"] = t.wmem_alloc

    a.spawn(prog)
    sim.run(until=0.1)
    assert seen == {"wmem": 20 * 2304 + 1280, "errno": errno.ENOBUFS, "wmem_after": 0}
    assert a.udp.mib["SndbufErrors"] == 1


_RX = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", 9))
print("ready", flush=True)
want = int(sys.argv[1])
deadline = time.monotonic() + 5
charge = 0
while time.monotonic() < deadline:
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == 9:
            charge = int(f[4].split(":")[1], 16)
    if charge:
        break
    time.sleep(0.01)
print(charge, flush=True)
"""

_TX = r"""
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * int(sys.argv[2]), (sys.argv[1], 9))
"""


def _sim_rx_charge(payload: int) -> int:
    sim = simsock.Simulation(seed=1, trace=False)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Gbit")
    box = {}

    async def rx(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, simsock.SO_RCVBUF, 1 << 22)
        s.bind(("0.0.0.0", 9))
        box["s"] = s

    async def tx(k):
        await k.sleep(0.001)
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"x" * payload, ("b", 9))

    b.spawn(rx)
    a.spawn(tx)
    sim.run(until=0.1)
    return box["s"].rmem_alloc


@pytest.mark.parametrize("payload", [1000, 3000, 30000, 65507])
def test_receive_charge_of_a_fragmented_datagram_matches_the_kernel(veth_pair, payload):
    """Over veth the receiver is charged the fragments' skbs (3000 B: 5440, 30000 B: 47360),
    not the loopback figure for one datagram of that size (4352, 30832)."""
    veth_pair.tc("pfifo_fast")
    rx = veth_pair.popen(veth_pair.b, _RX, payload)
    try:
        assert rx.stdout.readline().strip() == "ready"
        veth_pair.python(veth_pair.a, _TX, veth_pair.ip_b, payload)
        real = int(rx.stdout.readline())
    finally:
        rx.wait(timeout=30)
    assert _sim_rx_charge(payload) == real
