"""Queue disciplines: TCP builds a standing queue in drop-tail; RED and CoDel keep it short.

Drop-tail, RED and CoDel at one bottleneck, under the same TCP load, at the same throughput.

Claims (seed/CLAIMS.md):
  C5.5  When too much data converges on a router, the other users behind it cannot get
        their packets through smoothly (congestion): here, as delay. Every packet through
        a full drop-tail queue waits for the whole queue ahead of it; an active queue
        manager (RED, CoDel) drops early so that the senders back off before the queue
        grows, and the link stays as busy.

World: the dumbbell of ``router_congestion`` (``models.topologies.dumbbell``): ``n_tcp``
TCP flows (CUBIC) from ``left{i}`` to ``right{i}`` through the ``bottleneck_rate`` link
from ``r1`` to ``r2``, optionally with a UDP flood of ``flood_factor`` times the bottleneck
rate (0: none). The run is repeated three times with one change, the queue discipline of
``r1``'s output port toward ``r2``, all with a buffer of ``limit`` packets:

- drop-tail (``DropTail(packets=limit)``, Linux ``pfifo``);
- RED (Floyd & Jacobson 1993, with the paper's parameters: ``min_th`` 5, ``max_th`` 15
  packets, ``max_p`` 1/50, ``w_q`` 0.002);
- CoDel (RFC 8289: ``target`` 5 ms, ``interval`` 100 ms).

Measured from ``warmup`` to the end: the queueing delay a packet arriving at r1 would see
(backlog bytes x 8 / rate: exact for these FIFO queues), time-weighted (what a probe packet of another flow arriving at a random time would meet:
the contention C5.6 is about); the *standing* delay (the smallest delay in each 100 ms
interval: what never drains, CoDel's definition of a bad queue), measured only from drop-tail's
first drop on (its queue takes seconds to ramp up to its ``limit``-packet buffer, and a queue
still growing is not a standing one), the same span for all three; link utilisation and TCP
goodput; drops.

C5.6 (TCP regulates itself, so it causes no contention at routers) is measured by a probe
flow: ``probe_pps`` small UDP datagrams per second (100 B, about 0.5% of the link) cross the
same bottleneck, and each one's queueing delay is its one-way delay minus the smallest seen.
With an AQM the probes' mean queueing delay stays under one base RTT with the link still full. With drop-tail
it does not: TCP alone fills the buffer and holds a standing queue of hundreds of ms, which
is how Linux's default pfifo_fast/fq_codel choice matters (Linux's default qdisc today is
fq_codel, an AQM; the chapter's claim is loose on this).

What the mechanisms aim at, and ``check`` states: CoDel drops, ever faster, while the
smallest sojourn time over an interval stays above ``target`` (and never while less than
one MTU is queued), so the standing delay averages at most ``target`` plus one MTU's
transmission time; it reacts only after an interval above target, so single intervals may
exceed it. RED drops every arrival once its average queue reaches ``max_th``, so the mean
queue stays at most ``max_th`` packets and its standing delay under ``max_th`` packets'
transmission time.
Neither should cost throughput (within 10% of drop-tail's link utilisation); drop-tail's
standing delay is what they remove (at least twice their bound).
"""

from __future__ import annotations

from pathlib import Path

import simsock
from experiments import _bottleneck as bn
from simsock.units import NS_PER_S, parse_rate, parse_time

CLAIMS = ["C5.5", "C5.6"]

PARAMS = {
    "n_tcp": 4,
    "duration": 8.0,
    "warmup": 2.0,
    "bottleneck_rate": "10Mbit",
    "bottleneck_delay": "10ms",
    "access_rate": "100Mbit",
    "access_delay": "1ms",
    "limit": 200,
    "red_min_th": 5.0,
    "red_max_th": 15.0,
    "red_max_p": 0.02,
    "red_w_q": 0.002,
    "codel_target": "5ms",
    "codel_interval": "100ms",
    "flood_factor": 0.0,
    "probe_pps": 50.0,
    "bin_ms": 50.0,
}

