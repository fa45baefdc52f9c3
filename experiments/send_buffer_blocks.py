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
from models.tcp import blocking_sender, slow_reader, stream_hash

CLAIMS = ["C2.2", "C2.3", "C3.1", "C3.2", "C3.3", "C4.1", "C4.2", "C4.3"]

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
}

PORT = 5959


async def _delayed(k, delay, fn, *args):
    await k.sleep(delay)
    await fn(k, *args)


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

    async def sampler(k):
        while "eof_time" not in rlog:
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

    receiver.spawn(slow_reader, PORT, p["read_chunk"], p["read_pause"], rlog, p["rcvbuf"])
    sender.spawn(_delayed, p["client_start"], blocking_sender, ("receiver", PORT), p["total"], p["chunk"], slog,
                 p["sndbuf"])
    sender.spawn(sampler)
    sim.run(until=p["total"] / (p["read_chunk"] / p["read_pause"]) * 3 + 5)

    calls = slog["calls"]
    blocked = [[c[0], c[1]] for c in calls if c[1] > c[0]]
    sndbuf = slog["socket"].conn.sndbuf if slog["socket"].conn else 2 * p["sndbuf"]
    # fill of the send buffer seen by samples strictly inside a blocked call
    inside = [s[1] for s in samples for b in blocked if b[0] + interval < s[0] < b[1] - interval]
    last_ret = calls[-1][1]
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
        "max_send_call_s": max(c[1] - c[0] for c in calls),
        "blocked_calls_wmem_before": [c[3] for c in calls if c[1] > c[0]],
        "blocked_min_fill": min(inside) / sndbuf if inside else None,
        "sent": slog["sent"],
        "close_time": slog["close_time"],
        "last_send_return": last_ret,
        "read_at_last_send": read_at_last,
        "acked_at_last_send": acked_at_last,
        "first_send_return": calls[0][1],
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


