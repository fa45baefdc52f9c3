"""Network monitors: what every queue, link and flow did over time, stored compactly.

``mon = sim.monitor(bin="10ms")`` (before ``sim.run``) records from then on:

- per channel (each direction of every link, so every router output port), keyed by the
  channel's name ``"a->b"``: queue occupancy in packets and bytes as
  :class:`~simsock.timeseries.StepSeries` recorded at every change (packets waiting, not the
  one on the wire); ``tx_bytes``, a :class:`~simsock.timeseries.BinnedCounter` of bytes whose
  transmission ended in each bin; ``busy_ns``, the time the wire was busy in each bin (a
  transmission that spans a bin boundary is split exactly, so utilisation never exceeds 1);
  ``offered_packets`` / ``offered_bytes`` per bin: packets handed to the channel (queued or
  refused by its queue), so ``drops / offered`` is the bin's drop rate
  (:meth:`ChannelMonitor.drop_rate`); ``arrived_packets`` per bin: packets that reached the
  far end; ``drops`` per bin, also per bin by reason (``drop_bins_by_reason``) and by flow
  (``drop_bins_by_flow``), with totals in ``drops_by_reason`` / ``drops_by_flow``;
- per flow — the five-tuple as a string, ``"udp 10.0.0.1:40000->10.0.0.3:9000"`` —
  ``delivered_bytes`` and ``delivered_packet_bins`` per bin: transport payload bytes (and
  packets) the destination host's IP layer accepted (a UDP datagram's data, a fragment's
  share of it, a TCP segment's payload, retransmissions included); and its drops per bin
  (``drop_bins``, total ``drops``), by reason, wherever they happened;
- drops at nodes rather than queues (a router without a route, a receive buffer that is
  full, a port nobody listens on): counts by node and reason, and per bin by node
  (``node_drop_bins``). :meth:`NetworkMonitor.arrivals` and :meth:`NetworkMonitor.drops_at`
  give a node's arriving and dropped packets per bin (a router's drop rate over time).

A bin's counts cover exactly ``[k bin, (k + 1) bin)``: an event at a bin's boundary counts
in the later bin. Flows appear in ``mon.flows`` in order of their first delivered or
dropped packet. All series are ``array``-backed: a few bytes per change or per bin, never
an object per sample. With no monitor the simulator pays one ``is None`` check per packet
per hook.

Units and bins. Inside, every time is integer nanoseconds (``bin_ns``, ``start_ns``, the
``until`` arguments, the times of a ``StepSeries``); what the methods compute is per second
or a fraction: ``throughput_bps()`` in bit/s, ``utilisation()`` and ``drop_rate()`` as
0..1 per bin, ``bin_times_s()`` and ``bin_s`` in seconds. Every per-bin series of one
monitor has the same bins: from time 0 to now (or to the ``until`` given), so the UDP and
TCP flows, the links and the routers of one run line up bin for bin with ``bin_times_s()``
(a raw ``BinnedCounter``'s ``.bins`` array stops at the last bin it touched).

Reading one (``mon = sim.monitor(bin="10ms")``, after ``sim.run``)::

    list(mon.flows)                              # flow keys, "udp 10.0.0.1:40000->10.0.0.3:9000"
    mon.flow(key).throughput_bps()               # bit/s per bin
    mon.channel("r1->r2").queue_packets          # StepSeries: .to_lists() -> (times_ns, packets)
    mon.channel("r1->r2").utilisation()          # 0..1 per bin
    mon.bin_times_s()                            # each bin's start, s
    mon.summary()                                # JSON-able totals
    mon.to_csv("out/")  /  mon.to_dataframe("flows")   # the tables (pandas if installed)

``to_csv`` and ``summary`` give deterministic output. Pictures of a monitor:
:mod:`simsock.plot.net`.
"""

from __future__ import annotations

import os
from pathlib import Path

from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, UDP_HEADER
from simsock.timeseries import BinnedCounter, StepSeries, to_csv
from simsock.units import NS_PER_S

__all__ = ["NetworkMonitor", "ChannelMonitor", "FlowMonitor", "flow_key"]

_PROTO_NAMES = {PROTO_UDP: "udp", PROTO_TCP: "tcp", PROTO_ICMP: "icmp"}


