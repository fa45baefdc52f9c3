"""Partial send: a non-blocking TCP send takes what fits; a UDP datagram is all or nothing.

Claims (seed/CLAIMS.md):
  C7.1  A non-blocking TCP send into a nearly full send buffer sends part of the data (it
        returns a count smaller than asked for but above 0); the program must send the rest.
  C7.2  A non-blocking UDP send that does not fit fails whole (EAGAIN); never partial.

World: host ``sender`` connects over a slow ``link_rate`` link to host ``receiver``, which
accepts and never reads. With SO_SNDBUF = ``sndbuf`` the sender makes ``attempts``
non-blocking ``send`` calls of ``size`` bytes back to back. TCP: the first calls are taken
whole, then one is cut short to what fits (a partial send), then EAGAIN. UDP (the same
world, a ``udp_size``-byte datagram, smallest send buffer): whole datagram or EAGAIN.
"""

from __future__ import annotations

from pathlib import Path

import simsock
from models.tcp import nonblocking_sender
from models.udp import nonblocking_burst

CLAIMS = ["C7.1", "C7.2"]

PARAMS = {
    "attempts": 12,
    "size": 10000,
    "sndbuf": 16384,
    "udp_size": 1000,
    "link_rate": "1Mbit",
    "delay": "10ms",
}

PARAM_HELP = {
    "attempts": "non-blocking sends tried back to back, for TCP and for UDP",
    "size": "bytes per TCP send call",
    "sndbuf": "SO_SNDBUF of the TCP sender (Linux doubles it)",
    "udp_size": "bytes per UDP datagram",
    "link_rate": "link rate (slow, so the send buffers fill)",
    "delay": "one-way propagation delay of the link",
}

PORT = 5959


async def _sink(k, log):
    ls = k.socket(simsock.AF_INET, simsock.SOCK_STREAM)
    ls.bind(("0.0.0.0", PORT))
    ls.listen()
    conn, _ = await ls.accept()
    log["conn"] = conn          # never read: the receive side fills too


def run(params: dict, seed: int) -> dict:
    p = params
    sim = simsock.Simulation(seed=seed, trace=False)
    a = sim.add_host("sender")
    b = sim.add_host("receiver")
    sim.add_link(a, b, rate=p["link_rate"], delay=p["delay"])
    tlog: dict = {}
    b.spawn(_sink, {})
    a.spawn(nonblocking_sender, ("receiver", PORT), p["attempts"], p["size"], tlog, p["sndbuf"])
    sim.run(until=0.5)

    sim2 = simsock.Simulation(seed=seed, trace=False)
    a2 = sim2.add_host("sender")
    b2 = sim2.add_host("receiver")
    sim2.add_link(a2, b2, rate=p["link_rate"], delay=p["delay"])
    ulog: dict = {}
    a2.spawn(nonblocking_burst, ("receiver", PORT), p["attempts"], p["udp_size"], ulog, 2304)
    sim2.run(until=0.5)
    return {
        "size": p["size"],
        "udp_size": p["udp_size"],
        "sndbuf": tlog["sndbuf"],
        "tcp_outcomes": tlog["outcomes"],
        "tcp_free_before": tlog["free_before"],
        "udp_outcomes": ulog["outcomes"],
    }


def check(result: dict) -> list:
    from simsock.claims import Checks, format_number
    r = result
    c = Checks()
    tcp = r["tcp_outcomes"]
    if "EAGAIN" not in tcp:
        c.not_measured("C7.1", f"the TCP send buffer never filled (no EAGAIN in {tcp}); lower sndbuf or raise "
                               f"attempts")
    else:
        before = tcp[:tcp.index("EAGAIN")]
        partial = [o for o in before if 0 < o < r["size"]]
        c.fact("C7.1", bool(partial),
               f"the last send before the buffer filled returned {format_number(before[-1]) if before else 'nothing'} "
               f"of {r['size']:,} B (a partial count 0 < n < {r['size']:,} expected, then EAGAIN)",
               {"partial_send_bytes": partial[0] if partial else 0}, f"0 < n < {r['size']}")
    udp = r["udp_outcomes"]
    bad = [o for o in udp if o != "EAGAIN" and o != r["udp_size"]]
    if "EAGAIN" not in udp:
        c.not_measured("C7.2", f"the UDP send buffer never filled (outcomes {udp[:8]}); raise attempts or "
                               f"slow the link")
    else:
        c.fact("C7.2", not bad and r["udp_size"] in udp,
               f"{udp.count(r['udp_size'])} whole datagrams, {udp.count('EAGAIN')} EAGAIN, "
               f"{len(bad)} partial ({bad[:5]})", {"partial_udp_sends": len(bad)}, "== 0 partial")
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    r = result
    n = plotting.number
    tcp_part = [o for o in r["tcp_outcomes"] if o != "EAGAIN" and 0 < o < r["size"]]
    udp_part = [o for o in r["udp_outcomes"] if o != "EAGAIN" and o != r["udp_size"]]
    tcp_says = (f"TCP took {n(tcp_part[0])} of {n(r['size'])} B once" if tcp_part
                else "TCP never took part of a send" + ("" if "EAGAIN" in r["tcp_outcomes"] else
                                                          " (its buffer never filled)"))
    udp_says = ("UDP all or nothing" if not udp_part else f"UDP returned {len(udp_part)} partial counts")
    fig, axes = plotting.plt.subplots(1, 2, figsize=(11, 5.2), dpi=plotting.DPI, layout="constrained")
    fig.suptitle(f"Non-blocking send into a filling send buffer: {tcp_says}; {udp_says} (C7.1, C7.2)",
                 fontsize=12)
    for ax, outcomes, size, name in ((axes[0], r["tcp_outcomes"], r["size"], "TCP"),
                                     (axes[1], r["udp_outcomes"], r["udp_size"], "UDP")):
        xs = list(range(1, len(outcomes) + 1))
        whole = [(i, o) for i, o in zip(xs, outcomes) if o != "EAGAIN" and o == size]
        part = [(i, o) for i, o in zip(xs, outcomes) if o != "EAGAIN" and o < size]
        fails = [i for i, o in zip(xs, outcomes) if o == "EAGAIN"]
        ax.bar([i for i, _ in whole], [o for _, o in whole], color="tab:green", label="all bytes taken")
        if part:
            ax.bar([i for i, _ in part], [o for _, o in part], color="tab:orange", label="partial: some bytes taken")
        for i, o in part:
            ax.annotate(f"{n(o)} of {n(size)} B", (i, o), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=8)
        ax.scatter(fails, [0] * len(fails), marker="x", color="tab:red", zorder=3, label="EAGAIN (nothing taken)")
        ax.axhline(size, color="0.4", linestyle="--", linewidth=0.8, label=f"asked: {n(size)} B per call")
        ax.set_title(f"{name}: {n(size)}-byte sends", fontsize=11)
        ax.set_xlabel("attempt (call number, back to back)")
        ax.set_ylabel("bytes the call returned (B)")
        ax.set_ylim(0, size * 1.35)
        ax.set_xticks(xs)
        ax.grid(True, alpha=0.3, linewidth=0.6)
        plotting.legend_below(ax, ncol=2)
    axes[0].text(0.01, 0.99, "Linux: a send is cut at what fits its last segment (skb),\nnot at the "
                 "free bytes the chapter's \"1 of 5\" suggests", transform=axes[0].transAxes, ha="left",
                 va="top", fontsize=8, color="0.3")
    return [plotting.save(fig, outdir / "partial_send_outcomes.png")]
