"""Network namespaces as real hosts: one namespace per host, veth pairs as links.

With ``RealWorld(namespaces=True)`` every host is a Linux network namespace named
``simsock-<pid>-s<start>-<world>-<host>`` (``<start>``: the owning process's start time, in
clock ticks since boot, base 36, from ``/proc/<pid>/stat``), with its own ``lo`` (127.0.0.1, as in the simulator) and
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
namespaces are per thread, so sockets it creates live in that namespace.

Cleanup. Everything this module creates is deleted when the world ends and at interpreter
exit. While this process owns namespaces (and while a real world runs), SIGTERM and SIGINT
— if the program has not installed handlers of its own — stop the run, delete the
namespaces and exit with status 128 + the signal's number after one line on stderr
(:func:`guard_signals`). SIGKILL cannot be caught: its leftovers are deleted by the next
``RealWorld(namespaces=True)`` and by ``simsock real cleanup``
(:func:`cleanup_stale_namespaces`), which delete a namespace only when its owner is dead:
no process has its PID, or the process that has it started at another time (a PID reused
since). A live run's namespaces are never touched.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000
PREFIX = "simsock-"
_NETNS_DIR = "/run/netns"

_libc = None
_lock = threading.RLock()   # re-entrant: the signal handler may run while the main thread holds it
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
    probe = f"{_owner_prefix()}probe"
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


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot, ``/proc/<pid>/stat`` field
    22), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _owner_prefix(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    start = process_start(pid)
    return f"{PREFIX}{pid}-s{_base36(start or 0)}-"


def namespace_name(world_id: int, host: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
    return f"{_owner_prefix()}{world_id}-{safe}"


_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-(?:s([0-9a-z]+)-)?")


def owner_state(name: str) -> str | None:
    """``"live"`` if the process that made namespace ``name`` still runs, ``"dead"`` if it
    does not (its PID is free or now belongs to a process started at another time), None
    if ``name`` is not a simsock namespace. Names without a start time (older simsock)
    are live while their PID exists."""
    m = _NAME.match(name)
    if not m:
        return None
    pid = int(m.group(1))
    start = process_start(pid)
    if start is None:
        return "dead"
    if m.group(2) is not None and m.group(2) != _base36(start):
        return "dead"
    return "live"


def create_namespace(name: str) -> None:
    """Create a namespace with ``lo`` up (127.0.0.1, like the simulator's per-host lo)."""
    guard_signals()
    with _lock:
        _live.add(name)      # before it exists: a signal during 'ip netns add' still deletes it
    try:
        _ip("netns", "add", name)
    except OSError:
        with _lock:
            _live.discard(name)
        raise
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


def rate_limit(ns: str, dev: str, rate_bps: int, mtu: int, queue_packets: int | None,
               queue_bytes: int | None = None) -> None:
    """A token bucket on ``dev``'s egress: ``rate_bps`` bits/s.

    The bucket holds at least two full packets and about 4 ms of traffic at the rate (tbf
    needs ``burst >= rate / HZ``); the backlog limit is ``queue_packets`` full packets,
    ``queue_bytes`` bytes, or 50 ms of traffic when neither is given.
    """
    burst = max(2 * (mtu + 14), rate_bps // 8 // 250, 3200)
    if queue_packets is not None or queue_bytes is not None:
        limit = max(queue_packets * (mtu + 14) if queue_packets is not None else queue_bytes, burst)
        _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_bps}bit",
            "burst", str(burst), "limit", str(limit))
    else:
        _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_bps}bit",
            "burst", str(burst), "latency", "50ms")


def tbf(ns: str, dev: str, rate_bps: int, burst: int, limit: int, peakrate_bps: int | None = None,
        mtu: int | None = None) -> None:
    """``tc qdisc replace dev DEV root tbf rate R burst B limit L [peakrate P mtu M]``: a
    :class:`simsock.TBF`'s settings on ``dev``'s egress."""
    args = ["rate", f"{rate_bps}bit", "burst", str(burst), "limit", str(limit)]
    if peakrate_bps is not None:
        args += ["peakrate", f"{peakrate_bps}bit", "mtu", str(mtu)]
    _tc("-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", *args)


