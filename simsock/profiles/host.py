"""A profile of the running Linux: ``simsock profile --from-host``.

:func:`measure` reads what the host exposes and measures what it does not, and returns a
:class:`HostProfile`: the profile (a dict of :class:`~simsock.profiles.base.Profile` fields,
which ``Simulation(profile=path)`` accepts once written as JSON), where each value came from,
and notes (facts that matter but that no profile field holds, such as the host's default
congestion control). Every number has one of these sources:

* **sysctl** (``/proc/sys``): ``net.core.{r,w}mem_{default,max}``, ``net.core.somaxconn``,
  ``net.ipv4.tcp_{r,w}mem``, ``ip_local_port_range``, ``ip_default_ttl``,
  ``icmp_ratelimit`` (ms), ``ipfrag_time`` (s), ``tcp_sack``, ``tcp_dsack``, ``tcp_recovery``,
  ``tcp_early_retrans``, ``tcp_syncookies``, ``tcp_max_syn_backlog``, ``tcp_syn_linear_timeouts``;
* **uname**: ``kernel`` is ``os.uname().release``;
* **sysfs** (``/sys/class/net``): lo's MTU; the MTU and ``tx_queue_len`` of the interface of
  the default route (``/proc/net/route``), if there is one;
* **getsockopt** on fresh sockets: ``setsockopt(SO_RCVBUF/SO_SNDBUF, 1)`` reads back the
  minimums (SOCK_MIN_RCVBUF/SNDBUF); a 1 us SO_RCVTIMEO reads back as one jiffy (``hz``);
  ``10000`` reads back 20000 where the kernel doubles;
  a fresh UDP socket's and TCP socket's buffers are checked against the sysctls;
* **loopback measurements**: the largest UDP payload (``sendto`` of 65507 works, 65508 is
  EMSGSIZE), the MSS of a connected loopback TCP socket (``TCP_MAXSEG``, reported in the
  notes: the simulator derives it from lo's MTU), and the skb truesize of a received UDP
  datagram by payload size, from ``/proc/net/udp``'s rx_queue column (sk_rmem_alloc) with
  one datagram queued — the step function is found by bisection (about 150 datagrams,
  well under a second).

Fields nothing on the host reveals (``icmp_ratelimit_burst``, the CPU cost fields) keep the
default linux profile's values; :attr:`HostProfile.sources` says so.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from simsock.tcp import cc as cc_registry

from . import get_profile, profile_from_dict
from .base import Profile
from .linux import LINUX

PROC_SYS = Path("/proc/sys")
SYS_NET = Path("/sys/class/net")


@dataclass
class HostProfile:
    """The measured profile: ``values`` (Profile field -> value), ``sources`` (field -> where
    the value came from) and ``notes`` (facts outside the profile's fields)."""
    values: dict
    sources: dict
    notes: list = field(default_factory=list)

    def profile_dict(self) -> dict:
        """What the JSON file holds: ``base`` plus every field, in the Profile's order."""
        return {"base": "linux", **self.values}

    def to_json(self) -> str:
        """One field per line, in the Profile's order."""
        items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.profile_dict().items()]
        return "{\n" + ",\n".join(items) + "\n}\n"

    def profile(self) -> Profile:
        return profile_from_dict(self.profile_dict(), source="host measurement")


# -- reading -------------------------------------------------------------------------------
def _sysctl(name: str) -> str | None:
    path = PROC_SYS / name.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ints(text: str | None) -> tuple | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split())
    except ValueError:
        return None


def _sysfs_int(iface: str, attr: str) -> int | None:
    try:
        return int((SYS_NET / iface / attr).read_text().strip())
    except (OSError, ValueError):
        return None


