"""UDP overflow: a fast sender never waits for a slow reader; the receiver drops instead.

Claims (seed/CLAIMS.md):
  C5.4  UDP does not block the sender when the receiver's buffer is full: datagrams are lost.
  C7.2  A non-blocking UDP send that does not fit fails whole (EAGAIN): a datagram is all
        or nothing, never a partial send.

World: host ``sender`` sends ``count`` datagrams of ``size`` bytes at ``send_rate``
datagrams/s over a ``link_rate`` link to host ``receiver``, whose program reads one
datagram every 1/``read_rate`` s. The receive buffer (SO_RCVBUF, default 212992 bytes as
Linux) is charged per datagram by its *truesize* (2304 bytes for a 1000-byte datagram), so
it holds ~92 datagrams, not 212. Once it is full, arrivals are dropped (Linux's
RcvbufErrors) while the sender carries on at full speed.

Second part (C7.2): a non-blocking sender with the smallest send buffer (4608 bytes)
on a slow link tries a burst of sends; each one either sends the whole datagram or fails
with EAGAIN.
"""

from __future__ import annotations

from pathlib import Path

import simsock
from models.udp import nonblocking_burst, paced_sender, slow_reader

CLAIMS = ["C5.4", "C7.2"]

PARAMS = {
    "count": 3000,
    "size": 1000,
    "send_rate": 5000.0,
    "read_rate": 1000.0,
    "link_rate": "100Mbit",
    "delay": "1ms",
    "rcvbuf": 0,
    "burst_attempts": 40,
    "burst_link_rate": "1Mbit",
    "bin_ms": 20.0,
}

PARAM_HELP = {
    "count": "datagrams the fast sender sends",
    "size": "payload bytes per datagram",
    "send_rate": "datagrams per second the sender sends",
    "read_rate": "datagrams per second the reader reads",
    "link_rate": "rate of the sender-receiver link",
    "delay": "one-way propagation delay of the link",
    "rcvbuf": "SO_RCVBUF the reader asks for (0 = leave Linux's default)",
    "burst_attempts": "non-blocking sends tried in the all-or-nothing part",
    "burst_link_rate": "link rate in the all-or-nothing part (slow, so the send buffer fills)",
    "bin_ms": "width of the time bins in the rate figure (ms)",
}


def _bins(times: list[float], width: float, end: float) -> list[int]:
    n = int(end / width) + 1
    counts = [0] * n
    for t in times:
        counts[min(n - 1, int(t / width))] += 1
    return counts


