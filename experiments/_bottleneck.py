"""Shared by ``router_congestion`` and ``qdisc_compare``: TCP flows, and optionally a UDP
flood, through the bottleneck of a dumbbell, recorded per time bin. (A private module: the
runner skips names starting with ``_``.)

World (:func:`models.topologies.dumbbell`): ``left1..leftN+1`` — ``r1`` ==bottleneck==
``r2`` — ``right1..rightN+1``. TCP flow *i* sends from ``left{i}`` to ``right{i}`` with
blocking ``send`` calls of an endless stream (CUBIC, the default); its reader reads as fast
as data arrives. The flood, if any, is a paced UDP sender from ``left{N+1}`` to a reader on
``right{N+1}``, starting at ``flood_start``. Everything that crosses the bottleneck goes
left to right through ``r1``'s output port ``"r1->r2"``, the only queue that can build.

The network monitor (``sim.monitor``) records everything per bin in one run: the
bottleneck's queue, busy time, packets offered and dropped (by reason and by flow), each
router's arriving and dropped packets, each flow's delivered bytes and packets. Bins cover
``[k bin, (k + 1) bin)``; the run ends at the end of the last bin. Goodput (bytes the
readers read) is binned from the readers' logs of their ``recv`` calls.

Everything returned is JSON-able, so ``check`` and ``plot`` work from ``result.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import simsock
from simsock import progress
from models.tcp import blocking_sender, slow_reader
from models.topologies import dumbbell
from models.udp import paced_sender
from models.udp import slow_reader as udp_reader
from simsock.net.packet import IP_HEADER, UDP_HEADER
from simsock.units import NS_PER_S, parse_rate, parse_time

BOTTLENECK = "r1->r2"
TCP_PORT = 5001
UDP_PORT = 9000
ENDLESS = 10**12          # bytes a TCP sender offers: more than any run can carry


def tcp_label(i: int) -> str:
    return f"TCP {i}"


FLOOD = "UDP flood"
TCP_FLOOD = "TCP bulk flow"     # the same sender over TCP (flood_proto="tcp"): the control case


def run_dumbbell(seed: int, *, n_tcp: int, duration: float, bin_ms: float, bottleneck_rate: str,
                 bottleneck_delay: str, access_rate: str, access_delay: str, queue: int | None = None,
                 qdisc: Callable[[], simsock.Qdisc] | None = None, flood_factor: float = 0.0,
                 flood_start: float = 0.0, datagram: int = 1472, flood_proto: str = "udp") -> dict:
    """Run the world described in the module docstring; return its per-bin record."""
    if isinstance(n_tcp, bool) or not isinstance(n_tcp, int) or n_tcp < 1:
        raise ValueError(f"n_tcp must be an int >= 1, got {n_tcp!r}")
    if not duration > 0:
        raise ValueError(f"duration must be positive (seconds), got {duration!r}")
    if flood_proto not in ("udp", "tcp"):
        raise ValueError(f"flood_proto must be 'udp' or 'tcp', got {flood_proto!r}")
    flood_label = FLOOD if flood_proto == "udp" else TCP_FLOOD
    if flood_factor < 0:
        raise ValueError(f"flood_factor must be >= 0 (0: no flood), got {flood_factor!r}")
    if flood_factor and not 0 <= flood_start < duration:
        raise ValueError(f"flood_start must be within the run [0, {duration}) s, got {flood_start!r}")
    if not 12 <= datagram <= 1472:
        raise ValueError(f"datagram must be 12..1472 bytes (one unfragmented 1500-byte packet at most), "
                         f"got {datagram!r}")
    bin_ns = parse_time(f"{bin_ms}ms", what="bin_ms")
    if bin_ns <= 0:
        raise ValueError(f"bin_ms must be positive, got {bin_ms!r}")
    duration_ns = parse_time(duration, what="duration")
    n_bins = -(-duration_ns // bin_ns)
    rate_bps = parse_rate(bottleneck_rate, what="bottleneck_rate")

    n_hosts = n_tcp + (1 if flood_factor else 0)
    # Nothing here reads the trace: the monitor and the programs' logs hold the record.
    sim, left, right, (r1, r2) = dumbbell(None, n_hosts, n_hosts, access_rate=access_rate,
                                          access_delay=access_delay, bottleneck_rate=bottleneck_rate,
                                          bottleneck_delay=bottleneck_delay, qdisc=qdisc, queue=queue,
                                          seed=seed, trace=False)
    mon = sim.monitor(bin=f"{bin_ns}ns")
    send_logs, read_logs = [], []
    for i in range(n_tcp):
        slog, rlog = {}, {}
        right[i].spawn(slow_reader, TCP_PORT, 1 << 16, 0.0, rlog)
        left[i].spawn(blocking_sender, (right[i].name, TCP_PORT), ENDLESS, 1 << 16, slog)
        send_logs.append(slog)
        read_logs.append(rlog)
    flood_log: dict = {}
    reader_log: dict = {}
    flood_pps = 0.0
    if flood_factor:
        packet = datagram + UDP_HEADER + IP_HEADER
        flood_pps = flood_factor * rate_bps / (8 * packet)
        count = math.floor((duration - flood_start) * flood_pps)

        if flood_proto == "udp":
            async def flood(k):
                await k.sleep(flood_start)
                await paced_sender(k, (right[n_tcp].name, UDP_PORT), count, datagram, 1.0 / flood_pps, flood_log)

            right[n_tcp].spawn(udp_reader, UDP_PORT, 0.0, duration + 1.0, reader_log)
        else:
            async def flood(k):             # as much as TCP lets it send: one more bulk flow
                await k.sleep(flood_start)
                await blocking_sender(k, (right[n_tcp].name, TCP_PORT), ENDLESS, 1 << 16, flood_log)

            right[n_tcp].spawn(slow_reader, TCP_PORT, 1 << 16, 0.0, {})
        left[n_tcp].spawn(flood)

    # Which monitor flow is which: (proto, src address, dst address) -> label.
    labels = {("tcp", left[i].address, right[i].address): tcp_label(i + 1) for i in range(n_tcp)}
    if flood_factor:
        labels[(flood_proto, left[n_tcp].address, right[n_tcp].address)] = flood_label
    order = [tcp_label(i + 1) for i in range(n_tcp)] + ([flood_label] if flood_factor else [])
    routers = [r1, r2]
    bottleneck = next(link.forward for link in sim.links if link.forward.name == BOTTLENECK)
    end_ns = n_bins * bin_ns
    progress.run(sim, f"{end_ns - 1}ns", "simulated time")        # to the end of the last bin

    def bins(counter) -> list[int]:
        return counter.to_lists(end_ns)[1][:n_bins]

    def add_into(total: list[int], counter) -> None:
        for j, v in enumerate(bins(counter)):
            total[j] += v

    ch = mon.channel(BOTTLENECK)
    flows = []
    for label in order:
        delivered, packets, drops = [0] * n_bins, [0] * n_bins, [0] * n_bins
        for f in mon.flows.values():
            if labels.get((f.proto, f.src, f.dst)) == label:
                add_into(delivered, f.delivered_bytes)
                add_into(packets, f.delivered_packet_bins)
                if f.key in ch.drop_bins_by_flow:
                    add_into(drops, ch.drop_bins_by_flow[f.key])
        flows.append({
            "label": label,
            "kind": "flood" if label in (FLOOD, TCP_FLOOD) else "tcp",
            "delivered": delivered,
            "delivered_packets": packets,
            "bottleneck_drops": drops,
        })
    for i, rlog in enumerate(read_logs):
        read = [0] * n_bins
        for t, n in rlog.get("reads", []):
            j = round(t * NS_PER_S) // bin_ns
            if j < n_bins:
                read[j] += n
        flows[i]["read"] = read
        conn = send_logs[i]["socket"].conn
        st = conn.stats() if conn is not None else {}
        flows[i]["tcp"] = {key: st.get(key) for key in ("retransmits", "rto_count", "fast_retransmits",
                                                         "recoveries", "sack", "cwnd", "ssthresh", "srtt",
                                                         "rto", "rwnd_limited_ns", "sndbuf", "rcvbuf", "mss")}
    flood = None
    if flood_factor and flood_proto == "tcp":
        calls = flood_log.get("calls", [])
        flood = {
            "proto": "tcp", "label": flood_label,
            "configured_pps": flood_pps,
            "configured_bps": flood_pps * 8 * (datagram + UDP_HEADER + IP_HEADER),
            "sent": len(calls),
            "first_send": calls[0][0] if calls else None,
            "last_send": calls[-1][1] if calls else None,
            "max_call_ns": round(max((c[1] - c[0] for c in calls), default=0.0) * NS_PER_S),
            "short_sends": 0,
            "datagram": datagram,
        }
    elif flood_factor:
        times = flood_log.get("send_times", [])
        flood = {
            "proto": "udp", "label": flood_label,
            "configured_pps": flood_pps,
            "configured_bps": flood_pps * 8 * (datagram + UDP_HEADER + IP_HEADER),
            "sent": len(times),
            "first_send": times[0] if times else None,
            "last_send": times[-1] if times else None,
            "max_call_ns": max(flood_log.get("send_call_ns", [0]) or [0]),
            # one-way delay of each datagram that arrived: [send time s, delay ms], in send order
            "delays": [[round(times[q], 9), round((t - times[q]) * 1000, 6)]
                       for q, t in sorted(zip(reader_log.get("recv_seqs", []), reader_log.get("recv_times", [])))
                       if 0 <= q < len(times)],
            "short_sends": sum(1 for n in flood_log.get("send_returned", []) if n != datagram),
            "datagram": datagram,
        }
    graph = {"nodes": [[n, sim.graph.nodes[n]["kind"]] for n in sim.graph.nodes],
             "edges": [[u, v] for u, v in sim.graph.edges]}
    qp, qb = ch.queue_packets.to_lists(), ch.queue_bytes.to_lists()
    return {
        "bin_ns": bin_ns,
        "n_bins": n_bins,
        "duration_ns": duration_ns,
        "bottleneck": {
            "name": BOTTLENECK,
            "rate_bps": rate_bps,
            "limit_packets": _limit(bottleneck),
            "queue_packets": [qp[0], qp[1]],
            "queue_bytes": [qb[0], qb[1]],
            "utilisation": ch.utilisation(end_ns)[:n_bins],
            "offered": bins(ch.offered_packets),
            "drops": bins(ch.drops),
            "drops_by_reason": {r: bins(ch.drop_bins_by_reason[r]) for r in sorted(ch.drop_bins_by_reason)},
        },
        "utilisation": {name: [round(u, 6) for u in c.utilisation(end_ns)[:n_bins]]
                        for name, c in mon.channels.items()},
        "routers": {r.name: {"received": mon.arrivals(r, end_ns), "drops": mon.drops_at(r, end_ns)}
                    for r in routers},
        "flows": flows,
        "flood": flood,
        "graph": graph,
    }


def _limit(channel) -> int | None:
    q = channel.qdisc
    if q is None:
        return channel.queue_packets
    for attr in ("limit_packets", "limit"):
        v = getattr(q, attr, None)
        if isinstance(v, int):
            return v
    return None


# ---------------------------------------------------------------------------------------------
# Measures (pure functions of the record above)


def window(record: dict, t0: float, t1: float) -> tuple[int, int]:
    """Bin indices [a, b) covering [t0, t1) seconds."""
    bin_ns = record["bin_ns"]
    a = max(0, round(t0 * NS_PER_S / bin_ns))
    b = min(record["n_bins"], round(t1 * NS_PER_S / bin_ns))
    if b <= a:
        raise ValueError(f"the window [{t0}, {t1}) s holds no whole {bin_ns / 1e6:g} ms bin")
    return a, b


def rate_bps(values: Sequence[float], a: int, b: int, bin_ns: int) -> float:
    """Bytes per bin over bins [a, b) -> bits per second."""
    return 8 * sum(values[a:b]) * NS_PER_S / ((b - a) * bin_ns)


def jain(xs: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one takes all.
    Computed on x / max(x) (the index does not depend on scale), so that squares of tiny
    values do not underflow to subnormals and push it above 1."""
    xs = list(xs)
    top = max(xs, default=0)
    if top > 0:
        xs = [x / top for x in xs]
    square_sum = sum(x * x for x in xs)
    return (sum(xs) ** 2) / (len(xs) * square_sum) if square_sum else 1.0


