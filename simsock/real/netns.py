"""Network namespaces as real hosts: one namespace per host, veth pairs as links.

With ``RealWorld(namespaces=True)`` every host is a Linux network namespace named
``simsock-<pid>-<world>-<host>``, with its own ``lo`` (127.0.0.1, as in the simulator) and
its own port space, so two hosts can both bind port 5959. A link is a veth pair whose ends
live in the two namespaces, addressed ``10.77.<link>.1/24`` and ``10.77.<link>.2/24``; these
addresses exist only inside namespaces this module created, so no traffic leaves the test.

A link's ``rate`` becomes a token bucket (``tc qdisc ... tbf``) on the egress of both ends,
so each direction carries at most ``rate`` bits per second, as a simulated link does; its
``queue`` (packets) bounds the bucket's backlog. What cannot be reproduced: ``delay`` and
``loss`` need the ``netem`` qdisc, which the kernels this project runs on do not have, so
asking for them raises :class:`ValueError` instead of silently running a different
experiment. Links join two hosts directly; there is no forwarding through intermediate
hosts (no routers in the real backend).

A program's thread enters its host's namespace with ``setns(2)`` before it runs; network
namespaces are per thread, so sockets it creates live in that namespace. Everything this
module creates is deleted when the world ends, at interpreter exit, and — for namespaces
left behind by a process that died — by :func:`cleanup_stale_namespaces`.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import subprocess
import threading

CLONE_NEWNET = 0x40000000
PREFIX = "simsock-"
_NETNS_DIR = "/run/netns"

_libc = None
_lock = threading.Lock()
_live: set[str] = set()   # namespaces created by this process and not yet deleted


def namespaces_available() -> tuple[bool, str]:
    """Whether namespaces mode can run here, and if not, why (a skip reason for tests)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "network namespaces need root (run as root or use RealWorld() without namespaces)"
    if shutil.which("ip") is None:
        return False, "the 'ip' command (iproute2) is not installed"
    if shutil.which("tc") is None:
        return False, "the 'tc' command (iproute2) is not installed"
    try:
        _load_setns()
    except OSError as e:
        return False, f"setns(2) is not available: {e}"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except OSError as e:
        return False, f"cannot create a network namespace: {e}"
    return True, ""


def _load_setns():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "setns"):
            raise OSError("libc has no setns")
        _libc = libc
    return _libc


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _ip(*args: str) -> str:
    return _run(["ip", *args])


def _tc(*args: str) -> str:
    return _run(["tc", *args])


def namespace_name(world_id: int, host: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
    return f"{PREFIX}{os.getpid()}-{world_id}-{safe}"


def create_namespace(name: str) -> None:
    """Create a namespace with ``lo`` up (127.0.0.1, like the simulator's per-host lo)."""
    _ip("netns", "add", name)
    with _lock:
        _live.add(name)
    _ip("-n", name, "link", "set", "lo", "up")


def add_address(ns: str, address: str, prefix: int, dev: str) -> None:
    _ip("-n", ns, "addr", "add", f"{address}/{prefix}", "dev", dev)


def add_route(ns: str, address: str, via: str, dev: str) -> None:
    _ip("-n", ns, "route", "replace", f"{address}/32", "via", via, "dev", dev)


def create_veth(ns_a: str, ns_b: str, dev: str, mtu: int | None) -> None:
    """A veth pair named ``dev`` at both ends, one end in each namespace, both up."""
    _ip("-n", ns_a, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", ns_b)
    for ns in (ns_a, ns_b):
        if mtu is not None:
            _ip("-n", ns, "link", "set", dev, "mtu", str(mtu))
        _ip("-n", ns, "link", "set", dev, "up")


def rate_limit(ns: str, dev: str, rate_bps: int, mtu: int, queue_packets: int | None) -> None:
    """A token bucket on ``dev``'s egress: ``rate_bps`` bits/s.

    The bucket holds at least two full packets and about 4 ms of traffic at the rate (tbf
    needs ``burst >= rate / HZ``); the backlog limit is ``queue_packets`` full packets, or
    50 ms of traffic when not given.
    """
    burst = max(2 * (mtu + 14), rate_bps // 8 // 250, 3200)
    if queue_packets is not None:
        limit = max(queue_packets * (mtu + 14), burst)
        _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_bps}bit",
            "burst", str(burst), "limit", str(limit))
    else:
        _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_bps}bit",
            "burst", str(burst), "latency", "50ms")


def delete_namespace(name: str) -> None:
    """Delete a namespace (its veth ends go with it). Never raises."""
    try:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass
    with _lock:
        _live.discard(name)


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` (setns(2) with CLONE_NEWNET)."""
    libc = _load_setns()
    fd = os.open(os.path.join(_NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def cleanup_stale_namespaces() -> list[str]:
    """Delete ``simsock-<pid>-…`` namespaces whose process no longer exists; returns their names."""
    removed = []
    try:
        names = os.listdir(_NETNS_DIR)
    except OSError:
        return removed
    for name in names:
        m = re.match(rf"{re.escape(PREFIX)}(\d+)-", name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        delete_namespace(name)
        removed.append(name)
    return removed


@atexit.register
def _cleanup_at_exit() -> None:
    with _lock:
        names = sorted(_live)
    for name in names:
        delete_namespace(name)