def delete_namespace(name: str) -> None:
    """Delete a namespace (its veth ends go with it). Never raises."""
    try:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass
    with _lock:
        _live.discard(name)
    release_signals()


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


def list_namespaces() -> list[tuple[str, str]]:
    """(name, ``"live"``/``"dead"``) of every simsock namespace on this machine, by name."""
    try:
        names = sorted(os.listdir(_NETNS_DIR))
    except OSError:
        return []
    out = []
    for name in names:
        state = owner_state(name)
        if state is not None:
            out.append((name, state))
    return out


def cleanup_stale_namespaces() -> list[str]:
    """Delete the simsock namespaces whose owning process is dead (see :func:`owner_state`);
    returns their names. Namespaces of live processes, this one included, are kept."""
    removed = []
    for name, state in list_namespaces():
        if state == "dead":
            delete_namespace(name)
            removed.append(name)
    return removed


# -- signals ---------------------------------------------------------------------------------
_GUARDED = (signal.SIGTERM, signal.SIGINT)
_saved: dict[int, object] = {}
#: Set to a callable by a running RealWorld: stops its threads before the namespaces go.
on_signal_stop = None


_stopping = False


def _on_signal(signum, _frame) -> None:
    global _stopping
    if _stopping:          # a second signal while cleaning up: let the cleanup finish
        return
    _stopping = True
    name = signal.Signals(signum).name
    with _lock:
        count = len(_live)
    what = f"; removing {count} network namespace{'s' if count != 1 else ''}" if count else ""
    print(f"simsock: stopped by {name}{what}", file=sys.stderr, flush=True)
    stop = on_signal_stop
    if stop is not None:
        try:
            stop()
        except Exception:   # noqa: BLE001 - cleanup goes on regardless
            pass
    _cleanup_at_exit()
    raise SystemExit(128 + signum)


def guard_signals() -> bool:
    """Handle SIGTERM and SIGINT as described in the module docstring, where the program left
    the default handlers (and only from the main thread, where Python runs handlers).
    Returns whether the handlers are installed."""
    if threading.current_thread() is not threading.main_thread():
        return bool(_saved)
    for sig in _GUARDED:
        if sig in _saved:
            continue
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler, None):
            _saved[sig] = current
            signal.signal(sig, _on_signal)
    return bool(_saved)


#: Real worlds running now (in any thread): the handlers stay while one runs.
running_worlds = 0


def release_signals() -> None:
    """Put the program's own handlers back once no namespace is left and no world runs."""
    with _lock:
        busy = bool(_live) or running_worlds > 0
    if busy or not _saved or threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_saved.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        del _saved[sig]


# -- simsock real cleanup --------------------------------------------------------------------
def add_real_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="real_command", metavar="ACTION")
    clean = sub.add_parser("cleanup", help="delete the simsock network namespaces of processes that are gone "
                                           "(never those of a live run)",
                           description="Delete the simsock network namespaces whose owning process is dead "
                                       "(killed with SIGKILL, or crashed); those of live runs are kept.")
    clean.add_argument("--dry-run", action="store_true", help="only list what would be deleted")


def cmd_real(args) -> int:
    if getattr(args, "real_command", None) != "cleanup":
        print("simsock real: say what to do: 'simsock real cleanup'", file=sys.stderr)
        return 2
    found = list_namespaces()
    dead = [name for name, state in found if state == "dead"]
    live = [name for name, state in found if state == "live"]
    if not getattr(args, "dry_run", False):
        for name in dead:
            delete_namespace(name)
    verb = "would delete" if getattr(args, "dry_run", False) else "deleted"
    for name in dead:
        print(f"{verb} {name}")
    print(f"{verb} {len(dead)} namespace{'s' if len(dead) != 1 else ''} of dead runs; kept {len(live)} "
          f"of live runs")
    return 0


@atexit.register
def _cleanup_at_exit() -> None:
    with _lock:
        names = sorted(_live)
    for name in names:
        delete_namespace(name)
