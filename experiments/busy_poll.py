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
    "listener_blocking": False,
    "select_timeout": "none",
    "select_accept_always": False,
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
    "listener_blocking": "leave both servers' listening sockets blocking (breaks C6.3/C6.4: accept waits)",
    "select_timeout": "timeout of each select call: none (wait until ready) or a time such as 10ms; "
                      "0ms turns select into a polling loop, breaking C6.6",
    "select_accept_always": "the select server calls accept on every pass, ready or not (breaks C6.7)",
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
    extra = {"listener_blocking": p["listener_blocking"]}
    if kind == "select":
        extra["timeout"] = p["select_timeout_s"]
        extra["accept_always"] = p["select_accept_always"]
    server.spawn(partial(SERVERS[kind], record=srec, size=p["size"], stop_at=p["duration"], **extra), PORT,
                 name=kind)
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
        "voluntary_switches": stats["voluntary_switches"],
        "accepted": srec["accepted"],
        "eagain": srec["eagain"],
        "loops": srec["loops"],
        "waits": srec["waits"],
        "wakeups": srec["wakeups"],
        "accept_calls": srec.get("accept_calls", 0),
        "accept_eagain": srec.get("accept_eagain", 0),
        "accept_call_ns_max": srec.get("accept_call_ns_max", 0),
        "recv_call_ns_max": srec.get("recv_call_ns_max", 0),
        "updates_echoed": srec["updates"],
        "updates_sent": crec["sent"],
        "updates_received": crec["received"],
        "rtt_mean_ms": (crec["rtt_sum_ns"] / crec["received"] / 1e6) if crec["received"] else None,
        "util_times_s": [t / 1e9 for t in times],
        "util": util,
    }


def run(params: dict, seed: int) -> dict:
    p = dict(params)
    text = str(p["select_timeout"]).strip().lower()
    if text == "none":
        p["select_timeout_s"] = None
    else:
        from simsock.units import parse_time
        try:
            p["select_timeout_s"] = parse_time(text, what="select_timeout") / 1e9
        except (TypeError, ValueError) as exc:
            raise ValueError(f"select_timeout must be 'none' or a time such as 10ms: {exc}") from None
    if p["clients"] < 1 or p["updates"] < 1:
        raise ValueError("clients and updates must be at least 1")
    if not 0 < p["arrive_from"] <= p["arrive_to"] < p["duration"]:
        raise ValueError("need 0 < arrive_from <= arrive_to < duration: the server must be idle at first")
    return {"params": p, "runs": {kind: run_one(kind, p, seed) for kind in SERVERS}}


AT_ONCE_NS = 1_000_000    # a call that took longer waited: a syscall costs ~1-20 µs, plus at most one
                          # scheduler slice (0.75 ms) if the thread was preempted inside it


def check(result: dict) -> list:
    from simsock.claims import Checks
    c = Checks()
    busy = result["runs"]["busy_poll"]
    sel = result["runs"]["select"]
    p = result["params"]
    n = p["clients"]
    # C6.3: non-blocking sockets let one thread serve everyone without blocking in a call.
    longest = max(busy["accept_call_ns_max"], busy["recv_call_ns_max"])
    c.at_most("C6.3", "longest accept/recv call of the non-blocking server", longest / 1e3, AT_ONCE_NS / 1e3,
              unit="µs", note="no call waited (one scheduler slice allowed)")
    c.equal("C6.3", "clients the one-thread non-blocking server did not serve",
            n - busy["accepted"] + (busy["updates_sent"] - busy["updates_received"]), 0)
    # C6.4: every call returns at once: success or EAGAIN.
    c.at_most("C6.4", "longest accept() call (data or EAGAIN)", busy["accept_call_ns_max"] / 1e3,
              AT_ONCE_NS / 1e3, unit="µs")
    c.at_most("C6.4", "longest recv() call (data or EAGAIN)", busy["recv_call_ns_max"] / 1e3,
              AT_ONCE_NS / 1e3, unit="µs")
    c.equal("C6.4", "times the non-blocking server's thread went to sleep (voluntary switches)",
            busy["voluntary_switches"], 0)
    c.at_least("C6.4", "calls that returned EAGAIN per update echoed",
               round(busy["eagain"] / max(1, busy["updates_echoed"]), 2), 100)
    # C6.5: the loop burns the core even when nobody is there.
    c.at_least("C6.5", "busy-poll server's CPU use while no client was connected",
               round(100 * busy["idle_phase_utilisation"], 2), 99, unit="%")
    c.at_least("C6.5", "busy-poll server's CPU use over the run", round(100 * busy["utilisation"], 2), 99,
               unit="%")
    # C6.6: select sleeps until something is ready.
    c.at_most("C6.6", "select server's CPU use while no client was connected",
              round(100 * sel["idle_phase_utilisation"], 3), 0.1, unit="%")
    c.at_most("C6.6", "select server's CPU use over the run", round(100 * sel["utilisation"], 3), 2, unit="%")
    c.equal("C6.6", "updates the select server did not echo", sel["updates_sent"] - sel["updates_received"], 0)
    c.at_most("C6.6", "select wake-ups per update", round(sel["waits"] / max(1, sel["updates_sent"]), 2), 50)
    # C6.7: select-driven accept: accept only when a connection waits (one EAGAIN per report at most).
    c.at_most("C6.7", "accept() calls per connection, select server",
              round(sel["accept_calls"] / max(1, sel["accepted"]), 3), 2,
              note="accept until EAGAIN after each report: at most one EAGAIN per connection")
    c.at_least("C6.7", "accept() calls per connection, busy-poll server / select server",
               round(busy["accept_calls"] / max(1, busy["accepted"])
                     / max(1e-9, sel["accept_calls"] / max(1, sel["accepted"])), 1), 100)
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    p = result["params"]
    busy = result["runs"]["busy_poll"]
    sel = result["runs"]["select"]
    floor = 1e-3                                   # % ; a log axis cannot show 0
    ratio = busy["utilisation"] / sel["utilisation"] if sel["utilisation"] else None
    title = ("CPU of a one-core server: a non-blocking loop burns its core, select "
             + (f"uses {ratio:,.0f}x less" if ratio else "uses none") if busy["utilisation"] > 0.5 else
             "CPU of a one-core server: this busy loop did not burn its core (C6.5 not shown)")
    fig, ax = plotting.figure(title, "time (s)",
                              f"core busy (%, log; per {p['bin_ms']:g} ms)")
    ax.set_yscale("log")
    plotting.shade_intervals(ax, [(p["arrive_from"], p["arrive_to"])], "clients arriving", color="tab:green",
                             alpha=0.12)
    plotting.step_plot(ax, busy["util_times_s"], [max(floor, 100 * u) for u in busy["util"]],
                       "busy-poll: non-blocking accept/recv in a loop", color="tab:red")
    plotting.step_plot(ax, sel["util_times_s"], [max(floor, 100 * u) for u in sel["util"]],
                       f"select: the same sockets, called only when ready (0 drawn at {floor:g}%)", color="tab:blue")
    ax.set_ylim(floor / 2, 1000)
    ax.set_xlim(0, p["duration"])
    plotting.annotate_claim(ax, f"busy loop: {busy['utilisation']:.0%} of its core over the run, "
                                f"{busy['idle_phase_utilisation']:.0%} before the first client (C6.5)\n"
                                f"select: {sel['utilisation']:.3%} for the same {plotting.number(sel['updates_echoed'])} "
                                f"updates echoed (C6.6)")
    plotting.legend_below(ax, ncol=2)
    return [plotting.save(fig, outdir / "busy_poll_cpu.png")]
