"""Send buffer blocks: a blocking TCP sender is held back by a full send buffer, and a
returned send is not a delivered one.

Claims (seed/CLAIMS.md):
  C2.2  Client: socket -> connect (blocks until the handshake completes) -> send (returns
        once the kernel has taken the data) -> close.
  C2.3  send returning means "copied into the send buffer", not "delivered": when the last
        send returned, much of the data had not been read (nor even acked).
  C3.1  Each socket has a send buffer and a receive buffer (both measured here, in bytes).
  C3.2  The send buffer is FIFO: the reader gets exactly the bytes sent, in order.
  C3.3  When the send buffer is full, send blocks; it unblocks once ACKs free space.
  C4.1  Server: socket -> bind -> listen (returns at once) -> accept (blocks until a
        client connects) -> getpeername -> recv -> close.
  C4.2  recv blocks while the receive buffer is empty.
  C4.3  recv returns b"" only once the peer has closed.

World: host ``sender`` connects to host ``receiver`` over a ``link_rate`` link and sends
``total`` bytes with blocking ``send`` calls of ``chunk`` bytes (SO_SNDBUF = ``sndbuf``,
which Linux doubles). The receiver reads ``read_chunk`` bytes every ``read_pause`` s
(SO_RCVBUF = ``rcvbuf``), far slower than the link. Both buffers are set explicitly, which
also turns off Linux's buffer autotuning. A sampler thread records both sockets' buffer
occupancy every ``sample_ms``.
"""

from __future__ import annotations

from pathlib import Path

import simsock
from simsock.units import parse_time
from models.tcp import stream_hash

CLAIMS = ["C2.2", "C2.3", "C3.1", "C3.2", "C3.3", "C4.1", "C4.2", "C4.3", "C6.2", "C1.3"]

PARAMS = {
    "total": 1_000_000,
    "chunk": 65536,
    "sndbuf": 65536,
    "rcvbuf": 65536,
    "read_chunk": 8192,
    "read_pause": 0.01,
    "link_rate": "100Mbit",
    "delay": "10ms",
    "client_start": 0.05,
    "sample_ms": 1.0,
    "nonblocking": False,
    "client_closes": True,
}

PARAM_HELP = {
    "total": "bytes the client sends",
    "chunk": "bytes per blocking send call",
    "sndbuf": "SO_SNDBUF the client sets (Linux doubles it)",
    "rcvbuf": "SO_RCVBUF the server sets (Linux doubles it)",
    "read_chunk": "bytes the server asks recv for each time",
    "read_pause": "seconds the server sleeps after each recv",
    "link_rate": "rate of the link",
    "delay": "one-way propagation delay of the link",
    "client_start": "seconds the server's accept waits before the client connects",
    "sample_ms": "buffer sampling interval (ms)",
    "nonblocking": "both programs use non-blocking sockets, retrying every 1 ms on EAGAIN (breaks "
                   "C2.2, C3.3, C4.1, C4.2: nothing blocks then)",
    "client_closes": "the client closes its socket after the last send (false: it never does, so "
                     "recv never sees the end of the stream)",
}

PORT = 5959


async def _delayed(k, delay, fn, *args):
    await k.sleep(delay)
    await fn(k, *args)


RETRY_S = 0.001     # a non-blocking program's pause after EAGAIN
SNDBUF_SLACK = 81920  # truesize of one 64 KiB GSO skb: the overshoot tcp_sendmsg allows
BLOCKED_S = 0.001   # a call that took longer than this waited (a send's CPU cost is ~20 µs)


async def _client(k, dest, total: int, chunk: int, log: dict, sndbuf: int, nonblocking: bool,
                  closes: bool):
    """models.tcp.blocking_sender, with a non-blocking variant (retry every RETRY_S) and
    optionally no close."""
    from simsock import SO_SNDBUF, SOL_SOCKET
    from models.tcp import stream_bytes
    s = k.socket(simsock.AF_INET, simsock.SOCK_STREAM)
    s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    log.update(socket=s, calls=[], sndbuf=s.getsockopt(SOL_SOCKET, SO_SNDBUF))
    log["connect_start"] = k.now
    if nonblocking:
        s.setblocking(False)
        try:
            await s.connect(dest)
        except BlockingIOError:
            pass
        log["connect_end"] = k.now          # the call returned (EINPROGRESS)
        while True:
            try:
                s.getpeername()
                break
            except OSError:
                await k.sleep(RETRY_S)
    else:
        await s.connect(dest)
        log["connect_end"] = k.now
    log["connected"] = k.now
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        start = k.now
        before = s.conn.wmem_queued
        try:
            got = await s.send(stream_bytes(sent, n))
        except BlockingIOError:
            log["calls"].append([start, k.now, 0, before])
            await k.sleep(RETRY_S)
            continue
        log["calls"].append([start, k.now, got, before])
        sent += got
    log["sent"] = sent
    log["close_time"] = k.now if closes else None
    if closes:
        if nonblocking:
            s.setblocking(True)
        s.close()