def run(params: dict, seed: int) -> dict:
    p = params
    if not 12 <= p["size"] <= 65507:
        raise ValueError(f"size must be between 12 bytes (sequence number and checksum) and 65507 "
                         f"(the largest UDP payload in IPv4), got {p['size']}")
    for key in ("count", "send_rate", "read_rate", "burst_attempts", "bin_ms"):
        if p[key] <= 0:
            raise ValueError(f"{key} must be positive, got {p[key]}")
    sim = simsock.Simulation(seed=seed)
    sender = sim.add_host("sender")
    receiver = sim.add_host("receiver")
    sim.add_link(sender, receiver, rate=p["link_rate"], delay=p["delay"])
    port = 9000
    send_log: dict = {}
    read_log: dict = {}
    duration = p["count"] / p["send_rate"] + 1.0
    receiver.spawn(slow_reader, port, 1.0 / p["read_rate"], duration, read_log,
                   p["rcvbuf"] or None)
    sender.spawn(paced_sender, ("receiver", port), p["count"], p["size"], 1.0 / p["send_rate"], send_log)

    occupancy: list[list[float]] = []
    sim.run(until=0)                      # let the reader bind so we can watch its socket
    sock = read_log["socket"]
    sock.monitor = lambda now, rmem, queued: occupancy.append([now / 1e9, rmem, queued])
    sim.run(until=duration + 0.1)

    stats = sim.stats()
    mib = stats["hosts"]["receiver"]["udp"]
    drop_times = [r["t"] / 1e9 for r in sim.trace.packets("drop") if r["reason"] == "rcvbuf"]
    deliver_times = [r["t"] / 1e9 for r in sim.trace.packets("deliver") if r["where"] == "receiver"]
    width = p["bin_ms"] / 1000.0
    end = duration + 0.1

    # Part two: all or nothing.
    sim2 = simsock.Simulation(seed=seed)
    a = sim2.add_host("sender")
    b = sim2.add_host("receiver")
    sim2.add_link(a, b, rate=p["burst_link_rate"], delay=p["delay"])
    burst_log: dict = {}
    a.spawn(nonblocking_burst, ("receiver", port), p["burst_attempts"], p["size"], burst_log, 2304)
    sim2.run(until=1.0)

    sent = len(send_log["send_returned"])
    read = len(read_log["recv_seqs"])
    link = stats["links"]["sender-receiver"]["sender->receiver"]
    arrived = mib["InDatagrams"] + mib["RcvbufErrors"]
    return {
        "link_drops": link["drops_queue"] + link["drops_loss"],
        "link_accepted": link["tx_packets"],
        # accepted by the link (its queue or on the wire) and not yet arrived
        "in_flight": link["tx_packets"] - arrived,
        "link_rate_bps": simsock.units.parse_rate(p["link_rate"]) if isinstance(p["link_rate"], str)
        else p["link_rate"],
        "offered_bps": p["send_rate"] * (p["size"] + 28) * 8,
        "sent": sent,
        "sent_bytes_returned": send_log["send_returned"],
        "send_call_ns_max": max(send_log["send_call_ns"]),
        "send_duration_s": send_log["send_times"][-1] - send_log["send_times"][0],
        "delivered_to_socket": mib["InDatagrams"],
        "read_by_app": read,
        "dropped_rcvbuf": mib["RcvbufErrors"],
        "still_queued": sock.queued_datagrams,
        "recv_seqs": read_log["recv_seqs"],
        "recv_all_intact": all(read_log["recv_intact"]),
        "rcvbuf": sock.rcvbuf,
        "truesize": sim.profile.udp_truesize(p["size"]),
        "max_rmem": max((o[1] for o in occupancy), default=0),
        "max_queued": max((o[2] for o in occupancy), default=0),
        "occupancy": occupancy,
        "bin_s": width,
        "sent_per_bin": _bins(send_log["send_times"], width, end),
        "delivered_per_bin": _bins(deliver_times, width, end),
        "read_per_bin": _bins(read_log["recv_times"], width, end),
        "dropped_per_bin": _bins(drop_times, width, end),
        "burst_outcomes": burst_log["outcomes"],
        "size": p["size"],
    }


def check(result: dict) -> list:
    from simsock.claims import Checks
    c = Checks()
    r = result
    if r["send_call_ns_max"] > 0 and r["link_rate_bps"] < r["offered_bps"]:
        c.not_measured("C5.4", f"the sender waited up to {r['send_call_ns_max'] / 1e6:,.1f} ms in sendto on its "
                               f"OWN send buffer: the {r['link_rate_bps'] / 1e6:g} Mbit/s link is slower than the "
                               f"{r['offered_bps'] / 1e6:g} Mbit/s offered (Linux blocks a UDP sendto while "
                               f"sk_wmem_alloc >= SO_SNDBUF); whether the receiver can hold it back is not "
                               f"measured then; make link_rate faster than the offered load")
    else:
        c.at_most("C5.4", "longest sendto call", r["send_call_ns_max"], 0, unit="ns",
                  note="a UDP sender never waits for the receiver")
    short = sum(1 for n in r["sent_bytes_returned"] if n != r["size"])
    c.equal("C5.4", "sendto calls that returned less than the datagram", short, 0)
    if r["dropped_rcvbuf"] == 0 and r["max_rmem"] + r["truesize"] <= r["rcvbuf"]:
        c.not_measured("C5.4", f"the receive buffer never filled (largest charge {r['max_rmem']:,} of "
                               f"{r['rcvbuf']:,} B; {r['read_by_app']:,} read of {r['sent']:,} sent, "
                               f"{r['in_flight']:,} in flight): nothing had to be dropped; make read_rate "
                               f"lower than send_rate and the link fast enough to fill the buffer")
    else:
        c.at_least("C5.4", "datagrams dropped at the full receive buffer", r["dropped_rcvbuf"], 1,
                   note=f"{r['read_by_app']:,} read of {r['sent']:,} sent")
    accounted = (r["read_by_app"] + r["dropped_rcvbuf"] + r["still_queued"] + r["in_flight"]
                 + r["link_drops"])
    c.equal("C5.4", "sent - (read + dropped + queued + in flight on the link)", r["sent"] - accounted, 0,
            note=f"every datagram is accounted for ({r['in_flight']} still in flight at the end)")
    seqs = r["recv_seqs"]
    c.fact("C5.4", all(b > a for a, b in zip(seqs, seqs[1:])) and r["recv_all_intact"],
           "datagrams read are an intact, in-order subsequence of those sent")
    c.at_most("C5.4", "largest receive-buffer charge", r["max_rmem"], r["rcvbuf"], unit="B")
    outcomes = r["burst_outcomes"]
    partial = [o for o in outcomes if o != "EAGAIN" and o != r["size"]]
    if "EAGAIN" not in outcomes:
        c.not_measured("C7.2", "the non-blocking burst never filled the send buffer (no EAGAIN); raise "
                               "burst_attempts or lower burst_link_rate")
    else:
        c.fact("C7.2", not partial and r["size"] in outcomes,
               f"{outcomes.count(r['size'])} whole datagrams, {outcomes.count('EAGAIN')} EAGAIN, "
               f"{len(partial)} partial", {"partial_udp_sends": len(partial)}, "== 0 partial")
    return c.list


