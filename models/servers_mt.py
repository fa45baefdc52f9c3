"""Multi-threaded servers: one echo service, five ways to share sockets between threads.

The service: each client sends fixed-size messages (``size`` bytes, the updates of
:mod:`models.clients`: client id, sequence number, send time); the server *handles* each message —
``await k.compute(service_time)``, application work on a core — and sends it back. The
architectures (C9.x):

``epoll``            N threads on **one** shared epoll instance, level-triggered, no
                     EPOLLONESHOT (``et=True``: edge-triggered). Every thread may be told
                     about the same socket; while one thread is still handling a message,
                     another reads the next one from the same socket and handles it at the
                     same time (C9.6). The server counts these *races*.
``epoll_oneshot``    the same with EPOLLONESHOT: a reported socket is disabled until the
                     thread that handles it re-arms it with ``modify`` after draining it.
``epoll_partitioned`` one epoll instance per thread, sockets assigned round-robin (C9.8).
``iocp``             N threads on one completion port; one overlapped receive outstanding
                     per socket, the next posted after the completion was handled (C9.5);
                     each completion goes to exactly one thread (C9.7).
``io_uring``         one ring per thread, sockets assigned round-robin.

What the server records (``stats`` dict, filled while it runs): messages handled, *races*
(a thread starts handling a socket that another thread is still handling), *out of order*
(a message of a client finishes handling after a later one of the same client did),
spurious wake-ups (a thread was told a socket was readable and found nothing — another
thread had taken the data), bytes copied between user and kernel memory (C7.3: ``recv``
and ``send`` copy; an overlapped send does not, C7.4), per-thread handled counts.

The clients are :func:`models.clients.game_client` (``burst`` messages every ``period``,
``gap`` apart, ``fixed_rate=True``, ``nodelay=True``): a message is one of its updates,
whose sequence number the server reads (:func:`models.clients.parse_update`); the client
records each reply's latency and whether replies came back in order. Handling a message
takes ``service_time`` times 0.5 to 1.5 (:func:`work_factor`), so a message handled
concurrently with an earlier one of the same client can finish first.
"""

from __future__ import annotations

from simsock import EPOLLET, EPOLLIN, EPOLLONESHOT, IPPROTO_TCP, TCP_NODELAY

from .clients import parse_update

ARCHITECTURES = ("epoll", "epoll_et", "epoll_oneshot", "epoll_partitioned", "iocp", "io_uring")


def new_stats() -> dict:
    return {"handled": 0, "races": 0, "out_of_order": 0, "spurious": 0, "copied_bytes": 0,
            "per_thread": {}, "accepted": 0, "calls": 0, "readiness_events": 0, "wait_returns": 0,
            "wait_latency_ns_max": 0, "wait_latency_ns_sum": 0, "waits_woken": 0}


class _Conn:
    """A server-side connection: its socket, unparsed bytes, and who is handling it."""
    __slots__ = ("sock", "cid", "buf", "handling", "done_seq")

    def __init__(self, sock, cid: int):
        self.sock = sock
        self.cid = cid
        self.buf = bytearray()
        self.handling = 0          # threads handling this connection right now
        self.done_seq = -1         # highest sequence number whose handling finished


async def _handle(k, conn: _Conn, msg: bytes, stats: dict, service_time: float, reply) -> None:
    """Handle one message: count a race if another thread is on this connection."""
    seq = parse_update(msg)[1]
    if conn.handling:
        stats["races"] += 1
    conn.handling += 1
    try:
        await k.compute(service_time * work_factor(seq))
    finally:
        conn.handling -= 1
    if seq < conn.done_seq:
        stats["out_of_order"] += 1
    else:
        conn.done_seq = seq
    stats["handled"] += 1
    stats["per_thread"][k.thread] = stats["per_thread"].get(k.thread, 0) + 1
    await reply(msg)


def work_factor(seq: int) -> float:
    """Messages differ in how much work they take: 0.5, 0.75, 1, 1.25, 1.5 times the
    service time in turn (mean 1), so handling one message can overtake another."""
    return 0.5 + (seq % 5) / 4


def _messages(conn: _Conn, size: int) -> list[bytes]:
    buf = conn.buf
    n = len(buf) // size
    out = [bytes(buf[i * size:(i + 1) * size]) for i in range(n)]
    del buf[:n * size]
    return out


async def _listen(k, port: int):
    ls = k.socket()
    ls.bind(("0.0.0.0", port))
    ls.listen(1024)
    return ls


