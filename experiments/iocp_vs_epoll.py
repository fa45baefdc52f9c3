"""IOCP against epoll with several threads: who may handle a socket, and what copying costs.

Claims (seed/CLAIMS.md):
  C9.1-C9.3  IOCP is completion-based: the program posts overlapped operations and handles
             only the sockets whose I/O completed.
  C9.4       a wait on the port returns at once when a completion arrives.
  C9.5       after handling a completion the program posts the next operation.
  C9.6       with epoll, another thread touching the same socket is trouble: N threads on
             one shared epoll (no EPOLLONESHOT) handle one client's messages at the same
             time and finish them out of order.
  C9.7       with IOCP, several threads are fine: each completion goes to one thread.
  C9.8       epoll servers partition their sockets among threads (or use EPOLLONESHOT) to
             avoid C9.6.
  C7.3-C7.4  recv/send copy between user and kernel memory; an overlapped send transmits
             from the caller's pinned buffer, so it copies nothing.

World: a server host with ``cores`` cores, ``clients`` client hosts behind a 1 Gbit/s,
``delay`` link each. Every client (:func:`models.clients.game_client`) sends ``burst``
messages of ``size`` bytes, ``gap`` apart, every ``period`` seconds over TCP; the server
handles each message with 0.5-1.5 x ``service_time`` of CPU work (``k.compute``) and
echoes it. Each architecture of :mod:`models.servers_mt` runs with each thread count in
``threads``, for ``duration`` simulated seconds.

Measured: races (a thread starts on a connection another thread is still handling),
messages finished out of order, spurious wake-ups, messages handled per second, reply
latency, and the bytes copied between user and kernel memory per message, turned into
CPU time with the profile's per-byte copy cost.
"""

from __future__ import annotations

import functools
from pathlib import Path

import simsock
from simsock import progress
from models.clients import game_client, new_record
from models.servers_mt import ARCHITECTURES, new_stats, server_program

CLAIMS = ["C9.1", "C9.2", "C9.3", "C9.4", "C9.5", "C9.6", "C9.7", "C9.8", "C7.3", "C7.4", "C7.5", "C0.2"]

PARAMS = {
    "architectures": ",".join(ARCHITECTURES),
    "threads": "1,2,4,8",
    "cores": 4,
    "clients": 8,
    "burst": 4,
    "period": 0.01,
    "gap": 50e-6,
    "size": 100,
    "service_time": 200e-6,
    "duration": 1.0,
    "delay": "1ms",
    "variants": "iocp_2recv,iocp_sndbuf0",
    "iocp_poll_ms": 0.0,
}

PARAM_HELP = {
    "architectures": "comma-separated server architectures (models/servers_mt.py)",
    "threads": "comma-separated worker thread counts",
    "cores": "cores of the server host",
    "clients": "client hosts, one connection each",
    "burst": "messages each client sends back to back every period",
    "period": "seconds between a client's bursts",
    "gap": "seconds between the messages of one burst",
    "size": "bytes per message",
    "service_time": "CPU seconds the server spends handling one message",
    "duration": "simulated seconds per run",
    "delay": "one-way delay of each client's link",
    "variants": "IOCP variants run at the largest thread count: iocp_2recv (two overlapped receives "
                "outstanding per socket, C9.7), iocp_sndbuf0 (SO_SNDBUF = 0: WSASend copies nothing, C7.4)",
    "iocp_poll_ms": "0: IOCP workers wait on the port; > 0: they poll it and sleep this long when empty "
                    "(breaks C9.4)",
}

_PORT = 5959
VARIANTS = ("iocp_2recv", "iocp_sndbuf0")


