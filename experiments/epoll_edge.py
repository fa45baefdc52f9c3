"""Edge-triggered epoll: drain until EAGAIN, or data gets stuck.

Claims (seed/CLAIMS.md):
  C8.1  epoll detects when sockets become able to do I/O and tells the program.
  C8.2  (edge-triggered) It reports a change — a new arrival — not the state.
  C8.3  So after an event the program must consume everything (until "would block") before
        it waits on epoll again, or it will not be told again.

World: host ``server`` runs one echo server (models.servers_readiness) that reads
``size`` bytes per ``recv`` (one update): level-triggered epoll (one recv per report),
edge-triggered epoll that reads until EAGAIN, and edge-triggered epoll with the bug — one
recv per event. Host ``clients`` runs ``clients`` game clients; each sends ``burst``
updates in one write every ``period`` seconds, ``count`` updates in all, then waits for its
echoes. A burst arrives as one segment, so it is one edge: the buggy server reads one
update of it and the rest stays in the receive buffer — reported again only when the client
sends more, and never once it stops.

Measured per server: updates sent and echoed, bytes left unread in the server's receive
buffers at the end, clients that did not get all their echoes (starved), and epoll
wake-ups per echoed update (level-triggered needs one per recv; edge-triggered one per
arrival).
"""

from __future__ import annotations

import functools
from pathlib import Path

import simsock
from models.clients import game_client, new_record
from models.servers_readiness import epoll_et_nodrain_server, epoll_et_server, epoll_lt_server

CLAIMS = ["C8.1", "C8.2", "C8.3"]

PARAMS = {
    "clients": 20,
    "count": 40,
    "burst": 2,
    "period": 0.02,
    "size": 100,
    "link_rate": "100Mbit",
    "delay": "1ms",
    "end": 1.5,
}

PARAM_HELP = {
    "clients": "game clients, one connection each",
    "count": "updates each client sends in all",
    "burst": "updates a client sends in one write (one arrival, one edge)",
    "period": "seconds between a client's bursts",
    "size": "bytes per update (and per server recv)",
    "link_rate": "rate of the clients-server link",
    "delay": "one-way delay of the clients-server link",
    "end": "simulated seconds each server runs",
}

SERVERS = {"epoll LT": epoll_lt_server, "epoll ET, drains": epoll_et_server,
           "epoll ET, one recv per event": epoll_et_nodrain_server}
PORT = 5959


def _one(name: str, p: dict, seed: int) -> dict:
    sim = simsock.Simulation(seed=seed, trace=False)
    server = sim.add_host("server")
    clients = sim.add_host("clients")
    sim.add_link(clients, server, rate=p["link_rate"], delay=p["delay"])
    srec: dict = {}
    server.spawn(functools.partial(SERVERS[name], port=PORT, record=srec, size=p["size"], read_size=p["size"],
                                   stop_at=p["end"]))
    recs = []
    for i in range(p["clients"]):
        rec = new_record()
        recs.append(rec)
        clients.spawn(functools.partial(game_client, server_addr=("server", PORT), period=p["period"],
                                        size=p["size"], count=p["count"], burst=p["burst"],
                                        start_delay=0.01 + 0.0007 * i, record=rec, linger=0.5))
    progress = []

    async def sample(k):
        while True:
            progress.append([round(k.now, 4), srec.get("bytes_in", 0)])
            await k.sleep(p["period"] / 2)
    server.spawn(sample)
    sim.run(until=p["end"])
    unread = sum(s.conn.inq for s in server.sockets() if getattr(s, "conn", None) is not None)
    sent = sum(r["sent"] for r in recs)
    echoed = sum(r["received"] for r in recs)
    return {"server": name, "sent": sent, "echoed": echoed, "bytes_sent": sum(r["bytes_sent"] for r in recs),
            "bytes_read": srec["bytes_in"], "bytes_unread": unread,
            "starved": sum(1 for r in recs if r["received"] < r["sent"]), "clients": p["clients"],
            "wakeups": srec["wakeups"], "reads": srec["reads"], "updates": srec["updates"],
            "wakeups_per_update": srec["wakeups"] / srec["updates"] if srec["updates"] else None,
            "progress": progress}


def run(params: dict, seed: int) -> dict:
    p = dict(PARAMS, **params)
    return {"params": p, "servers": [_one(name, p, seed) for name in SERVERS]}


def _by(result: dict) -> dict:
    return {r["server"]: r for r in result["servers"]}