def flow_key(proto: int, src: str, sport: int, dst: str, dport: int) -> str:
    """``"udp 10.0.0.1:40000->10.0.0.3:9000"``: how monitors name a flow."""
    return f"{_PROTO_NAMES.get(proto, str(proto))} {src}:{sport}->{dst}:{dport}"


def _payload_bytes(pkt) -> int:
    """Transport payload carried by ``pkt`` (0 for ICMP and bare TCP control segments)."""
    p = pkt.payload
    data = getattr(p, "data", None)
    if data is not None:                     # UDP datagram
        return len(data)
    if pkt.proto == PROTO_TCP:
        return len(p.payload)
    count = getattr(p, "count", None)
    if count is not None:                    # an IP fragment of a UDP datagram
        return p.length - (UDP_HEADER if p.index == 0 else 0)
    return 0


def _until(clock, until: int | None) -> int | None:
    """``until`` ns, or the monitor's now when it is None (a bare counter has no clock)."""
    if until is None and clock is not None:
        return clock()
    return until


class ChannelMonitor:
    """What one channel (one direction of a link) did. See the module docstring."""

    __slots__ = ("name", "rate_bps", "queue_packets", "queue_bytes", "tx_bytes", "tx_packets", "busy_ns",
                 "offered_packets", "offered_bytes", "arrived_packets", "drops", "drops_by_reason",
                 "drops_by_flow", "drop_bins_by_reason", "drop_bins_by_flow", "_bin", "_clock")

    def __init__(self, name: str, rate_bps: int, bin_ns: int, clock=None):
        self.name = name
        self.rate_bps = rate_bps
        self.queue_packets = StepSeries("q", f"{name} queue packets")
        self.queue_bytes = StepSeries("q", f"{name} queue bytes")
        self.tx_bytes = BinnedCounter(bin_ns, "q", f"{name} tx bytes")
        self.tx_packets = 0
        self.busy_ns = BinnedCounter(bin_ns, "q", f"{name} busy ns")
        self.offered_packets = BinnedCounter(bin_ns, "q", f"{name} offered packets")
        self.offered_bytes = BinnedCounter(bin_ns, "q", f"{name} offered bytes")
        self.arrived_packets = BinnedCounter(bin_ns, "q", f"{name} arrived packets")
        self.drops = BinnedCounter(bin_ns, "q", f"{name} drops")
        self.drops_by_reason: dict[str, int] = {}
        self.drops_by_flow: dict[str, int] = {}
        self.drop_bins_by_reason: dict[str, BinnedCounter] = {}
        self.drop_bins_by_flow: dict[str, BinnedCounter] = {}
        self._bin = bin_ns
        self._clock = clock         # () -> now in ns: the default end of every series

    def __call__(self, now: int, packets: int, nbytes: int) -> None:
        """The queue holds ``packets`` packets of ``nbytes`` bytes from ``now`` on."""
        self.queue_packets.record(now, packets)
        self.queue_bytes.record(now, nbytes)

    def offer(self, now: int, size: int) -> None:
        """A packet of ``size`` bytes is handed to the channel (before its queue accepts or
        refuses it). The channel counts the common case itself (see :meth:`offered_bins`);
        this is the slow path, when ``now`` is past the last bin so far (every packet of a
        channel used less than once a bin, so it grows the arrays itself, without calls)."""
        i = now // self._bin
        for counter, amount in ((self.offered_packets, 1), (self.offered_bytes, size)):
            bins = counter.bins
            if i >= len(bins):
                bins.frombytes(bytes(8 * (i + 1 - len(bins))))
            bins[i] += amount

    def arrived(self, now: int) -> None:
        """A packet sent on this channel reached the far end at ``now`` (slow path, as
        :meth:`offer`)."""
        i = now // self._bin
        bins = self.arrived_packets.bins
        if i >= len(bins):
            bins.frombytes(bytes(8 * (i + 1 - len(bins))))
        bins[i] += 1

    def offered_bins(self) -> tuple:
        """``(bin_ns, offered packets, offered bytes, arrived packets)``: the arrays a channel
        adds to in place on its hot path (a call per packet would cost more than the count)."""
        return self._bin, self.offered_packets.bins, self.offered_bytes.bins, self.arrived_packets.bins

    def transmit(self, start: int, end: int, size: int) -> None:
        """A packet of ``size`` bytes is on the wire during ``[start, end)``."""
        self.tx_packets += 1
        b = self._bin
        busy = self.busy_ns
        first = start // b
        last = (end - 1) // b if end > start else first
        if first == last:
            # the common case, BinnedCounter.add inlined: within one bin that exists already
            tx, busy_bins = self.tx_bytes.bins, busy.bins
            if last < len(tx) and last < len(busy_bins) and end // b == last:
                tx[last] += size
                busy_bins[last] += end - start
                return
            self.tx_bytes.add(end, size)
            busy.add(start, end - start)
            return
        self.tx_bytes.add(end, size)
        busy.add(start, (first + 1) * b - start)
        for i in range(first + 1, last):
            busy.add(i * b, b)
        busy.add(last * b, end - last * b)

    def _dropped(self, now: int, reason: str, flow: str) -> None:
        self.drops.add(now, 1)
        self.drops_by_reason[reason] = self.drops_by_reason.get(reason, 0) + 1
        self.drops_by_flow[flow] = self.drops_by_flow.get(flow, 0) + 1
        for bins, key in ((self.drop_bins_by_reason, reason), (self.drop_bins_by_flow, flow)):
            counter = bins.get(key)
            if counter is None:
                counter = bins[key] = BinnedCounter(self._bin, "q", f"{self.name} drops {key}")
            counter.add(now, 1)

    def utilisation(self, until: int | None = None) -> list[float]:
        """Fraction of each bin the wire was busy (0..1), bins from time 0 to ``until`` ns
        (default: now, so that every series of one monitor has the same bins)."""
        return [v / self._bin for v in self.busy_ns._padded(_until(self._clock, until))]

    def drop_rate(self, until: int | None = None) -> list[float]:
        """Per bin, the fraction of the packets offered to the channel that it dropped (its
        queue, or the wire's loss model); 0.0 for a bin in which nothing was offered. A
        packet counts in the bin it was offered in, its drop in the bin it was dropped in:
        the same bin for drop-tail refusals, RED's drops and losses on a FIFO channel; a
        queue discipline that drops at dequeue (CoDel) can drop in a later bin, so one
        bin's rate may then exceed 1 (rates over several bins are exact)."""
        until = _until(self._clock, until)
        drops = self.drops._padded(until)
        offered = self.offered_packets._padded(until)
        n = max(len(drops), len(offered))
        drops.extend([0] * (n - len(drops)))
        offered.extend([0] * (n - len(offered)))
        return [d / o if o else 0.0 for d, o in zip(drops, offered)]

    def summary(self, until: int) -> dict:
        busy = self.busy_ns.total()
        offered = self.offered_packets.total()
        drops = self.drops.total()
        return {
            "rate_bps": self.rate_bps,
            "offered_packets": offered,
            "offered_bytes": self.offered_bytes.total(),
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes.total(),
            "arrived_packets": self.arrived_packets.total(),
            "utilisation": round(min(busy, until) / until, 6) if until else 0.0,
            "queue_max_packets": self.queue_packets.max() if len(self.queue_packets) else 0,
            "queue_max_bytes": self.queue_bytes.max() if len(self.queue_bytes) else 0,
            "drops": drops,
            "drop_fraction": round(drops / offered, 6) if offered else 0.0,
            "drops_by_reason": dict(sorted(self.drops_by_reason.items())),
            "drops_by_flow": dict(self.drops_by_flow),
        }

    def __repr__(self) -> str:
        return f"ChannelMonitor({self.name!r})"


