"""The trace: one record per event, shared by the simulated and the real kernel.

Records are appended as plain tuples (no string formatting, no dicts) so that recording is
cheap when nobody reads it; they become dicts only when read (:meth:`Trace.records`) or
exported (:meth:`Trace.to_jsonl`). Every record starts with the time in integer
nanoseconds and a record type:

``syscall``  host, thread, call, fd, args, result, errno
    One per socket/notification call made by a program, written when the call returns
    (``t`` is the return time). ``result`` and ``args`` are normalised by
    :func:`trace_value`, so the real backend writes exactly the same shapes; ``errno`` is
    the symbolic name (``"EAGAIN"``) or ``None``; a socket timeout is ``"timeout"``.
``packet``   where, event, uid, src, dst, proto, size, info, reason
    ``event`` is one of ``enqueue`` (accepted into a transmit queue), ``transmit``
    (serialisation starts), ``arrive`` (reaches the far end of a link), ``deliver``
    (handed to a socket), ``drop`` (with ``reason``). ``info`` is a short transport
    summary (ports; TCP flags/seq/ack/len).
``event``    where, kind, fields
    Anything else worth a line: TCP state changes, cwnd changes, retransmissions,
    buffer occupancy samples, thread start/exit.

The JSON Lines form has one object per line with keys in a fixed order, so two runs of the
same world produce byte-identical files.
"""

from __future__ import annotations

import errno as _errno
import json
import zlib
from typing import Iterator

SYSCALL = "syscall"
PACKET = "packet"
EVENT = "event"

_SYSCALL_KEYS = ("t", "type", "host", "thread", "call", "fd", "args", "result", "errno")
_PACKET_KEYS = ("t", "type", "where", "event", "uid", "src", "dst", "proto", "size", "info", "reason")
_EVENT_KEYS = ("t", "type", "where", "kind", "fields")


def trace_value(value):
    """A JSON-able, backend-independent rendering of a call's argument or result.

    bytes -> ``{"len": n, "crc32": c}`` (content is compared, not stored); address tuples
    -> lists; sockets and other files -> ``{"fd": n}``; tuples/lists element-wise.
    """
    kind = type(value)
    if kind is bytes:                       # the common shapes first (same results as below)
        return {"len": len(value), "crc32": zlib.crc32(value)}
    if kind is int or kind is str or value is None:
        return value
    if kind is tuple:
        return [trace_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"len": len(data), "crc32": zlib.crc32(data)}
    if isinstance(value, (tuple, list)):
        return [trace_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): trace_value(v) for k, v in sorted(value.items())}
    fileno = getattr(value, "fileno", None)
    if callable(fileno):
        try:
            return {"fd": fileno()}
        except OSError:
            return {"fd": -1}
    return repr(value)


class _Digest:
    """A bytes argument or result as recorded: its length and CRC-32 (see :func:`freeze`)."""

    __slots__ = ("n", "crc")

    def __init__(self, n: int, crc: int):
        self.n = n
        self.crc = crc


_last_bytes: list = [None, None]      # [bytes object, its _Digest]: a program resends one buffer


def freeze(value):
    """What a syscall record stores for ``value``: :func:`trace_value`'s rendering, but
    built lazily — immutable shapes (ints, strs, tuples of them, bytes as a length and
    CRC-32) are kept as they are and become JSON shapes only when the trace is read
    (:func:`thaw`), anything else is rendered at once. ``thaw(freeze(v)) == trace_value(v)``.
    Buys trace-on cost per call (benchmarks/compare.py udp: trace on vs off)."""
    kind = type(value)
    if kind is int or kind is str or value is None:
        return value
    if kind is bytes:
        last = _last_bytes
        if last[0] is value:
            return last[1]
        d = _Digest(len(value), zlib.crc32(value))
        last[0] = value
        last[1] = d
        return d
    if kind is tuple:
        for v in value:
            k = type(v)
            if not (k is int or k is str or v is None or (k is tuple and _plain(v))):
                return tuple([freeze(v) for v in value])
        return value                      # shared: nothing in it needs converting
    if kind is bool or kind is float:
        return value
    return trace_value(value)


def _plain(t: tuple) -> bool:
    for v in t:
        k = type(v)
        if not (k is int or k is str):
            return False
    return True


def thaw(value):
    """The JSON shape of a value stored by :func:`freeze` (identity on trace_value output)."""
    kind = type(value)
    if kind is tuple:
        return [thaw(v) for v in value]
    if kind is _Digest:
        return {"len": value.n, "crc32": value.crc}
    return value


def errno_of(exc: BaseException | None) -> str | None:
    """Symbolic errno for a trace: ``"EAGAIN"``, ``"timeout"`` for a socket timeout, else the class name."""
    if exc is None:
        return None
    code = getattr(exc, "errno", None)
    if code is None:
        if isinstance(exc, TimeoutError):
            return "timeout"
        return type(exc).__name__
    return _errno.errorcode.get(code, str(code))


