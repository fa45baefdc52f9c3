"""Echo servers driven by readiness notification: select, poll, epoll LT, epoll ET.

All of them serve the echo protocol of :mod:`models.clients` on one thread with
non-blocking sockets: the listening socket is watched with the connections; a readable
connection is read (``read_size`` bytes per ``recv``) and what was read is sent back (what
the send buffer does not take waits in the connection's outbox, and the socket is then
watched for writability). With ``compute`` > 0 the server spends that much CPU per whole
update of ``size`` bytes (``k.compute``, when the kernel has a CPU model).

The servers differ only in how they learn what is ready:

* :func:`select_server`, :func:`poll_server`: the whole list on every call (C7.6);
* :func:`epoll_lt_server`: level-triggered epoll, one ``recv`` per report — what is left
  is reported again;
* :func:`epoll_et_server`: edge-triggered epoll, reading (and accepting) until EAGAIN, as
  an ET program must (C8.3);
* :func:`epoll_et_nodrain_server`: edge-triggered epoll with the bug: one ``recv`` per
  event, so whatever is left after it stays in the receive buffer until the client sends
  again — and for good once the client stops.

Each takes ``record`` (a dict, JSON-able) and keeps in it: ``wakeups`` (waits that returned
something), ``waits`` (calls of select/poll/epoll_wait), ``events`` (ready descriptors
handled), ``accepted``, ``reads``, ``bytes_in``, ``bytes_out``, ``updates`` (whole updates
echoed), ``closed``. The loop runs until ``stop_at`` (seconds of simulated time, checked
after each wait; None: forever) or until ``max_clients`` connections were accepted and all
closed.
"""

from __future__ import annotations

from simsock.constants import (AF_INET, EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP, POLLERR, POLLHUP, POLLIN,
                               POLLOUT, SO_REUSEADDR, SOCK_STREAM, SOL_SOCKET)

from . import ensure_record

__all__ = ["select_server", "poll_server", "epoll_lt_server", "epoll_et_server", "epoll_et_nodrain_server",
           "SERVERS", "new_server_record"]


def new_server_record() -> dict:
    return {"waits": 0, "wakeups": 0, "events": 0, "accepted": 0, "reads": 0, "bytes_in": 0, "bytes_out": 0,
            "updates": 0, "closed": 0}


class _Conn:
    __slots__ = ("sock", "outbox", "partial")

    def __init__(self, sock):
        self.sock = sock
        self.outbox = bytearray()
        self.partial = 0          # bytes of an update received but not yet complete