async def _server(k, port: int, chunk: int, pause: float, log: dict, rcvbuf: int, nonblocking: bool):
    """models.tcp.slow_reader that also records every recv call as [start_s, end_s, bytes
    (or "EAGAIN"), unread bytes at the start], with a non-blocking variant."""
    import hashlib
    from simsock import SO_RCVBUF, SOL_SOCKET
    from models.tcp import stream_bytes
    ls = k.socket(simsock.AF_INET, simsock.SOCK_STREAM)
    ls.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
    ls.bind(("0.0.0.0", port))
    t = k.now
    ls.listen()
    log.update(listen_call=[t, k.now], reads=[], recv_calls=[], intact=True, received=0)
    log["accept_start"] = k.now
    if nonblocking:
        ls.setblocking(False)
    while True:
        try:
            conn, _ = await ls.accept()
            break
        except BlockingIOError:
            log.setdefault("accept_first_return", k.now)
            await k.sleep(RETRY_S)
    log["accept_end"] = k.now
    log.setdefault("accept_first_return", k.now)
    log["peer"] = list(conn.getpeername())
    log["socket"] = conn
    log["rcvbuf"] = conn.getsockopt(SOL_SOCKET, SO_RCVBUF)
    if nonblocking:
        conn.setblocking(False)
    h = hashlib.sha256()
    while True:
        start, unread = k.now, conn.conn.inq
        try:
            data = await conn.recv(chunk)
        except BlockingIOError:
            log["recv_calls"].append([start, k.now, "EAGAIN", unread])
            await k.sleep(RETRY_S)
            continue
        log["recv_calls"].append([start, k.now, len(data), unread])
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


def run(params: dict, seed: int) -> dict:
    p = params
    sim = simsock.Simulation(seed=seed, trace=False)
    sender = sim.add_host("sender")
    receiver = sim.add_host("receiver")
    sim.add_link(sender, receiver, rate=p["link_rate"], delay=p["delay"], queue=200)
    slog: dict = {}
    rlog: dict = {}
    samples: list[list] = []
    interval = p["sample_ms"] / 1000.0
    until_s = 10.0 if not p["client_closes"] else float("inf")

    async def sampler(k):
        while "eof_time" not in rlog and k.now < until_s:
            s, r = slog.get("socket"), rlog.get("socket")
            sc = s.conn if s is not None else None
            rc = r.conn if r is not None else None
            returned = sum(c[2] for c in slog.get("calls", []))
            acked = min(returned, sc.stats()["bytes_acked"]) if sc is not None and "connect_end" in slog else 0
            samples.append([k.now,
                            sc.wmem_queued if sc else 0, max(0, sc.outq) if sc else 0,
                            rc.rmem_alloc if rc else 0, rc.inq if rc else 0,
                            returned, acked, rlog.get("received", 0)])
            await k.sleep(interval)

    receiver.spawn(_server, PORT, p["read_chunk"], p["read_pause"], rlog, p["rcvbuf"], p["nonblocking"])
    sender.spawn(_delayed, p["client_start"], _client, ("receiver", PORT), p["total"], p["chunk"], slog,
                 p["sndbuf"], p["nonblocking"], p["client_closes"])
    sender.spawn(sampler)
    until = p["total"] / (p["read_chunk"] / max(p["read_pause"], 1e-4)) * 3 + 5
    if not p["client_closes"]:
        until = min(until, 10.0)
    sim.run(until=until)

    calls = [c for c in slog["calls"] if c[2] > 0]          # calls that sent something
    # a call "blocked" if it waited longer than the CPU cost of a send (tens of µs)
    blocked = [[c[0], c[1]] for c in calls if c[1] - c[0] > BLOCKED_S]
    sndbuf = slog["socket"].conn.sndbuf if slog["socket"].conn else 2 * p["sndbuf"]
    # fill of the send buffer seen by samples strictly inside a blocked call
    inside = [s[1] for s in samples for b in blocked if b[0] + interval < s[0] < b[1] - interval]
    last_ret = calls[-1][1] if calls else 0.0
    read_at_last = max((s[7] for s in samples if s[0] <= last_ret), default=0)
    acked_at_last = max((s[6] for s in samples if s[0] <= last_ret), default=0)
    reads = rlog["reads"]
    return {
        "total": p["total"],
        "chunk": p["chunk"],
        "sndbuf": sndbuf,
        "rcvbuf": rlog["rcvbuf"],
        "client_start": p["client_start"],
        "rtt_s": 2 * parse_time(p["delay"]) / 1e9,
        "connect": [slog["connect_start"], slog["connect_end"]],
        "listen_call": rlog["listen_call"],
        "accept": [rlog["accept_start"], rlog["accept_end"]],
        "peer": rlog["peer"],
        "calls": calls,
        "blocked": blocked,
        "blocked_time_s": sum(b[1] - b[0] for b in blocked),
        "max_send_call_s": max((c[1] - c[0] for c in calls), default=0.0),
        "blocked_calls_wmem_before": [c[3] for c in calls if c[1] - c[0] > BLOCKED_S],
        "blocked_threshold_s": BLOCKED_S,
        "eagain_sends": sum(1 for c in slog["calls"] if c[2] == 0),
        "nonblocking": p["nonblocking"],
        "accept_first_return": rlog["accept_first_return"],
        "connected": slog["connected"],
        "recv_calls": rlog["recv_calls"],
        "delay_s": parse_time(p["delay"]) / 1e9,
        "blocked_min_fill": min(inside) / sndbuf if inside else None,
        "sent": slog["sent"],
        "close_time": slog["close_time"],
        "last_send_return": last_ret,
        "read_at_last_send": read_at_last,
        "acked_at_last_send": acked_at_last,
        "first_send_return": calls[0][1] if calls else None,
        "first_read_time": reads[0][0] if reads else None,
        "reads": reads,
        "eof_time": rlog.get("eof_time"),
        "received": rlog["received"],
        "intact": rlog["intact"],
        "hash_ok": rlog.get("sha256") == stream_hash(p["total"]),
        "max_wmem": max(s[1] for s in samples),
        "max_rmem": max(s[3] for s in samples),
        "samples": samples,
    }


