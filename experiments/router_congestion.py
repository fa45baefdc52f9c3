"""Router congestion: TCP flows share a bottleneck politely; a UDP flood takes it from them.

Claims (seed/CLAIMS.md):
  C5.5  When too much data converges on a router, the other users behind it cannot get
        their packets through smoothly (congestion).
  C5.6  TCP regulates a sender that sends more than the path can take, so it does not
        cause contention at routers.
  C5.7  UDP has no such control, so a UDP flood hurts the surrounding network.

World: a dumbbell (``models.topologies.dumbbell``): ``n_tcp`` TCP flows (CUBIC, blocking
senders with an endless stream, readers that read as fast as data comes) from
``left{i}`` to ``right{i}`` through routers ``r1`` and ``r2``, joined by a
``bottleneck_rate`` link whose output queue at ``r1`` is a drop-tail FIFO of ``queue``
packets; access links are ten times faster. Phase 1 (``warmup`` .. ``flood_start``):
TCP alone. At ``flood_start`` a paced UDP sender on ``left{n_tcp+1}`` starts sending
``datagram``-byte datagrams at ``flood_factor`` times the bottleneck's rate to
``right{n_tcp+1}``; phase 2 is measured from ``flood_start + settle`` to the end.

What to expect: in phase 1 the TCP flows fill the link and share it evenly, losing few
packets (a TCP at its fair share loses at most what its response function allows). In
phase 2 the bottleneck must drop at least 1 - 1/flood_factor of what arrives; drop-tail
drops whatever arrives when full, so every flow loses about that fraction; UDP carries on
at its rate, TCP halves its window per loss and times out, and ends up with crumbs.
"""

from __future__ import annotations

import math
from pathlib import Path

from experiments import _bottleneck as bn
from simsock.units import NS_PER_S, parse_rate, parse_time

CLAIMS = ["C5.5", "C5.6", "C5.7"]

PARAMS = {
    "n_tcp": 4,
    "duration": 6.0,
    "flood_start": 3.0,
    "warmup": 1.0,
    "settle": 0.5,
    "flood_factor": 1.5,
    "datagram": 1472,
    "flood_proto": "udp",
    "bottleneck_rate": "10Mbit",
    "bottleneck_delay": "10ms",
    "access_rate": "100Mbit",
    "access_delay": "1ms",
    "queue": 100,
    "bin_ms": 50.0,
    "frames": 60,
}

PARAM_HELP = {
    "n_tcp": "number of TCP flows (left{i} -> right{i})",
    "duration": "simulated seconds",
    "flood_start": "time (s) the UDP flood starts",
    "warmup": "phase 1 (TCP alone) is measured from this time (s), after slow start",
    "settle": "phase 2 (flood) is measured from flood_start + settle (s)",
    "flood_factor": "UDP flood rate as a multiple of the bottleneck rate (IP bytes)",
    "datagram": "UDP payload bytes per datagram (1472: 1500-byte IP packets)",
    "bottleneck_rate": "rate of the r1-r2 link",
    "bottleneck_delay": "one-way delay of the r1-r2 link",
    "access_rate": "rate of the host-router links",
    "access_delay": "one-way delay of the host-router links",
    "queue": "drop-tail limit (packets) of r1's output queue toward r2",
    "bin_ms": "width of the time bins of throughput, drops and utilisation (ms)",
    "frames": "most frames in the animated GIF",
    "flood_proto": "udp: the flood is paced UDP; tcp: the same sender over TCP, as much as TCP lets it "
                   "(the control case: C5.7 then fails, since TCP backs off)",
}

FIGURES = ("router_congestion_throughput.png", "router_congestion_shares.png", "router_congestion_queue.png",
           "router_congestion_drops.png", "router_congestion_topology_tcp_alone.png",
           "router_congestion_topology_flood.png", "router_congestion.gif")

MATHIS_C = math.sqrt(1.5)      # TCP response function x = (MSS / RTT) * sqrt(3/2) / sqrt(p)