def _list(value, cast):
    if isinstance(value, (list, tuple)):
        return [cast(v) for v in value]
    return [cast(v) for v in str(value).split(",") if str(v).strip()]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_one(arch: str, threads: int, p: dict, seed: int) -> dict:
    sim = simsock.Simulation(seed=seed, trace=())
    server = sim.add_host("server", cores=p["cores"])
    stats = new_stats()
    records = []
    extra = {}
    base = arch
    if arch.startswith("iocp"):
        base = "iocp"
        extra = {"outstanding": 2 if arch == "iocp_2recv" else 1, "sndbuf_zero": arch == "iocp_sndbuf0",
                 "poll_sleep": p["iocp_poll_ms"] / 1000.0}
    server.spawn(functools.partial(server_program(base), size=p["size"], service_time=p["service_time"], **extra),
                 _PORT, threads, stats, name="server")
    for i in range(p["clients"]):
        host = sim.add_host(f"client{i}")
        sim.add_link(host, server, rate="1Gbit", delay=p["delay"])
        rec = new_record()
        records.append(rec)
        host.spawn(functools.partial(game_client, size=p["size"], period=p["period"], burst=p["burst"],
                                     gap=p["gap"], fixed_rate=True, nodelay=True, start_delay=0.0001 * i,
                                     record=rec, client_id=i, samples=True), ("server", _PORT), name="client")
    progress.run(sim, p["duration"], f"{arch}, {threads} threads")
    # what the kernel copied for the server's socket calls (its CPU model charges these
    # bytes), plus what the completion mechanisms copied for their operations
    copied = server.cpu.copied_bytes
    if "_port" in stats:
        copied += stats["_port"].copied_bytes
    for ring in stats.get("_rings", ()):
        copied += ring.copied_bytes
    latencies = [ns / 1e9 for rec in records for ns in rec["rtt_ns"]]
    sent = sum(rec["sent"] for rec in records)
    received = sum(rec["received"] for rec in records)
    cpu = server.cpu.stats() if hasattr(server, "cpu") else {}
    handled = stats["handled"]
    out = {
        "arch": arch, "threads": threads, "sent": sent, "received": received, "handled": handled,
        "races": stats["races"], "out_of_order": stats["out_of_order"], "spurious": stats["spurious"],
        "reply_order_errors": sum(rec["reply_order_errors"] for rec in records),
        "accepted": stats["accepted"],
        "throughput": handled / p["duration"],
        "latency_mean_ms": 1000 * sum(latencies) / len(latencies) if latencies else 0.0,
        "latency_p99_ms": 1000 * _percentile(latencies, 0.99),
        "copied_bytes": copied,
        "copied_per_msg": copied / handled if handled else 0.0,
        "copy_cpu_ns_per_msg": (copied * sim.profile.copy_ps_per_byte / 1e3) / handled if handled else 0.0,
        "server_cpu_s": cpu.get("busy_ns", 0) / 1e9,
        "per_thread": dict(sorted(stats["per_thread"].items())),
        "calls_per_msg": stats["calls"] / handled if handled else 0.0,
        "readiness_events_per_msg": stats["readiness_events"] / handled if handled else 0.0,
        "wait_returns_per_msg": stats["wait_returns"] / handled if handled else 0.0,
        "waits_woken": stats["waits_woken"],
        "wait_latency_us_max": stats["wait_latency_ns_max"] / 1e3,
        "wait_latency_us_mean": (stats["wait_latency_ns_sum"] / stats["waits_woken"] / 1e3
                                 if stats["waits_woken"] else 0.0),
        "reposts": stats.get("reposts", 0),
        "recv_completions": stats.get("recv_completions", 0),
        "send_completions": stats.get("send_completions", 0),
        "send_partial": stats.get("send_partial", 0),
        # receive buffers the program hands the kernel and cannot touch until completion
        "pinned_bytes_per_conn": (4096 * (2 if arch == "iocp_2recv" else 1) if arch.startswith("iocp")
                                  else 4096 if arch == "io_uring" else 0),
    }
    if "_port" in stats:
        port = stats["_port"]
        out["iocp"] = {k: v for k, v in port.stats().items() if k not in ("fd", "type")}
    return out


def run(params: dict, seed: int) -> dict:
    p = dict(params)
    archs = _list(p["architectures"], str)
    threads = _list(p["threads"], int)
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown:
        raise ValueError(f"unknown architectures {unknown}; choose from {', '.join(ARCHITECTURES)}")
    if any(t < 1 for t in threads):
        raise ValueError(f"thread counts must be >= 1, got {threads}")
    variants = _list(p["variants"], str)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    runs, skipped = [], {}
    plan = [(arch, t) for arch in archs for t in threads]
    if threads:
        plan += [(v, max(threads)) for v in variants]
    for arch, t in progress.steps(plan, "runs (architecture x threads)", unit="run"):
        if arch in skipped:
            continue
        try:
            runs.append(run_one(arch, t, p, seed))
        except simsock.SimulationError as exc:
            cause = exc.__cause__
            if arch.startswith("epoll") and isinstance(cause, AttributeError) and "epoll" in str(cause):
                skipped[arch] = "k.epoll() is not available in this simsock build"
                continue
            raise
    out = {"params": {k: p[k] for k in sorted(p)}, "runs": runs, "skipped": skipped,
           "copy_ps_per_byte": simsock.Simulation(seed=seed).profile.copy_ps_per_byte}
    out["cost_table"] = cost_table(out)
    return out


