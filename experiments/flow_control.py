"""Flow control: a reader that stops reading closes TCP's window and stalls the sender,
without breaking the connection; afterwards the sender goes at the reader's pace.

Claims (seed/CLAIMS.md):
  C5.1  When the application drains the receive buffer more slowly than the network fills
        it, the receive buffer becomes full.
  C5.2  Then the TCP sender's send blocks (flow control: the advertised window closes).
  C5.3  The connection stays up (zero-window probes keep it alive and no data is lost);
        the sender is paced to the slow receiver.

World: host ``sender`` sends ``total`` bytes with blocking ``send`` calls over a
``link_rate`` link to host ``receiver``, which reads ``read_chunk`` bytes every
``read_pause`` s but stops reading altogether between ``pause_start`` and ``pause_end``.
While it sleeps, its receive buffer fills, the window it advertises drops to zero, the
sender's send buffer fills and ``send`` blocks; the sender's kernel sends zero-window
probes, with exponential backoff, until the reader resumes.
"""

from __future__ import annotations

from pathlib import Path

import simsock
from models.tcp import blocking_sender, slow_reader, stream_hash

CLAIMS = ["C5.1", "C5.2", "C5.3"]

PARAMS = {
    "total": 2_000_000,
    "chunk": 65536,
    "sndbuf": 65536,
    "rcvbuf": 65536,
    "read_chunk": 8192,
    "read_pause": 0.01,
    "pause_start": 0.5,
    "pause_end": 2.5,
    "link_rate": "100Mbit",
    "delay": "10ms",
    "sample_ms": 2.0,
    "bin_ms": 100.0,
}

PARAM_HELP = {
    "total": "bytes the sender sends",
    "chunk": "bytes per blocking send call",
    "sndbuf": "SO_SNDBUF of the sender (Linux doubles it)",
    "rcvbuf": "SO_RCVBUF of the reader (Linux doubles it)",
    "read_chunk": "bytes the reader asks recv for each time",
    "read_pause": "seconds the reader sleeps after each recv",
    "pause_start": "time (s) the reader stops reading",
    "pause_end": "time (s) the reader starts reading again",
    "link_rate": "rate of the link",
    "delay": "one-way propagation delay of the link",
    "sample_ms": "sampling interval of the connection state (ms)",
    "bin_ms": "width of the throughput bins (ms)",
}

PORT = 5959


