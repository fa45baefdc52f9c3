"""Blocking sockets, one thread per client: cheap while blocked, costly in threads and switches.

Claims (seed/CLAIMS.md):
  C1.1  A call that waits for the network blocks the calling thread.
  C1.2  A blocked thread uses no CPU.
  C1.3  A thread that calls recv waits, blocked, until there is data.
  C6.1  One thread per client means very many threads, and a large context-switch cost.

World: a ``server`` host (``server_cores`` cores) runs
:func:`models.servers_blocking.thread_per_client_server`; a ``clients`` host runs, for each
value N of ``clients``, N game clients (:func:`models.clients.game_client`: a ``size``-byte
update every ``period`` s, echoed back) that connect spread over the first ``ramp`` seconds,
plus ``idle_clients`` that connect at once and then send nothing. Each N is a separate
simulation of ``duration`` simulated seconds.

Measured per N on the server: threads (peak), context switches (voluntary: a thread
blocked; involuntary: preempted; core changes: a core went from one thread to another, the
switches that cost ``context_switch_ns``), CPU time and utilisation, virtual memory reserved
for thread stacks (threads x 8 MiB), the CPU time of the threads serving idle clients, and
how many connection threads are blocked in recv at the end.

The default sweep is 10, 100, 1000 clients (about half a minute); ``--set clients=10,100,1000,10000``
adds the 10,000-client point (a few minutes).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import simsock
from simsock import progress
from models.clients import game_client, new_record
from models.servers_blocking import new_blocking_record, thread_per_client_server
from simsock import AF_INET, SOCK_STREAM

CLAIMS = ["C1.1", "C1.2", "C1.3", "C6.1"]

PARAMS = {
    "clients": [10, 100, 1000],
    "idle_clients": 10,
    "duration": 2.0,
    "ramp": 0.5,
    "period": 0.1,
    "size": 100,
    "server_cores": 2,
    "client_cores": 8,
    "rate": "1Gbit",
    "delay": "1ms",
}

PARAM_HELP = {
    "clients": "numbers of active game clients to sweep (one simulation each)",
    "idle_clients": "clients that connect and then send nothing (their server threads stay blocked)",
    "duration": "simulated seconds per run",
    "ramp": "active clients connect spread over this many seconds",
    "period": "seconds between a client's updates",
    "size": "bytes per update",
    "server_cores": "CPU cores of the server host",
    "client_cores": "CPU cores of the clients' host (enough not to be the bottleneck)",
    "rate": "link rate between the hosts",
    "delay": "one-way link delay",
}

PORT = 7000


async def _idle_client(k, server, hold_s: float, log: dict) -> None:
    """Connect, then send nothing for ``hold_s`` seconds."""
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(server)
    log["connected"] += 1
    await k.sleep(hold_s)
    s.close()


def run_one(n: int, p: dict, seed: int) -> dict:
    sim = simsock.Simulation(seed=seed, trace=False)
    server = sim.add_host("server", cores=p["server_cores"])
    clients = sim.add_host("clients", cores=p["client_cores"])
    sim.add_link(server, clients, rate=p["rate"], delay=p["delay"])
    srec = new_blocking_record()
    crec = new_record()
    idle_log = {"connected": 0}
    total = n + p["idle_clients"]
    server.spawn(partial(thread_per_client_server, record=srec, size=p["size"], backlog=min(4096, total + 1)),
                 PORT, name="acceptor")
    addr = ("server", PORT)
    for i in range(p["idle_clients"]):
        clients.spawn(_idle_client, addr, p["duration"] + 1.0, idle_log, name=f"idle-{i}")
    first = 0.05
    for i in range(n):
        clients.spawn(partial(game_client, period=p["period"], size=p["size"],
                              start_delay=first + p["ramp"] * i / n, record=crec), addr, name=f"game-{i}")
    progress.run(sim, p["duration"], f"{n} clients")
    cpu = server.cpu.stats()
    now = sim.now_ns
    conn_threads = [t for t in server.threads if t.name.startswith("client-")]
    idle_threads = conn_threads[:p["idle_clients"]]
    blocked = sum(1 for t in conn_threads if t.state == "blocked")
    times, util = server.cpu.utilisation(now)
    return {
        "clients": n,
        "connections": srec["accepted"],
        "threads_peak": cpu["threads_peak"],
        "stack_bytes_peak": cpu["stack_bytes_peak"],
        "voluntary_switches": cpu["voluntary_switches"],
        "involuntary_switches": cpu["involuntary_switches"],
        "core_changes": cpu["core_changes"],
        "wakeups": cpu["wakeups"],
        "cpu_busy_ns": cpu["busy_ns"],
        "utilisation": cpu["utilisation"],
        "updates_echoed": srec["updates"],
        "updates_sent": crec["sent"],
        "updates_received": crec["received"],
        "rtt_mean_ms": (crec["rtt_sum_ns"] / crec["received"] / 1e6) if crec["received"] else None,
        "idle_connected": idle_log["connected"],
        "idle_thread_cpu_ns": [t.cpu_ns for t in idle_threads],
        "idle_thread_wakeups": [t.wakeups for t in idle_threads],
        "connection_threads": len(conn_threads),
        "blocked_at_end": blocked,
        "util_times_s": [t / 1e9 for t in times],
        "util": util,
    }


def run(params: dict, seed: int) -> dict:
    p = dict(params)
    clients = p["clients"]
    if isinstance(clients, (int, float)):
        clients = [clients]
    clients = [int(c) for c in clients]
    if not clients or min(clients) < 1:
        raise ValueError(f"clients must be a list of positive client counts, e.g. [10, 100, 1000]; got {clients!r}")
    if p["idle_clients"] < 0:
        raise ValueError("idle_clients must be >= 0")
    if p["duration"] <= p["ramp"] + 0.1:
        raise ValueError(f"duration ({p['duration']} s) must exceed ramp ({p['ramp']} s) by more than 0.1 s")
    runs = [run_one(n, p, seed) for n in progress.steps(sorted(set(clients)), "client counts", unit="run")]
    return {"params": {k: v for k, v in p.items()}, "runs": runs,
            "context_switch_ns": simsock.profiles.LINUX.context_switch_ns,
            "stack_bytes": simsock.profiles.LINUX.thread_stack_bytes}


def _slope(xs, ys) -> float:
    """Slope of log(y) against log(x) between the first and last points."""
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


def check(result: dict) -> list[str]:
    failed = []
    runs = result["runs"]
    idle = result["params"]["idle_clients"]
    for r in runs:
        n = r["clients"]
        want_threads = n + idle + 1                       # one per connection, plus the acceptor
        if r["threads_peak"] != want_threads:
            failed.append(f"C6.1: {n} clients: {r['threads_peak']} threads at peak, expected one per client "
                          f"plus the acceptor ({want_threads})")
        if r["updates_received"] < 0.95 * r["updates_sent"]:
            failed.append(f"{n} clients: only {r['updates_received']} of {r['updates_sent']} updates came back")
        cpu = max(r["idle_thread_cpu_ns"], default=0)
        if cpu > 20_000 or any(r["idle_thread_wakeups"]):
            failed.append(f"C1.2: {n} clients: a thread blocked in recv for the whole run used {cpu} ns of CPU "
                          f"(more than its calls' cost, 20 us) or was woken")
        if r["blocked_at_end"] < 0.9 * r["connection_threads"]:
            failed.append(f"C1.3: {n} clients: only {r['blocked_at_end']} of {r['connection_threads']} connection "
                          f"threads were blocked in recv between updates")
        if r["cpu_busy_ns"] <= 0 or r["utilisation"] > 0.9:
            failed.append(f"{n} clients: server utilisation {r['utilisation']:.2f} is outside (0, 0.9]")
    if len(runs) >= 2:
        xs = [r["clients"] for r in runs]
        for key in ("voluntary_switches", "core_changes"):
            ys = [r[key] for r in runs]
            if min(ys) <= 0:
                failed.append(f"C6.1: {key} is zero for some client count: {ys}")
                continue
            s = _slope(xs, ys)
            if not 0.8 <= s <= 1.2:
                failed.append(f"C6.1: {key} should grow about linearly with clients (log-log slope 0.8-1.2), "
                              f"slope {s:.2f}: {dict(zip(xs, ys))}")
        cpus = [r["cpu_busy_ns"] for r in runs]
        s = _slope(xs, cpus)
        if not 0.8 <= s <= 1.2:
            failed.append(f"C6.1: server CPU time should grow about linearly with clients, slope {s:.2f}")
    return failed


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plotting

    runs = result["runs"]
    xs = [r["clients"] for r in runs]
    duration = result["params"]["duration"]
    files = []

    fig, ax = plotting.figure(f"Thread per client: threads and context switches on the server ({duration:g} s run)",
                              "active clients (each: 100-byte update every 100 ms)", "count (log scale)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot(xs, [r["threads_peak"] for r in runs], "o-", label="threads (peak)")
    ax.plot(xs, [r["voluntary_switches"] for r in runs], "s-", label="voluntary context switches (a thread blocked)")
    ax.plot(xs, [r["core_changes"] for r in runs], "^-", label="core changed thread (each costs a context switch)")
    inv = [r["involuntary_switches"] for r in runs]
    if any(inv):
        ax.plot(xs, [max(v, 0.5) for v in inv], "x--", label="involuntary switches (preempted)")
    last = runs[-1]
    plotting.annotate_claim(ax, f"C6.1: one thread per client; switches grow with clients\n"
                                f"{last['clients']} clients: {last['threads_peak']} threads, "
                                f"{last['core_changes'] / duration:,.0f} thread changes per second, "
                                f"{last['stack_bytes_peak'] / 2**30:.1f} GiB of stacks reserved")
    files.append(plotting.save(fig, outdir / "blocking_threads_counts.png"))

    fig, ax = plotting.figure("Thread per client: server CPU time, and what a blocked thread costs (C1.2)",
                              "active clients", "CPU time (ms, log scale)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot(xs, [r["cpu_busy_ns"] / 1e6 for r in runs], "o-", label=f"server CPU time over {duration:g} s")
    switch_ms = [r["core_changes"] * result["context_switch_ns"] / 1e6 for r in runs]
    ax.plot(xs, [max(v, 1e-3) for v in switch_ms], "s--", label="of which context switches")
    idle_cpu = [max(r["idle_thread_cpu_ns"], default=0) / 1e6 for r in runs]
    ax.plot(xs, [max(v, 1e-4) for v in idle_cpu], "v:", label="one idle client's thread (blocked in recv all along)")
    plotting.annotate_claim(ax, f"C1.2: a thread blocked in recv used {max(idle_cpu) * 1000:.1f} us of CPU in "
                                f"{duration:g} s (its calls only)\n"
                                f"{last['clients']} clients: server busy {last['utilisation']:.1%} of its "
                                f"{result['params']['server_cores']} cores")
    files.append(plotting.save(fig, outdir / "blocking_threads_cpu.png"))
    return files