def check(result: dict) -> list:
    from simsock.claims import Checks
    r = result
    c = Checks()
    # C2.2: connect blocks until the handshake is done (a round trip), send returns once the
    # kernel has the data, then close.
    c0, c1 = r["connect"]
    c.at_least("C2.2", "time connect() blocked", (c1 - c0) * 1e3, r["rtt_s"] * 1e3, unit="ms",
               note="the handshake takes a round trip")
    c.fact("C2.2", r["connected"] <= c1 and r["accept"][1] >= c0,
           f"connect returned at {c1:.4f} s with the connection established ({r['connected']:.4f} s)")
    # C4.1: listen returns at once; accept blocks until a connection arrives; getpeername.
    c.equal("C4.1", "time listen() took", r["listen_call"][1] - r["listen_call"][0], 0, unit="s")
    waited = r["accept_first_return"] - r["accept"][0]
    arrival = r["client_start"] + r["rtt_s"]      # the client's ACK ends the handshake
    c.at_least("C4.1", "time the first accept() call blocked", waited * 1e3,
               (arrival - r["accept"][0]) * 1e3, unit="ms",
               note="until the client's handshake completed")
    c.equal("C4.1", "getpeername() address", r["peer"][0], "10.0.0.1")
    # C3.3: send blocks when the send buffer is full and unblocks when space is freed.
    asked, done = [], 0
    for call in r["calls"]:
        asked.append(min(r["chunk"], r["total"] - done))
        done += call[2]
    full_calls = [call for call, n in zip(r["calls"], asked) if call[3] + n > r["sndbuf"]]
    if not full_calls and not r["eagain_sends"]:
        c.not_measured("C3.3", f"the send buffer never filled (SO_SNDBUF {r['sndbuf']:,} B, {r['total']:,} B sent "
                               f"in {r['chunk']:,} B calls); lower sndbuf or raise total")
    else:
        c.at_least("C3.3", "send() calls that blocked", len(r["blocked"]), 1,
                   note=f"a call blocked if it took > {r['blocked_threshold_s'] * 1e3:g} ms; "
                        f"{r['eagain_sends']} returned EAGAIN")
        c.equal("C3.3", "send() calls that returned EAGAIN on a full buffer", r["eagain_sends"], 0)
        need = [w for w in r["blocked_calls_wmem_before"] if w + r["chunk"] <= r["sndbuf"]]
        c.equal("C3.3", "blocked send() calls whose chunk fitted the free space", len(need), 0)
        if r["blocked_min_fill"] is not None:
            c.at_least("C3.3", "send-buffer fill while send() was blocked (fraction of SO_SNDBUF)",
                       round(r["blocked_min_fill"], 4), round(2 / 3, 4),
                       note="Linux wakes the sender when a third is free (sk_stream_wspace)")
    # C6.2 (the same fact seen from section 3.6): send blocks when there is no free space.
    if not full_calls and not r["eagain_sends"]:
        c.not_measured("C6.2", "the send buffer never filled; lower sndbuf or raise total")
    else:
        free_blocked = [b for b, w in zip(r["blocked"], r["blocked_calls_wmem_before"])]
        c.at_least("C6.2", "send() calls that blocked on a full send buffer", len(free_blocked), 1,
                   note=f"{r['eagain_sends']} returned EAGAIN instead")
        c.equal("C6.2", "non-blocking EAGAIN returns (a blocking send never returns EAGAIN)", r["eagain_sends"], 0)
    # C3.1: two buffers, each with its size, both holding data at once.
    if r["max_wmem"] < 0.5 * r["sndbuf"] or r["max_rmem"] < 0.5 * r["rcvbuf"]:
        c.not_measured("C3.1", f"the buffers never both filled (send {r['max_wmem']:,} of {r['sndbuf']:,} B, "
                               f"receive {r['max_rmem']:,} of {r['rcvbuf']:,} B): the reader kept up")
    else:
        c.at_most("C3.1", "peak receive-buffer charge / SO_RCVBUF", round(r["max_rmem"] / r["rcvbuf"], 4), 1.0,
                  note=f"each buffer is bounded by its own size (SO_RCVBUF {r['rcvbuf']:,} B)")
        c.at_most("C3.1", "peak send-buffer charge", r["max_wmem"], r["sndbuf"] + SNDBUF_SLACK, unit="B",
                  note=f"SO_SNDBUF {r['sndbuf']:,} B plus one 64 KiB skb: tcp_sendmsg checks for free space "
                       f"before it allocates an skb, so the last one may overshoot")
    # C2.3: send returned is not delivered.
    unread = r["sent"] - r["read_at_last_send"]
    if not r["calls"]:
        c.not_measured("C2.3", "no send call returned (total=0)")
    else:
        c.at_least("C2.3", "bytes not yet read when the last send() returned", unread, min(r["sent"], r["chunk"]),
               unit="B", note=f"{r['sent'] - r['acked_at_last_send']:,} B not even acknowledged")
    # C3.2: FIFO byte stream.
    intact = r["intact"] and (r["hash_ok"] or r["eof_time"] is None)
    c.fact("C3.2", r["received"] == r["total"] and intact,
           f"the reader got {r['received']:,} of {r['total']:,} B, in order and intact: {intact}",
           {"received_bytes": r["received"]}, f"== {r['total']} in order")
    if len(r["calls"]) < 2:
        c.not_measured("C3.2", f"one send call ({r['total']:,} B in {r['chunk']:,} B calls): no order between "
                               f"calls to keep")
    # C4.2: recv blocks while the receive buffer is empty.
    empty = [x for x in r["recv_calls"] if x[3] == 0 and x[2] != 0]
    if not empty:
        c.not_measured("C4.2", "recv was never called on an empty receive buffer")
        c.not_measured("C1.3", "recv was never called on an empty receive buffer")
    else:
        nonblocking = [x for x in empty if x[2] == "EAGAIN" or x[1] == x[0]]
        for claim in ("C4.2", "C1.3"):
            c.equal(claim, "recv() calls on an empty buffer that returned without waiting", len(nonblocking), 0,
                    note=f"of {len(empty)} calls made on an empty buffer")
        waited = [x[1] - x[0] for x in empty if x[2] != "EAGAIN"]
        if waited:
            c.fact("C4.2", min(waited) > 0,
                   f"shortest wait of a recv() called on an empty buffer = {min(waited) * 1e3:.3f} ms (> 0: the "
                   f"thread slept until data arrived)", {"shortest_empty_recv_wait_ms": round(min(waited) * 1e3, 6)},
                   "> 0 ms")
        early = [x for x in empty if x[2] != "EAGAIN" and x[1] < r["connected"]]
        c.equal("C4.2", "recv() calls that returned data before any was sent", len(early), 0)
    # C4.3: recv returns 0 bytes once the peer closed.
    if r["close_time"] is None:
        c.not_measured("C4.3", "the client never closed (client_closes=false): there is no end of stream to see")
        if r["eof_time"] is not None:
            c.fact("C4.3", False, f"recv returned b'' at {r['eof_time']:.4f} s although the peer never closed")
    elif r["eof_time"] is None:
        c.fact("C4.3", False, "recv never returned b'' although the client closed")
    else:
        c.at_least("C4.3", "time from the client's close() to recv() returning b''",
                   (r["eof_time"] - r["close_time"]) * 1e3, r["delay_s"] * 1e3, unit="ms",
                   note="at least the one-way delay: the FIN has to arrive")
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    r = result
    n = plotting.number
    s = r["samples"]
    t = [x[0] for x in s]
    files = []

    blocked = r["blocked"]
    if blocked:
        fill = r["blocked_min_fill"]
        title = f"TCP: send() blocked {len(blocked)} times on a full send buffer (C3.1, C3.3)"
        note = (f"send() blocked {len(blocked)} times ({r['blocked_time_s']:.2f} s in all)"
                + (f", the send buffer >= {fill:.0%} full while blocked" if fill is not None else ""))
    elif r["eagain_sends"]:
        title = "TCP: non-blocking send() never blocked; it returned EAGAIN on the full buffer (C3.3)"
        note = f"{r['eagain_sends']:,} send() calls returned EAGAIN; the program retried every 1 ms"
    else:
        title = "TCP: the send buffer never filled, so send() never blocked (C3.3 not shown)"
        note = f"largest send-buffer charge {n(r['max_wmem'])} of {n(r['sndbuf'])} B"
    fig, ax = plotting.figure(title, "time (s)", "bytes in the buffer (B)")
    plotting.shade_intervals(ax, blocked, "send() blocked")
    plotting.step_plot(ax, t, [x[1] for x in s], "send buffer: bytes charged (sk_wmem_queued)", color="tab:blue")
    plotting.step_plot(ax, t, [x[3] for x in s], "receive buffer: bytes charged (sk_rmem_alloc)",
                       color="tab:green")
    plotting.step_plot(ax, t, [x[4] for x in s], "receive buffer: unread payload bytes", color="tab:olive")
    ax.axhline(r["sndbuf"], color="tab:blue", linestyle="--", linewidth=0.8,
               label=f"SO_SNDBUF = {n(r['sndbuf'])} B")
    ax.axhline(r["rcvbuf"], color="tab:green", linestyle=":", linewidth=0.8,
               label=f"SO_RCVBUF = {n(r['rcvbuf'])} B")
    plotting.annotate_claim(ax, note)
    ax.set_ylim(0, max(r["max_wmem"], r["max_rmem"], r["sndbuf"], r["rcvbuf"]) * 1.35)
    plotting.legend_below(ax, ncol=3)
    files.append(plotting.save(fig, outdir / "send_buffer_blocks_occupancy.png"))

    pct = 100 * r["read_at_last_send"] / max(1, r["sent"])
    fig, ax = plotting.figure(f"send() returned is not delivered: {100 - pct:.0f}% of the bytes were unread when "
                              f"the last send() returned (C2.3)", "time (s)", "bytes (cumulative, B)")
    plotting.step_plot(ax, t, [x[5] for x in s], "returned by send()", color="tab:blue")
    plotting.step_plot(ax, t, [x[6] for x in s], "acknowledged by the receiver's kernel", color="tab:orange")
    plotting.step_plot(ax, t, [x[7] for x in s], "read by the receiving application", color="tab:green")
    ax.axvline(r["last_send_return"], color="0.3", linestyle="--", linewidth=0.8, label="last send() returned")
    if r["eof_time"] is not None:
        ax.axvline(r["eof_time"], color="tab:red", linestyle=":", linewidth=0.8, label='recv() returned b""')
    eof = f"recv() saw the end of the stream at {r['eof_time']:.2f} s" if r["eof_time"] is not None else \
        "recv() never saw the end of the stream (the client did not close)"
    plotting.annotate_claim(ax, f"when the last send() returned ({r['last_send_return']:.2f} s) the reader had read "
                                f"{pct:.0f}% of the bytes;\n{n(r['sent'] - r['acked_at_last_send'])} B were not even "
                                f"acknowledged. {eof}.\nLinux: send() returns once the bytes are copied into the "
                                f"send buffer, not when the OS has sent them")
    plotting.legend_below(ax, ncol=3)
    files.append(plotting.save(fig, outdir / "send_buffer_blocks_returned_vs_read.png"))
    return files
