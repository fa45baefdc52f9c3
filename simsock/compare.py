"""Hold two traces of the same programs against each other, call by call.

The simulated and the real kernel record the same syscall records (:mod:`simsock.trace`),
but some facts in them are accidents of the run, not behaviour: absolute times, the numbers
the kernel happened to give file descriptors and ephemeral ports, and the addresses hosts
were reached by (``127.0.1.2`` on the real loopback, ``10.77.0.1`` in a namespace, whatever
the simulator assigns). :func:`normalise` removes them:

- times are dropped; only each thread's order of calls is kept;
- file descriptors become ``fd1``, ``fd2``, … per host in order of appearance, threads
  taken one after another in sorted order; a call that
  creates a file (``socket``, ``accept``, ``epoll``) always gets a fresh name, so reusing a
  closed number does not alias two sockets;
- an address that belongs to a host becomes the host's name. Addresses are learnt from the
  ``host`` event records both backends write at the start of a run (fields ``addresses``)
  and from the ``addresses`` argument; 127.0.0.1 and 0.0.0.0 stay as they are;
- ephemeral ports (>= 32768) in ``[address, port]`` pairs become ``eph1``, ``eph2``, … per
  address, in order of appearance, so ``["client", "eph1"]`` is the client's first
  ephemeral port on both sides.

:func:`compare` then walks the two traces thread by thread (host and thread name are the
key) and describes, for every thread, the first call that differs in words, e.g.
``thread main on host client: call 5 recv(4096) returned 1000 bytes in A but raised EAGAIN
in B``. Some results legitimately differ a little between kernels — how many bytes one
non-blocking ``send`` accepted before the buffer filled, say. ``tolerant_calls={"send":
0.1}`` compares the byte counts (ints, and the lengths of data) of those calls' arguments
and results within 10% of the larger value, and ignores the data's checksum. Errors, call
names and everything else are compared exactly. A different *number* of calls (a fill loop
that needed one more send on one side) is a difference; callers that expect it should
compare traces of programs that record the total instead.

The module also holds the ``simsock record`` and ``simsock compare`` command handlers and
:func:`run_both`, the conformance harness's way to run one world on both kernels.
"""

from __future__ import annotations

import argparse
import runpy
import sys

import simsock
from simsock import progress
from simsock.errors import SimulationError
from simsock.trace import EVENT, SYSCALL, Trace, read_jsonl
from simsock.units import parse_time

EPHEMERAL_MIN = 32768
_CREATING_CALLS = ("socket", "accept", "epoll")
_UNMAPPED = ("127.0.0.1", "0.0.0.0", "", "localhost")

ThreadKey = tuple[str, str]   # (host, thread)


# -- normalisation -------------------------------------------------------------------------
def _records(trace_or_records) -> list[dict]:
    if isinstance(trace_or_records, Trace):
        return list(trace_or_records.records())
    return list(trace_or_records)


def address_table(records, addresses: dict[str, str] | None = None) -> dict[str, str]:
    """Address -> host name, from ``host`` event records plus ``addresses``."""
    table: dict[str, str] = {}
    for r in records:
        if r.get("type") == EVENT and r.get("kind") == "host":
            for a in (r.get("fields") or {}).get("addresses", ()):
                if a not in _UNMAPPED:
                    table[a] = r["where"]
    if addresses:
        table.update(addresses)
    return table


class _Normaliser:
    def __init__(self, table: dict[str, str]):
        self.table = table
        self.fds: dict[str, dict[int, str]] = {}       # host -> live fd number -> label
        self.fd_counts: dict[str, int] = {}
        self.ports: dict[tuple[str, int], str] = {}     # (address owner, port) -> label
        self.port_counts: dict[str, int] = {}

    def fd(self, host: str, n, fresh: bool = False):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return n
        live = self.fds.setdefault(host, {})
        if fresh or n not in live:
            self.fd_counts[host] = self.fd_counts.get(host, 0) + 1
            live[n] = f"fd{self.fd_counts[host]}"
        return live[n]

    def port(self, owner: str, port: int) -> str:
        key = (owner, port)
        if key not in self.ports:
            self.port_counts[owner] = self.port_counts.get(owner, 0) + 1
            self.ports[key] = f"eph{self.port_counts[owner]}"
        return self.ports[key]

    def value(self, host: str, v, fresh_fds: bool = False):
        if isinstance(v, str):
            return self.table.get(v, v)
        if isinstance(v, dict):
            if set(v) == {"fd"}:
                return {"fd": self.fd(host, v["fd"], fresh_fds)}
            return {k: self.value(host, x, fresh_fds) for k, x in v.items()}
        if isinstance(v, list):
            if (len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)
                    and not isinstance(v[1], bool)):
                addr = self.table.get(v[0], v[0])
                port = v[1]
                if port >= EPHEMERAL_MIN:
                    port = self.port(addr, port)
                return [addr, port]
            return [self.value(host, x, fresh_fds) for x in v]
        return v