def check(result: dict) -> list:
    from simsock.claims import Checks
    from simsock.units import parse_time
    c = Checks()
    s = _by(result)
    p = result["params"]
    last_send = (p["count"] + p["burst"] - 1) // p["burst"] * p["period"]
    if p["clients"] < 1 or p["count"] < 1 or last_send + 10 * parse_time(p["delay"]) / 1e9 >= p["end"]:
        for claim in CLAIMS:
            c.not_measured(claim, f"the run ends at {p['end']:g} s, before the clients' last burst ({last_send:g} s) "
                                  f"and its echo could arrive (or there are no clients); raise end")
        return c.list
    for name in ("epoll LT", "epoll ET, drains"):
        r = s[name]
        c.equal("C8.1", f"{name}: updates not echoed", r["sent"] - r["echoed"], 0,
                note=f"{r['starved']} clients starved, {r['bytes_unread']} B unread; epoll woke the server "
                     f"{r['wakeups_per_update']:.2f} times per update")
    lt, et, bug = s["epoll LT"], s["epoll ET, drains"], s["epoll ET, one recv per event"]
    burst = p["burst"]
    if burst < 2:
        why = ("with bursts of 1 each arrival is one update, so edge and level give the same reports and one "
               "recv per event drains everything; set burst >= 2")
        c.not_measured("C8.2", why)
        c.not_measured("C8.3", why)
        return c.list
    if lt["wakeups_per_update"] and et["wakeups_per_update"]:
        c.at_most("C8.2", "ET wake-ups per update / LT wake-ups per update",
                  round(et["wakeups_per_update"] / lt["wakeups_per_update"], 4), 0.75,
                  note=f"bursts of {burst}: ET reports an arrival once, LT reports the state after every recv "
                       f"(Linux's ET fires on every new arrival, even into a non-empty buffer, not only on "
                       f"empty -> non-empty)")
    else:
        c.not_measured("C8.2", "a server had no wake-ups to compare")
    c.at_least("C8.3", "bytes left unread by the ET server that reads once per event", bug["bytes_unread"], 1,
               unit="B", note=f"{bug['starved']} of {bug['clients']} clients starved")
    c.at_most("C8.3", "updates echoed / sent by the ET server that reads once per event",
              round(bug["echoed"] / max(1, bug["sent"]), 4), 0.75)
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    n = plotting.number
    files = []
    rows = result["servers"]
    burst = result["params"]["burst"]
    names = [r["server"] for r in rows]
    colors = ["tab:blue", "tab:green", "tab:red"]
    bug = _by(result)["epoll ET, one recv per event"]
    stuck = bug["bytes_unread"]
    fig, ax = plotting.figure("Echo servers on epoll: " + (
        f"ET with one recv per event leaves {n(stuck)} B stuck (C8.1, C8.3)" if stuck else
        "every server served everyone (C8.3 not shown)"), "server", "updates (count)")
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["sent"] for r in rows], width=0.4, color="lightgrey", label="sent by clients")
    ax.bar([x + 0.2 for x in xs], [r["echoed"] for r in rows], width=0.4, color=colors,
           label="echoed back (bar colour: server)")
    for x, r in zip(xs, rows):
        ax.text(x + 0.2, r["echoed"], f"{n(r['bytes_unread'])} B stuck\n{r['starved']}/{r['clients']} clients starved",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names)
    ax.set_ylim(0, max([r["sent"] for r in rows] + [1]) * 1.45)
    if stuck:
        plotting.annotate_claim(ax, f"ET without draining: one recv per event leaves the rest of each burst of "
                                    f"{burst}\nin the receive buffer; epoll reports it again only when more arrives")
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, Path(outdir) / "epoll_edge_served.png"))

    fig, ax = plotting.figure("Bytes the server has read over time (C8.3)", "time (s)",
                              "bytes read (cumulative, B)")
    for r, c, style in zip(rows, colors, ("--", "-", "-")):
        pts = r["progress"]
        ax.step([t for t, _ in pts], [b for _, b in pts], where="post", label=r["server"], color=c,
                linestyle=style, linewidth=2.5 if style == "--" else 1.5, zorder=3 if style == "--" else 2)
    ax.axhline(rows[0]["bytes_sent"], color="grey", linestyle=":", label="bytes the clients sent")
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, Path(outdir) / "epoll_edge_progress.png"))

    lt = rows[0]["wakeups_per_update"] or 0
    et = rows[1]["wakeups_per_update"] or 0
    fig, ax = plotting.figure(f"epoll wake-ups per echoed update, bursts of {burst} (C8.2): ET "
                              + (f"{et / lt:.0%} of LT's" if lt else "vs LT"), "server",
                              "wake-ups per update (count)")
    ax.bar(list(xs), [r["wakeups_per_update"] or 0 for r in rows], color=colors)
    for x, r in zip(xs, rows):
        ax.text(x, r["wakeups_per_update"] or 0, f"{(r['wakeups_per_update'] or 0):.2f}", ha="center",
                va="bottom", fontsize=9)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names)
    ax.set_ylim(0, max([r["wakeups_per_update"] or 0 for r in rows] + [0.1]) * 1.6)
    plotting.annotate_claim(ax, f"bursts of {burst} updates, one recv of one update each: LT is woken once per "
                                f"recv, ET once per arrival.\nLinux's ET fires on every arrival, even into a "
                                f"non-empty buffer, not only on the chapter's\n\"not possible -> possible\" "
                                f"change (ep_poll_callback runs for each new segment)")
    files.append(plotting.save(fig, Path(outdir) / "epoll_edge_wakeups.png"))
    return files