def plot(result: dict, outdir: Path) -> list[Path]:
    from simsock import plot as plotting

    r = result
    n = plotting.number
    files = []
    width = r["bin_s"]
    times = [i * width for i in range(len(r["sent_per_bin"]))]

    def cumulative(values):
        out, total = [], 0
        for v in values:
            total += v
            out.append(total)
        return out

    waited_ms = r["send_call_ns_max"] / 1e6
    if r["dropped_rcvbuf"]:
        title = f"UDP: a fast sender and a slow reader: {n(r['dropped_rcvbuf'])} datagrams dropped (C5.4)"
    else:
        title = "UDP: a fast sender and a slow reader: nothing dropped (C5.4 not shown)"
    fig, ax = plotting.figure(title, "time (s)", "datagrams (cumulative, count)")
    plotting.step_plot(ax, times, cumulative(r["sent_per_bin"]), "sent (sendto returned)")
    plotting.step_plot(ax, times, cumulative(r["delivered_per_bin"]), "accepted into the receive buffer")
    plotting.step_plot(ax, times, cumulative(r["read_per_bin"]), "read by the application")
    plotting.step_plot(ax, times, cumulative(r["dropped_per_bin"]), "dropped: receive buffer full",
                       color="tab:red")
    sender = ("the sender never waited (longest sendto: 0 ms)" if waited_ms == 0 else
              f"a sendto waited up to {waited_ms:,.1f} ms (on the sender's own send buffer)")
    plotting.annotate_claim(ax, f"{sender}\n{n(r['dropped_rcvbuf'])} of {n(r['sent'])} datagrams dropped at the "
                                f"receiver, {n(r['in_flight'])} still in flight at the end")
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "udp_overflow_counts.png"))

    fig, ax = plotting.figure("Receive buffer of the slow reader (charged per datagram, not per byte)",
                              "time (s)", "bytes charged to the receive buffer (B)")
    occ = r["occupancy"]
    if occ:
        plotting.step_plot(ax, [o[0] for o in occ], [o[1] for o in occ], "memory charged (sk_rmem_alloc)")
    ax.axhline(r["rcvbuf"], color="tab:red", linestyle="--", label=f"SO_RCVBUF = {n(r['rcvbuf'])} B")
    plotting.annotate_claim(ax, f"{n(r['size'])}-byte datagrams cost {n(r['truesize'])} B each: the buffer held "
                                f"at most {n(r['max_queued'])} datagrams,\nnot the {n(r['rcvbuf'] // r['size'])} "
                                f"that SO_RCVBUF / payload suggests")
    ax.set_ylim(0, r["rcvbuf"] * 1.15)
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "udp_overflow_buffer.png"))

    outcomes = r["burst_outcomes"]
    partial = [o for o in outcomes if o != "EAGAIN" and o != r["size"]]
    verdict = "all or nothing" if not partial else f"{len(partial)} partial sends"
    if "EAGAIN" not in outcomes:
        verdict = "the send buffer never filled"
    fig, ax = plotting.figure(f"Non-blocking UDP sends into a filling send buffer: {verdict} (C7.2)",
                              "attempt (call number)", "bytes sent by the call (B)")
    xs = list(range(1, len(outcomes) + 1))
    ok = [(i, o) for i, o in zip(xs, outcomes) if o != "EAGAIN"]
    fails = [i for i, o in zip(xs, outcomes) if o == "EAGAIN"]
    ax.bar([i for i, _ in ok], [o for _, o in ok], color="tab:green", label="whole datagram sent")
    ax.scatter(fails, [0] * len(fails), marker="x", color="tab:red", zorder=3, label="EAGAIN (nothing sent)")
    ax.set_ylim(0, r["size"] * 1.3)
    plotting.legend_below(ax, ncol=2)
    files.append(plotting.save(fig, outdir / "udp_overflow_all_or_nothing.png"))
    return files