def run(params: dict, seed: int) -> dict:
    p = params
    sim = simsock.Simulation(seed=seed, trace=("event",))
    sender = sim.add_host("sender")
    receiver = sim.add_host("receiver")
    sim.add_link(sender, receiver, rate=p["link_rate"], delay=p["delay"], queue=200)
    slog: dict = {}
    rlog: dict = {}
    samples: list[list] = []

    async def sampler(k):
        while "eof_time" not in rlog:
            s, r = slog.get("socket"), rlog.get("socket")
            sc = s.conn if s is not None else None
            rc = r.conn if r is not None else None
            if sc is not None and rc is not None and sc.state not in ("SYN_SENT", "SYN_RECV", "CLOSE"):
                samples.append([k.now, sc.snd_wnd, sc.snd_nxt - sc.snd_una, sc.wmem_queued,
                                rc.rmem_alloc, rc.inq, rlog["received"], sc.stats()["bytes_acked"]])
            await k.sleep(p["sample_ms"] / 1000.0)

    receiver.spawn(slow_reader, PORT, p["read_chunk"], p["read_pause"], rlog, p["rcvbuf"],
                   (p["pause_start"], p["pause_end"]))
    sender.spawn(blocking_sender, ("receiver", PORT), p["total"], p["chunk"], slog, p["sndbuf"])
    sender.spawn(sampler)
    read_rate = p["read_chunk"] / p["read_pause"]
    sim.run(until=p["pause_end"] + 3 * p["total"] / read_rate + 5)

    events = list(sim.trace.records("event"))
    zwp = [e["t"] / 1e9 for e in events if e["kind"] == "tcp_zwp" and e["where"].startswith("sender:")]
    states = [[e["t"] / 1e9, e["fields"]["new"]] for e in events
              if e["kind"] == "tcp_state" and e["where"].startswith("sender:")]
    retrans = sum(1 for e in events if e["kind"] == "tcp_retransmit")
    stats = slog["socket"].conn.stats() if slog["socket"].conn else {}
    calls = slog["calls"]
    blocked = [[c[0], c[1]] for c in calls if c[1] > c[0]]
    t0, t1 = p["pause_start"], p["pause_end"]
    # the span the window is watched over: the reader's pause, or the whole run without one
    in_pause = [s for s in samples if t0 < s[0] < t1] if t1 > t0 else samples
    mss = stats.get("mss", 1448)
    # "closed": the window left to the sender (advertised minus in flight) is under one MSS
    open_samples = [s[0] for s in in_pause if s[1] - s[2] >= mss]
    closed = [s[0] for s in in_pause if s[1] - s[2] < mss and (not open_samples or s[0] > open_samples[-1])]
    zero_from = closed[0] if closed else None   # from then on closed until the reader resumed
    probes_in_pause = [z for z in zwp if t0 <= z <= t1]
    rtx_in_pause = [e["t"] / 1e9 for e in events if e["kind"] == "tcp_retransmit" and e["where"].startswith("sender:")
                    and t0 * 1e9 <= e["t"] <= t1 * 1e9]
    acked_t1 = max((s[7] for s in samples if s[0] <= t1), default=0)
    resume = next((s[0] for s in samples if s[0] > t1 and s[7] > acked_t1), t1)
    # the blocked call spanning the pause
    longest = max(blocked, key=lambda b: b[1] - b[0]) if blocked else [0, 0]
    # read rate vs acked (sender) rate after the reader resumed, while the sender still had data
    close_time = slog.get("close_time")
    # ... until the last byte was acknowledged (the sender may have closed long before)
    after = [s for s in samples if resume + 0.2 <= s[0] and s[7] < p["total"]]
    if len(after) >= 2:
        dt = after[-1][0] - after[0][0]
        acked_rate = (after[-1][7] - after[0][7]) / dt
        read_rate_after = (after[-1][6] - after[0][6]) / dt
    else:
        acked_rate = read_rate_after = 0.0
    width = p["bin_ms"] / 1000.0
    end = max((s[0] for s in samples), default=0.0)
    nb = int(end / width) + 1
    acked_bins = [0.0] * nb
    read_bins = [0.0] * nb
    for a, b in zip(samples, samples[1:]):
        i = min(nb - 1, int(b[0] / width))
        acked_bins[i] += b[7] - a[7]
        read_bins[i] += b[6] - a[6]
    return {
        "total": p["total"],
        "pause": [t0, t1],
        "rcvbuf": rlog["rcvbuf"],
        "sndbuf": stats.get("sndbuf", 0),
        "read_rate_set": read_rate,
        "link_rate_Bps": simsock.units.parse_rate(p["link_rate"]) / 8,
        "max_rmem_in_pause": max((s[4] for s in in_pause), default=0),
        "max_inq_in_pause": max((s[5] for s in in_pause), default=0),
        "mss": mss,
        "zero_window_from": zero_from,
        "window_at_pause_end": in_pause[-1][1] if in_pause else None,
        "usable_window_at_pause_end": in_pause[-1][1] - in_pause[-1][2] if in_pause else None,
        "probes_in_pause": len(probes_in_pause),
        "rtx_in_pause": rtx_in_pause,
        "sender_resumed": resume,
        "longest_blocked": longest,
        "blocked_count": len(blocked),
        "zero_window_probes": stats.get("zero_window_probes", 0),
        "zwp_times": zwp,
        "sender_states": states,
        "retransmits": retrans,
        "received": rlog["received"],
        "intact": rlog["intact"],
        "hash_ok": rlog.get("sha256") == stream_hash(p["total"]),
        "eof_time": rlog.get("eof_time"),
        "close_time": close_time,
        "max_rmem": max((s[4] for s in samples), default=0),
        "blocked": blocked,
        "acked_rate_after": acked_rate,
        "read_rate_after": read_rate_after,
        "samples": samples,
        "bin_s": width,
        "acked_per_bin": acked_bins,
        "read_per_bin": read_bins,
    }


def _reader_slower(r: dict) -> bool:
    t0, t1 = r["pause"]
    return t1 > t0 or r["read_rate_set"] < r["link_rate_Bps"]


