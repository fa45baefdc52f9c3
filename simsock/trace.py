"""The trace: one record per event, shared by the simulated and the real kernel.

Records are appended as plain fixed-shape tuples (no string formatting, no dicts) so that
recording is cheap when nobody reads it; they become dicts only when read
(:meth:`Trace.records`) or exported (:meth:`Trace.to_jsonl`). Every record starts with the
time in integer nanoseconds and a record type:

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

Memory. A packet record keeps the packet's *headers and sizes*, never the packet object or
its payload: the first time a packet is traced its header fields are copied into one tuple
(:func:`simsock.pcap.packet_header`, cached on the packet, shared by all its records:
enqueue, arrive, deliver), and each record is a 7-tuple ``(t, "packet", where, event,
header, ttl, reason)``. Payload bytes are kept only with ``payloads=True`` (``Simulation(
trace_payloads=True)``), for pcap files whose frames carry the data; without them a pcap
holds each frame's headers only, truncated the way ``tcpdump -s`` truncates (the frame's
original length is recorded, its captured length stops after the TCP/UDP header).

Three ways to bound what a long run costs (``Simulation(trace_...=)`` passes them here):

- ``limit=N`` keeps at most N records in RAM: the last N (``keep="last"``, a ring, the
  default) or the first N (``keep="first"``); :attr:`Trace.dropped` counts the others and
  an exported JSONL file says so in a ``trace_dropped`` event where they are missing;
- ``file="run.jsonl"`` streams every record to a JSON Lines file as the run goes (in
  batches of :data:`BATCH` records): RAM holds one batch; :meth:`Trace.records` and friends
  read the file back; the file is byte-identical to what :meth:`Trace.to_jsonl` writes;
- ``pcap="run.pcap"`` (with ``pcap_at`` and ``pcap_event``, as :meth:`Trace.to_pcap`)
  streams the selected packets to a pcap file as the run goes.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import zlib
from typing import Iterator

from simsock.pcap import _HEADER_OF, FRAG, HEADERS_SNAPLEN, ICMP, TCP, UDP, PcapStream, packet_header, write_pcap

SYSCALL = "syscall"
PACKET = "packet"
EVENT = "event"

#: Records buffered in RAM before a streaming trace writes them out.
BATCH = 4096

_SYSCALL_KEYS = ("t", "type", "host", "thread", "call", "fd", "args", "result", "errno")
_PACKET_KEYS = ("t", "type", "where", "event", "uid", "src", "dst", "proto", "size", "info", "reason")
_EVENT_KEYS = ("t", "type", "where", "kind", "fields")


def trace_value(value):
    """A JSON-able, backend-independent rendering of a call's argument or result.

    bytes -> ``{"len": n, "crc32": c}`` (content is compared, not stored); address tuples
    -> lists; sockets and other files -> ``{"fd": n}``; tuples/lists element-wise; an
    object without a repr of its own -> its class name (never a memory address).
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
    if kind.__repr__ is object.__repr__:
        # the default repr holds a memory address, which differs from run to run: a
        # trace must be byte-identical for the same world and seed (an IOCP completion key)
        return f"<{kind.__module__}.{kind.__qualname__} object>"
    return repr(value)


class _Digest:
    """A bytes argument or result as recorded: its length and CRC-32 (see :func:`freeze`)."""

    __slots__ = ("n", "crc")

    def __init__(self, n: int, crc: int):
        self.n = n
        self.crc = crc


_last_bytes: list = [None, None]      # [bytes object, its _Digest]: a program resends one buffer
_last_pair: list = [object(), object(), None]  # [bytes, address tuple, frozen (bytes, address)]: sendto's arguments


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
        pair = _last_pair
        if len(value) == 2 and value[0] is pair[0] and value[1] is pair[1]:
            return pair[2]                # the same buffer to the same address object as last time
        # the elements inline, without a call each (an argument tuple is (bytes, address),
        # (int,), ...: buys the trace-on cost of benchmarks/compare.py udp)
        for v in value:
            k = type(v)
            if not (k is int or k is str or v is None):
                break
        else:
            return value                  # (int,), (str, int)...: nothing to convert, no copy
        items = []
        changed = False
        for v in value:
            k = type(v)
            if k is int or k is str or v is None:
                items.append(v)
            elif k is bytes:
                last = _last_bytes
                if last[0] is not v:
                    last[0] = v
                    last[1] = _Digest(len(v), zlib.crc32(v))
                items.append(last[1])
                changed = True
            elif k is tuple and ((len(v) == 2 and type(v[0]) is str and type(v[1]) is int) or _plain(v)):
                items.append(v)                       # an address: kept as it is
            else:
                items.append(freeze(v))
                changed = True
        if not changed:
            return value                  # shared when nothing in it needed converting
        frozen = tuple(items)
        if len(value) == 2 and type(value[0]) is bytes and type(value[1]) is tuple and value[1] is frozen[1]:
            # (bytes, address): remembered while a program resends one buffer to one address
            pair[0] = value[0]
            pair[1] = value[1]
            pair[2] = frozen
        return frozen
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