def _phase(record: dict, a: int, b: int, t0: float, t1: float) -> dict:
    """Measures over bins [a, b) (= [t0, t1) s)."""
    bin_ns = record["bin_ns"]
    flows = record["flows"]
    bott = record["bottleneck"]
    rates = {f["label"]: bn.rate_bps(f["delivered"], a, b, bin_ns) for f in flows}
    total = sum(rates.values())
    tcp = [f for f in flows if f["kind"] == "tcp"]
    goodput = {f["label"]: bn.rate_bps(f["read"], a, b, bin_ns) for f in tcp}
    drops = {f["label"]: sum(f["bottleneck_drops"][a:b]) for f in flows}
    packets = {f["label"]: sum(f["delivered_packets"][a:b]) for f in flows}
    all_drops = sum(bott["drops"][a:b])
    offered = sum(bott["offered"][a:b])
    t0n, t1n = round(t0 * NS_PER_S), round(t1 * NS_PER_S)
    queue = bn.step_stats(*bott["queue_packets"], t0n, t1n)
    backlog = bn.step_stats(*bott["queue_bytes"], t0n, t1n)
    return {
        "window_s": [t0, t1],
        "throughput_bps": rates,
        "share": {k: (v / total if total else 0.0) for k, v in rates.items()},
        "tcp_goodput_bps": goodput,
        "tcp_goodput_total_bps": sum(goodput.values()),
        "jain_tcp": bn.jain([rates[f["label"]] for f in tcp]),
        "utilisation": sum(bott["utilisation"][a:b]) / (b - a),
        "offered_packets": offered,
        "dropped_packets": all_drops,
        "drop_fraction": all_drops / offered if offered else 0.0,
        "drops_by_flow": drops,
        "drop_fraction_by_flow": {k: (drops[k] / (drops[k] + packets[k]) if drops[k] + packets[k] else 0.0)
                                  for k in drops},
        "drop_share_by_flow": {k: (drops[k] / all_drops if all_drops else 0.0) for k in drops},
        "queue_mean_packets": queue["mean"],
        "queue_max_packets": queue["max"],
        "queue_delay_mean_ms": backlog["mean"] * 8 / bott["rate_bps"] * 1000,
    }


def run(params: dict, seed: int) -> dict:
    p = params
    if not 0 <= p["warmup"] < p["flood_start"] < p["duration"]:
        raise ValueError(f"need 0 <= warmup < flood_start < duration, got warmup={p['warmup']}, "
                         f"flood_start={p['flood_start']}, duration={p['duration']}")
    if not p["flood_start"] + p["settle"] < p["duration"]:
        raise ValueError("flood_start + settle must be before the end of the run (duration)")
    if not p["flood_factor"] > 1:
        raise ValueError(f"flood_factor must be > 1 (a flood sends faster than the bottleneck), "
                         f"got {p['flood_factor']}")
    record = bn.run_dumbbell(
        seed, n_tcp=p["n_tcp"], duration=p["duration"], bin_ms=p["bin_ms"],
        bottleneck_rate=p["bottleneck_rate"], bottleneck_delay=p["bottleneck_delay"],
        access_rate=p["access_rate"], access_delay=p["access_delay"], queue=p["queue"],
        flood_factor=p["flood_factor"], flood_start=p["flood_start"], datagram=p["datagram"],
        flood_proto=p["flood_proto"])
    a1, b1 = bn.window(record, p["warmup"], p["flood_start"])
    a2, b2 = bn.window(record, p["flood_start"] + p["settle"], p["duration"])
    phase1 = _phase(record, a1, b1, p["warmup"], p["flood_start"])
    phase2 = _phase(record, a2, b2, p["flood_start"] + p["settle"], p["duration"])
    fl = record["flood"]
    span = (fl["last_send"] - fl["first_send"]) if fl["sent"] > 1 else 0.0
    fl["achieved_pps"] = (fl["sent"] - 1) / span if span > 0 else 0.0
    # TCP's response function (Mathis et al. 1997): at its fair share x = C/n and the base
    # RTT (no queueing), a TCP flow's loss rate is at most p = (sqrt(3/2) MSS / (RTT x))^2;
    # with queueing the RTT is longer and p smaller.
    rate = parse_rate(p["bottleneck_rate"])
    base_rtt = 2 * (parse_time(p["bottleneck_delay"]) + 2 * parse_time(p["access_delay"])) / NS_PER_S
    mss = next(f["tcp"]["mss"] for f in record["flows"] if f["kind"] == "tcp") or 1448
    fair = rate / p["n_tcp"]
    loss_bound = min(1.0, (MATHIS_C * 8 * mss / (base_rtt * fair)) ** 2)
    return {
        **record,
        "phases": {"tcp_alone": phase1, "flood": phase2},
        "flood_start": p["flood_start"],
        "flood_factor": p["flood_factor"],
        "n_tcp": p["n_tcp"],
        "base_rtt_s": base_rtt,
        "tcp_loss_bound": loss_bound,
        "frames": p["frames"],
    }