def default_route_interface() -> str | None:
    """The interface of the IPv4 default route (``/proc/net/route``, destination 0), if any."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[1] == "00000000":
            return parts[0]
    return None


# -- measuring -----------------------------------------------------------------------------
def _readback(kind: int, opt: int, value: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, opt, value)
        return s.getsockopt(socket.SOL_SOCKET, opt)


def _fresh(kind: int, opt: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        return s.getsockopt(socket.SOL_SOCKET, opt)


def loopback_mss() -> tuple[int, int]:
    """(TCP_MAXSEG, tcp_info's tcpi_advmss) of a connected loopback socket. TCP_MAXSEG is
    mss_cache, bounded to half the peer's largest window (tcp_bound_to_half_wnd)."""
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        with socket.create_connection(ls.getsockname(), timeout=2) as c:
            conn, _ = ls.accept()
            with conn:
                info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
                return (c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                        int.from_bytes(info[84:88], "little"))   # struct tcp_info.tcpi_advmss


def max_udp_payload() -> int:
    """The largest payload ``sendto`` accepts on loopback (65507 for IPv4)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        r.bind(("127.0.0.1", 0))
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        lo, hi = 0, 1 << 16          # lo is accepted, hi is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                s.sendto(b"\0" * mid, r.getsockname())
                lo = mid
            except OSError as e:
                if e.errno != errno.EMSGSIZE:
                    raise
                hi = mid
            r.setblocking(False)
            try:
                while True:
                    r.recv(1 << 16)
            except BlockingIOError:
                pass
        return lo


class _TruesizeProbe:
    """Measures skb->truesize of one received UDP datagram by payload size on loopback."""

    def __init__(self):
        self.r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.r.bind(("127.0.0.1", 0))
        self.r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.r.setblocking(False)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.key = f"0100007F:{self.r.getsockname()[1]:04X}"
        self.cache: dict[int, int] = {}

    def close(self) -> None:
        self.r.close()
        self.s.close()

    def _rx_queue(self) -> int | None:
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 4 and parts[1] == self.key:
                return int(parts[4].split(":")[1], 16)
        return None

    def __call__(self, payload: int) -> int:
        if payload not in self.cache:
            self.s.sendto(b"\0" * payload, self.r.getsockname())   # processed before sendto returns
            size = self._rx_queue()
            self.r.recv(1 << 16)
            if size is None or size <= 0:
                raise OSError(f"could not read the receive queue of 127.0.0.1:{self.r.getsockname()[1]} "
                              f"from /proc/net/udp")
            self.cache[payload] = size
        return self.cache[payload]


def udp_truesize_steps(max_payload: int) -> tuple[tuple, int]:
    """(steps, linear): truesize is ``size`` for payloads below each step's limit, and
    payload + linear from the last limit on — the shape :class:`Profile` uses."""
    probe = _TruesizeProbe()
    try:
        linear = probe(max_payload) - max_payload
        # the smallest payload from which truesize == payload + linear (bisection; false then true)
        lo, hi = 0, max_payload
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if probe(mid) == mid + linear:
                hi = mid
            else:
                lo = mid
        linear_from = hi
        # below it truesize is a non-decreasing step function: find where it changes
        limits: list[int] = []

        def split(a: int, b: int) -> None:      # f(a) != f(b); find every change in (a, b]
            if b - a == 1:
                limits.append(b)
                return
            m = (a + b) // 2
            if probe(a) != probe(m):
                split(a, m)
            if probe(m) != probe(b):
                split(m, b)
        if probe(0) != probe(linear_from - 1):
            split(0, linear_from - 1)
        steps = []
        start = 0
        for limit in [*limits, linear_from]:
            steps.append((limit, probe(start)))
            start = limit
        return tuple(steps), linear
    finally:
        probe.close()


# -- the profile ---------------------------------------------------------------------------
class _Readings:
    """What :func:`measure` found so far: field values, where each came from, notes."""

    def __init__(self) -> None:
        self.values: dict = {}
        self.sources: dict = {}
        self.notes: list[str] = []

    def put(self, name: str, value, source: str) -> None:
        """``name`` is ``value``, read from ``source``; None: unreadable, the linux value."""
        if value is None:
            self.values[name] = getattr(LINUX, name)
            self.sources[name] = f"not readable ({source}): the linux profile's value"
        else:
            self.values[name] = value
            self.sources[name] = source


def measure() -> HostProfile:
    """Read and measure the running Linux (see the module docstring)."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, f"--from-host reads Linux's /proc and /sys; this is {sys.platform}")
    found = _Readings()
    found.put("name", "host", "this command")
    found.put("kernel", os.uname().release, "uname -r")
    _read_sysctls(found)
    _read_interfaces(found)
    _check_fresh_sockets(found)
    _measure_loopback(found)
    _read_congestion_control(found)
    values, sources = found.values, found.sources
    for name in (f.name for f in dataclasses.fields(Profile)):
        if name not in values:
            values[name] = getattr(LINUX, name)
            sources[name] = "not measurable from the host: the linux profile's value"
    order = [f.name for f in dataclasses.fields(Profile)]
    return HostProfile({k: values[k] for k in order}, sources, found.notes)


def _read_sysctls(found: _Readings) -> None:
    """The socket, IP and TCP sysctls the profile has a field for."""
    put = found.put
    for name, sysctl in (("rmem_default", "net.core.rmem_default"), ("wmem_default", "net.core.wmem_default"),
                         ("rmem_max", "net.core.rmem_max"), ("wmem_max", "net.core.wmem_max"),
                         ("somaxconn", "net.core.somaxconn"), ("ip_default_ttl", "net.ipv4.ip_default_ttl")):
        v = _ints(_sysctl(sysctl))
        put(name, v[0] if v else None, f"sysctl {sysctl}")
    for name, sysctl in (("tcp_rmem", "net.ipv4.tcp_rmem"), ("tcp_wmem", "net.ipv4.tcp_wmem"),
                         ("ip_local_port_range", "net.ipv4.ip_local_port_range")):
        v = _ints(_sysctl(sysctl))
        put(name, list(v) if v else None, f"sysctl {sysctl}")
    v = _ints(_sysctl("net.ipv4.icmp_ratelimit"))
    put("icmp_ratelimit_ns", v[0] * 1_000_000 if v else None, "sysctl net.ipv4.icmp_ratelimit (ms)")
    v = _ints(_sysctl("net.ipv4.ipfrag_time"))
    put("ipfrag_time_ns", v[0] * 1_000_000_000 if v else None, "sysctl net.ipv4.ipfrag_time (s)")
    for name, sysctl, conv in (("tcp_sack", "net.ipv4.tcp_sack", bool), ("tcp_dsack", "net.ipv4.tcp_dsack", bool),
                               ("tcp_recovery", "net.ipv4.tcp_recovery", int),
                               ("tcp_early_retrans", "net.ipv4.tcp_early_retrans", int),
                               ("tcp_syncookies", "net.ipv4.tcp_syncookies", int),
                               ("tcp_max_syn_backlog", "net.ipv4.tcp_max_syn_backlog", int),
                               ("tcp_syn_linear_timeouts", "net.ipv4.tcp_syn_linear_timeouts", int)):
        v = _ints(_sysctl(sysctl))
        put(name, conv(v[0]) if v else None, f"sysctl {sysctl}")
    for name, sysctl, scale in (("tcp_keepalive_time_ns", "net.ipv4.tcp_keepalive_time", 10**9),
                                ("tcp_keepalive_intvl_ns", "net.ipv4.tcp_keepalive_intvl", 10**9),
                                ("tcp_keepalive_probes", "net.ipv4.tcp_keepalive_probes", 1),
                                ("tcp_orphan_retries", "net.ipv4.tcp_orphan_retries", 1)):
        v = _ints(_sysctl(sysctl))
        put(name, v[0] * scale if v else None, f"sysctl {sysctl}" + (" (s)" if scale > 1 else ""))


def _read_interfaces(found: _Readings) -> None:
    """The jiffy, and the MTUs and queue length of loopback and the default route's device."""
    put = found.put
    put("hz", kernel_hz(), "SO_RCVTIMEO of 1 us reads back as one jiffy")
    put("loopback_mtu", _sysfs_int("lo", "mtu"), "/sys/class/net/lo/mtu")
    iface = default_route_interface()
    if iface is not None:
        put("default_mtu", _sysfs_int(iface, "mtu"), f"/sys/class/net/{iface}/mtu (default route)")
        put("txqueuelen", _sysfs_int(iface, "tx_queue_len"), f"/sys/class/net/{iface}/tx_queue_len (default route)")
    else:
        put("default_mtu", None, "no default route")
        put("txqueuelen", None, "no default route")


def _check_fresh_sockets(found: _Readings) -> None:
    """setsockopt/getsockopt on fresh sockets: buffer minimums, the doubling, and whether a
    fresh socket's buffers are the sysctl defaults read above (a note where not)."""
    put, values = found.put, found.values
    put("sock_min_rcvbuf", _readback(socket.SOCK_DGRAM, socket.SO_RCVBUF, 1), "getsockopt after SO_RCVBUF=1")
    put("sock_min_sndbuf", _readback(socket.SOCK_DGRAM, socket.SO_SNDBUF, 1), "getsockopt after SO_SNDBUF=1")
    put("sockopt_buf_doubles", _readback(socket.SOCK_DGRAM, socket.SO_RCVBUF, 10000) == 20000,
        "getsockopt after SO_RCVBUF=10000 reads 20000")
    for kind, opt, field_name, want in (
            (socket.SOCK_DGRAM, socket.SO_RCVBUF, "rmem_default", values["rmem_default"]),
            (socket.SOCK_DGRAM, socket.SO_SNDBUF, "wmem_default", values["wmem_default"]),
            (socket.SOCK_STREAM, socket.SO_RCVBUF, "tcp_rmem[1]", values["tcp_rmem"][1]),
            (socket.SOCK_STREAM, socket.SO_SNDBUF, "tcp_wmem[1]", values["tcp_wmem"][1])):
        got = _fresh(kind, opt)
        if got != want:
            found.notes.append(f"a fresh socket's {'SO_RCVBUF' if opt == socket.SO_RCVBUF else 'SO_SNDBUF'} is "
                               f"{got}, not {field_name} = {want}")


def _measure_loopback(found: _Readings) -> None:
    """UDP's largest payload and truesize steps, TCP's MSS on loopback, qdisc and pacing."""
    put = found.put
    payload = max_udp_payload()
    put("udp_max_payload", payload, "largest sendto accepted on loopback")
    steps, linear = udp_truesize_steps(payload)
    put("udp_truesize_steps", [list(s) for s in steps], "/proc/net/udp rx_queue, one datagram queued, bisection")
    put("udp_truesize_linear", linear, "/proc/net/udp rx_queue of a 65507-byte datagram minus its payload")
    maxseg, advmss = loopback_mss()
    derived = min(found.values["loopback_mtu"], 65535) - 40 - 12       # ipv4_default_advmss - timestamps
    found.notes.append(f"loopback TCP: tcpi_advmss {advmss}, TCP_MAXSEG right after connect {maxseg}; the "
                       f"simulator derives its MSS from loopback_mtu: {derived}"
                       + ("" if advmss == derived else " (differs: the profile cannot express this host's MSS)"))
    put("default_qdisc", _sysctl("net.core.default_qdisc"), "sysctl net.core.default_qdisc")
    for name in ("tcp_pacing_ss_ratio", "tcp_pacing_ca_ratio"):
        v = _ints(_sysctl(f"net.ipv4.{name}"))
        put(name, v[0] if v else None, f"sysctl net.ipv4.{name}")


def _read_congestion_control(found: _Readings) -> None:
    """The default congestion control, if the simulator has it (a note if not)."""
    cc = _sysctl("net.ipv4.tcp_congestion_control")
    if cc is None:
        return
    if cc in cc_registry.available():
        found.put("tcp_congestion_control", cc, "sysctl net.ipv4.tcp_congestion_control")
    else:
        found.notes.append(f"the host's default congestion control is {cc}, which the simulator does not "
                           f"have; new sockets use {LINUX.tcp_congestion_control}")


def kernel_hz() -> int | None:
    """CONFIG_HZ, from the jiffy a 1-microsecond SO_RCVTIMEO is rounded up to."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 1))
            sec, usec = struct.unpack("ll", s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    except (OSError, struct.error):
        return None
    jiffy = sec * 1_000_000 + usec
    return 1_000_000 // jiffy if jiffy > 0 else None


def measured_fields() -> list[str]:
    """Fields that :func:`measure` reads or measures on the host (the others are copied)."""
    return ["kernel", "rmem_default", "wmem_default", "rmem_max", "wmem_max", "somaxconn", "ip_default_ttl",
            "tcp_rmem", "tcp_wmem", "ip_local_port_range", "icmp_ratelimit_ns", "ipfrag_time_ns",
            "tcp_sack", "tcp_dsack", "tcp_recovery", "tcp_early_retrans", "tcp_congestion_control",
            "default_qdisc", "tcp_pacing_ss_ratio", "tcp_pacing_ca_ratio", "tcp_syncookies",
            "tcp_max_syn_backlog", "tcp_syn_linear_timeouts", "hz",
            "tcp_keepalive_time_ns", "tcp_keepalive_intvl_ns", "tcp_keepalive_probes", "tcp_orphan_retries",
            "loopback_mtu", "default_mtu", "txqueuelen", "sock_min_rcvbuf", "sock_min_sndbuf",
            "sockopt_buf_doubles", "udp_max_payload", "udp_truesize_steps", "udp_truesize_linear"]


def differences(measured: Profile, reference: Profile = LINUX) -> dict[str, tuple]:
    """Field -> (measured, reference) for the measured fields that differ (``kernel`` excluded)."""
    out = {}
    for name in measured_fields():
        if name == "kernel":
            continue
        a, b = getattr(measured, name), getattr(reference, name)
        if a != b:
            out[name] = (a, b)
    return out


# -- command line --------------------------------------------------------------------------
def add_profile_arguments(parser) -> None:
    """``simsock profile --from-host [-o FILE]`` and ``simsock profile show [NAME|FILE]``."""
    parser.add_argument("action", nargs="?", choices=["show"], help="show a profile's fields")
    parser.add_argument("target", nargs="?", default="linux",
                        help="for show: a profile name (linux, ...) or a profile JSON file (default linux)")
    parser.add_argument("--from-host", action="store_true",
                        help="measure this Linux host and print (or write, with -o) a profile JSON file")
    parser.add_argument("-o", "--out", help="with --from-host: write the profile to this file instead of stdout")
    parser.set_defaults(func=cmd_profile)


def cmd_profile(args) -> int:
    if args.from_host and args.action:
        print("simsock: error: give either --from-host or show, not both", file=sys.stderr)
        return 2
    if args.from_host:
        try:
            hp = measure()
        except OSError as exc:
            print(f"simsock: error: cannot measure this host: {exc}", file=sys.stderr)
            return 2
        text = hp.to_json()
        if args.out:
            Path(args.out).write_text(text)
            print(f"wrote {args.out}: use it with simsock.Simulation(profile={args.out!r})", file=sys.stderr)
        else:
            sys.stdout.write(text)
        diffs = differences(hp.profile())
        if diffs:
            print("differs from the built-in linux profile (kernel " + LINUX.kernel + "):", file=sys.stderr)
            for name, (a, b) in diffs.items():
                print(f"  {name}: {a} here, {b} in linux ({hp.sources[name]})", file=sys.stderr)
        for note in hp.notes:
            print(f"note: {note}", file=sys.stderr)
        return 0
    if args.action == "show":
        try:
            prof = get_profile(args.target)
        except (ValueError, TypeError, OSError, json.JSONDecodeError) as exc:
            print(f"simsock: error: cannot read profile {args.target!r}: {exc}", file=sys.stderr)
            return 2
        for name, value in prof.to_dict().items():
            ref = getattr(LINUX, name)
            mark = "" if value == ref or prof is LINUX else f"   (linux: {ref})"
            print(f"{name:22} {value}{mark}")
        return 0
    print("simsock: error: say what to do: simsock profile --from-host [-o FILE], or simsock profile show [NAME|FILE]",
          file=sys.stderr)
    return 2