# -- readiness-based servers (epoll) ----------------------------------------------------------
async def epoll_server(k, port: int, threads: int, stats: dict, *, size: int = 100, service_time: float = 200e-6,
                       mode: str = "epoll"):
    """The epoll architectures (``mode``: epoll, epoll_et, epoll_oneshot, epoll_partitioned)."""
    ls = await _listen(k, port)
    conns: dict[int, _Conn] = {}
    partitioned = mode == "epoll_partitioned"
    flags = EPOLLIN | (EPOLLET if mode == "epoll_et" else 0) | (EPOLLONESHOT if mode == "epoll_oneshot" else 0)
    eps = [k.epoll() for _ in range(threads if partitioned else 1)]
    for i in range(threads):
        k.spawn(_epoll_worker, eps[i if partitioned else 0], conns, stats, size, service_time, mode, flags,
                name=f"worker{i}")
    cid = 0
    while True:
        sock, _ = await ls.accept()
        sock.setblocking(False)
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)      # small replies go out at once
        conn = _Conn(sock, cid)
        conns[sock.fileno()] = conn
        eps[cid % len(eps)].register(sock.fileno(), flags)
        stats["accepted"] += 1
        cid += 1


async def _epoll_worker(k, ep, conns, stats, size, service_time, mode, flags):
    drain = mode in ("epoll_et", "epoll_oneshot")

    while True:
        events = await ep.poll(-1, 1)
        stats["calls"] += 1
        stats["wait_returns"] += 1
        stats["readiness_events"] += len(events)
        for fd, _mask in events:
            conn = conns.get(fd)
            if conn is None:
                continue
            sock = conn.sock
            got_any = False
            closed = False
            while True:
                stats["calls"] += 1
                try:
                    data = await sock.recv(4096)
                except BlockingIOError:
                    break
                except OSError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                got_any = True
                stats["copied_bytes"] += len(data)
                conn.buf += data
                if not drain:
                    break
            if not got_any and not closed:
                stats["spurious"] += 1
            if closed:
                conns.pop(fd, None)
                try:
                    ep.unregister(fd)
                except OSError:
                    pass
                sock.close()
                continue

            async def reply(msg, sock=sock):
                stats["copied_bytes"] += len(msg)
                stats["calls"] += 1
                try:
                    await sock.send(msg)
                except OSError:
                    pass

            for msg in _messages(conn, size):
                await _handle(k, conn, msg, stats, service_time, reply)
            if mode == "epoll_oneshot" and not sock._closed:
                ep.modify(fd, flags)          # re-arm: only now may another thread get it


# -- completion-based servers -----------------------------------------------------------------
async def iocp_server(k, port: int, threads: int, stats: dict, *, size: int = 100, service_time: float = 200e-6,
                      recv_size: int = 4096, outstanding: int = 1, sndbuf_zero: bool = False,
                      poll_sleep: float = 0.0):
    """A worker pool on one completion port (C9.3, C9.5, C9.7).

    ``outstanding`` receives are kept posted per socket (1: the next is posted after the
    completion was handled; 2: two at once, so two threads can hold completions of one
    socket). ``sndbuf_zero`` marks the sockets as having SO_SNDBUF = 0 on Windows, where
    WSASend then transmits from the pinned caller buffer instead of copying it into AFD's
    send buffer. ``poll_sleep`` > 0 makes the workers poll the port (timeout 0) and sleep
    that long when it is empty, instead of waiting on it (the mistake C9.4 is about)."""
    ls = await _listen(k, port)
    cport = k.iocp(concurrency=0)
    cport.associate(ls, None)
    ls.accept_overlapped()
    options = {"outstanding": outstanding, "sndbuf_zero": sndbuf_zero, "poll_sleep": poll_sleep}
    for i in range(threads):
        k.spawn(_iocp_worker, cport, ls, stats, size, service_time, recv_size, options, name=f"worker{i}")
    stats["_port"] = cport


async def _iocp_get(k, cport, stats, poll_sleep):
    """One completion, waiting on the port (or polling it); records how long after the
    completion the waiting thread got it (C9.4)."""
    while True:
        start = k.now_ns
        stats["calls"] += 1
        try:
            packet = await cport.get(timeout=None if poll_sleep <= 0 else 0)
        except TimeoutError:
            await k.sleep(poll_sleep)
            continue
        stats["wait_returns"] += 1
        op = packet[1]
        done = getattr(op, "completed_ns", None)
        if done is not None and done >= start:       # it completed while this thread waited
            latency = k.now_ns - done
            stats["waits_woken"] += 1
            stats["wait_latency_ns_sum"] += latency
            stats["wait_latency_ns_max"] = max(stats["wait_latency_ns_max"], latency)
        elif done is not None and poll_sleep > 0:    # a poller found it late
            latency = k.now_ns - done
            stats["waits_woken"] += 1
            stats["wait_latency_ns_sum"] += latency
            stats["wait_latency_ns_max"] = max(stats["wait_latency_ns_max"], latency)
        return packet