def check(result: dict) -> list[str]:
    r = result
    failed = []
    c0, c1 = r["connect"]
    if not (c1 - c0 >= r["rtt_s"] and r["accept"][1] > c0):
        failed.append(f"C2.2: connect returned at {c1:.4f} s (called {c0:.4f} s), expected it to block for the "
                      f"handshake, at least one round trip ({r['rtt_s']} s)")
    if r["listen_call"][1] != r["listen_call"][0]:
        failed.append("C4.1: listen did not return at once")
    if r["accept"][1] < r["client_start"]:
        failed.append(f"C4.1: accept returned at {r['accept'][1]:.4f} s, before the client started "
                      f"({r['client_start']} s)")
    if r["peer"][0] != "10.0.0.1":
        failed.append(f"C4.1: getpeername gave {r['peer']}, expected the client's address 10.0.0.1")
    if not r["blocked"]:
        failed.append(f"C3.3: no send call ever blocked although the reader was slower (longest call "
                      f"{r['max_send_call_s']:.4f} s)")
    if r["blocked_min_fill"] is not None and r["blocked_min_fill"] < 2 / 3:
        failed.append(f"C3.3: while send was blocked the send buffer was only {r['blocked_min_fill']:.0%} full; "
                      f"expected it to stay full (>= 2/3, Linux's wake-up threshold)")
    need = [w for w in r["blocked_calls_wmem_before"] if w + r["chunk"] <= r["sndbuf"]]
    if need:
        failed.append(f"C3.3: {len(need)} send calls blocked although the chunk fitted in the free space "
                      f"(wmem_queued before {need[:3]}, SO_SNDBUF {r['sndbuf']})")
    if r["max_wmem"] <= 0 or r["max_rmem"] <= 0:
        failed.append(f"C3.1: expected both buffers to hold data (max send {r['max_wmem']} B, "
                      f"receive {r['max_rmem']} B)")
    unread = r["sent"] - r["read_at_last_send"]
    if unread < r["sent"] * 0.05 or unread < r["sndbuf"] // 2:
        failed.append(f"C2.3: when the last send returned the reader had read {r['read_at_last_send']} of "
                      f"{r['sent']} bytes; expected a large unread remainder (>= 5% and >= SO_SNDBUF/2)")
    if r["first_read_time"] is None or r["first_read_time"] <= r["first_send_return"]:
        failed.append("C2.3: the first byte was read before the first send returned")
    if r["eof_time"] is None:
        failed.append("C4.3: recv never returned b\"\"")
    elif r["eof_time"] <= r["close_time"]:
        failed.append(f"C4.3: recv returned b\"\" at {r['eof_time']:.4f} s, before the sender closed "
                      f"({r['close_time']:.4f} s)")
    if r["received"] != r["total"] or not r["intact"] or not r["hash_ok"]:
        failed.append(f"C3.2: received {r['received']} of {r['total']} bytes, in order and intact: "
                      f"{r['intact'] and r['hash_ok']}")
    gaps = [b[0] - a[0] for a, b in zip(r["reads"], r["reads"][1:])]
    if r["reads"] and r["reads"][0][0] <= r["accept"][1]:
        failed.append("C4.2: the first recv returned data before any could have arrived")
    if gaps and min(gaps) <= 0:
        failed.append("C4.2: two recv calls returned data at the same instant")
    return failed


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plotting

    r = result
    s = r["samples"]
    t = [x[0] for x in s]
    files = []

    fig, ax = plotting.figure("TCP: a blocking sender and a slow reader - buffer occupancy (C3.1, C3.3)",
                              "time (s)", "bytes in the buffer")
    plotting.shade_intervals(ax, r["blocked"], "send() blocked")
    plotting.step_plot(ax, t, [x[1] for x in s], "send buffer: bytes charged (sk_wmem_queued)", color="tab:blue")
    plotting.step_plot(ax, t, [x[3] for x in s], "receive buffer: bytes charged (sk_rmem_alloc)",
                       color="tab:green")
    plotting.step_plot(ax, t, [x[4] for x in s], "receive buffer: unread payload bytes", color="tab:olive")
    ax.axhline(r["sndbuf"], color="tab:blue", linestyle="--", linewidth=0.8,
               label=f"SO_SNDBUF = {r['sndbuf']} B")
    ax.axhline(r["rcvbuf"], color="tab:green", linestyle=":", linewidth=0.8,
               label=f"SO_RCVBUF = {r['rcvbuf']} B")
    plotting.annotate_claim(ax, f"send() blocked {len(r['blocked'])} times ({r['blocked_time_s']:.2f} s in all), "
                                f"always with a full send buffer\n"
                                f"(>= {r['blocked_min_fill']:.0%} of SO_SNDBUF while blocked)")
    ax.set_ylim(0, max(r["max_wmem"], r["max_rmem"], r["sndbuf"], r["rcvbuf"]) * 1.35)
    ax.legend(loc="upper right", fontsize=8)
    files.append(plotting.save(fig, outdir / "send_buffer_blocks_occupancy.png"))

    fig, ax = plotting.figure("send() returned is not delivered (C2.3)", "time (s)", "bytes (cumulative)")
    plotting.step_plot(ax, t, [x[5] for x in s], "returned by send()", color="tab:blue")
    plotting.step_plot(ax, t, [x[6] for x in s], "acknowledged by the receiver's kernel", color="tab:orange")
    plotting.step_plot(ax, t, [x[7] for x in s], "read by the receiving application", color="tab:green")
    ax.axvline(r["last_send_return"], color="0.3", linestyle="--", linewidth=0.8, label="last send() returned")
    if r["eof_time"] is not None:
        ax.axvline(r["eof_time"], color="tab:red", linestyle=":", linewidth=0.8, label='recv() returned b""')
    pct = 100 * r["read_at_last_send"] / max(1, r["sent"])
    plotting.annotate_claim(ax, f"when the last send() returned ({r['last_send_return']:.2f} s), the reader had "
                                f"read {pct:.0f}% of the bytes;\n{r['sent'] - r['acked_at_last_send']} B were "
                                f"not even acknowledged. recv() saw EOF at {r['eof_time']:.2f} s")
    ax.legend(loc="lower right", fontsize=8)
    files.append(plotting.save(fig, outdir / "send_buffer_blocks_returned_vs_read.png"))
    return files
