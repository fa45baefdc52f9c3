"""A veth pair between two namespaces made for one test (real-kernel tests in this folder).

``veth_pair`` gives ``simsock-<pid>-vethA``/``vethB`` joined by veth ``tbfa``/``tbfb`` with
addresses ``10.199.<pid % 250>.1``/``.2`` that exist only there, IPv6 off (no neighbour
discovery in the counts) and a permanent neighbour entry on A (no ARP through a qdisc under
test). Everything is deleted afterwards; skipped without root, ``ip`` or ``tc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simsock.real.netns import namespaces_available


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class VethPair:
    def __init__(self, a: str, b: str, net: str) -> None:
        self.a, self.b = a, b
        self.ip_a, self.ip_b = f"{net}.1", f"{net}.2"

    def tc(self, opts: str) -> None:
        """``tc qdisc replace dev tbfa root <opts>`` in A (skips the test if tc refuses)."""
        cmd = ["ip", "netns", "exec", self.a, "tc", "qdisc", "replace", "dev", "tbfa", "root", *opts.split()]
        r = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
        if r.returncode:
            pytest.skip(f"tc {opts!r} refused: {r.stderr.decode().strip()}")

    def qdisc_stats(self) -> dict:
        r = subprocess.run(["ip", "netns", "exec", self.a, "tc", "-s", "-j", "qdisc", "show", "dev", "tbfa"],
                           capture_output=True, text=True, timeout=10, check=True)
        return json.loads(r.stdout)[0]

    def python(self, ns: str, script: str, *args, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``script`` with this interpreter inside namespace ``ns``."""
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", script, *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, check=True)

    def popen(self, ns: str, script: str, *args) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *map(str, args)],
                                stdout=subprocess.PIPE, text=True)


@pytest.fixture
def veth_pair():
    ok, why = namespaces_available()
    if not ok:
        pytest.skip(why)
    a, b = f"simsock-{os.getpid()}-vethA", f"simsock-{os.getpid()}-vethB"
    net = f"10.199.{os.getpid() % 250}"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                           capture_output=True, timeout=10, check=False)
        _ip("link", "add", "tbfa", "netns", a, "type", "veth", "peer", "name", "tbfb", "netns", b)
        _ip("-n", a, "addr", "add", f"{net}.1/24", "dev", "tbfa")
        _ip("-n", b, "addr", "add", f"{net}.2/24", "dev", "tbfb")
        _ip("-n", a, "link", "set", "tbfa", "up")
        _ip("-n", b, "link", "set", "tbfb", "up")
        link = subprocess.run(["ip", "-n", b, "-j", "link", "show", "tbfb"], capture_output=True, text=True,
                              timeout=10, check=True)
        _ip("-n", a, "neigh", "replace", f"{net}.2", "lladdr", json.loads(link.stdout)[0]["address"],
            "dev", "tbfa", "nud", "permanent")
        yield VethPair(a, b, net)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)