PARAM_HELP = {
    "n_tcp": "number of TCP flows (left{i} -> right{i})",
    "duration": "simulated seconds per queue discipline",
    "warmup": "measurements start at this time (s)",
    "bottleneck_rate": "rate of the r1-r2 link",
    "bottleneck_delay": "one-way delay of the r1-r2 link",
    "access_rate": "rate of the host-router links",
    "access_delay": "one-way delay of the host-router links",
    "limit": "buffer of the bottleneck queue (packets), the same for every discipline",
    "red_min_th": "RED min_th (packets)",
    "red_max_th": "RED max_th (packets)",
    "red_max_p": "RED max_p",
    "red_w_q": "RED queue-average weight w_q",
    "codel_target": "CoDel target sojourn time",
    "codel_interval": "CoDel interval",
    "flood_factor": "add a UDP flood at this multiple of the bottleneck rate from the start (0: TCP only)",
    "bin_ms": "width of the time bins (ms)",
    "probe_pps": "a probe flow of small UDP datagrams (100 B) at this rate crosses the bottleneck with the TCP "
                 "flows and measures the queueing delay another user meets (C5.6); 0: none; only without a flood",
}

QDISCS = ("drop-tail", "RED", "CoDel")
MTU = 1500
COLORS = {"drop-tail": "tab:gray", "RED": "tab:blue", "CoDel": "tab:green"}


def _factories(p: dict) -> dict:
    return {
        "drop-tail": lambda: simsock.DropTail(packets=p["limit"]),
        "RED": lambda: simsock.RED(limit_packets=p["limit"], min_th=p["red_min_th"], max_th=p["red_max_th"],
                                   max_p=p["red_max_p"], w_q=p["red_w_q"], mean_pkt_size=MTU),
        "CoDel": lambda: simsock.CoDel(target=p["codel_target"], interval=p["codel_interval"], limit=p["limit"],
                                       mtu=MTU),
    }


PROBE_SIZE = 100        # bytes of payload per probe datagram


def _probe(record: dict, p: dict) -> dict:
    """The probe flow's queueing delay: each datagram's one-way delay minus the smallest one
    seen (propagation and transmission), over the measured span."""
    delays = [d for t, d in record["flood"]["delays"] if t >= p["warmup"]]
    sent = [t for t, _ in record["flood"]["delays"]]
    if not delays:
        return {"count": 0, "lost": 0, "queueing_mean_ms": None, "queueing_p95_ms": None, "base_ms": None}
    base = min(d for _, d in record["flood"]["delays"])
    queueing = sorted(d - base for d in delays)
    return {"count": len(queueing), "sent": record["flood"]["sent"], "received": len(sent),
            "base_ms": base, "queueing_mean_ms": sum(queueing) / len(queueing),
            "queueing_p95_ms": queueing[min(len(queueing) - 1, int(0.95 * len(queueing)))],
            "queueing_max_ms": queueing[-1]}


def _first_drop_s(record: dict) -> float | None:
    """When the bottleneck first dropped a packet (the end of drop-tail's ramp), or None."""
    bin_ns = record["bin_ns"]
    for i, v in enumerate(record["bottleneck"]["drops"]):
        if v:
            return i * bin_ns / NS_PER_S
    return None