class Trace:
    """An append-only list of event tuples with cheap recording and JSON export.

    ``categories`` selects what is kept: any of ``"syscall"``, ``"packet"``, ``"event"``.
    Callers test the ``want_*`` flags before building a record, so a disabled category
    costs one attribute read.
    """

    def __init__(self, categories=("syscall", "packet", "event")):
        if categories is True:
            categories = ("syscall", "packet", "event")
        elif not categories:
            categories = ()
        unknown = set(categories) - {SYSCALL, PACKET, EVENT}
        if unknown:
            raise ValueError(f"unknown trace categories {sorted(unknown)}; use 'syscall', 'packet', 'event'")
        self.want_syscalls = SYSCALL in categories
        self.want_packets = PACKET in categories
        self.want_events = EVENT in categories
        self._rows: list[tuple] = []

    # -- recording (hot path: tuples only) ---------------------------------------------
    def syscall(self, t: int, host: str, thread: str, call: str, fd: int, args, result, err: str | None) -> None:
        self._rows.append((t, SYSCALL, host, thread, call, fd, args, result, err))

    def packet(self, t: int, where: str, event: str, pkt, reason: str | None = None) -> None:
        self._rows.append((t, PACKET, where, event, pkt, reason))

    def event(self, t: int, where: str, kind: str, fields: dict) -> None:
        self._rows.append((t, EVENT, where, kind, fields))

    # -- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def records(self, type: str | None = None) -> Iterator[dict]:
        """Every record as a dict (keys in a fixed order), optionally only one type."""
        for row in self._rows:
            if type is not None and row[1] != type:
                continue
            yield _as_dict(row)

    def syscalls(self, host: str | None = None, thread: str | None = None) -> list[dict]:
        out = []
        for r in self.records(SYSCALL):
            if (host is None or r["host"] == host) and (thread is None or r["thread"] == thread):
                out.append(r)
        return out

    def packets(self, event: str | None = None) -> list[dict]:
        return [r for r in self.records(PACKET) if event is None or r["event"] == event]

    def to_jsonl(self, path) -> None:
        """Write the trace as JSON Lines (deterministic bytes for a deterministic run)."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.records():
                f.write(json.dumps(r, separators=(",", ":"), allow_nan=False))
                f.write("\n")

    def to_pcap(self, path, at: str | None = None, event: str = "arrive") -> None:
        """Write the packets seen at ``at`` (a link direction such as ``"a->b"``, a host's
        ``"h:lo"``, or None for all) as a pcap file Wireshark and tshark open."""
        from simsock.pcap import sim_trace_to_pcap
        sim_trace_to_pcap(self, path, at=at, event=event)

    def packet_rows(self) -> Iterator[tuple[int, str, str, object]]:
        """(t, where, event, Packet) for every packet record: raw packets, for pcap export."""
        for row in self._rows:
            if row[1] == PACKET:
                yield row[0], row[2], row[3], row[4]


def _packet_info(pkt) -> str:
    p = pkt.payload
    seq = getattr(p, "seq", None)
    if seq is not None:
        return (f"{p.sport}>{p.dport} {p.flag_names()} seq={p.seq} ack={p.ack} "
                f"win={p.window} len={len(p.payload)}")
    sport = getattr(p, "sport", None)
    if sport is not None:
        if hasattr(p, "index"):
            return f"{sport}>{p.dport} frag {p.index + 1}/{p.count} id={p.ident} len={p.length}"
        return f"{sport}>{p.dport} len={len(p.data)}"
    return type(p).__name__


def _as_dict(row: tuple) -> dict:
    kind = row[1]
    if kind == SYSCALL:
        t, _, host, thread, call, fd, args, result, err = row
        return dict(zip(_SYSCALL_KEYS, (t, SYSCALL, host, thread, call, fd, thaw(args), thaw(result), err)))
    if kind == PACKET:
        t, _, where, event, pkt, reason = row
        return dict(zip(_PACKET_KEYS, (t, PACKET, where, event, pkt.uid, pkt.src, pkt.dst, pkt.proto,
                                       pkt.size, _packet_info(pkt), reason)))
    t, _, where, what, fields = row
    return dict(zip(_EVENT_KEYS, (t, EVENT, where, what, fields)))


def read_jsonl(path) -> list[dict]:
    """Read a trace written by :meth:`Trace.to_jsonl` (either backend)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}, line {number}: not a trace record ({exc}); traces are the JSON "
                                 f"Lines that sim.trace.to_jsonl or 'simsock record' write") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: a trace record is a JSON object, not "
                                 f"{type(record).__name__}")
            records.append(record)
    return records