class _Echo:
    """What every server does with a connection; only the waiting differs."""

    def __init__(self, k, port, record, size, compute, read_size, backlog, max_clients, stop_at):
        self.k = k
        self.record = ensure_record(record, new_server_record)
        self.size = size
        self.compute = compute
        self.read_size = read_size
        self.max_clients = max_clients
        self.stop_at = stop_at
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(backlog)
        ls.setblocking(False)
        self.listener = ls
        self.conns: dict[int, _Conn] = {}
        self.watching_out: set[int] = set()    # registered for output too (watch_output)

    def done(self) -> bool:
        if self.stop_at is not None and self.k.now >= self.stop_at:
            return True
        return (self.max_clients is not None and self.record["accepted"] >= self.max_clients
                and not self.conns)

    async def accept_one(self):
        """One accept; the new connection, or None on EAGAIN. Counts the calls, the EAGAINs
        and the longest call (``accept_calls``, ``accept_eagain``, ``accept_call_ns_max``)."""
        rec = self.record
        start = self.k.now_ns
        try:
            sock, _ = await self.listener.accept()
        except BlockingIOError:
            sock = None
        rec["accept_calls"] = rec.get("accept_calls", 0) + 1
        rec["accept_call_ns_max"] = max(rec.get("accept_call_ns_max", 0), self.k.now_ns - start)
        if sock is None:
            rec["accept_eagain"] = rec.get("accept_eagain", 0) + 1
            return None
        sock.setblocking(False)
        conn = _Conn(sock)
        self.conns[sock.fileno()] = conn
        self.record["accepted"] += 1
        return conn

    async def read_once(self, conn: _Conn) -> bool | None:
        """One recv: True if data was read, None at EOF or error (the connection is closed
        by the caller), False on EAGAIN."""
        rec = self.record
        start = self.k.now_ns
        try:
            data = await conn.sock.recv(self.read_size)
        except BlockingIOError:
            rec["recv_call_ns_max"] = max(rec.get("recv_call_ns_max", 0), self.k.now_ns - start)
            return False
        except OSError:
            return None
        rec["recv_call_ns_max"] = max(rec.get("recv_call_ns_max", 0), self.k.now_ns - start)
        rec["reads"] += 1
        if not data:
            return None
        rec["bytes_in"] += len(data)
        whole, conn.partial = divmod(conn.partial + len(data), self.size)
        rec["updates"] += whole
        if self.compute and whole and hasattr(self.k, "compute"):
            await self.k.compute(self.compute * whole)
        conn.outbox += data
        await self.flush(conn)
        return True

    async def flush(self, conn: _Conn) -> None:
        while conn.outbox:
            try:
                n = await conn.sock.send(conn.outbox)
            except BlockingIOError:
                return
            except OSError:
                conn.outbox.clear()
                return
            self.record["bytes_out"] += n
            del conn.outbox[:n]

    def close(self, conn: _Conn) -> int:
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        conn.sock.close()
        self.record["closed"] += 1
        return fd

    # -- for servers that register their connections with a poll or epoll object --------
    def watch_output(self, modify, events: int, out: int) -> None:
        """Ask for ``out`` exactly on the connections with output waiting in their outbox
        (level-triggered: watching it otherwise would report writable on every call)."""
        watching_out = self.watching_out
        for fd, conn in list(self.conns.items()):
            want_out = bool(conn.outbox)
            if want_out != (fd in watching_out):
                modify(fd, events | out if want_out else events)
                (watching_out.add if want_out else watching_out.discard)(fd)

    def close_watched(self, fd: int, conn: _Conn, unregister) -> None:
        """Unregister ``fd`` (``conn``'s descriptor) and close the connection."""
        unregister(fd)
        self.watching_out.discard(fd)
        self.close(conn)


async def _accept(srv: _Echo):
    """Accept until EAGAIN (a readiness loop must: one report may stand for many)."""
    new = []
    while True:
        c = await srv.accept_one()
        if c is None:
            return new
        new.append(c)


async def select_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                        max_clients=None, stop_at=None, timeout=None, accept_always=False,
                        listener_blocking=False):
    """A select() loop (see the module docstring). ``timeout`` (s) bounds each select
    (None: until ``stop_at``; 0 makes it a polling loop); ``accept_always`` calls accept on
    every pass whether or not select reported the listener (the mistake C6.7 warns against)."""
    srv = _Echo(k, port, record, size, compute, read_size, backlog, max_clients, stop_at)
    rec = srv.record
    ls = srv.listener
    if listener_blocking:
        ls.setblocking(True)
    while not srv.done():
        rlist = [ls, *(c.sock for c in srv.conns.values())]
        wlist = [c.sock for c in srv.conns.values() if c.outbox]
        rec["waits"] += 1
        wait = _remaining(k, stop_at)
        if timeout is not None:
            wait = timeout if wait is None else min(wait, timeout)
        r, w, _ = await k.select(rlist, wlist, [], wait)
        if accept_always and ls not in r:
            await _accept(srv)
        if not (r or w):
            continue
        rec["wakeups"] += 1
        for s in w:
            rec["events"] += 1
            conn = srv.conns.get(s.fileno())
            if conn is not None:
                await srv.flush(conn)
        for s in r:
            rec["events"] += 1
            if s is ls:
                await _accept(srv)
                continue
            conn = srv.conns.get(s.fileno())
            if conn is not None and await srv.read_once(conn) is None:
                srv.close(conn)
    return rec


