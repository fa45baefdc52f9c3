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
from models.servers_readiness import epoll_lt_server
from simsock import AF_INET, SOCK_STREAM

CLAIMS = ["C1.1", "C1.2", "C1.3", "C6.1", "C0.1", "C2.1"]

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
    "baseline": True,
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
    "baseline": "also run each client count against a single-threaded epoll server (the C6.1 comparison)",
}

PORT = 7000


async def _idle_client(k, server, hold_s: float, log: dict) -> None:
    """Connect, then send nothing for ``hold_s`` seconds."""
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(server)
    log["connected"] += 1
    await k.sleep(hold_s)
    s.close()


def run_one(n: int, p: dict, seed: int, server_kind: str = "threads") -> dict:
    sim = simsock.Simulation(seed=seed, trace=False)
    server = sim.add_host("server", cores=p["server_cores"])
    clients = sim.add_host("clients", cores=p["client_cores"])
    sim.add_link(server, clients, rate=p["rate"], delay=p["delay"])
    srec = new_blocking_record()
    crec = new_record()
    idle_log = {"connected": 0}
    total = n + p["idle_clients"]
    if server_kind == "threads":
        server.spawn(partial(thread_per_client_server, record=srec, size=p["size"], backlog=min(4096, total + 1)),
                     PORT, name="acceptor")
    else:
        server.spawn(partial(epoll_lt_server, record=srec, size=p["size"], backlog=min(4096, total + 1)),
                     PORT, name="epoll-server")
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
    socks = sim.stats()["hosts"]["server"].get("sockets", {}).values()
    peers = [tuple(x["peer"]) for x in socks if x.get("type") == "tcp" and x.get("peer")]
    return {
        "server": server_kind,
        "distinct_peers": len(set(peers)),
        "connected_sockets": len(peers),
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
    counts = sorted(set(clients))
    plan = [(n, "threads") for n in counts] + ([(n, "epoll") for n in counts] if p["baseline"] else [])
    done = [run_one(n, p, seed, kind) for n, kind in progress.steps(plan, "client counts", unit="run")]
    runs = [r for r, (_, kind) in zip(done, plan) if kind == "threads"]
    baseline = [r for r, (_, kind) in zip(done, plan) if kind == "epoll"]
    return {"params": {k: v for k, v in p.items()}, "runs": runs, "baseline": baseline,
            "context_switch_ns": simsock.profiles.LINUX.context_switch_ns,
            "stack_bytes": simsock.profiles.LINUX.thread_stack_bytes}


def _slope(xs, ys) -> float:
    """Slope of log(y) against log(x) between the first and last points."""
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


def check(result: dict) -> list:
    from simsock.claims import Checks
    c = Checks()
    runs = result["runs"]
    idle = result["params"]["idle_clients"]
    big = max(runs, key=lambda r: r["clients"])
    n = big["clients"]
    # C0.1: one socket per client.
    total = n + idle
    if total < 2:
        c.not_measured("C0.1", f"{total} client: one socket is not many; raise clients")
        c.not_measured("C2.1", "needs at least two connections to tell peers apart")
    else:
        c.equal("C0.1", f"connections accepted for {total:,} clients", big["connections"], total)
        c.equal("C2.1", f"distinct peers of the server's {big['connected_sockets']:,} connected sockets",
                big["distinct_peers"], big["connected_sockets"], note="each connected TCP socket has one peer")
    # C1.1 / C1.3: the threads wait, blocked, in recv.
    updates = max(1, big["updates_received"])
    c.at_least("C1.1", "thread sleeps (voluntary switches) per update echoed", round(big["voluntary_switches"] / updates, 3),
               0.9, note="each recv that had to wait for the network put its thread to sleep")
    c.at_least("C1.3", "connection threads blocked in recv at the end",
               round(big["blocked_at_end"] / max(1, big["connection_threads"]), 4), 0.9,
               note=f"{big['blocked_at_end']:,} of {big['connection_threads']:,}")
    # C1.2: blocked threads use no CPU.
    if idle < 1:
        c.not_measured("C1.2", "idle_clients=0: no thread stayed blocked for the whole run")
    else:
        cpu = max(max(r["idle_thread_cpu_ns"], default=0) for r in runs)
        c.at_most("C1.2", "CPU time of a thread blocked in recv for the whole run", cpu / 1e3, 20, unit="µs",
                  note="its calls' cost only")
        c.equal("C1.2", "wake-ups of threads blocked for the whole run",
                sum(sum(r["idle_thread_wakeups"]) for r in runs), 0)
    # C6.1: very many threads, and switch costs an epoll loop does not pay.
    c.at_least("C6.1", f"server threads with {n:,} clients", big["threads_peak"], total + 1)
    base = {r["clients"]: r for r in result.get("baseline", [])}
    if n not in base:
        c.not_measured("C6.1", "baseline=false: no single-threaded epoll server to compare the switch cost with")
    else:
        e = base[n]
        mine = big["core_changes"] / updates
        theirs = e["core_changes"] / max(1, e["updates_received"])
        c.at_least("C6.1", "context switches per update, thread-per-client", round(mine, 3), round(theirs + 0.5, 3),
                   note=f"single-threaded epoll: {theirs:.3f} per update with {e['threads_peak']} thread(s), "
                        f"{n:,} clients")
        c.at_least("C6.1", "updates the epoll baseline echoed / sent",
                   round(e["updates_received"] / max(1, e["updates_sent"]), 4), 0.95,
                   note="the single thread keeps up (the last updates may still be in flight)")
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    n = plotting.number
    runs = result["runs"]
    base = result.get("baseline", [])
    p = result["params"]
    xs = [r["clients"] for r in runs]
    duration = p["duration"]
    files = []
    xlabel = f"active clients (count; each a {n(p['size'])}-byte update every {p['period'] * 1000:g} ms)"
    log_x = len(xs) > 1 and max(xs) / max(1, min(xs)) >= 10

    def floor(v, low):
        return max(v, low)

    fig, ax = plotting.figure(f"Thread per client against one epoll thread: threads and context switches "
                              f"({duration:g} s run)", xlabel, "count (log scale)")
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot(xs, [r["threads_peak"] for r in runs], "o-", color="tab:blue", label="threads (peak), thread per client")
    ax.plot(xs, [floor(r["core_changes"], 0.5) for r in runs], "^-", color="tab:red",
            label="context switches (a core changed thread), thread per client")
    if base:
        bx = [r["clients"] for r in base]
        ax.plot(bx, [r["threads_peak"] for r in base], "o--", color="tab:blue", alpha=0.6,
                label="threads (peak), one epoll thread")
        ax.plot(bx, [floor(r["core_changes"], 0.5) for r in base], "^--", color="tab:red", alpha=0.6,
                label="context switches, one epoll thread (0 drawn at 0.5)")
    last = runs[-1]
    note = (f"{n(last['clients'])} clients: {n(last['threads_peak'])} threads, "
            f"{n(round(last['core_changes'] / duration))} switches per second, "
            f"{last['stack_bytes_peak'] / 2**30:.1f} GiB of stacks reserved")
    if base:
        b = base[-1]
        note += (f"\none epoll thread: {n(b['threads_peak'])} thread(s), "
                 f"{n(round(b['core_changes'] / duration))} switches per second")
    plotting.annotate_claim(ax, note)
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "blocking_threads_counts.png"))

    fig, ax = plotting.figure("Thread per client: server CPU time, and what a blocked thread costs (C1.2)",
                              xlabel, "CPU time (ms, log scale)")
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot(xs, [floor(r["cpu_busy_ns"] / 1e6, 1e-4) for r in runs], "o-", label=f"server CPU time over {duration:g} s")
    switch_ms = [r["core_changes"] * result["context_switch_ns"] / 1e6 for r in runs]
    ax.plot(xs, [floor(v, 1e-4) for v in switch_ms], "s--", label="of which context switches")
    if base:
        ax.plot([r["clients"] for r in base], [floor(r["cpu_busy_ns"] / 1e6, 1e-4) for r in base], "o:",
                label="one epoll thread: server CPU time")
    idle_cpu = [max(r["idle_thread_cpu_ns"], default=0) / 1e6 for r in runs]
    if p["idle_clients"]:
        ax.plot(xs, [floor(v, 1e-4) for v in idle_cpu], "v:", label="one idle client's thread (blocked in recv all along)")
        first = (f"a thread blocked in recv for the whole run used {max(idle_cpu) * 1000:.1f} µs of CPU in "
                 f"{duration:g} s (its calls only)")
    else:
        first = "no idle client (idle_clients=0): C1.2 not shown"
    plotting.annotate_claim(ax, f"{first}\n{n(last['clients'])} clients: server busy {last['utilisation']:.1%} of "
                                f"its {p['server_cores']} cores")
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "blocking_threads_cpu.png"))
    return files