class FlowMonitor:
    """What one flow (a five-tuple) got: payload bytes and packets delivered per bin, drops
    per bin and by reason."""

    __slots__ = ("key", "proto", "src", "sport", "dst", "dport", "delivered_bytes", "delivered_packets",
                 "delivered_packet_bins", "drops", "drop_bins", "drops_by_reason", "_clock")

    def __init__(self, proto: int, src: str, sport: int, dst: str, dport: int, bin_ns: int, clock=None):
        self.key = flow_key(proto, src, sport, dst, dport)
        self.proto = _PROTO_NAMES.get(proto, str(proto))
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.delivered_bytes = BinnedCounter(bin_ns, "q", f"{self.key} delivered bytes")
        self.delivered_packets = 0
        self.delivered_packet_bins = BinnedCounter(bin_ns, "q", f"{self.key} delivered packets")
        self.drops = 0
        self.drop_bins = BinnedCounter(bin_ns, "q", f"{self.key} drops")
        self.drops_by_reason: dict[str, int] = {}
        self._clock = clock

    def throughput_bps(self, until: int | None = None) -> list[float]:
        """Delivered payload throughput per bin, bits per second, bins from time 0 to
        ``until`` ns (default: now, the same bins as every other series of the monitor)."""
        return [8 * r for r in self.delivered_bytes.rates_per_s(_until(self._clock, until))]

    def summary(self, start: int, until: int) -> dict:
        total = self.delivered_bytes.total()
        span = until - start
        return {
            "delivered_bytes": total,
            "delivered_packets": self.delivered_packets,
            "mean_throughput_bps": round(8 * total * NS_PER_S / span, 3) if span > 0 else 0.0,
            "drops": self.drops,
            "drops_by_reason": dict(sorted(self.drops_by_reason.items())),
        }

    def __repr__(self) -> str:
        return f"FlowMonitor({self.key!r})"