async def _iocp_worker(k, cport, ls, stats, size, service_time, recv_size, options=None):
    options = options or {"outstanding": 1, "sndbuf_zero": False, "poll_sleep": 0.0}
    counter = stats.setdefault("_cid", [0])
    while True:
        key, op, nbytes, err = await _iocp_get(k, cport, stats, options["poll_sleep"])
        if key is None:                                # the listener: a new connection
            if err is None:
                sock, _ = op.result
                sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
                conn = _Conn(sock, counter[0])
                counter[0] += 1
                stats["accepted"] += 1
                cport.associate(sock, conn)
                if options["sndbuf_zero"]:
                    sock.win_sndbuf_zero = True
                for _ in range(options["outstanding"]):
                    stats["calls"] += 1
                    sock.recv_overlapped(recv_size)
            stats["calls"] += 1
            ls.accept_overlapped()
            continue
        conn = key
        if op.kind == "send":
            if nbytes != len(op.view if getattr(op, "view", None) is not None else b"") and err is None:
                stats["send_partial"] = stats.get("send_partial", 0) + 1
            stats["send_completions"] = stats.get("send_completions", 0) + 1
            continue
        if err is None and nbytes:
            stats["recv_completions"] = stats.get("recv_completions", 0) + 1
        if err is not None or nbytes == 0:
            conn.sock.close()
            continue
        conn.buf += op.result

        async def reply(msg, sock=conn.sock):
            stats["calls"] += 1
            try:
                sock.send_overlapped(msg)     # copied into AFD's buffer unless SO_SNDBUF = 0 (C7.4)
            except OSError:
                pass

        for msg in _messages(conn, size):
            await _handle(k, conn, msg, stats, service_time, reply)
        if not conn.sock._closed:
            stats["calls"] += 1
            stats["reposts"] = stats.get("reposts", 0) + 1
            conn.sock.recv_overlapped(recv_size)      # C9.5: post the next one after handling
    

async def io_uring_server(k, port: int, threads: int, stats: dict, *, size: int = 100,
                          service_time: float = 200e-6, recv_size: int = 4096):
    """One ring per thread; the acceptor hands sockets out round-robin."""
    ls = await _listen(k, port)
    inboxes = [[] for _ in range(threads)]
    rings = []
    for i in range(threads):
        ring = k.io_uring(256)
        rings.append(ring)
        k.spawn(_uring_worker, ring, inboxes[i], stats, size, service_time, recv_size, name=f"worker{i}")
    stats["_rings"] = rings
    cid = 0
    while True:
        sock, _ = await ls.accept()
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        conn = _Conn(sock, cid)
        stats["accepted"] += 1
        ring = rings[cid % threads]
        ring.prep_recv(sock, recv_size, ("recv", conn))
        ring.submit()
        cid += 1


async def _uring_worker(k, ring, inbox, stats, size, service_time, recv_size):
    while True:
        (what, conn), res, extra = await ring.wait_cqe()
        if what == "send":
            continue
        if res <= 0:
            conn.sock.close()
            continue
        conn.buf += extra

        async def reply(msg, conn=conn):
            ring.prep_send(conn.sock, msg, ("send", conn))

        for msg in _messages(conn, size):
            await _handle(k, conn, msg, stats, service_time, reply)
        if not conn.sock._closed:
            ring.prep_recv(conn.sock, recv_size, ("recv", conn))
        ring.submit()


SERVERS = {
    "epoll": lambda *a, **kw: epoll_server(*a, mode="epoll", **kw),
    "epoll_et": lambda *a, **kw: epoll_server(*a, mode="epoll_et", **kw),
    "epoll_oneshot": lambda *a, **kw: epoll_server(*a, mode="epoll_oneshot", **kw),
    "epoll_partitioned": lambda *a, **kw: epoll_server(*a, mode="epoll_partitioned", **kw),
    "iocp": iocp_server,
    "io_uring": io_uring_server,
}


def server_program(arch: str):
    """The server program for architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    if arch not in SERVERS:
        raise ValueError(f"unknown server architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    fn = SERVERS[arch]

    async def server(k, *args, **kwargs):
        return await fn(k, *args, **kwargs)
    server.__name__ = f"{arch}_server"
    return server