_FLAG_NAMES = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."))


def _packet_info(h: tuple) -> str:
    kind = h[5]
    if kind == TCP:
        flags = "".join(n for bit, n in _FLAG_NAMES if h[10] & bit) or "none"
        return f"{h[6]}>{h[7]} {flags} seq={h[8]} ack={h[9]} win={h[11]} len={h[12]}"
    if kind == UDP:
        return f"{h[6]}>{h[7]} len={h[8]}"
    if kind == FRAG:
        return f"{h[6]}>{h[7]} frag {h[9] + 1}/{h[10]} id={h[8]} len={h[11]}"
    if kind == ICMP:
        return "IcmpError"
    return h[6]


def _as_dict(row: tuple) -> dict:
    kind = row[1]
    if kind == SYSCALL:
        t, _, host, thread, call, fd, args, result, err = row
        return dict(zip(_SYSCALL_KEYS, (t, SYSCALL, host, thread, call, fd, thaw(args), thaw(result), err)))
    if kind == PACKET:
        t, _, where, event, h, _ttl, reason = row
        return dict(zip(_PACKET_KEYS, (t, PACKET, where, event, h[0], h[1], h[2], h[3], h[4], _packet_info(h),
                                       reason)))
    t, _, where, what, fields = row
    return dict(zip(_EVENT_KEYS, (t, EVENT, where, what, fields)))


#: One encoder for every line (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode


def _json_line(row: tuple) -> str:
    return _ENCODE(_as_dict(row)) + "\n"


def _dropped_row(t: int, dropped: int, keep: str, limit: int) -> tuple:
    return (t, EVENT, "trace", "trace_dropped", {"dropped": dropped, "keep": keep, "limit": limit})