def _by(result, arch):
    return [r for r in result["runs"] if r["arch"] == arch]


WAKE_US = 50.0     # a woken waiter runs within a context switch (a few µs), not a timeout later


def _one(result, arch, threads=None):
    rows = [r for r in _by(result, arch) if threads is None or r["threads"] == threads]
    return max(rows, key=lambda r: r["threads"]) if rows else None


def cost_table(result: dict) -> list[dict]:
    """C7.5: each I/O model's measured costs, side by side, at its largest thread count."""
    table = []
    for arch in [*ARCHITECTURES, *VARIANTS]:
        r = _one(result, arch)
        if r is None:
            continue
        counted = arch != "io_uring"          # the io_uring server does not count its calls
        table.append({"arch": arch, "threads": r["threads"],
                      "calls_per_msg": round(r["calls_per_msg"], 3) if counted else None,
                      "readiness_events_per_msg": round(r["readiness_events_per_msg"], 3) if counted else None,
                      "wakeups_per_msg": round(r["wait_returns_per_msg"], 3) if counted else None,
                      "copied_bytes_per_msg": round(r["copied_per_msg"], 1),
                      "pinned_bytes_per_conn": r["pinned_bytes_per_conn"],
                      "races": r["races"], "out_of_order": r["out_of_order"],
                      "latency_mean_ms": round(r["latency_mean_ms"], 3)})
    return table


