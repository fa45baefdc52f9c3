"""Client workloads: game clients sending small periodic updates, and bulk senders.

The service they talk to is an echo: the server sends every byte back (the server models
in :mod:`models.servers_readiness` and others do, optionally after ``k.compute`` per
update). An *update* is ``size`` bytes: a header ``(client id, sequence, send time in ns)``
packed little-endian, then padding. The client reads the echoed stream, cuts it back into
updates and measures each one's round trip from the send time inside it.

``record`` is a dict the client adds its counts to (it may be shared by many clients; every
key is a sum, a maximum or a list, so the result is the aggregate); it stays JSON-able:

``connected``, ``sent``, ``received`` (updates), ``bytes_sent``, ``bytes_received``,
``rtt_sum_ns``, ``rtt_max_ns``, ``rtt_ns`` (one sample per update, only with
``samples=True``), ``reply_order_errors`` (replies that came back behind a later update
of the same connection), ``errors`` (errno names of failures, e.g. ``["ECONNREFUSED"]``),
``done`` (clients that finished).

API (stable; other models and experiments import it)::

    await game_client(k, server_addr, period=0.1, size=100, count=None, start_delay=0.0,
                      record=None, client_id=None, samples=False, linger=1.0, burst=1,
                      gap=0.0, fixed_rate=False, nodelay=False)
    await bulk_client(k, server_addr, total=1_000_000, chunk=16384, start_delay=0.0,
                      record=None)
"""

from __future__ import annotations

import errno as _errno
import struct

from simsock.constants import AF_INET, IPPROTO_TCP, SHUT_WR, SOCK_STREAM, TCP_NODELAY

from . import ensure_record

HEADER = struct.Struct("<IIQ")        # client id, sequence, send time (ns)
MIN_UPDATE = HEADER.size

__all__ = ["game_client", "bulk_client", "make_update", "parse_update", "new_record", "HEADER", "MIN_UPDATE"]


def new_record() -> dict:
    """An empty record with every key a client adds to."""
    return {"connected": 0, "sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0,
            "rtt_sum_ns": 0, "rtt_max_ns": 0, "rtt_ns": [], "reply_order_errors": 0, "errors": [], "done": 0}


def make_update(client_id: int, seq: int, now_ns: int, size: int) -> bytes:
    """One update of ``size`` bytes (at least :data:`MIN_UPDATE`)."""
    return HEADER.pack(client_id & 0xFFFFFFFF, seq & 0xFFFFFFFF, now_ns) + bytes(size - HEADER.size)


def parse_update(data) -> tuple[int, int, int]:
    """(client id, sequence, send time ns) of an update."""
    return HEADER.unpack_from(data)


def _err_name(exc: OSError) -> str:
    code = getattr(exc, "errno", None)
    return _errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__


async def _read_updates(k, s, size: int, record: dict, samples: bool, state: dict) -> None:
    """Reader thread: cut the echoed stream into updates and record their round trips, and
    count replies that come back behind a later one (``reply_order_errors``)."""
    buf = bytearray()
    last = -1
    try:
        while True:
            data = await s.recv(65536)
            if not data:
                break
            record["bytes_received"] += len(data)
            buf += data
            while len(buf) >= size:
                _cid, seq, sent_ns = HEADER.unpack_from(buf)
                del buf[:size]
                rtt = k.now_ns - sent_ns
                record["received"] += 1
                state["received"] += 1
                record["rtt_sum_ns"] += rtt
                if rtt > record["rtt_max_ns"]:
                    record["rtt_max_ns"] = rtt
                if samples:
                    record["rtt_ns"].append(rtt)
                if seq < last:
                    record["reply_order_errors"] += 1
                else:
                    last = seq
    except OSError as exc:
        record["errors"].append(_err_name(exc))


async def _connect(k, server_addr, record: dict, start_delay: float, nodelay: bool = False):
    """After ``start_delay`` seconds, connect a TCP socket (with TCP_NODELAY if
    ``nodelay``). Returns it, or None once a failure is recorded and the socket closed."""
    if start_delay:
        await k.sleep(start_delay)
    s = k.socket(AF_INET, SOCK_STREAM)
    if nodelay:
        s.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
    try:
        await s.connect(server_addr)
    except OSError as exc:
        record["errors"].append(_err_name(exc))
        s.close()
        return None
    record["connected"] += 1
    return s