def step_stats(times: Sequence[int], values: Sequence[float], t0: int, t1: int) -> dict:
    """Time-weighted statistics of a step function over [t0, t1): mean, max and the
    quantiles 0, 1, ..., 100 % (the value held for that fraction of the time or less)."""
    if not times or times[0] > t0:
        raise ValueError("the series has no value at the start of the window")
    pieces: list[tuple[float, int]] = []   # (value, duration)
    i = max(0, _bisect_right(times, t0) - 1)
    start, value = t0, values[i]
    i += 1
    while i < len(times) and times[i] < t1:
        if times[i] > start:
            pieces.append((value, times[i] - start))
        start, value = max(start, times[i]), values[i]
        i += 1
    pieces.append((value, t1 - start))
    total = t1 - t0
    mean = sum(v * d for v, d in pieces) / total
    pieces.sort()
    quantiles = []
    acc, j = 0, 0
    for q in range(101):
        need = q / 100 * total
        while j < len(pieces) - 1 and acc + pieces[j][1] < need:
            acc += pieces[j][1]
            j += 1
        quantiles.append(pieces[j][0])
    return {"mean": mean, "max": max(v for v, _ in pieces), "quantiles": quantiles}


def window_minima(times: Sequence[int], values: Sequence[float], t0: int, t1: int, width: int) -> list[float]:
    """The smallest value the step function takes in each window [t0 + k w, t0 + (k+1) w)."""
    out = []
    i = max(0, _bisect_right(times, t0) - 1)
    start = t0
    while start + width <= t1:
        end = start + width
        while i + 1 < len(times) and times[i + 1] <= start:
            i += 1
        j, low = i, values[i]
        while j + 1 < len(times) and times[j + 1] < end:
            j += 1
            low = min(low, values[j])
        out.append(low)
        start = end
    return out


def _bisect_right(times: Sequence[int], t: int) -> int:
    lo, hi = 0, len(times)
    while lo < hi:
        mid = (lo + hi) // 2
        if t < times[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def build_graph(record: dict):
    """The topology as a networkx Graph (node attribute ``kind``), from the record."""
    import networkx as nx

    g = nx.Graph()
    for name, kind in record["graph"]["nodes"]:
        g.add_node(name, kind=kind)
    g.add_edges_from(tuple(e) for e in record["graph"]["edges"])
    return g