def normalise(records, addresses: dict[str, str] | None = None) -> dict[ThreadKey, list[dict]]:
    """Per-thread lists of calls with run accidents removed (see the module docstring).

    ``records`` is a :class:`~simsock.trace.Trace` or an iterable of record dicts (as
    :func:`~simsock.trace.read_jsonl` returns). Each call becomes ``{"call", "fd", "args",
    "result", "errno"}``; the dict's keys are ``(host, thread)`` in order of first call.
    """
    records = _records(records)
    norm = _Normaliser(address_table(records, addresses))
    # Threads that start at the same instant run in a different order on each kernel, so
    # descriptors are labelled thread by thread (threads sorted by host and name), each
    # thread's calls in time order: the labels then do not depend on the interleaving.
    indexed = [(i, r) for i, r in enumerate(records) if r.get("type") == SYSCALL]
    calls = [r for _, r in sorted(indexed, key=lambda ir: (ir[1]["host"], ir[1]["thread"], ir[1]["t"], ir[0]))]
    out: dict[ThreadKey, list[dict]] = {}
    for r in calls:
        host = r["host"]
        # The result first: a call that creates a file names it there, and for socket() and
        # epoll() the record's own fd is that new file.
        result = norm.value(host, r["result"], fresh_fds=r["call"] in _CREATING_CALLS)
        fd = norm.fd(host, r["fd"])
        args = norm.value(host, r["args"])
        out.setdefault((host, r["thread"]), []).append(
            {"call": r["call"], "fd": fd, "args": args, "result": result, "errno": r["errno"]})
    return out


