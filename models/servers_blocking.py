"""Echo servers without readiness notification: a thread per client, and a busy-poll loop.

Both serve the echo protocol of :mod:`models.clients` (every byte read is sent back; with
``compute`` > 0 the server spends that much CPU per whole update of ``size`` bytes).

* :func:`thread_per_client_server` — the blocking design of the source chapter's section 3.1:
  one thread blocks in ``accept`` and spawns a thread per connection, which blocks in
  ``recv`` and answers with ``sendall``. Simple, and a blocked thread costs no CPU (C1.2),
  but there are as many threads as clients and every update costs a wake-up and a context
  switch (C6.1).
* :func:`busy_poll_server` — one thread, non-blocking sockets, and *no* select: it loops
  over a non-blocking ``accept`` and a non-blocking ``recv`` on every connection, whether
  anything is there or not. It serves everyone from one thread, but the loop never waits,
  so it holds a core at 100% even when every client is idle (C6.5).

Records (JSON-able dicts, the keys of :func:`models.servers_readiness.new_server_record`
plus): ``threads`` (connection threads spawned, thread-per-client), ``loops`` (passes over
the sockets, busy-poll), ``eagain`` (calls that returned EAGAIN, busy-poll).
"""

from __future__ import annotations

from simsock.constants import AF_INET, SO_REUSEADDR, SOCK_STREAM, SOL_SOCKET

from . import ensure_record
from .servers_readiness import _Echo, new_server_record

__all__ = ["thread_per_client_server", "busy_poll_server", "new_blocking_record"]


def new_blocking_record() -> dict:
    return new_server_record() | {"threads": 0, "loops": 0, "eagain": 0}


async def _serve_client(k, conn, record: dict, size: int, compute: float, read_size: int) -> None:
    """One connection's thread: blocking recv, echo with sendall, until the peer closes."""
    partial = 0
    try:
        while True:
            data = await conn.recv(read_size)
            record["reads"] += 1
            if not data:
                break
            record["bytes_in"] += len(data)
            whole, partial = divmod(partial + len(data), size)
            record["updates"] += whole
            if compute and whole:
                await k.compute(compute * whole)
            await conn.sendall(data)
            record["bytes_out"] += len(data)
    except OSError:
        pass
    finally:
        conn.close()
        record["closed"] += 1


async def thread_per_client_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                                   max_clients=None):
    """Accept connections (blocking) and spawn a thread per connection that echoes with
    blocking calls. Stops accepting after ``max_clients`` connections (None: never)."""
    record = ensure_record(record, new_blocking_record)
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(backlog)
    while max_clients is None or record["accepted"] < max_clients:
        conn, _addr = await ls.accept()
        record["accepted"] += 1
        record["threads"] += 1
        k.spawn(_serve_client, conn, record, size, compute, read_size, name=f"client-{record['accepted']}")
    ls.close()
    return record


async def busy_poll_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                           max_clients=None, stop_at=None, listener_blocking=False):
    """One thread looping over non-blocking accept and recv on every socket, never waiting
    (no select). Runs until ``stop_at`` (seconds; None: forever) or until ``max_clients``
    connections were accepted and all closed. ``listener_blocking`` leaves the listening
    socket blocking (the mistake: the loop then hangs in accept)."""
    record = ensure_record(record, new_blocking_record)
    srv = _Echo(k, port, record, size, compute, read_size, backlog, max_clients, stop_at)
    if listener_blocking:
        srv.listener.setblocking(True)
    while not srv.done():
        record["loops"] += 1
        if await srv.accept_one() is None:
            record["eagain"] += 1
        for conn in list(srv.conns.values()):
            if conn.outbox:
                await srv.flush(conn)
            outcome = await srv.read_once(conn)
            if outcome is None:
                srv.close(conn)
            elif outcome is False:
                record["eagain"] += 1
    srv.listener.close()
    return record