def check(result: dict) -> list:
    from simsock.claims import Checks
    r = result
    c = Checks()
    t0, t1 = r["pause"]
    paused = t1 > t0
    if not _reader_slower(r):
        why = (f"the reader ({r['read_rate_set']:,.0f} B/s, no pause) is faster than the link "
               f"({r['link_rate_Bps']:,.0f} B/s): nothing makes the receive buffer fill")
        for claim in ("C5.1", "C5.2", "C5.3"):
            c.not_measured(claim, why)
        return c.list
    if paused and (r["eof_time"] or t0) < t0:
        for claim in ("C5.1", "C5.2", "C5.3"):
            c.not_measured(claim, f"the transfer was over at {r['eof_time']:.3f} s, before the reader's pause "
                                  f"({t0:g} s); raise total or start the pause earlier")
        return c.list
    peak = r["max_rmem_in_pause"] if paused else r["max_rmem"]
    c.at_least("C5.1", "peak receive-buffer charge / SO_RCVBUF" + (" while the reader slept" if paused else ""),
               round(peak / r["rcvbuf"], 4), 0.5, note=f"SO_RCVBUF {r['rcvbuf']:,} B")
    c.fact("C5.2", r["zero_window_from"] is not None,
           f"the window left to the sender fell under one MSS ({r['mss']} B)"
           + (f" at {r['zero_window_from']:.3f} s" if r["zero_window_from"] is not None else ": never"),
           {"window_closed_at_s": r["zero_window_from"]}, "< 1 MSS while the reader slept")
    if paused and r["usable_window_at_pause_end"] is not None:
        c.at_most("C5.2", "usable window just before the reader resumed", r["usable_window_at_pause_end"],
                  r["mss"] - 1, unit="B")
    b0, b1 = r["longest_blocked"]
    if paused:
        c.fact("C5.2", b1 - b0 > 0 and b0 < t0 + 0.5 and b1 >= t1,
               f"the longest blocked send() lasted {b0:.3f}-{b1:.3f} s, expected it to span the reader's pause "
               f"({t0:g}-{t1:g} s); a closed window blocks send() only once the send buffer "
               f"(SO_SNDBUF {r['sndbuf']:,} B) is full too",
               {"longest_blocked_send_s": round(b1 - b0, 6)}, f"spans {t0}-{t1} s")
    else:
        c.at_least("C5.2", "send() calls that blocked", r["blocked_count"], 1)
    if paused:
        probes = r["probes_in_pause"] + len(r["rtx_in_pause"])
        c.at_least("C5.3", "window probes while the window was closed", probes, 2,
                   note="zero-window probes + timeout retransmissions keep the connection up")
    close = r["close_time"]
    left = [st for t, st in r["sender_states"] if close is None or t < close]
    c.fact("C5.3", not any(st in ("CLOSE", "TIME_WAIT", "FIN_WAIT1") for st in left),
           "the sender's connection stayed ESTABLISHED until the sender closed it")
    c.fact("C5.3", r["received"] == r["total"] and r["intact"] and r["hash_ok"] and r["eof_time"] is not None,
           f"the reader got {r['received']:,} of {r['total']:,} B, intact and in order, and then end of stream",
           {"received_bytes": r["received"]}, f"== {r['total']}")
    rate = r["read_rate_set"]
    if rate >= r["link_rate_Bps"]:
        c.not_measured("C5.3", f"the reader's pace ({rate:,.0f} B/s) is not below the link's "
                               f"({r['link_rate_Bps']:,.0f} B/s): pacing to the reader cannot be told from pacing "
                               f"to the link")
    elif r["acked_rate_after"] == 0:
        c.not_measured("C5.3", "too little data left after the reader resumed to measure the sender's pace; "
                               "raise total")
    else:
        c.between("C5.3", "sender's delivery rate / reader's pace after resuming",
                  round(r["acked_rate_after"] / rate, 4), 0.8, 1.2,
                  note=f"sender {r['acked_rate_after']:,.0f} B/s, reader {rate:,.0f} B/s, link "
                       f"{r['link_rate_Bps']:,.0f} B/s")
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    r = result
    n = plotting.number
    s = r["samples"]
    t = [x[0] for x in s]
    files = []
    t0, t1 = r["pause"]
    paused = t1 > t0
    pause = [r["pause"]] if paused else []

    zf = r["zero_window_from"]
    if zf is not None:
        title = (f"TCP flow control: the advertised window closed at {zf:.2f} s"
                 + (f" while the reader slept ({t0:g}-{t1:g} s)" if paused else "") + " (C5.1, C5.2)")
    else:
        title = "TCP flow control: the advertised window never closed (C5.1, C5.2 not shown)"
    fig, (ax, low) = plotting.plt.subplots(2, 1, figsize=(9.0, 6.4), dpi=plotting.DPI, sharex=True,
                                           layout="constrained", height_ratios=[3, 1.2])
    ax.set_title(title, fontsize=12)
    for a in (ax, low):
        a.grid(True, alpha=0.3, linewidth=0.6)
        a.set_axisbelow(True)
        plotting.shade_intervals(a, pause, "reader not reading" if a is ax else None, color="0.5", alpha=0.12)
    # the window as a broad pale band, bytes in flight as a thin line on top: where the sender is
    # window-limited the two coincide, and both stay visible
    ax.step(t, [x[1] for x in s], where="post", color="tab:blue", linewidth=5, alpha=0.3,
            label="window advertised by the receiver (snd_wnd)", solid_capstyle="butt")
    plotting.step_plot(ax, t, [x[2] for x in s], "bytes in flight (snd_nxt - snd_una)", color="tab:orange")
    plotting.step_plot(ax, t, [x[5] for x in s], "receive buffer: unread bytes", color="tab:green")
    probes = r["zwp_times"] + r["rtx_in_pause"]
    ymax = max([max((x[1] for x in s), default=1), max((x[5] for x in s), default=1), 1])
    if probes:
        ax.plot(probes, [ymax * 1.08] * len(probes), linestyle="none", marker="v", color="tab:purple",
                label="window probe (zero-window probe or timeout retransmission)")
    ax.set_ylim(0, ymax * 1.35)
    ax.set_ylabel("bytes (B)")
    plotting.legend_below(ax, ncol=2)
    # the sender's blocked send() calls, as bars on their own row (no overlapping shadings)
    blocked = r.get("blocked", [r["longest_blocked"]])
    low.broken_barh([(a, b - a) for a, b in blocked if b > a], (0.2, 0.6), color="tab:red", alpha=0.7)
    low.set_ylim(0, 1)
    low.set_yticks([])
    low.set_ylabel("send() (blocked)")
    low.set_xlabel("time (s)")
    longest = r["longest_blocked"]
    low.set_title(f"longest blocked send(): {longest[0]:.2f}-{longest[1]:.2f} s "
                  f"(SO_SNDBUF {n(r['sndbuf'])} B); a closed window blocks send() only once the send buffer is "
                  f"full too", fontsize=9)
    note = (f"{n(r['zero_window_probes'])} zero-window probes + {len(r['rtx_in_pause'])} timeout retransmissions "
            f"kept the connection up;\n{n(r['received'])} of {n(r['total'])} B arrived intact")
    plotting.annotate_claim(ax, note)
    files.append(plotting.save(fig, outdir / "flow_control_window.png"))

    rate = r["read_rate_set"]
    after = r["acked_rate_after"]
    paced = rate < r["link_rate_Bps"] and after and 0.8 <= after / rate <= 1.2
    fig, ax = plotting.figure("Throughput: " + ("the sender is paced to the reader (C5.3)" if paced else
                              "the sender is not paced to the reader here (C5.3 not shown)"), "time (s)",
                              "throughput (kB/s)")
    w = r["bin_s"]
    bt = [i * w for i in range(len(r["acked_per_bin"]))]
    plotting.shade_intervals(ax, pause, "reader not reading", color="0.5", alpha=0.12)
    plotting.step_plot(ax, bt, [v / w / 1000 for v in r["acked_per_bin"]], "acknowledged (sender side)",
                       color="tab:orange")
    plotting.step_plot(ax, bt, [v / w / 1000 for v in r["read_per_bin"]], "read by the application",
                       color="tab:green", linestyle="--")
    ax.axhline(rate / 1000, color="0.3", linestyle=":", linewidth=0.8,
               label=f"reader's pace = {n(round(rate / 1000))} kB/s")
    plotting.annotate_claim(ax, f"after resuming: sender {n(round(after / 1000))} kB/s, reader "
                                f"{n(round(r['read_rate_after'] / 1000))} kB/s; the link could carry "
                                f"{n(round(r['link_rate_Bps'] / 1000))} kB/s")
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "flow_control_throughput.png"))
    return files