class NetworkMonitor:
    """Every channel's queue and wire, every flow's deliveries and drops. Made by
    :meth:`simsock.Simulation.monitor`; see the module docstring."""

    def __init__(self, sim, bin_ns: int):
        self.sim = sim
        self.bin_ns = bin_ns
        self.start_ns = sim.env.now
        self.channels: dict[str, ChannelMonitor] = {}
        self.flows: dict[str, FlowMonitor] = {}
        self.node_drops: dict[str, dict[str, int]] = {}
        self.node_drop_bins: dict[str, BinnedCounter] = {}
        self._by_tuple: dict[tuple, FlowMonitor] = {}
        self._watched: list = []

    def _now(self) -> int:
        return self.sim.env.now

    @property
    def bin_s(self) -> float:
        """The bin width in seconds."""
        return self.bin_ns / NS_PER_S

    def bin_times_s(self, until: int | None = None) -> list[float]:
        """Start of each bin in seconds, from time 0 to ``until`` ns (default now): the x
        values of every per-bin series of this monitor (they all have this many bins)."""
        n = -(-_until(self._now, until) // self.bin_ns)
        return [i * self.bin_ns / NS_PER_S for i in range(n)]

    # -- wiring (called by the simulation) --------------------------------------------------
    def attach(self, channel) -> None:
        """Start watching ``channel`` (every link direction; loopback is not watched)."""
        if channel.rate_bps is None or channel.name in self.channels:
            return
        mon = ChannelMonitor(channel.name, channel.rate_bps, self.bin_ns, self._now)
        self.channels[channel.name] = mon
        self._watched.append(channel)
        now = self.sim.env.now
        mon(now, channel.queued_packets(now), channel.queued_bytes())
        channel._mon_bins = mon.offered_bins()
        channel.monitor = mon

    def _flow(self, pkt) -> FlowMonitor:
        p = pkt.payload
        t = (pkt.proto, pkt.src, getattr(p, "sport", 0), pkt.dst, getattr(p, "dport", 0))
        flow = self._by_tuple.get(t)
        if flow is None:
            flow = self._by_tuple[t] = FlowMonitor(*t, self.bin_ns, self._now)
            self.flows[flow.key] = flow
        return flow

    def delivered(self, pkt, now: int) -> None:
        """``pkt`` was accepted by its destination host's IP layer."""
        flow = self._flow(pkt)
        flow.delivered_packets += 1
        n = _payload_bytes(pkt)
        i = now // self.bin_ns
        # BinnedCounter.add inlined (8-byte "q" bins): this runs for every packet delivered
        packets = flow.delivered_packet_bins.bins
        if i >= len(packets):
            packets.frombytes(bytes(8 * (i + 1 - len(packets))))
        packets[i] += 1
        if n:                                           # (a pure ACK adds no bytes, nor bins)
            nbytes = flow.delivered_bytes.bins
            if i >= len(nbytes):
                nbytes.frombytes(bytes(8 * (i + 1 - len(nbytes))))
            nbytes[i] += n

    def dropped(self, channel, pkt, reason: str, where: str | None, now: int) -> None:
        flow = self._flow(pkt)
        flow.drops += 1
        flow.drop_bins.add(now, 1)
        flow.drops_by_reason[reason] = flow.drops_by_reason.get(reason, 0) + 1
        mon = self.channels.get(channel.name) if channel is not None else None
        if mon is not None:
            mon._dropped(now, reason, flow.key)
        else:
            node = where or (channel.name if channel is not None else "?")
            counts = self.node_drops.setdefault(node, {})
            counts[reason] = counts.get(reason, 0) + 1
            bins = self.node_drop_bins.get(node)
            if bins is None:
                bins = self.node_drop_bins[node] = BinnedCounter(self.bin_ns, "q", f"{node} drops")
            bins.add(now, 1)

    def flush(self) -> None:
        """Bring lazily kept queue records (a FIFO queue's departures) up to now."""
        now = self.sim.env.now
        for ch in self._watched:
            ch.queued_packets(now)

    # -- reading ----------------------------------------------------------------------------
    def channel(self, name: str) -> ChannelMonitor:
        """The monitor of channel ``name`` (``"a->b"``)."""
        if name not in self.channels:
            raise KeyError(f"no monitored channel {name!r}; channels are named 'a->b' after the "
                           f"nodes they join: {sorted(self.channels)}")
        self.flush()
        return self.channels[name]

    def flow(self, key: str) -> FlowMonitor:
        if key not in self.flows:
            raise KeyError(f"no flow {key!r} seen; flows are named like 'udp 10.0.0.1:40000->10.0.0.3:9000': "
                           f"{list(self.flows)[:10]}")
        return self.flows[key]

    def utilisation(self, channel_name: str) -> list[float]:
        """Per bin (from time 0 to now), the fraction of time the channel's wire was busy."""
        return self.channel(channel_name).utilisation(self.sim.env.now)

    def _node_name(self, node) -> str:
        name = getattr(node, "name", node)
        if name not in self.sim.nodes:
            raise KeyError(f"no host or router called {name!r}; known: {sorted(self.sim.nodes)}")
        return name

    def _sum_bins(self, counters, until: int | None) -> list[int]:
        n = -(-(self.sim.env.now if until is None else until) // self.bin_ns)
        out = [0] * n
        for c in counters:
            for i, v in enumerate(c.bins.tolist()[:n]):
                out[i] += v
        return out

    def arrivals(self, node, until: int | None = None) -> list[int]:
        """Packets that arrived at ``node`` (a router or host, or its name) over its monitored
        links, per bin from time 0 to ``until`` ns (default: now)."""
        name = self._node_name(node)
        channels = [self.channels[ch.name] for ch in self._watched
                    if ch.dst.name == name and ch.name in self.channels]
        return self._sum_bins([m.arrived_packets for m in channels], until)

    def drops_at(self, node, until: int | None = None) -> list[int]:
        """Packets ``node`` dropped per bin (from time 0 to ``until`` ns, default now): drops
        at the node itself (no route, TTL, a full receive buffer...) plus drops by the
        queues of its output ports. Losses on the wire (reason ``"loss"``) are not the
        node's and are left out. With :meth:`arrivals`, a router's drop rate over time."""
        name = self._node_name(node)
        counters = [self.node_drop_bins[name]] if name in self.node_drop_bins else []
        for ch in self._watched:
            mon = self.channels.get(ch.name)
            if ch.src.name == name and mon is not None:
                counters.extend(c for reason, c in mon.drop_bins_by_reason.items() if reason != "loss")
        return self._sum_bins(counters, until)

    def summary(self) -> dict:
        """JSON-able totals per channel, per flow and per node."""
        self.flush()
        until = self.sim.env.now
        return {
            "bin_ns": self.bin_ns,
            "start_ns": self.start_ns,
            "end_ns": until,
            "channels": {name: mon.summary(until) for name, mon in self.channels.items()},
            "flows": {key: f.summary(self.start_ns, until) for key, f in self.flows.items()},
            "node_drops": {node: dict(sorted(r.items())) for node, r in self.node_drops.items()},
        }

    def series(self, table: str = "flows", until: int | None = None) -> dict[str, list]:
        """Per-bin columns of one table, every column with the same bins (from time 0 to
        ``until`` ns, default now): ``"links"`` (per channel: ``tx_bytes``, ``busy_ns``,
        ``drops``, ``offered_packets``, ``offered_bytes``, ``arrived_packets``, named
        ``"a->b tx_bytes"`` …) or ``"flows"`` (per flow: bytes delivered under the flow key,
        ``"<key> delivered_packets"``, ``"<key> drops"``); plus ``"time_s"``, each bin's start."""
        self.flush()
        until = _until(self._now, until)
        if table == "links":
            cols = [(f"{name} {what}", getattr(mon, what)) for name, mon in self.channels.items()
                    for what in ("tx_bytes", "busy_ns", "drops", "offered_packets", "offered_bytes",
                                 "arrived_packets")]
        elif table == "flows":
            cols = []
            for key, f in self.flows.items():
                cols += [(key, f.delivered_bytes), (f"{key} delivered_packets", f.delivered_packet_bins),
                         (f"{key} drops", f.drop_bins)]
        else:
            raise ValueError(f"table must be 'links' or 'flows', not {table!r} (queues change at "
                             f"any time, not per bin: channel(name).queue_packets.to_lists())")
        out: dict[str, list] = {"time_s": self.bin_times_s(until)}
        out.update((name, counter._padded(until)) for name, counter in cols)
        return out

    def to_dataframe(self, table: str = "flows", until: int | None = None):
        """:meth:`series` as a pandas ``DataFrame`` indexed by ``time_s`` (needs pandas;
        without it :meth:`to_csv` writes the same tables)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("NetworkMonitor.to_dataframe() needs pandas (pip install pandas); "
                              "without it, mon.to_csv(directory) writes the same tables as CSV") from None
        return pandas.DataFrame(self.series(table, until)).set_index("time_s")

    def to_csv(self, directory) -> list[str]:
        """Write ``queues.csv`` (occupancy at every change), ``links.csv`` (per bin and channel:
        bytes sent, busy time, drops, packets and bytes offered, packets arrived),
        ``flows.csv`` (per bin and flow: payload bytes delivered — the column named by the
        flow key — packets delivered, drops) and ``drops.csv`` (counts by where, flow and
        reason). Returns the paths written."""
        self.flush()
        out = Path(directory)
        os.makedirs(out, exist_ok=True)
        until = self.sim.env.now
        paths = []
        queues = []
        for name, mon in self.channels.items():
            queues.append((f"{name} packets", mon.queue_packets))
            queues.append((f"{name} bytes", mon.queue_bytes))
        links = []
        for name, mon in self.channels.items():
            links.append((f"{name} tx_bytes", mon.tx_bytes))
            links.append((f"{name} busy_ns", mon.busy_ns))
            links.append((f"{name} drops", mon.drops))
            links.append((f"{name} offered_packets", mon.offered_packets))
            links.append((f"{name} offered_bytes", mon.offered_bytes))
            links.append((f"{name} arrived_packets", mon.arrived_packets))
        flows = []
        for key, f in self.flows.items():
            flows.append((key, f.delivered_bytes))
            flows.append((f"{key} delivered_packets", f.delivered_packet_bins))
            flows.append((f"{key} drops", f.drop_bins))
        for fname, cols in (("queues.csv", queues), ("links.csv", links), ("flows.csv", flows)):
            path = out / fname
            if fname != "queues.csv":
                # pad every counter to the same number of bins so rows cover the whole run
                for _, counter in cols:
                    need = -(-until // self.bin_ns)
                    if len(counter.bins) < need:
                        counter.bins.extend([0] * (need - len(counter.bins)))
            to_csv(path, cols)
            paths.append(str(path))
        path = out / "drops.csv"
        with open(path, "w", newline="") as f:
            f.write("where,flow,reason,count\n")
            for name, mon in self.channels.items():
                for flow, n in mon.drops_by_flow.items():
                    f.write(f"{name},{flow},,{n}\n")
                for reason, n in sorted(mon.drops_by_reason.items()):
                    f.write(f"{name},,{reason},{n}\n")
            for node, reasons in self.node_drops.items():
                for reason, n in sorted(reasons.items()):
                    f.write(f"{node},,{reason},{n}\n")
            for key, fl in self.flows.items():
                for reason, n in sorted(fl.drops_by_reason.items()):
                    f.write(f"*,{key},{reason},{n}\n")
        paths.append(str(path))
        return paths

    def __repr__(self) -> str:
        return f"NetworkMonitor(bin_ns={self.bin_ns}, {len(self.channels)} channels, {len(self.flows)} flows)"