def check(result: dict) -> list:
    from simsock.claims import Checks
    r = result
    p1, p2 = r["phases"]["tcp_alone"], r["phases"]["flood"]
    f = r["flood_factor"]
    fl = r["flood"]
    fl_label = fl.get("label", bn.FLOOD)
    limit = r["bottleneck"]["limit_packets"]
    c = Checks()
    # C5.6: TCP alone regulates itself: fills the link, shares it, loses little.
    c.at_least("C5.6", f"Jain's fairness index of the {r['n_tcp']} TCP flows alone", round(p1["jain_tcp"], 4), 0.9,
               note="equal-RTT AIMD flows converge to equal shares")
    c.at_least("C5.6", "bottleneck busy with TCP alone", round(100 * p1["utilisation"], 2), 90, unit="%",
               note="the flows probe for the capacity")
    c.at_most("C5.6", "packets dropped at the bottleneck with TCP alone", round(100 * p1["drop_fraction"], 3),
              round(100 * r["tcp_loss_bound"], 3), unit="%",
              note=f"TCP's response function at its fair share and the base RTT; the drop-tail queue averaged "
                   f"{p1['queue_mean_packets']:.0f} packets meanwhile (a standing queue: see qdisc_compare)")
    # C5.7: the flood keeps its rate whatever is lost, and takes the link from the others.
    if not fl["sent"]:
        c.not_measured("C5.7", "the flood sent nothing in the measured phase")
    c.at_most("C5.7", f"longest send call of the {fl_label}", fl["max_call_ns"] / 1e6, 0, unit="ms",
              note=f"{fl['short_sends']} short sends; a UDP sender is never held back")
    c.at_least("C5.7", f"{fl_label}: rate achieved / configured",
               round(fl["achieved_pps"] / max(1e-9, fl["configured_pps"]), 4), 0.99,
               note=f"{fl['achieved_pps']:,.0f} of {fl['configured_pps']:,.0f} datagrams/s despite the losses")
    share = p2["share"].get(fl_label, 0.0)
    c.at_least("C5.7", f"{fl_label}'s share of what crossed the bottleneck", round(100 * share, 2),
               round(100 * f / (f + 1), 2), unit="%", note="its share of the offered load if TCP did not back off")
    fall = p2["tcp_goodput_total_bps"] / p1["tcp_goodput_total_bps"] if p1["tcp_goodput_total_bps"] else 1.0
    c.at_most("C5.7", "TCP's total goodput during the flood / before", round(100 * fall, 2), 25, unit="%",
              note=f"{p1['tcp_goodput_total_bps'] / 1e6:.2f} -> {p2['tcp_goodput_total_bps'] / 1e6:.2f} Mbit/s")
    kept = [p2["tcp_goodput_bps"][label] / g1 for label, g1 in p1["tcp_goodput_bps"].items() if g1]
    if kept:
        c.at_most("C5.7", "goodput kept by the best-off TCP flow during the flood", round(100 * max(kept), 2), 25,
                  unit="%")
    # C5.5: congestion: the router drops heavily, mostly the flood's packets, and the queue is pinned full.
    need = 0.9 * (1 - 1 / f)
    c.at_least("C5.5", "packets dropped at the bottleneck during the flood", round(100 * p2["drop_fraction"], 2),
               round(100 * need, 2), unit="%",
               note=f"with {f:g}x its rate offered it must drop about 1 - 1/{f:g} = {1 - 1 / f:.1%}")
    c.at_least("C5.5", "drop fraction during the flood / before", round(p2["drop_fraction"] / max(1e-9, p1["drop_fraction"]), 2),
               10, note=f"{p1['drop_fraction']:.2%} -> {p2['drop_fraction']:.2%}")
    udp_drops = p2["drop_share_by_flow"].get(fl_label, 0.0)
    c.at_least("C5.5", f"{fl_label}'s share of the drops during the flood", round(100 * udp_drops, 2), 75, unit="%",
               note="its share of the arrivals")
    if limit is not None:
        c.at_least("C5.5", "mean bottleneck queue during the flood", round(p2["queue_mean_packets"], 2),
                   round(0.8 * limit, 2), unit="packets", note=f"pinned near its limit of {limit}")
    c.at_least("C5.5", "mean queue during the flood - before", round(p2["queue_mean_packets"] - p1["queue_mean_packets"], 2),
               0.01, unit="packets")
    return c.list