def _measure(record: dict, p: dict, interval_ns: int, standing_from_ns: int | None = None) -> dict:
    bin_ns = record["bin_ns"]
    bott = record["bottleneck"]
    rate = bott["rate_bps"]
    t0, t1 = round(p["warmup"] * NS_PER_S), record["duration_ns"]
    a, b = bn.window(record, p["warmup"], t1 / NS_PER_S)
    times, nbytes = bott["queue_bytes"]
    delay_ms = [v * 8 / rate * 1000 for v in nbytes]
    stats = bn.step_stats(times, delay_ms, t0, t1)
    # the standing queue is measured once drop-tail's queue has ramped up to its buffer (its
    # first drop), the same span for every discipline
    start = max(t0, standing_from_ns if standing_from_ns is not None else t1)
    minima = bn.window_minima(times, delay_ms, start, t1, interval_ns) if t1 - start >= interval_ns else []
    tcp = [f for f in record["flows"] if f["kind"] == "tcp"]
    goodput = [bn.rate_bps(f["read"], a, b, bin_ns) for f in tcp]
    offered = sum(bott["offered"][a:b])
    drops = sum(bott["drops"][a:b])
    return {
        "delay_mean_ms": stats["mean"],
        "delay_p50_ms": stats["quantiles"][50],
        "delay_p95_ms": stats["quantiles"][95],
        "delay_p99_ms": stats["quantiles"][99],
        "delay_max_ms": stats["max"],
        "delay_quantiles_ms": [round(q, 4) for q in stats["quantiles"]],
        "queue_mean_packets": bn.step_stats(*bott["queue_packets"], t0, t1)["mean"],
        "standing_delay_ms": minima,
        "standing_delay_mean_ms": sum(minima) / len(minima) if minima else 0.0,
        "utilisation": sum(bott["utilisation"][a:b]) / (b - a),
        "tcp_goodput_bps": goodput,
        "tcp_goodput_total_bps": sum(goodput),
        "jain_tcp": bn.jain(goodput),
        "offered_packets": offered,
        "dropped_packets": drops,
        "drop_fraction": drops / offered if offered else 0.0,
        "drops_by_reason": {r: sum(v[a:b]) for r, v in bott["drops_by_reason"].items()},
        "tcp_retransmits": sum(f["tcp"]["retransmits"] or 0 for f in tcp),
        "tcp_timeouts": sum(f["tcp"]["rto_count"] or 0 for f in tcp),
    }


def run(params: dict, seed: int) -> dict:
    p = params
    if not 0 <= p["warmup"] < p["duration"]:
        raise ValueError(f"need 0 <= warmup < duration, got warmup={p['warmup']}, duration={p['duration']}")
    interval_ns = parse_time(p["codel_interval"], what="codel_interval")
    if interval_ns <= 0 or interval_ns > (p["duration"] - p["warmup"]) * NS_PER_S:
        raise ValueError(f"codel_interval must be positive and fit in the measured time "
                         f"({p['duration'] - p['warmup']} s), got {p['codel_interval']!r}")
    rate = parse_rate(p["bottleneck_rate"], what="bottleneck_rate")
    runs = {}
    records = {}
    probe = p["probe_pps"] > 0 and not p["flood_factor"]
    flood_factor = p["flood_factor"]
    if probe:             # the probe is a tiny paced UDP "flood": PROBE_SIZE-byte datagrams
        flood_factor = p["probe_pps"] * (PROBE_SIZE + 28) * 8 / rate
    for name, factory in _factories(p).items():
        records[name] = bn.run_dumbbell(
            seed, n_tcp=p["n_tcp"], duration=p["duration"], bin_ms=p["bin_ms"],
            bottleneck_rate=p["bottleneck_rate"], bottleneck_delay=p["bottleneck_delay"],
            access_rate=p["access_rate"], access_delay=p["access_delay"], qdisc=factory,
            flood_factor=flood_factor, flood_start=0.0, datagram=PROBE_SIZE if probe else 1472)
    ramp_end = _first_drop_s(records["drop-tail"])
    standing_from_ns = None if ramp_end is None else round(ramp_end * NS_PER_S)
    for name, record in records.items():
        measures = _measure(record, p, interval_ns, standing_from_ns)
        measures["probe"] = _probe(record, p) if probe else None
        runs[name] = {
            "measures": measures,
            # only what the figures need: the backlog over time and throughput per bin
            "queue_bytes": record["bottleneck"]["queue_bytes"],
            "utilisation": record["bottleneck"]["utilisation"],
            "delivered": {f["label"]: f["delivered"] for f in record["flows"]},
        }
    target_ms = parse_time(p["codel_target"], what="codel_target") / 1e6
    mtu_ms = MTU * 8 / rate * 1000
    return {
        "qdiscs": list(QDISCS),
        "runs": runs,
        "bin_ns": record["bin_ns"],
        "duration_s": p["duration"],
        "warmup_s": p["warmup"],
        "standing_from_s": None if ramp_end is None else max(p["warmup"], ramp_end),
        "rate_bps": rate,
        "limit": p["limit"],
        "n_tcp": p["n_tcp"],
        "codel_target_ms": target_ms,
        "codel_interval_ms": interval_ns / 1e6,
        "codel_bound_ms": target_ms + mtu_ms,
        "red_max_th": p["red_max_th"],
        "red_bound_ms": p["red_max_th"] * MTU * 8 / rate * 1000,
        "base_rtt_ms": 2 * (parse_time(p["bottleneck_delay"]) + 2 * parse_time(p["access_delay"])) / 1e6,
    }


