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

CLAIMS = ["C9.1", "C9.2", "C9.3", "C9.4", "C9.5", "C9.6", "C9.7", "C9.8", "C7.3", "C7.4"]

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
}

_PORT = 5959


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
    server.spawn(functools.partial(server_program(arch), size=p["size"], service_time=p["service_time"]),
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
    copied = stats["copied_bytes"]
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
    runs, skipped = [], {}
    for arch in progress.steps(archs, "architectures", unit="architecture"):
        for t in threads:
            try:
                runs.append(run_one(arch, t, p, seed))
            except simsock.SimulationError as exc:
                cause = exc.__cause__
                if arch.startswith("epoll") and isinstance(cause, AttributeError) and "epoll" in str(cause):
                    skipped[arch] = "k.epoll() is not available in this simsock build"
                    break
                raise
    return {"params": {k: p[k] for k in sorted(p)}, "runs": runs, "skipped": skipped,
            "copy_ps_per_byte": simsock.Simulation(seed=seed).profile.copy_ps_per_byte}


def _by(result, arch):
    return [r for r in result["runs"] if r["arch"] == arch]


def check(result: dict) -> list[str]:
    failed = []
    for arch, why in sorted(result["skipped"].items()):
        failed.append(f"{arch}: not run ({why})")
    runs = result["runs"]
    for r in runs:
        if r["handled"] < 0.9 * r["sent"] - r["threads"] * 10 and r["threads"] >= 2:
            failed.append(f"{r['arch']} with {r['threads']} threads handled {r['handled']} of {r['sent']} messages")
    multi = [r for r in _by(result, "epoll") if r["threads"] >= 2]
    if multi and not any(r["races"] > 0 for r in multi):
        failed.append("C9.6: shared epoll without EPOLLONESHOT never let two threads handle one connection "
                      f"at once (races: {[r['races'] for r in multi]})")
    if multi and not any(r["out_of_order"] > 0 or r["reply_order_errors"] > 0 for r in multi):
        failed.append("C9.6: shared epoll without EPOLLONESHOT never finished a client's messages out of order")
    for arch in ("epoll_oneshot", "epoll_partitioned", "iocp", "io_uring"):
        for r in _by(result, arch):
            if r["races"] or r["out_of_order"] or r["reply_order_errors"]:
                failed.append(f"C9.7/C9.8: {arch} with {r['threads']} threads had {r['races']} races, "
                              f"{r['out_of_order']} out-of-order, {r['reply_order_errors']} replies out of order; "
                              f"expected 0")
    for r in _by(result, "iocp"):
        st = r.get("iocp", {})
        if st and st["delivered"] != st["completions"] + st["manual_posts"] - st["queued"]:
            failed.append(f"C9.7: IOCP delivered {st['delivered']} packets for {st['completions']} completions")
        if st and st["max_active_at_release"] > st["concurrency"]:
            failed.append(f"IOCP released a thread with {st['max_active_at_release']} active > concurrency")
    iocp = {r["threads"]: r for r in _by(result, "iocp")}
    for base in ("epoll_oneshot", "epoll", "io_uring"):
        for r in _by(result, base):
            i = iocp.get(r["threads"])
            if i and r["copied_per_msg"] and not i["copied_per_msg"] <= 0.6 * r["copied_per_msg"]:
                failed.append(f"C7.3/C7.4: IOCP copied {i['copied_per_msg']:.0f} bytes per message, {base} "
                              f"{r['copied_per_msg']:.0f}: expected about half (no copy for overlapped sends)")
    for arch in ("iocp", "epoll_oneshot", "io_uring"):
        rs = sorted(_by(result, arch), key=lambda r: r["threads"])
        if len(rs) >= 2 and rs[0]["threads"] == 1 and rs[-1]["threads"] > 1:
            if not rs[-1]["latency_mean_ms"] <= rs[0]["latency_mean_ms"]:
                failed.append(f"{arch}: mean latency with {rs[-1]['threads']} threads "
                              f"({rs[-1]['latency_mean_ms']:.2f} ms) is not below that with 1 thread "
                              f"({rs[0]['latency_mean_ms']:.2f} ms)")
    return failed


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plotting

    files = []
    runs = result["runs"]
    archs = []
    for r in runs:
        if r["arch"] not in archs:
            archs.append(r["arch"])
    threads = sorted({r["threads"] for r in runs})
    width = 0.8 / max(1, len(threads))

    fig, ax = plotting.figure("Two threads handling one connection at once (C9.6 vs C9.7, C9.8)",
                              "server architecture", "races per 1000 messages handled")
    for j, t in enumerate(threads):
        xs, ys = [], []
        for i, a in enumerate(archs):
            r = next((r for r in runs if r["arch"] == a and r["threads"] == t), None)
            if r is not None:
                xs.append(i + (j - (len(threads) - 1) / 2) * width)
                ys.append(1000 * r["races"] / r["handled"] if r["handled"] else 0)
        bars = ax.bar(xs, ys, width=width, label=f"{t} thread{'s' if t > 1 else ''}")
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(archs)), [a.replace("epoll_", "epoll\n") for a in archs])
    ooo = {a: sum(r["out_of_order"] for r in runs if r["arch"] == a) for a in archs}
    plotting.annotate_claim(ax, "messages finished out of order (all thread counts): "
                            + ", ".join(f"{a} {n}" for a, n in ooo.items()))
    ax.set_ylim(top=max([ax.get_ylim()[1], 1]) * 1.35)
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_races.png"))

    fig, ax = plotting.figure("Reply latency against worker threads", "worker threads", "mean reply latency (ms)")
    for a in archs:
        rs = sorted((r for r in runs if r["arch"] == a), key=lambda r: r["threads"])
        ax.plot([r["threads"] for r in rs], [r["latency_mean_ms"] for r in rs], marker="o", label=a)
    ax.set_xscale("log", base=2)
    ax.set_xticks(threads, [str(t) for t in threads])
    p = result["params"]
    offered = p["clients"] * p["burst"] / p["period"]
    plotting.annotate_claim(ax, f"offered load {offered:.0f} messages/s, {p['service_time'] * 1e6:.0f} µs of CPU "
                                f"each, {p['cores']} cores")
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_latency.png"))

    fig, ax = plotting.figure("Throughput against worker threads", "worker threads",
                              "messages handled per second")
    for a in archs:
        rs = sorted((r for r in runs if r["arch"] == a), key=lambda r: r["threads"])
        ax.plot([r["threads"] for r in rs], [r["throughput"] for r in rs], marker="o", label=a)
    ax.axhline(offered, color="0.4", linestyle="--", label="offered load")
    ax.set_xscale("log", base=2)
    ax.set_xticks(threads, [str(t) for t in threads])
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_throughput.png"))

    fig, ax = plotting.figure("CPU spent copying between user and kernel memory (C7.3, C7.4)",
                              "server architecture", "copy CPU per message (ns)")
    t = max(threads)
    ys = []
    for a in archs:
        r = next((r for r in runs if r["arch"] == a and r["threads"] == t), None)
        ys.append(r["copy_cpu_ns_per_msg"] if r else 0)
    ax.bar(range(len(archs)), ys, color=["tab:blue" if a != "iocp" else "tab:green" for a in archs])
    ax.set_xticks(range(len(archs)), [a.replace("epoll_", "epoll\n") for a in archs])
    plotting.annotate_claim(ax, f"recv + send copy each byte; an overlapped send copies nothing (pinned buffer)\n"
                                f"{result['copy_ps_per_byte']} ps per byte copied (profile); {t} threads")
    ax.set_ylim(top=max(ys + [0.001]) * 1.4)
    files.append(plotting.save(fig, outdir / "iocp_vs_epoll_copy.png"))
    return files
