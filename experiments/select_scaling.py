"""select/poll vs epoll: what one handled event costs as the number of watched sockets grows.

Claim (seed/CLAIMS.md):
  C7.6  With very many sockets, looping over all of them costs too much; epoll (and IOCP)
        exist for that.

World: host ``server`` runs one echo server thread (models.servers_readiness: the select
loop, the poll loop, or level-triggered epoll). Host ``clients`` opens ``N`` idle
connections (they connect and then only wait) plus ``active`` game clients that send a
``size``-byte update every ``period`` seconds (models.clients.game_client). Once every
connection is up (``warmup`` s), the server thread's CPU time and the updates it echoed are
measured over ``duration`` s; cost per event = CPU time / updates echoed. The CPU model
charges select and poll ``select_per_fd_ns`` per watched descriptor per scan (a call that
sleeps scans on entry and again when woken) and epoll_wait ``epoll_per_event_ns`` per
reported entry, besides the usual syscall and copy costs (kernel/notify.py, kernel/cpu.py).

select cannot watch descriptors numbered FD_SETSIZE (1024) or more — it raises ValueError —
so its line stops at ``select_max`` watched sockets.
"""

from __future__ import annotations

import functools
from pathlib import Path

import simsock
from simsock import progress
from models.clients import game_client, new_record
from models.servers_readiness import epoll_lt_server, poll_server, select_server

CLAIMS = ["C7.6"]

PARAMS = {
    "watched": [10, 100, 300, 1000, 2000, 5000],
    "mechanisms": ["select", "poll", "epoll"],
    "select_max": 1000,
    "active": 4,
    "period": 0.02,
    "size": 100,
    "connect_batch": 50,
    "warmup": 0.3,
    "duration": 0.25,
    "link_rate": "1Gbit",
    "delay": "0.1ms",
}

PARAM_HELP = {
    "watched": "numbers of idle connections the server watches besides the active ones (one run each)",
    "mechanisms": "readiness mechanisms to compare: select, poll, epoll",
    "select_max": "largest number of idle connections tried with select (it stops at FD_SETSIZE, 1024)",
    "active": "game clients that send updates (the events measured)",
    "period": "seconds between an active client's updates",
    "size": "bytes per update",
    "connect_batch": "idle connections that connect at the same instant (the server accepts each batch in "
                     "one wake-up, so setting up thousands of connections costs few full scans)",
    "warmup": "seconds for every connection to come up before measuring",
    "duration": "seconds measured after the warmup",
    "link_rate": "rate of the clients-server link",
    "delay": "one-way delay of the clients-server link",
}

SERVERS = {"select": select_server, "poll": poll_server, "epoll": epoll_lt_server}
PORT = 5959


async def _idle_client(k, addr, start, hold):
    await k.sleep(start)
    s = k.socket()
    await s.connect(addr)
    await k.sleep(hold)
    s.close()