async def poll_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                      max_clients=None, stop_at=None):
    """A poll() loop: the same as :func:`select_server`, with a registered set."""
    srv = _Echo(k, port, record, size, compute, read_size, backlog, max_clients, stop_at)
    rec = srv.record
    ls = srv.listener
    p = k.poll()
    lfd = ls.fileno()
    p.register(ls, POLLIN)
    while not srv.done():
        srv.watch_output(p.modify, POLLIN, POLLOUT)
        rec["waits"] += 1
        events = await p.poll(_remaining_ms(k, stop_at))
        if not events:
            continue
        rec["wakeups"] += 1
        for fd, ev in events:
            rec["events"] += 1
            if fd == lfd:
                for c in await _accept(srv):
                    p.register(c.sock, POLLIN)
                continue
            conn = srv.conns.get(fd)
            if conn is None:
                continue
            if ev & POLLOUT:
                await srv.flush(conn)
            if ev & (POLLIN | POLLERR | POLLHUP):
                if await srv.read_once(conn) is None:
                    srv.close_watched(fd, conn, p.unregister)
    return rec


async def _epoll_loop(k, port, *, edge: bool, drain: bool, record, size, compute, read_size, backlog,
                      max_clients, stop_at):
    srv = _Echo(k, port, record, size, compute, read_size, backlog, max_clients, stop_at)
    rec = srv.record
    ls = srv.listener
    ep = k.epoll()
    lfd = ls.fileno()
    conn_events = EPOLLIN | EPOLLRDHUP | (EPOLLOUT | EPOLLET if edge else 0)
    ep.register(ls, EPOLLIN | (EPOLLET if edge else 0))
    while not srv.done():
        if not edge:
            srv.watch_output(ep.modify, conn_events, EPOLLOUT)
        rec["waits"] += 1
        events = await ep.poll(_remaining(k, stop_at))
        if not events:
            continue
        rec["wakeups"] += 1
        for fd, ev in events:
            rec["events"] += 1
            if fd == lfd:
                if edge and drain:
                    new = await _accept(srv)
                else:
                    c = await srv.accept_one()
                    new = [c] if c is not None else []
                for c in new:
                    ep.register(c.sock, conn_events)
                continue
            conn = srv.conns.get(fd)
            if conn is None:
                continue
            if ev & EPOLLOUT and conn.outbox:
                await srv.flush(conn)
            if ev & ~EPOLLOUT:
                while True:
                    got = await srv.read_once(conn)
                    if got is None:
                        srv.close_watched(fd, conn, ep.unregister)
                        break
                    if not got or not (edge and drain):
                        break
    ep.close()
    return rec


async def epoll_lt_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                          max_clients=None, stop_at=None):
    """Level-triggered epoll: one recv per report; EPOLLOUT only while output is pending."""
    return await _epoll_loop(k, port, edge=False, drain=False, record=record, size=size, compute=compute,
                             read_size=read_size, backlog=backlog, max_clients=max_clients, stop_at=stop_at)


async def epoll_et_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536, backlog=128,
                          max_clients=None, stop_at=None):
    """Edge-triggered epoll done right: every event is followed by reads (and accepts)
    until EAGAIN."""
    return await _epoll_loop(k, port, edge=True, drain=True, record=record, size=size, compute=compute,
                             read_size=read_size, backlog=backlog, max_clients=max_clients, stop_at=stop_at)


async def epoll_et_nodrain_server(k, port, *, record=None, size=100, compute=0.0, read_size=65536,
                                  backlog=128, max_clients=None, stop_at=None):
    """Edge-triggered epoll with the C8.3 bug: one recv (and one accept) per event."""
    return await _epoll_loop(k, port, edge=True, drain=False, record=record, size=size, compute=compute,
                             read_size=read_size, backlog=backlog, max_clients=max_clients, stop_at=stop_at)


def _remaining(k, stop_at):
    if stop_at is None:
        return None
    return max(0.0, stop_at - k.now)


def _remaining_ms(k, stop_at):
    r = _remaining(k, stop_at)
    return None if r is None else r * 1000.0


#: name -> server function, for experiments that compare them.
SERVERS = {"select": select_server, "poll": poll_server, "epoll_lt": epoll_lt_server,
           "epoll_et": epoll_et_server, "epoll_et_nodrain": epoll_et_nodrain_server}