# -- comparison ----------------------------------------------------------------------------
def _close(a, b, tol: float) -> bool:
    """Equality, with byte counts within ``tol`` (relative) and data checksums ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return abs(a - b) <= tol * max(abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) == set(b) == {"len", "crc32"}:
            return _close(a["len"], b["len"], tol)
        return set(a) == set(b) and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return a == b


def _show(v) -> str:
    if isinstance(v, dict):
        if set(v) == {"len", "crc32"}:
            return f"<{v['len']} bytes>"
        if set(v) == {"fd"}:
            return str(v["fd"])
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        if len(v) == 2 and isinstance(v[0], str):
            return f"({v[0]}, {_show(v[1])})"
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def describe_call(c: dict) -> str:
    """``recv(4096)``: a call as a program would write it."""
    return f"{c['call']}({', '.join(_show(a) for a in c['args'] or [])})"


def describe_outcome(c: dict) -> str:
    """``returned 1000 bytes`` / ``raised EAGAIN``."""
    if c["errno"] is not None:
        return f"raised {c['errno']}"
    r = c["result"]
    if isinstance(r, dict) and set(r) == {"len", "crc32"}:
        return f"returned {r['len']} bytes"
    return f"returned {_show(r)}"


def _first_difference(ca: list[dict], cb: list[dict], tol: dict[str, float], an: str, bn: str) -> str | None:
    for i, (x, y) in enumerate(zip(ca, cb), start=1):
        t = tol.get(x["call"]) if x["call"] == y["call"] else None
        same = (lambda p, q: _close(p, q, t)) if t is not None else (lambda p, q: p == q)
        if x["call"] != y["call"] or not same(x["args"], y["args"]):
            return f"call {i} is {describe_call(x)} in {an} but {describe_call(y)} in {bn}"
        if x["fd"] != y["fd"]:
            return f"call {i} {describe_call(x)} is on {x['fd']} in {an} but on {y['fd']} in {bn}"
        if x["errno"] != y["errno"] or (x["errno"] is None and not same(x["result"], y["result"])):
            if describe_outcome(x) == describe_outcome(y):   # e.g. same length, other bytes
                return f"call {i} {describe_call(x)} returned different data in {an} and {bn}"
            return f"call {i} {describe_call(x)} {describe_outcome(x)} in {an} but {describe_outcome(y)} in {bn}"
    if len(ca) != len(cb):
        n = min(len(ca), len(cb))
        longer, shorter, extra = (an, bn, ca[n]) if len(ca) > n else (bn, an, cb[n])
        return (f"after {n} matching calls, {longer} makes call {n + 1} {describe_call(extra)} "
                f"({describe_outcome(extra)}) but the thread in {shorter} makes no more calls")
    return None


def compare(a_records, b_records, tolerant_calls: dict[str, float] | None = None, *,
            names: tuple[str, str] = ("A", "B"), addresses: dict[str, str] | None = None) -> list[str]:
    """One sentence per thread whose calls differ (its first difference); ``[]`` if they agree.

    ``tolerant_calls`` maps a call name to a relative tolerance for its byte counts
    (``{"send": 0.1}``: within 10%). ``names`` label the two sides in the sentences.
    """
    tol = dict(tolerant_calls or {})
    an, bn = names
    na, nb = normalise(a_records, addresses), normalise(b_records, addresses)
    out = []
    for key in [*na, *(k for k in nb if k not in na)]:
        host, thread = key
        who = f"thread {thread} on host {host}"
        if key not in nb:
            out.append(f"{who} made {len(na[key])} calls in {an} but does not exist in {bn}")
            continue
        if key not in na:
            out.append(f"{who} made {len(nb[key])} calls in {bn} but does not exist in {an}")
            continue
        diff = _first_difference(na[key], nb[key], tol, an, bn)
        if diff is not None:
            out.append(f"{who}: {diff}")
    return out


def summary(records) -> tuple[int, int]:
    """(number of calls, number of threads) in a trace."""
    n = normalise(records)
    return sum(len(v) for v in n.values()), len(n)


# -- running one world on both kernels -----------------------------------------------------
def run_both(world_fn, until, *, seed: int = 1, namespaces: bool = False):
    """Build a ``simsock.Simulation(seed)`` and a ``RealWorld``, apply ``world_fn`` to each,
    run both to ``until`` seconds and return ``(simulated trace, real trace)``.

    Real threads still running at the bound are stopped quietly (servers usually loop
    forever), as the simulator stops at its bound.
    """
    from simsock.real import RealWorld   # the real backend (Linux only, 60 ms): when used

    sim = simsock.Simulation(seed=seed)
    world_fn(sim)
    sim.run(until=until)
    _add_host_events(sim)
    real = RealWorld(seed=seed, namespaces=namespaces)
    world_fn(real)
    real.run(until=until, unfinished="stop")
    return sim.trace, real.trace


def _add_host_events(world) -> None:
    """Give a world's trace the ``host`` events normalisation learns addresses from, if its
    backend did not write them (the simulator names its hosts' addresses on ``host.address``)."""
    trace = world.trace
    if not trace.want_events or any(r["kind"] == "host" for r in trace.records(EVENT)):
        return
    hosts = world.hosts.values() if isinstance(world.hosts, dict) else world.hosts
    for i, h in enumerate(hosts, start=1):
        address = getattr(h, "address", None)
        trace.event(0, h.name, "host", {"index": i, "addresses": [address] if address else []})


# -- command-line handlers -----------------------------------------------------------------
UNTIL_HELP = ("how long the run lasts, in seconds from its start: wall-clock seconds on the real kernel, "
              "simulated seconds with --sim; threads still running then (servers that loop forever) are "
              "stopped on both sides and the calls they were blocked in are not recorded (default 10)")


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simsock record``: SCRIPT [--out PATH] [--until S] [--namespaces] [--sim]."""
    parser.description = (
        "Run SCRIPT's world(w) on the real kernel (or, with --sim, on the simulated one) and write "
        "its syscall trace; 'simsock compare' then holds two traces against each other. Endpoints "
        "are named by host on both sides, so a real and a simulated trace of one world compare equal.")
    parser.add_argument("script", help="a Python file defining world(w), which adds hosts and spawns programs")
    parser.add_argument("--out", default="trace.jsonl", help="where to write the trace (JSON Lines)")
    parser.add_argument("--until", default="10", help=UNTIL_HELP)
    parser.add_argument("--namespaces", action="store_true",
                        help="one network namespace per host (root only; needed for link rates)")
    parser.add_argument("--sim", action="store_true",
                        help="run the same world on the simulated kernel instead (seed 1), to compare with a real trace")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress line (it is shown only when stderr is a terminal)")
    parser.set_defaults(func=cmd_record)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simsock compare``: A.jsonl B.jsonl [--tolerate CALL=FRACTION ...]."""
    parser.add_argument("a", help="first trace (JSON Lines)")
    parser.add_argument("b", help="second trace (JSON Lines)")
    parser.add_argument("--tolerate", action="append", default=[], metavar="CALL=FRACTION",
                        help="compare byte counts of CALL within FRACTION, e.g. send=0.1 (repeatable)")
    parser.set_defaults(func=cmd_compare)


def cmd_record(args) -> int:
    """``simsock record SCRIPT.py``: run the script's ``world(w)``, write the trace."""
    namespace = runpy.run_path(args.script, run_name="__simsock_record__")
    world_fn = namespace.get("world")
    if not callable(world_fn):
        print(f"simsock: error: {args.script} must define a function world(w) that adds hosts and spawns "
              f"programs", file=sys.stderr)
        return 2
    until = getattr(args, "until", None)
    try:
        until_s = None if until is None else parse_time(until, what="--until") / 1e9
    except ValueError as exc:
        print(f"simsock: error: {exc}", file=sys.stderr)
        return 2
    out = getattr(args, "out", None) or "trace.jsonl"
    sim = getattr(args, "sim", False)
    namespaces = getattr(args, "namespaces", False)
    if sim:
        w = simsock.Simulation(seed=1)
    else:
        from simsock.real import RealWorld   # see run_both
        w = RealWorld(namespaces=namespaces)
    try:
        world_fn(w)
    except ValueError as exc:
        if hasattr(w, "close"):
            w.close()
        if not sim and not namespaces and "namespaces=True" in str(exc):
            print(f"simsock: error: {args.script}: a link with a rate, delay or loss needs separate hosts: "
                  f"use --namespaces (root; only the rate is reproduced, this kernel has no netem)",
                  file=sys.stderr)
        else:
            print(f"simsock: error: {args.script}: {exc}", file=sys.stderr)
        return 2
    failed = None
    side = "simulated" if sim else "real"
    bound = "" if until_s is None else f", until {until_s:g} s"
    try:
        with progress.activity(f"{args.script} ({side}{bound})"):
            if sim:
                w.run(until=until_s)
            else:
                w.run(until=until_s, unfinished="stop")
    except SimulationError as exc:
        failed = exc
    if sim:
        _add_host_events(w)
    w.trace.to_jsonl(out)   # written even after a failure: it shows what led up to it
    calls, threads = summary(w.trace)
    print(f"recorded {calls} {'simulated ' if sim else ''}calls on {threads} threads to {out}")
    if not sim and w.unfinished:
        print(f"stopped at the bound: {', '.join(w.unfinished)}")
    if failed is not None:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0


def _parse_tolerances(items) -> dict[str, float]:
    tol = {}
    for item in items or ():
        call, sep, frac = item.partition("=")
        if not sep:
            raise SystemExit(f"--tolerate wants CALL=FRACTION, e.g. send=0.1, not {item!r}")
        tol[call] = float(frac)
    return tol


def cmd_compare(args) -> int:
    """``simsock compare A.jsonl B.jsonl``: print the differences; 1 if any, else 0."""
    try:
        a, b = read_jsonl(args.a), read_jsonl(args.b)
    except ValueError as exc:
        print(f"simsock: error: {exc}", file=sys.stderr)
        return 2
    diffs = compare(a, b, _parse_tolerances(getattr(args, "tolerate", None)))
    if diffs:
        for line in diffs:
            print(line)
        return 1
    calls, threads = summary(a)
    print(f"traces agree: {calls} calls on {threads} threads")
    return 0