def _one(mechanism: str, n_idle: int, p: dict, seed: int) -> dict:
    sim = simsock.Simulation(seed=seed, trace=False)
    server = sim.add_host("server")
    clients = sim.add_host("clients")
    sim.add_link(clients, server, rate=p["link_rate"], delay=p["delay"])
    end = p["warmup"] + p["duration"]
    srec: dict = {}
    thread = server.spawn(functools.partial(SERVERS[mechanism], port=PORT, record=srec, size=p["size"],
                                            stop_at=end + 0.5))
    addr = ("server", PORT)
    spread = p["warmup"] * 0.5
    batch = p["connect_batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100:
        raise ValueError(f"connect_batch must be an integer from 1 to 100 (the listen backlog is 128), "
                         f"not {batch!r}")
    batches = max(1, -(-n_idle // batch))
    for i in range(n_idle):
        clients.spawn(functools.partial(_idle_client, addr=addr, start=0.01 + spread * (i // batch) / batches,
                                        hold=end + 1.0))
    crec = new_record()
    for i in range(p["active"]):
        clients.spawn(functools.partial(game_client, server_addr=addr, period=p["period"], size=p["size"],
                                        start_delay=0.01 + 0.001 * i, record=crec))
    snap = {}

    async def measure(k):
        await k.sleep(p["warmup"])
        snap["start"] = (thread.cpu_ns, srec["updates"], srec["wakeups"])
        await k.sleep(p["duration"])
        snap["end"] = (thread.cpu_ns, srec["updates"], srec["wakeups"])
    server.spawn(measure)
    progress.run(sim, end + 0.1, f"{mechanism}, {n_idle} idle sockets")
    cpu = snap["end"][0] - snap["start"][0]
    events = snap["end"][1] - snap["start"][1]
    return {"mechanism": mechanism, "watched": n_idle + p["active"] + 1, "idle": n_idle,
            "cpu_ns": cpu, "events": events, "wakeups": snap["end"][2] - snap["start"][2],
            "cost_per_event_ns": cpu / events if events else None,
            "accepted": srec["accepted"], "client_errors": len(crec["errors"])}


def run(params: dict, seed: int) -> dict:
    p = dict(PARAMS, **params)
    unknown = [m for m in p["mechanisms"] if m not in SERVERS]
    if unknown:
        raise ValueError(f"unknown mechanisms {unknown}; choose from {', '.join(SERVERS)}")
    rows = []
    for mech in progress.steps(p["mechanisms"], "mechanisms", unit="mechanism"):
        for n in p["watched"]:
            if mech == "select" and n + p["active"] + 1 > p["select_max"] + p["active"] + 1:
                continue
            rows.append(_one(mech, n, p, seed))
    return {"params": {k: v for k, v in p.items()}, "rows": rows}


def _line(result: dict, mech: str) -> list[dict]:
    return [r for r in result["rows"] if r["mechanism"] == mech and r["cost_per_event_ns"]]


def check(result: dict) -> list:
    from simsock.claims import Checks
    c = Checks()
    bad = [f"{row['mechanism']} with {row['watched']} watched: {row['client_errors']} client errors, "
           f"{row['events']} events" for row in result["rows"] if not row["events"] or row["client_errors"]]
    if bad:
        c.fact("C7.6", False, "some runs did not work: " + "; ".join(bad[:3]))
    scans = [m for m in ("select", "poll") if len(_line(result, m)) >= 2]
    epoll = _line(result, "epoll")
    if not scans or len(epoll) < 2:
        c.not_measured("C7.6", f"needs epoll and select or poll, each at two or more watched counts; got "
                               f"mechanisms={result['params']['mechanisms']}, watched={result['params']['watched']}")
        return c.list
    for mech in scans:
        line = _line(result, mech)
        lo, hi = line[0], line[-1]
        span = hi["watched"] / lo["watched"]
        if span < 10:
            c.not_measured("C7.6", f"{mech}: watched counts {lo['watched']}..{hi['watched']} span only {span:.1f}x; "
                                   f"a scan's cost needs a 10x range to show")
            continue
        c.at_least("C7.6", f"{mech} cost per event at {hi['watched']:,} / at {lo['watched']:,} watched sockets",
                   round(hi["cost_per_event_ns"] / lo["cost_per_event_ns"], 2), round(0.2 * span, 2),
                   note=f"{lo['cost_per_event_ns'] / 1e3:,.1f} -> {hi['cost_per_event_ns'] / 1e3:,.1f} µs: the scan "
                        f"grows with the watched set")
    costs = [r["cost_per_event_ns"] for r in epoll]
    c.at_most("C7.6", f"epoll cost per event, max / min over {epoll[0]['watched']:,}..{epoll[-1]['watched']:,} watched",
              round(max(costs) / min(costs), 3), 1.5)
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    fig, ax = plotting.figure("CPU per handled event vs watched sockets (C7.6)",
                              "watched sockets (count: idle connections + active + listener)",
                              "server CPU time per event (µs)")
    styles = {"select": ("tab:red", "o"), "poll": ("tab:orange", "s"), "epoll": ("tab:blue", "^")}
    for mech in ("select", "poll", "epoll"):
        line = _line(result, mech)
        if not line:
            continue
        color, marker = styles[mech]
        ax.plot([r["watched"] for r in line], [r["cost_per_event_ns"] / 1000 for r in line], marker=marker,
                color=color, label=mech + (" (same cost as poll per descriptor)" if mech == "select" else ""),
                linestyle="--" if mech == "select" else "-", linewidth=3 if mech == "select" else 1.5,
                markersize=9 if mech == "select" else 6, zorder=3 if mech == "select" else 2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    sel = _line(result, "select")
    if sel:
        ax.axvline(1024, color="grey", linestyle=":", label="FD_SETSIZE: select cannot go further")
    note = []
    for mech in ("select", "poll", "epoll"):
        line = _line(result, mech)
        if len(line) >= 2:
            note.append(f"{mech}: {line[-1]['cost_per_event_ns'] / line[0]['cost_per_event_ns']:,.1f}x "
                        f"from {line[0]['watched']:,} to {line[-1]['watched']:,} sockets")
    plotting.annotate_claim(ax, "select/poll scan every watched socket on every call;\n"
                                "epoll reports only the ready ones\n" + "\n".join(note))
    if not note:
        note.append("only one point per mechanism: nothing to compare (C7.6 not shown)")
    plotting.legend_below(ax, ncol=2)
    return [plotting.save(fig, Path(outdir) / "select_scaling_cost.png")]