def _binned(values: list, bin_ns: int) -> dict:
    return {"bin_ns": bin_ns, "values": values}


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock.plot import net as pn

    r = result
    outdir = Path(outdir)
    bin_ns = r["bin_ns"]
    bott = r["bottleneck"]
    cap = bott["rate_bps"]
    p1, p2 = r["phases"]["tcp_alone"], r["phases"]["flood"]
    end_s = r["duration_ns"] / NS_PER_S
    fl_label = r["flood"].get("label", bn.FLOOD)
    marks = [(r["flood_start"], f"{fl_label} starts")]
    flows = {f["label"]: _binned(f["delivered"], bin_ns) for f in r["flows"]}
    colors = pn.flow_colors(list(flows))
    tcp_labels = [f["label"] for f in r["flows"] if f["kind"] == "tcp"]
    files = []

    tcp1 = p1["tcp_goodput_total_bps"]
    fall = p2["tcp_goodput_total_bps"] / tcp1 if tcp1 else 1.0
    shares1 = ", ".join(f"{p1['throughput_bps'][k] / 1e6:.1f}" for k in tcp_labels)
    note = (f"TCP alone ({p1['window_s'][0]:g}-{p1['window_s'][1]:g} s): {shares1} Mbit/s, Jain index "
            f"{p1['jain_tcp']:.2f}, {p1['drop_fraction']:.2%} of packets dropped\n"
            f"flood ({p2['window_s'][0]:g}-{p2['window_s'][1]:g} s): {fl_label} {p2['throughput_bps'][fl_label] / 1e6:.1f} "
            f"Mbit/s, all TCP {sum(p2['throughput_bps'][k] for k in tcp_labels) / 1e6:.2f} Mbit/s, "
            f"{p2['drop_fraction']:.0%} dropped")
    files.append(pn.flow_throughput(
        outdir / FIGURES[0], flows, capacity_bps=cap, marks=marks, colors=colors, note=note,
        title="Throughput per flow: " + (
            f"the UDP flood leaves TCP {fall:.0%} of its goodput (C5.6, C5.7)" if fall <= 0.25 else
            f"TCP keeps {fall:.0%} of its goodput under the flood (C5.7 not shown)")))
    files.append(pn.flow_throughput(
        outdir / FIGURES[1], flows, capacity_bps=cap, marks=marks, colors=colors, stacked=True,
        title="Who gets the bottleneck: shares of the delivered throughput (stacked)"))

    limit = bott["limit_packets"]
    qnote = (f"mean queue: {p1['queue_mean_packets']:.0f} packets with TCP alone, "
             f"{p2['queue_mean_packets']:.0f} during the flood\n"
             f"every packet through r1 then waits ~{p2['queue_delay_mean_ms']:.0f} ms in this queue")
    files.append(pn.queue_occupancy(
        outdir / FIGURES[2], {"r1 -> r2 (bottleneck queue)": (bott["queue_packets"][0], bott["queue_packets"][1])},
        limit=limit, delay={"r1 -> r2 (bottleneck queue)": ((bott["queue_bytes"][0], bott["queue_bytes"][1]), cap)},
        marks=marks, until_s=end_s, note=qnote,
        title=f"Bottleneck queue at r1: {p1['queue_mean_packets']:.0f} packets on average with TCP alone, "
              f"{p2['queue_mean_packets']:.0f} during the flood (limit {limit}; C5.5, C5.6)"))

    drops = {f["label"]: _binned(f["bottleneck_drops"], bin_ns) for f in r["flows"]}
    dnote = (f"TCP alone: {p1['dropped_packets']:,} of {p1['offered_packets']:,} packets dropped "
             f"({p1['drop_fraction']:.2%})\nflood: {p2['dropped_packets']:,} of {p2['offered_packets']:,} "
             f"({p2['drop_fraction']:.0%}), {p2['drop_share_by_flow'][fl_label]:.0%} of them the flood's")
    files.append(pn.drops_over_time(outdir / FIGURES[3], drops, marks=marks, colors=colors, note=dnote,
                                    title="Packets dropped at the bottleneck queue, per flow (C5.5)"))

    graph = bn.build_graph(r)
    n = r["n_tcp"]
    who = (f"TCP i: left i -> right i (i = 1..{n})\n{fl_label}: left{n + 1} -> right{n + 1}")
    for name, phase, title in ((FIGURES[4], p1, "TCP alone"), (FIGURES[5], p2, "UDP flood")):
        a, b = bn.window(r, *phase["window_s"])
        util = {ch: sum(v[a:b]) / (b - a) for ch, v in r["utilisation"].items()}
        drop_rate = {}
        for router, rec in r["routers"].items():
            arrived = sum(rec["received"][a:b])
            drop_rate[router] = sum(rec["drops"][a:b]) / arrived if arrived else 0.0
        t0, t1 = phase["window_s"]
        files.append(pn.topology(outdir / name, graph, utilisation=util, drop_rate=drop_rate, note=who,
                                 title=f"{title} ({t0:g}-{t1:g} s): link utilisation and router drop rate"))

    files.append(pn.topology_animation(
        outdir / FIGURES[6], graph, utilisation=r["utilisation"],
        router_drops={k: v["drops"] for k, v in r["routers"].items()},
        router_arrivals={k: v["received"] for k, v in r["routers"].items()},
        bin_ns=bin_ns, flows=flows, capacity_bps=cap, marks=marks, max_frames=r["frames"],
        title="Router congestion: TCP flows, then a UDP flood"))
    return files
