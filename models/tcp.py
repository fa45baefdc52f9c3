"""TCP programs: a blocking sender, a slow reader and a non-blocking sender, each recording
what it saw.

Like :mod:`models.udp`, each takes a ``log`` dict that it fills in, so the experiment (or a
test) can read what happened from the programs' point of view: per ``send`` call when it
started, when it returned and how many bytes it returned (a call that took time was blocked
on a full send buffer); per ``recv`` when it returned and how many bytes; when ``recv``
returned ``b""``. The stream's bytes are a fixed pattern (:func:`stream_bytes`) so the
reader can check that what it read is exactly what was sent, in order.
"""

from __future__ import annotations

import hashlib

from simsock import AF_INET, SO_RCVBUF, SO_SNDBUF, SOCK_STREAM, SOL_SOCKET

_PATTERN = bytes(range(251)) * 512      # 251 is prime: a shifted or dropped byte is caught


def stream_bytes(offset: int, n: int) -> bytes:
    """``n`` bytes of the test stream starting at byte ``offset``."""
    out = bytearray()
    while len(out) < n:
        start = (offset + len(out)) % 251
        take = min(n - len(out), len(_PATTERN) - start)
        out += _PATTERN[start:start + take]
    return bytes(out)


def stream_hash(total: int) -> str:
    """SHA-256 of the first ``total`` bytes of the test stream."""
    h = hashlib.sha256()
    done = 0
    while done < total:
        n = min(65536, total - done)
        h.update(stream_bytes(done, n))
        done += n
    return h.hexdigest()


async def blocking_sender(k, dest, total: int, chunk: int, log: dict, sndbuf: int | None = None):
    """Connect to ``dest`` and send ``total`` bytes of the test stream with blocking ``send``
    calls of ``chunk`` bytes, then close.

    Records ``log["calls"]``: one ``[start_s, end_s, bytes_returned, wmem_queued_before]``
    per send call (a call with end > start was blocked), the connect and close times, and the socket as
    ``log["socket"]`` (set before connecting) so the experiment can sample its buffers.
    """
    s = k.socket(AF_INET, SOCK_STREAM)
    if sndbuf is not None:
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    log.update(socket=s, calls=[], sndbuf=s.getsockopt(SOL_SOCKET, SO_SNDBUF))
    log["connect_start"] = k.now
    await s.connect(dest)
    log["connect_end"] = k.now
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        start = k.now
        before = s.conn.wmem_queued
        got = await s.send(stream_bytes(sent, n))
        log["calls"].append([start, k.now, got, before])
        sent += got
    log["sent"] = sent
    log["close_time"] = k.now
    s.close()


async def slow_reader(k, port: int, chunk: int, pause: float, log: dict, rcvbuf: int | None = None,
                      pause_window: tuple[float, float] | None = None):
    """Listen on ``port``, accept one connection, then read up to ``chunk`` bytes every
    ``pause`` seconds until the peer closes; during ``pause_window`` = (t0, t1) do not
    read at all.

    Records the listen/accept times, the peer address, ``log["reads"]`` (one
    ``[time_s, bytes]`` per recv that returned data), ``log["eof_time"]`` (when recv
    returned ``b""``), the byte count, whether the bytes were the test stream in order
    (``log["intact"]``) and their SHA-256. The accepted socket is ``log["socket"]``.
    """
    ls = k.socket(AF_INET, SOCK_STREAM)
    if rcvbuf is not None:
        ls.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)   # inherited by the accepted socket
    ls.bind(("0.0.0.0", port))
    t = k.now
    ls.listen()
    log.update(listen_call=[t, k.now], reads=[], intact=True, received=0)
    log["accept_start"] = k.now
    conn, addr = await ls.accept()
    log["accept_end"] = k.now
    log["peer"] = list(conn.getpeername())
    log["socket"] = conn
    log["rcvbuf"] = conn.getsockopt(SOL_SOCKET, SO_RCVBUF)
    h = hashlib.sha256()
    while True:
        if pause_window is not None and pause_window[0] <= k.now < pause_window[1]:
            await k.sleep(pause_window[1] - k.now)
        data = await conn.recv(chunk)
        if not data:
            log["eof_time"] = k.now
            break
        if data != stream_bytes(log["received"], len(data)):
            log["intact"] = False
        h.update(data)
        log["received"] += len(data)
        log["reads"].append([k.now, len(data)])
        await k.sleep(pause)
    log["sha256"] = h.hexdigest()
    conn.close()
    ls.close()


async def nonblocking_sender(k, dest, attempts: int, size: int, log: dict, sndbuf: int):
    """Connect (blocking), switch to non-blocking and try ``attempts`` sends of ``size``
    bytes back to back, without waiting; record each outcome: bytes returned or "EAGAIN",
    with the free send-buffer space seen just before the call (``sndbuf - wmem_queued``)."""
    s = k.socket(AF_INET, SOCK_STREAM)
    s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    await s.connect(dest)
    s.setblocking(False)
    log.update(socket=s, outcomes=[], free_before=[], sndbuf=s.getsockopt(SOL_SOCKET, SO_SNDBUF))
    offset = 0
    for _ in range(attempts):
        log["free_before"].append(s.conn.sndbuf - s.conn.wmem_queued)
        try:
            n = await s.send(stream_bytes(offset, size))
            offset += n
            log["outcomes"].append(n)
        except BlockingIOError:
            log["outcomes"].append("EAGAIN")
    log["sent"] = offset
    s.setblocking(True)
    s.close()
