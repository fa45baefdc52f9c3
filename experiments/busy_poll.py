"""Non-blocking sockets polled in a loop burn a core; the same server on select does not.

Claims (seed/CLAIMS.md):
  C6.3  To avoid blocking, the OS offers a non-blocking API.
  C6.4  A non-blocking call always returns at once, with success or "would block".
  C6.5  Because such calls return at once, a loop over them can burn 100% CPU.
  C6.6  select solves that: it returns at once if some socket is ready, otherwise waits.
  C6.7  A non-blocking accept should likewise be driven by select, for the CPU saving.

World: a one-core ``server`` host and a ``clients`` host. The same client arrivals are
played twice: once against :func:`models.servers_blocking.busy_poll_server` (non-blocking
accept and recv on every socket in a loop, no select) and once against
:func:`models.servers_readiness.select_server` (the same non-blocking sockets, accept and
recv only when select reports them ready). ``clients`` game clients connect one by one from
``arrive_from`` to ``arrive_to`` seconds, each sends ``updates`` updates of ``size`` bytes
every ``period`` s and leaves; before, between and after, every client is idle.

Measured: the server core's utilisation over time (``bin_ms`` bins), the CPU time the
server used while no client was connected, the calls that returned EAGAIN, accepts made,
and the updates echoed.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import simsock
from models.clients import game_client, new_record
from models.servers_blocking import busy_poll_server, new_blocking_record
from models.servers_readiness import select_server

CLAIMS = ["C6.3", "C6.4", "C6.5", "C6.6", "C6.7"]

PARAMS = {
    "clients": 20,
    "arrive_from": 0.5,
    "arrive_to": 1.0,
    "updates": 10,
    "period": 0.1,
    "size": 100,
    "duration": 3.0,
    "bin_ms": 20.0,
    "rate": "100Mbit",
    "delay": "1ms",
}

PARAM_HELP = {
    "clients": "game clients, arriving one by one",
    "arrive_from": "first client connects at this time (s); before it the server is idle",
    "arrive_to": "last client connects at this time (s)",
    "updates": "updates each client sends before it leaves",
    "period": "seconds between a client's updates",
    "size": "bytes per update",
    "duration": "simulated seconds per server",
    "bin_ms": "width of the utilisation bins (ms)",
    "rate": "link rate",
    "delay": "one-way link delay",
}

PORT = 7100
SERVERS = {"busy_poll": busy_poll_server, "select": select_server}


def run_one(kind: str, p: dict, seed: int) -> dict:
    sim = simsock.Simulation(seed=seed, trace=False, cpu_bin=f"{p['bin_ms']}ms")
    server = sim.add_host("server", cores=1)
    clients = sim.add_host("clients", cores=4)
    sim.add_link(server, clients, rate=p["rate"], delay=p["delay"])
    srec = new_blocking_record()
    crec = new_record()
    server.spawn(partial(SERVERS[kind], record=srec, size=p["size"], stop_at=p["duration"]), PORT, name=kind)
    n = p["clients"]
    span = p["arrive_to"] - p["arrive_from"]
    for i in range(n):
        start = p["arrive_from"] + (span * i / (n - 1) if n > 1 else 0.0)
        clients.spawn(partial(game_client, period=p["period"], size=p["size"], count=p["updates"],
                              start_delay=start, record=crec, linger=0.5), ("server", PORT), name=f"game-{i}")
    # CPU used before the first client arrives: every client is idle then.
    sim.run(until=p["arrive_from"])
    idle_busy = server.cpu.busy_ns(sim.now_ns)
    sim.run(until=p["duration"])
    now = sim.now_ns
    times, util = server.cpu.utilisation(now)
    stats = server.cpu.stats()
    return {
        "server": kind,
        "idle_phase_s": p["arrive_from"],
        "idle_phase_utilisation": idle_busy / (p["arrive_from"] * 1e9),
        "utilisation": stats["utilisation"],
        "cpu_busy_ns": stats["busy_ns"],
        "accepted": srec["accepted"],
        "eagain": srec["eagain"],
        "loops": srec["loops"],
        "waits": srec["waits"],
        "wakeups": srec["wakeups"],
        "updates_echoed": srec["updates"],
        "updates_sent": crec["sent"],
        "updates_received": crec["received"],
        "rtt_mean_ms": (crec["rtt_sum_ns"] / crec["received"] / 1e6) if crec["received"] else None,
        "util_times_s": [t / 1e9 for t in times],
        "util": util,
    }


def run(params: dict, seed: int) -> dict:
    p = dict(params)
    if p["clients"] < 1 or p["updates"] < 1:
        raise ValueError("clients and updates must be at least 1")
    if not 0 < p["arrive_from"] <= p["arrive_to"] < p["duration"]:
        raise ValueError("need 0 < arrive_from <= arrive_to < duration: the server must be idle at first")
    return {"params": p, "runs": {kind: run_one(kind, p, seed) for kind in SERVERS}}


def check(result: dict) -> list[str]:
    failed = []
    busy = result["runs"]["busy_poll"]
    sel = result["runs"]["select"]
    n = result["params"]["clients"]
    for r in (busy, sel):
        if r["accepted"] != n:
            failed.append(f"{r['server']}: accepted {r['accepted']} of {n} clients")
        if r["updates_received"] < r["updates_sent"] or r["updates_sent"] != n * result["params"]["updates"]:
            failed.append(f"{r['server']}: {r['updates_received']} of {r['updates_sent']} updates echoed back")
    if busy["idle_phase_utilisation"] < 0.99:
        failed.append(f"C6.5: the busy-poll server used only {busy['idle_phase_utilisation']:.1%} of its core "
                      f"while no client was there (expected ~100%)")
    if busy["utilisation"] < 0.99:
        failed.append(f"C6.5: the busy-poll server's utilisation over the run is {busy['utilisation']:.1%}, "
                      f"expected ~100%")
    if busy["eagain"] < 100 * busy["updates_echoed"]:
        failed.append(f"C6.4: the busy-poll loop made only {busy['eagain']} calls that returned EAGAIN")
    if sel["idle_phase_utilisation"] > 0.001:
        failed.append(f"C6.6: the select server used {sel['idle_phase_utilisation']:.2%} of its core while idle "
                      f"(expected ~0)")
    if sel["utilisation"] > 0.02:
        failed.append(f"C6.6: the select server's utilisation is {sel['utilisation']:.1%}, expected < 2%")
    if sel["utilisation"] * 50 > busy["utilisation"]:
        failed.append("C6.6: select should use at least 50 times less CPU than busy polling")
    # C6.7: with select, accept is called only when a connection is waiting (one EAGAIN per
    # readiness report at most, as the loop accepts until EAGAIN); busy polling calls it always.
    if busy["loops"] < 100 * n:
        failed.append(f"C6.7: the busy-poll loop called accept only {busy['loops']} times")
    if sel["waits"] > 50 * n * result["params"]["updates"]:
        failed.append(f"C6.6: the select loop woke {sel['waits']} times for {n} clients")
    return failed


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plotting

    p = result["params"]
    busy = result["runs"]["busy_poll"]
    sel = result["runs"]["select"]
    fig, ax = plotting.figure("CPU of a one-core server: non-blocking loop vs the same loop on select",
                              "time (s)", f"server core utilisation (%, {p['bin_ms']:g} ms bins)")
    plotting.shade_intervals(ax, [(p["arrive_from"], p["arrive_to"])], "clients arriving", color="tab:green",
                             alpha=0.12)
    plotting.step_plot(ax, busy["util_times_s"], [100 * u for u in busy["util"]],
                       "busy-poll: non-blocking accept/recv in a loop", color="tab:red")
    plotting.step_plot(ax, sel["util_times_s"], [100 * u for u in sel["util"]],
                       "select: the same sockets, called only when ready", color="tab:blue")
    ax.set_ylim(-5, 125)
    ax.set_xlim(0, p["duration"])
    plotting.annotate_claim(ax, f"C6.5: the busy loop holds its core at {busy['utilisation']:.0%} "
                                f"even with no client ({busy['idle_phase_utilisation']:.0%} before the first)\n"
                                f"C6.6: select uses {sel['utilisation']:.3%} for the same {sel['updates_echoed']} "
                                f"updates echoed")
    return [plotting.save(fig, outdir / "busy_poll_cpu.png")]