def check(result: dict) -> list:
    r = result
    m = {name: r["runs"][name]["measures"] for name in r["qdiscs"]}
    dt, red = m["drop-tail"], m["RED"]
    from simsock.claims import Checks
    c = Checks()
    c.at_most("C5.5", "RED's mean queue", round(red["queue_mean_packets"], 2), r["red_max_th"], unit="packets",
              note="max_th, beyond which RED drops every arrival")
    if r.get("standing_from_s") is None or not dt["standing_delay_ms"]:
        c.not_measured("C5.5", "drop-tail's queue never overflowed its buffer in the run, so its standing queue "
                               "has not formed yet; raise duration or lower limit")
    else:
        for name, bound in (("RED", r["red_bound_ms"]), ("CoDel", r["codel_bound_ms"])):
            c.at_least("C5.5", f"drop-tail's standing delay (from {r['standing_from_s']:.1f} s)",
                       round(dt["standing_delay_mean_ms"], 2), round(2 * bound, 2), unit="ms",
                       note=f"twice {name}'s bound: what the AQM removes for everyone behind the router")
            mine = m[name]
            c.at_most("C5.5", f"{name}'s standing delay", round(mine["standing_delay_mean_ms"], 2), round(bound, 2),
                      unit="ms", note="what its mechanism allows")
    for name in ("RED", "CoDel"):
        mine = m[name]
        c.at_least("C5.5", f"{name}'s link utilisation / drop-tail's", round(mine["utilisation"] / max(1e-9, dt["utilisation"]), 4),
                   0.9)
    # C5.6: TCP regulates itself: a probe flow of small datagrams crossing the same router
    # meets little queueing delay with an AQM, with the link still full; with drop-tail, TCP
    # alone holds a standing queue that every other user waits in.
    bound = r["base_rtt_ms"]
    if dt.get("probe") is None:
        for_claim = "probe_pps=0 or a flood is on (flood_factor > 0): no probe flow measured the delay " \
                    "other users meet with TCP alone"
        c.not_measured("C5.6", for_claim)
        return c.list
    for name in ("CoDel", "RED"):
        mine = m[name]
        pr = mine["probe"]
        if not pr["count"]:
            c.not_measured("C5.6", f"no probe datagram crossed the {name} bottleneck after the warmup")
            continue
        c.at_most("C5.6", f"mean queueing delay of the probe flow, TCP alone, {name}",
                  round(pr["queueing_mean_ms"], 3), round(bound, 3), unit="ms",
                  note=f"one base RTT; {pr['count']:,} probes, 95th percentile {pr['queueing_p95_ms']:.1f} ms; "
                       f"link busy {mine['utilisation']:.1%}; drop-tail: {dt['probe']['queueing_mean_ms']:.1f} ms")
        c.at_least("C5.6", f"link utilisation with {name} / with drop-tail",
                   round(mine["utilisation"] / max(1e-9, dt["utilisation"]), 4), 0.9)
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from simsock import plot as plotting
    from simsock.plot import net as pn

    r = result
    outdir = Path(outdir)
    names = r["qdiscs"]
    m = {name: r["runs"][name]["measures"] for name in names}
    files = []

    # 1. Distribution of the queueing delay.
    fig, ax = plotting.figure(f"Queueing delay at the bottleneck, {r['n_tcp']} TCP flows: drop-tail vs RED vs CoDel",
                              "queueing delay a packet arriving at r1 would see (ms)",
                              "time the delay was at most x (fraction)")
    qs = [q / 100 for q in range(101)]
    for name in names:
        ax.step(m[name]["delay_quantiles_ms"], qs, where="post", color=COLORS[name], linewidth=1.6,
                label=f"{name}: mean {m[name]['delay_mean_ms']:.1f} ms, 95th percentile "
                      f"{m[name]['delay_p95_ms']:.1f} ms")
    ax.axvline(r["codel_target_ms"], color=COLORS["CoDel"], linestyle=":", label=f"CoDel target "
               f"({r['codel_target_ms']:g} ms)")
    ax.axvline(r["red_bound_ms"], color=COLORS["RED"], linestyle=":",
               label=f"RED max_th = {r['red_max_th']:g} packets ({r['red_bound_ms']:.0f} ms)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, max(m[n]["delay_max_ms"] for n in names) * 1.2)
    ax.set_ylim(0, 1.02)
    probe = m["drop-tail"].get("probe")
    if probe and probe["count"]:
        plotting.annotate_claim(ax, "probe flow's mean queueing delay: " + ", ".join(
            f"{name} {m[name]['probe']['queueing_mean_ms']:.1f} ms" for name in names if m[name]["probe"]["count"])
            + "\nTCP alone fills a drop-tail buffer: it spares other users only behind an AQM (C5.6)")
    plotting.legend_below(ax, ncol=2, fontsize=9)
    files.append(plotting.save(fig, outdir / "qdisc_compare_delay_cdf.png"))

    # 2. Side by side: delay, standing delay, throughput, drops.
    panels = [
        ("mean queueing delay (ms)", [m[n]["delay_mean_ms"] for n in names], "{:.1f}"),
        (f"standing delay (ms): smallest\nper {r['codel_interval_ms']:g} ms, "
         + (f"{r['standing_from_s']:.1f}-{r['duration_s']:g} s" if r.get("standing_from_s") is not None
            else "not measured"),
         [m[n]["standing_delay_mean_ms"] for n in names], "{:.1f}"),
        *([("probe flow: mean queueing\ndelay (ms)", [m[n]["probe"]["queueing_mean_ms"] or 0.0 for n in names],
            "{:.1f}")] if all(m[n].get("probe") and m[n]["probe"]["count"] for n in names) else []),
        ("link utilisation (%)", [100 * m[n]["utilisation"] for n in names], "{:.1f}"),
        ("TCP goodput, all flows (Mbit/s)", [m[n]["tcp_goodput_total_bps"] / 1e6 for n in names], "{:.2f}"),
        ("packets dropped (% of arrivals)", [100 * m[n]["drop_fraction"] for n in names], "{:.2f}"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 0.5, 4.6), dpi=plotting.DPI,
                             layout="constrained")
    fig.suptitle(f"Same load, three queue disciplines at the {r['rate_bps'] / 1e6:g} Mbit/s bottleneck "
                 f"({r['warmup_s']:g}-{r['duration_s']:g} s; buffer {r['limit']:,} packets)", fontsize=12)
    for ax, (label, values, fmt) in zip(axes, panels):
        bars = ax.bar(names, values, color=[COLORS[n] for n in names])
        for bar, value in zip(bars, values):
            ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=9)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(0, max(values + [1e-9]) * 1.2)
        ax.grid(True, axis="y", alpha=0.3, linewidth=0.6)
        ax.set_axisbelow(True)
    files.append(plotting.save(fig, outdir / "qdisc_compare_summary.png"))

    # 3. The queue over time.
    rate = r["rate_bps"]
    delay = {name: ((r["runs"][name]["queue_bytes"][0], r["runs"][name]["queue_bytes"][1]), rate) for name in names}
    queues = {name: (r["runs"][name]["queue_bytes"][0], [v // MTU for v in r["runs"][name]["queue_bytes"][1]])
              for name in names}
    files.append(pn.queue_occupancy(
        outdir / "qdisc_compare_queue.png", queues, delay=delay, colors=COLORS, until_s=r["duration_s"],
        marks=[(r["warmup_s"], "measurements start")]
        + ([(r["standing_from_s"], "drop-tail's first drop: standing delay measured from here")]
           if r.get("standing_from_s") is not None and r["standing_from_s"] > r["warmup_s"] else []),
        title=f"Bottleneck queue over time under each discipline (packets = backlog bytes / {MTU:,})"))
    return files