async def _session(s, reader, record: dict, send) -> dict:
    """Run ``send()``, then shut down the sending side and wait until ``reader`` has seen
    the server close (``done``). A failure goes into ``errors``; the socket is closed
    either way. Returns the record."""
    try:
        await send()
        s.shutdown(SHUT_WR)
        await reader.join()
        record["done"] += 1
    except OSError as exc:
        record["errors"].append(_err_name(exc))
    finally:
        s.close()
    return record


async def game_client(k, server_addr, *, period=0.1, size=100, count=None, start_delay=0.0, record=None,
                      client_id=None, samples=False, linger=1.0, burst=1, gap=0.0, fixed_rate=False,
                      nodelay=False):
    """Connect over TCP, send a ``size``-byte update every ``period`` seconds (``count``
    of them, or until the simulation ends), read the echoes and record round trips.
    ``burst`` > 1 sends that many updates each period: in one write (they arrive together),
    or with ``gap`` > 0 one write each, ``gap`` seconds apart. The client sleeps ``period``
    after each burst; with ``fixed_rate`` bursts instead start every ``period`` seconds
    (the time spent sending counts towards it). ``nodelay`` sets TCP_NODELAY.

    After the last update it waits up to ``linger`` seconds for the outstanding echoes,
    then shuts down its sending side, waits for the server to close, and closes. Returns
    the record."""
    if size < MIN_UPDATE:
        raise ValueError(f"an update needs at least {MIN_UPDATE} bytes (its header), got size={size}")
    if period <= 0:
        raise ValueError(f"period must be positive, got {period!r}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0 seconds, got {gap!r}")
    record = ensure_record(record, new_record)
    s = await _connect(k, server_addr, record, start_delay, nodelay)
    if s is None:
        return record
    if client_id is None:
        client_id = s.getsockname()[1]
    state = {"received": 0}
    reader = k.spawn(_read_updates, s, size, record, samples, state, name=f"{k.thread}-rx")
    seq = 0

    async def send():
        nonlocal seq
        while count is None or seq < count:
            n = burst if count is None else min(burst, count - seq)
            start = k.now if fixed_rate else 0.0
            if gap:
                for i in range(n):
                    await s.sendall(make_update(client_id, seq, k.now_ns, size))
                    seq += 1
                    record["sent"] += 1
                    record["bytes_sent"] += size
                    if i < n - 1:
                        await k.sleep(gap)
            else:
                now = k.now_ns
                await s.sendall(b"".join(make_update(client_id, seq + i, now, size) for i in range(n)))
                seq += n
                record["sent"] += n
                record["bytes_sent"] += n * size
            if count is None or seq < count:
                await k.sleep(max(0.0, period - (k.now - start)) if fixed_rate else period)
        waited = 0.0
        step = min(period, 0.05)
        while state["received"] < seq and waited < linger:
            await k.sleep(step)
            waited += step

    return await _session(s, reader, record, send)


async def _drain(k, s, record: dict) -> None:
    try:
        while data := await s.recv(65536):
            record["bytes_received"] += len(data)
    except OSError as exc:
        record["errors"].append(_err_name(exc))


async def bulk_client(k, server_addr, *, total=1_000_000, chunk=16384, start_delay=0.0, record=None):
    """Connect and send ``total`` bytes as fast as the connection takes them (blocking
    ``sendall`` of ``chunk``-byte pieces), reading the echo in a second thread; then shut
    down the sending side and wait for the server to close. Returns the record."""
    if total < 0 or chunk <= 0:
        raise ValueError(f"total must be >= 0 and chunk > 0, got total={total!r} chunk={chunk!r}")
    record = ensure_record(record, new_record)
    s = await _connect(k, server_addr, record, start_delay)
    if s is None:
        return record
    reader = k.spawn(_drain, s, record, name=f"{k.thread}-rx")

    async def send():
        piece = bytes(chunk)
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            await s.sendall(piece if n == chunk else piece[:n])
            sent += n
            record["bytes_sent"] += n

    return await _session(s, reader, record, send)