def check(result: dict) -> list:
    from simsock.claims import Checks
    c = Checks()
    size = result["params"]["size"]
    for arch, why in sorted(result["skipped"].items()):
        for claim in ("C9.6", "C9.8"):
            c.not_measured(claim, f"{arch}: not run ({why})")
    iocp = _one(result, "iocp")
    epoll_any = next((r for r in (_one(result, a) for a in ("epoll", "epoll_oneshot", "epoll_partitioned", "epoll_et"))
                      if r), None)
    no_iocp = "architectures has no iocp: nothing completion-based was run"
    # C9.1: completion-based: the data comes with the completion, no readiness event, no second call.
    if iocp is None or epoll_any is None:
        c.not_measured("C9.1", no_iocp if iocp is None else "no epoll server was run to compare with")
    else:
        c.equal("C9.1", "IOCP readiness events per message", iocp["readiness_events_per_msg"], 0,
                note=f"{iocp['recv_completions']:,} receive completions each carried their data; epoll needed "
                     f"{epoll_any['readiness_events_per_msg']:.2f} events and a recv call per event")
        c.at_least("C9.1", f"{epoll_any['arch']} readiness events per message", 
                   round(epoll_any["readiness_events_per_msg"], 3), 0.01)
        c.at_least("C9.1", "IOCP receive completions that carried data", iocp["recv_completions"], 1)
    # C9.2 / C9.4: the waiting thread gets the completion at once (the wait had no timeout).
    for claim, what in (("C9.2", "completion to waiting thread (longest)"),
                        ("C9.4", "port wait (timeout: infinite) returned after the completion, longest")):
        if iocp is None:
            c.not_measured(claim, no_iocp)
        elif iocp["waits_woken"] == 0:
            c.not_measured(claim, "no thread was waiting on the port when a completion arrived")
        else:
            c.at_most(claim, what, round(iocp["wait_latency_us_max"], 3), WAKE_US, unit="µs",
                      note=f"{iocp['waits_woken']:,} waits woken by a completion, mean "
                           f"{iocp['wait_latency_us_mean']:.2f} µs")
    # C9.3: only sockets whose I/O completed are handled: no spurious wake-ups, all handled.
    if iocp is None:
        c.not_measured("C9.3", no_iocp)
    else:
        c.equal("C9.3", "IOCP wake-ups that found nothing to do (spurious)", iocp["spurious"], 0)
        c.at_least("C9.3", "messages IOCP handled / sent", round(iocp["handled"] / max(1, iocp["sent"]), 4), 0.9)
    # C9.5: post the next operation after handling a completion.
    if iocp is None:
        c.not_measured("C9.5", no_iocp)
    else:
        c.at_least("C9.5", "receives re-posted per receive completion",
                   round(iocp["reposts"] / max(1, iocp["recv_completions"]), 4), 0.95,
                   note="one outstanding receive per socket, posted again once handled")
    # C9.6: shared epoll without EPOLLONESHOT races.
    multi = [r for r in _by(result, "epoll") + _by(result, "epoll_et") if r["threads"] >= 2]
    if not multi:
        c.not_measured("C9.6", "needs a shared epoll (epoll or epoll_et) with at least 2 threads; "
                               f"threads={result['params']['threads']}, architectures={result['params']['architectures']}")
    else:
        c.at_least("C9.6", "races on one socket, shared epoll (most threads)", max(r["races"] for r in multi), 1)
        c.at_least("C9.6", "messages finished out of order, shared epoll",
                   max(r["out_of_order"] + r["reply_order_errors"] for r in multi), 1)
    # C9.7: IOCP with several threads: each completion to one thread; with one outstanding
    # receive per socket nothing races; with two, completions are still whole but order is not kept.
    multi_iocp = [r for r in _by(result, "iocp") if r["threads"] >= 2]
    if not multi_iocp:
        c.not_measured("C9.7", "needs iocp with at least 2 threads")
    else:
        r = max(multi_iocp, key=lambda x: x["threads"])
        st = r.get("iocp", {})
        c.equal("C9.7", f"IOCP ({r['threads']} threads, one receive outstanding) races + out of order",
                r["races"] + r["out_of_order"] + r["reply_order_errors"], 0)
        if st:
            c.equal("C9.7", "completions delivered to threads - completions queued",
                    st["delivered"] - (st["completions"] + st["manual_posts"] - st["queued"]), 0,
                    note="each completion went to exactly one thread")
        two = _one(result, "iocp_2recv")
        if two is not None:
            c.equal("C9.7", "spurious wake-ups with two receives outstanding per socket", two["spurious"], 0,
                    note=f"but {two['races']} messages were handled while another of the same socket was and "
                         f"{two['out_of_order']} finished out of order: each completion is a finished I/O for "
                         f"one thread, yet ordering across a socket's completions is the program's job")
    # C9.8: partitioning (or ONESHOT) removes the races a shared epoll has at the same thread count.
    if not multi:
        c.not_measured("C9.8", "needs a shared epoll with >= 2 threads to compare against")
    else:
        seen = False
        for arch in ("epoll_partitioned", "epoll_oneshot"):
            for r in _by(result, arch):
                shared = next((m for m in multi if m["threads"] == r["threads"] and m["races"] > 0), None)
                if r["threads"] < 2 or shared is None:
                    continue
                seen = True
                c.equal("C9.8", f"{arch} races with {r['threads']} threads (shared epoll: {shared['races']})",
                        r["races"] + r["out_of_order"], 0)
        if not seen:
            c.not_measured("C9.8", "no epoll_partitioned/epoll_oneshot run at a thread count where the shared "
                                   "epoll raced")
    # C7.3: send and recv copy between user and kernel memory.
    if epoll_any is None:
        c.not_measured("C7.3", "no epoll server was run")
    else:
        c.between("C7.3", f"bytes copied per {size}-byte message, {epoll_any['arch']}",
                  round(epoll_any["copied_per_msg"], 2), 1.9 * size, 2.1 * size, unit="B",
                  note="recv copies in, send copies out")
        if iocp is not None:
            c.between("C7.3", "bytes copied per message, IOCP (Windows default SO_SNDBUF)",
                      round(iocp["copied_per_msg"], 2), 1.9 * size, 2.1 * size, unit="B",
                      note="WSASend copies into AFD's send buffer unless SO_SNDBUF is 0")
    # C7.4: overlapped: no partial results; no copy only with SO_SNDBUF = 0.
    zero = _one(result, "iocp_sndbuf0")
    if iocp is None or zero is None:
        c.not_measured("C7.4", "needs iocp and the iocp_sndbuf0 variant (variants=iocp_sndbuf0)")
    else:
        c.equal("C7.4", "overlapped sends that completed with part of their bytes", iocp["send_partial"], 0,
                note=f"of {iocp['send_completions']:,}")
        c.at_most("C7.4", "bytes copied per message with SO_SNDBUF = 0 / with the default",
                  round(zero["copied_per_msg"] / max(1e-9, iocp["copied_per_msg"]), 4), 0.6)
    # C7.5: the trade-off table: overlapped I/O pins buffers per connection, saves readiness events.
    if iocp is None or epoll_any is None:
        c.not_measured("C7.5", "needs both iocp and an epoll server for the side-by-side table")
    else:
        c.at_least("C7.5", "receive-buffer bytes pinned per idle connection, IOCP", iocp["pinned_bytes_per_conn"],
                   epoll_any["pinned_bytes_per_conn"] + 1, unit="B",
                   note=f"epoll pins {epoll_any['pinned_bytes_per_conn']} B; IOCP also dequeues a completion per "
                        f"send ({iocp['calls_per_msg']:.2f} calls per message against epoll's "
                        f"{epoll_any['calls_per_msg']:.2f})")
    # C0.2: the sockets are driven asynchronously: one thread serves every client.
    one = [r for r in result["runs"] if r["threads"] == 1]
    if not one:
        c.not_measured("C0.2", "needs a run with threads=1 (one thread driving every socket)")
    else:
        for r in one:
            c.at_least("C0.2", f"{r['arch']}, 1 thread: clients served of {r['accepted']} connected",
                       round(r["received"] / max(1, r["sent"]), 4), 0.99)
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    n = plotting.number
    files = []
    runs = result["runs"]
    p = result["params"]
    archs = []
    for r in runs:
        if r["arch"] not in archs:
            archs.append(r["arch"])
    main = [a for a in archs if a in ARCHITECTURES]
    threads = sorted({r["threads"] for r in runs})
    width = 0.8 / max(1, len(threads))

    def tick(a):
        return a.replace("epoll_", "epoll\n").replace("iocp_", "iocp\n")

    total_races = {a: sum(r["races"] for r in runs if r["arch"] == a) for a in archs}
    racing = [a for a, v in total_races.items() if v]
    fig, ax = plotting.figure("Threads handling one connection at the same time: "
                              + (f"only {', '.join(racing)} raced" if racing else "no architecture raced")
                              + f" ({'-'.join(map(str, [threads[0], threads[-1]])) if len(threads) > 1 else threads[0]}"
                              f" threads; C9.6-C9.8)", "server architecture", "races (per 1,000 messages)",
                              size=(12.0, 5.5))
    for j, t in enumerate(threads):
        xs, ys = [], []
        for i, a in enumerate(archs):
            r = next((r for r in runs if r["arch"] == a and r["threads"] == t), None)
            if r is not None:
                xs.append(i + (j - (len(threads) - 1) / 2) * width)
                ys.append(1000 * r["races"] / r["handled"] if r["handled"] else 0)
        bars = ax.bar(xs, ys, width=width, label=f"{t} thread{'s' if t > 1 else ''}")
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(archs)), [tick(a) for a in archs])
    ooo = {a: sum(r["out_of_order"] for r in runs if r["arch"] == a) for a in archs}
    plotting.annotate_claim(ax, "messages finished out of order: " + ", ".join(f"{a} {n(v)}" for a, v in ooo.items())
                            + ("\niocp_2recv: two receives outstanding per socket, so two threads hold one "
                               "socket's completions" if "iocp_2recv" in archs else ""))
    ax.set_ylim(0, max([ax.get_ylim()[1], 1]) * 1.35)
    plotting.legend_below(ax, ncol=len(threads))
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_races.png"))

    offered = p["clients"] * p["burst"] / p["period"]
    for key, ylabel, name, title in (
            ("latency_mean_ms", "mean reply latency (ms)", "iocp_vs_epoll_latency.png",
             "Reply latency against worker threads"),
            ("throughput", "messages handled (per second)", "iocp_vs_epoll_throughput.png",
             "Throughput against worker threads (every architecture keeps up with the offered load)")):
        fig, ax = plotting.figure(title, "worker threads (count)", ylabel)
        for a in main:
            rs = sorted((r for r in runs if r["arch"] == a), key=lambda r: r["threads"])
            ax.plot([r["threads"] for r in rs], [r[key] for r in rs], marker="o", label=a)
        if key == "throughput":
            ax.axhline(offered, color="0.4", linestyle="--", label=f"offered load ({n(round(offered))} messages/s)")
            ax.set_ylim(0, max([offered] + [r["throughput"] for r in runs]) * 1.25)
            lo = min(r["throughput"] for r in runs if r["arch"] in main)
            hi = max(r["throughput"] for r in runs if r["arch"] in main)
            plotting.annotate_claim(ax, f"from {n(round(lo))} to {n(round(hi))} messages/s: the lines overlap")
        else:
            ax.set_ylim(0, max(r[key] for r in runs) * 1.3)
            plotting.annotate_claim(ax, f"offered load {n(round(offered))} messages/s, "
                                        f"{p['service_time'] * 1e6:.0f} µs of CPU each, {p['cores']} cores")
        if len(threads) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(threads, [str(t) for t in threads])
        plotting.legend_below(ax, ncol=3)
        files.append(plotting.save(fig, outdir / name))

    t = max(threads)
    shown = [a for a in archs if any(r["arch"] == a and r["threads"] == t for r in runs)]
    ys = [next(r for r in runs if r["arch"] == a and r["threads"] == t)["copied_per_msg"] for a in shown]
    fig, ax = plotting.figure(f"Bytes copied between user and kernel memory per {n(p['size'])}-byte message "
                              f"(C7.3, C7.4)", "server architecture", "copied per message (B)")
    bars = ax.bar(range(len(shown)), ys, color=["tab:green" if a == "iocp_sndbuf0" else "tab:blue" for a in shown])
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(shown)), [tick(a) for a in shown])
    plotting.annotate_claim(ax, f"recv and send each copy the message once; so does WSASend, into AFD's send "
                                f"buffer,\nunless SO_SNDBUF is 0 (iocp_sndbuf0): then it sends from the pinned "
                                f"user buffer. {t} threads; {result['copy_ps_per_byte']} ps per byte copied")
    ax.set_ylim(0, max(ys + [1]) * 1.5)
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_copy.png"))

    table = result.get("cost_table") or cost_table(result)
    if table:
        columns = [("arch", "model"), ("threads", "threads"), ("calls_per_msg", "system calls\nper message"),
                   ("readiness_events_per_msg", "readiness events\nper message"),
                   ("wakeups_per_msg", "wait returns\nper message"),
                   ("copied_bytes_per_msg", "bytes copied\nper message"),
                   ("pinned_bytes_per_conn", "buffer pinned per\nidle connection (B)"),
                   ("races", "races"), ("latency_mean_ms", "mean\nlatency (ms)")]
        fig, ax = plotting.plt.subplots(figsize=(12.0, 1.6 + 0.4 * len(table)), dpi=plotting.DPI,
                                        layout="constrained")
        ax.axis("off")
        ax.set_title("What each I/O model costs, measured (C7.5; the largest thread count of each)", fontsize=12)
        cells = [["n/a" if row[k] is None else row[k] if isinstance(row[k], str) else n(row[k])
                  for k, _ in columns] for row in table]
        tab = ax.table(cellText=cells, colLabels=[label for _, label in columns], loc="center", cellLoc="right")
        tab.auto_set_font_size(False)
        tab.set_fontsize(9)
        tab.scale(1, 1.45)
        for (row, _col), cell in tab.get_celld().items():
            if row == 0:
                cell.set_height(cell.get_height() * 1.9)
        ax.text(0.0, -0.02, "n/a: the io_uring server does not count its calls. Overlapped I/O pins a receive "
                "buffer per connection and dequeues a completion for every send too; readiness I/O pins "
                "nothing while idle but needs an event and a call per read.", transform=ax.transAxes,
                fontsize=8, va="top", wrap=True)
        files.append(plotting.save(fig, outdir / "iocp_vs_epoll_costs.png"))
    return files