class Trace:
    """Event tuples with cheap recording, JSON and pcap export, and bounded memory.

    ``categories`` selects what is kept: any of ``"syscall"``, ``"packet"``, ``"event"``.
    Callers test the ``want_*`` flags before building a record, so a disabled category
    costs one attribute read. ``limit``/``keep``, ``file``, ``pcap``/``pcap_at``/
    ``pcap_event`` and ``payloads`` bound what the trace costs: see the module docstring.
    """

    def __init__(self, categories=("syscall", "packet", "event"), *, limit: int | None = None,
                 keep: str = "last", file=None, pcap=None, pcap_at: str | None = None,
                 pcap_event: str | None = "arrive", payloads: bool = False):
        if categories is True:
            categories = ("syscall", "packet", "event")
        elif not categories:
            categories = ()
        elif isinstance(categories, str):
            categories = (categories,)
        try:
            unknown = set(categories) - {SYSCALL, PACKET, EVENT}
        except TypeError:
            raise TypeError(f"trace must be True, False or a tuple of 'syscall', 'packet', 'event'; "
                            f"got {categories!r}") from None
        if unknown:
            raise ValueError(f"unknown trace categories {sorted(unknown)}; use 'syscall', 'packet', 'event'")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"trace_limit must be a positive number of records (e.g. 100_000) or None, "
                             f"got {limit!r}")
        if keep not in ("first", "last"):
            raise ValueError(f"trace_keep must be 'first' or 'last' (a ring of the latest records), got {keep!r}")
        if limit is not None and file is not None:
            raise ValueError("trace_limit bounds a trace kept in RAM; a trace_file is on disk and keeps every "
                             "record: give one or the other")
        if not isinstance(payloads, bool):
            raise TypeError(f"trace_payloads must be True or False, got {payloads!r}")
        self.want_syscalls = SYSCALL in categories
        self.want_packets = PACKET in categories or pcap is not None
        self.want_events = EVENT in categories
        self._keep_packets = PACKET in categories
        self.payloads = payloads
        self.limit = limit
        self.keep = keep
        #: Records not kept because of ``limit`` (see :attr:`dropped`).
        self._dropped = 0
        self._trimmed_t = 0            # time of the last record a ring let go
        self._rows: list[tuple] = []
        self._append = self._rows.append
        #: The world whose nodes and channels ``at=`` names (set by Simulation).
        self.world = None
        self.file = None if file is None else os.fspath(file)
        self._written = 0
        if self.file is not None:
            with open(self.file, "w", encoding="utf-8"):
                pass
            self._append = self._append_streamed
        elif limit is not None:
            self._append = self._append_ring if keep == "last" else self._append_first
        self._pcap = None
        if pcap is not None:
            self._pcap = PcapStream(self, os.fspath(pcap), pcap_at, pcap_event, BATCH)
            self.packet = self._packet_streamed
        if not self._keep_packets and pcap is not None:
            self.packet = self._packet_pcap_only

    # -- recording (hot path: tuples only) ---------------------------------------------
    def syscall(self, t: int, host: str, thread: str, call: str, fd: int, args, result, err: str | None) -> None:
        self._append((t, SYSCALL, host, thread, call, fd, args, result, err))

    def packet(self, t: int, where: str, event: str, pkt, reason: str | None = None) -> None:
        h = pkt.trace_hdr
        if h is None:
            # packet_header's lookup, inlined (buys the trace-on cost of benchmarks/compare.py udp)
            header = _HEADER_OF.get(type(pkt.payload))
            h = pkt.trace_hdr = (packet_header(pkt, self.payloads) if header is None
                                 else header(pkt, self.payloads))
        self._append((t, PACKET, where, event, h, pkt.ttl, reason))

    def event(self, t: int, where: str, kind: str, fields: dict) -> None:
        self._append((t, EVENT, where, kind, fields))

    def _packet_streamed(self, t, where, event, pkt, reason=None) -> None:
        h = pkt.trace_hdr
        if h is None:
            h = pkt.trace_hdr = packet_header(pkt, self.payloads)
        row = (t, PACKET, where, event, h, pkt.ttl, reason)
        self._pcap.offer(row)
        self._append(row)

    def _packet_pcap_only(self, t, where, event, pkt, reason=None) -> None:
        h = pkt.trace_hdr
        if h is None:
            h = pkt.trace_hdr = packet_header(pkt, self.payloads)
        self._pcap.offer((t, PACKET, where, event, h, pkt.ttl, reason))

    def _append_ring(self, row: tuple) -> None:
        rows = self._rows
        rows.append(row)
        if len(rows) >= 2 * self.limit:       # amortised O(1): trim a whole limit's worth at once
            cut = len(rows) - self.limit
            self._trimmed_t = rows[cut - 1][0]
            del rows[:cut]
            self._dropped += cut

    def _append_first(self, row: tuple) -> None:
        if len(self._rows) < self.limit:
            self._rows.append(row)
        else:
            self._dropped += 1

    def _append_streamed(self, row: tuple) -> None:
        rows = self._rows
        rows.append(row)
        if len(rows) >= BATCH:
            self._write_batch()

    def _write_batch(self) -> None:
        rows = self._rows
        if rows:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write("".join(map(_json_line, rows)))
            self._written += len(rows)
            rows.clear()

    def ready(self) -> None:
        """Called when a run starts: a streamed pcap's ``at`` is checked (ValueError listing the
        valid names) against the world as built so far."""
        if self._pcap is not None:
            self._pcap.select = self.selector(self._pcap.at, self._pcap.event)

    def flush(self) -> None:
        """Write what a streaming trace still buffers (Simulation.run does it when it returns)."""
        if self.file is not None:
            self._write_batch()
        if self._pcap is not None:
            self._pcap.flush()

    # -- reading -----------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """How many records ``limit`` kept out of RAM (0 without a limit)."""
        if self.limit is not None and self.keep == "last" and len(self._rows) > self.limit:
            return self._dropped + len(self._rows) - self.limit
        return self._dropped

    def _kept(self) -> list[tuple]:
        rows = self._rows
        if self.limit is not None and self.keep == "last" and len(rows) > self.limit:
            return rows[len(rows) - self.limit:]
        return rows

    def _kept_with_marker(self) -> list[tuple]:
        """The kept rows, with a ``trace_dropped`` event where records are missing."""
        rows = self._kept()
        dropped = self.dropped
        if not dropped:
            return rows
        if self.keep == "last":
            t = rows[0][0] if rows else self._trimmed_t
            return [_dropped_row(t, dropped, "last", self.limit), *rows]
        return [*rows, _dropped_row(rows[-1][0] if rows else 0, dropped, "first", self.limit)]

    def stats(self) -> dict:
        """What the trace holds: records kept in RAM, dropped by ``limit``, written to ``file``."""
        return {"kept": len(self._kept()) if self.file is None else 0, "dropped": self.dropped,
                "written": self._written + (len(self._rows) if self.file is not None else 0),
                "limit": self.limit, "keep": self.keep, "file": self.file,
                "pcap": None if self._pcap is None else self._pcap.path, "payloads": self.payloads}

    def __len__(self) -> int:
        if self.file is not None:
            return self._written + len(self._rows)
        return len(self._kept())

    def records(self, type: str | None = None) -> Iterator[dict]:
        """Every record as a dict (keys in a fixed order), optionally only one type. A trace
        streamed to a file is read back from it (JSON: tuples come back as lists)."""
        if self.file is not None:
            self.flush()
            for r in read_jsonl(self.file):
                if type is None or r["type"] == type:
                    yield r
            return
        for row in self._kept():
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
        """Write the trace as JSON Lines (deterministic bytes for a deterministic run). A
        capped trace that dropped records says so in a ``trace_dropped`` event (first line
        for ``keep="last"``, last line for ``keep="first"``)."""
        if self.file is not None:
            self.flush()
            if os.path.abspath(os.fspath(path)) != os.path.abspath(self.file):
                with open(self.file, "rb") as src, open(path, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            return
        with open(path, "w", encoding="utf-8") as f:
            rows = self._kept_with_marker()
            for i in range(0, len(rows), BATCH):
                f.write("".join(map(_json_line, rows[i:i + BATCH])))

    def to_pcap(self, path, at: str | None = None, event: str | None = "arrive") -> int:
        """Write the packets seen at ``at`` as a pcap file Wireshark and tshark open; returns
        how many. ``at``: None (everywhere), a link direction such as ``"a->b"``, a host's
        ``"h:lo"``, or a host or router name: every packet it sends (as it enters the node's
        interface queues, loopback included) or receives (as it arrives over a link), as
        Shadow's per-host pcap and tcpdump on all of the host's interfaces show them (with
        another ``event``, such as ``"deliver"`` or ``"drop"``, the records made at the node
        itself). ``event``: ``"arrive"`` (the default), another packet event, or None for
        every event. An unknown ``at`` is a ValueError listing the valid names."""
        if not self._keep_packets:
            streamed = f" (the packets went to {self._pcap.path!r} as the run went)" if self._pcap else ""
            raise ValueError(f"this trace keeps no packet records{streamed}: trace=True or a tuple with "
                             f"'packet' keeps them")
        if self.file is not None:
            raise ValueError(f"this trace was streamed to {self.file!r} (JSON Lines keep no packet headers); "
                             f"to get a pcap of a streamed run, pass trace_pcap='run.pcap' (and trace_pcap_at=) "
                             f"to Simulation")
        select = self.selector(at, event)
        rows = ((t, where, ev, h, ttl) for t, _, where, ev, h, ttl, _r in
                (r for r in self._kept() if r[1] == PACKET) if select(where, ev))
        return write_pcap(path, rows, snaplen=None if self.payloads else HEADERS_SNAPLEN)

    def selector(self, at: str | None, event: str | None = "arrive"):
        """A function ``(where, event) -> bool`` choosing the packet records ``at``/``event``
        name (see :meth:`to_pcap`); raises ValueError for an ``at`` that names nothing."""
        if at is None:
            return (lambda where, ev: True) if event is None else (lambda where, ev: ev == event)
        if not isinstance(at, str):
            raise TypeError(f"at= must be a link direction ('a->b'), a host's 'h:lo', a host or router name, "
                            f"or None; got {type(at).__name__} {at!r}")
        channels, nodes = self._places()
        if at in nodes and event == "arrive":
            out_ch = {name for name, (src, _dst) in channels.items() if src == at}
            in_ch = {name for name, (src, dst) in channels.items() if dst == at and src != at}
            return lambda where, ev: (ev == "enqueue" and where in out_ch) or (ev == "arrive" and where in in_ch)
        if at in channels or at in nodes or (self.world is None and at in nodes_or_places(self)):
            return (lambda where, ev: where == at) if event is None else (
                lambda where, ev: where == at and ev == event)
        valid = sorted(nodes) + sorted(channels)
        if self.world is None:
            valid = sorted(nodes_or_places(self))
        raise ValueError(f"at={at!r} names no host, router or link direction of this trace; valid names: "
                         f"{', '.join(valid) if valid else '(none: nothing was traced)'} (or None for every place)")

    def _places(self) -> tuple[dict, set]:
        """({channel name: (source node, destination node)}, {node names}) of the world."""
        world = self.world
        if world is None:
            return {}, set()
        channels = {}
        for link in getattr(world, "links", ()):
            for ch in (getattr(link, "forward", None), getattr(link, "backward", None)):
                if ch is not None:
                    channels[ch.name] = (ch.src.name, ch.dst.name)
        nodes = set()
        for host in getattr(world, "hosts", {}).values():
            nodes.add(host.name)
            lo = getattr(host, "lo", None)
            if lo is not None:
                channels[lo.name] = (host.name, host.name)
        nodes.update(getattr(world, "routers", {}))
        return channels, nodes

    def packet_rows(self) -> Iterator[tuple[int, str, str, tuple, int]]:
        """(t, where, event, header, ttl) for every packet record kept: for pcap export."""
        for row in self._kept():
            if row[1] == PACKET:
                yield row[0], row[2], row[3], row[4], row[5]


def nodes_or_places(trace: Trace) -> set:
    """The ``where`` values of a trace's packet records (for a trace without a world)."""
    return {row[2] for row in trace._kept() if row[1] == PACKET}


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
