"""The simulation: a world of hosts, routers and links, run on one SimPy environment.

``Simulation(seed=1, profile="linux")`` builds a world; ``add_host``, ``add_link`` (and
``add_router``) shape it; ``host.spawn(program)`` starts programs; ``run(until=...)``
advances time. Time is integer nanoseconds inside (``env.now``); :attr:`now` reports
seconds. Everything random draws from one seeded generator split into named streams, so a
run is a pure function of (world, programs, seed).
"""

from __future__ import annotations

import functools
import gc
import heapq
import itertools
import warnings

import networkx as nx
import simpy

from simsock.errors import install_excepthook, trim_failure
from simsock.kernel.addr import is_dotted_quad
from simsock.kernel.thread import RUNNING, ThreadFailed, failure_error, wait_event
from simsock.kernel.watchdog import SAME_TIME_EVENT_LIMIT, MissingAwait, ZeroTimeLoop, stuck_events, unawaited
from simsock.net.link import Channel, Link
from simsock.net.link_settings import per_direction, qdisc_factory
from simsock.net.monitor import NetworkMonitor
from simsock.net.router import Router
from simsock.profiles import get_profile
from simsock.rng import RandomStreams
from simsock.trace import Trace
from simsock import validate
from simsock.units import NS_PER_S, parse_rate, parse_size, parse_time

from .host import Host, Node


def _host_address(index: int) -> str:
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def _router_address(index: int) -> str:
    # Routers number from 10.255.0.1, apart from hosts (10.0.0.1 up), inside the simulated
    # network 10.0.0.0/8.
    return f"10.255.{(index >> 8) & 255}.{index & 255}"


#: Allocations between two collections of CPython's youngest GC generation while a
#: simulation runs (the default is 700). A run allocates a few short-lived objects per
#: packet (events, packets, segments) beside many long-lived ones (a connection is dozens of
#: objects): with the default, in-flight objects survive young collections, are promoted,
#: and trigger full collections that traverse every connection again and again — a quarter
#: of the CPU time of 10,000 connections (benchmarks/c10k.py). Results do not depend on it.
GC_YOUNG_THRESHOLD = 100_000


def _relax_gc():
    """Raise the young-generation GC threshold for the duration of a run; return the
    thresholds to restore (None if they were left alone)."""
    if not hasattr(gc, "get_threshold"):       # PyPy: no generational thresholds to set
        return None
    old = gc.get_threshold()
    if not gc.isenabled() or old[0] == 0 or old[0] >= GC_YOUNG_THRESHOLD:
        return None
    gc.set_threshold(GC_YOUNG_THRESHOLD, *old[1:])
    return old


def _run_events(env: simpy.Environment, until_ns: int | None) -> None:
    """Process events in order until none is left, or until the next one is later than
    ``until_ns`` (then the clock is at ``until_ns``): SimPy's ``Environment.run`` with its
    ``step`` inlined (one Python call less per event; the same processing and the same
    failure for an event that failed undefused). simsock schedules no StopSimulation."""
    queue = env._queue
    pop = heapq.heappop
    last = env._now
    same = 0                    # events processed since the clock last moved (watchdog.py)
    while queue:
        if until_ns is not None and queue[0][0] > until_ns:
            break
        now, _, _, event = pop(queue)
        if now == last:
            same += 1
            if same > SAME_TIME_EVENT_LIMIT:
                queue.append((now, 0, -1, event))
                raise stuck_events(RUNNING.sim, same)
        else:
            last = now
            same = 0
        env._now = now
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc
    if until_ns is not None and env._now < until_ns:
        env._now = until_ns


def _report_unawaited(sim) -> None:
    """During a run, Python's "coroutine ... was never awaited" from inside a thread is a
    missing ``await``: the thread stops with an error naming the call and the line
    (kernel/watchdog.py); the warning is shown as usual anywhere else."""
    warnings.filterwarnings("always", message=r"coroutine .* was never awaited", category=RuntimeWarning)
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not (category is RuntimeWarning and "was never awaited" in str(message)
                and unawaited(sim, message, filename, lineno)):
            shown(message, category, filename, lineno, file, line)
    warnings.showwarning = showwarning


#: How often settle re-checks the connections' timers while no packet is in flight.
_QUIET_CHECK_NS = 1_000_000

#: Cost of passing *through* a host on a path: hosts do not forward, so routing takes a path
#: through a host only when there is no other (see Simulation.next_hop).
_HOST_TRANSIT_COST = 1 << 62


class Simulation:
    """A simulated world. See the module docstring."""

    def __init__(self, seed: int = 1, profile="linux", trace=True, cpu_batch="20us", cpu_bin="10ms", *,
                 trace_limit=None, trace_keep="last", trace_file=None, trace_pcap=None, trace_pcap_at=None,
                 trace_payloads=False):
        """``cpu_batch``: how much CPU debt a thread may run up in calls that complete at
        once before it pays it (the CPU model's timing error bound, see kernel/cpu.py);
        ``cpu_bin``: width of the time bins of per-core busy time (utilisation over time).

        ``trace``: True (everything), False, a tuple of categories, or a :class:`Trace`.
        What the trace costs (see :mod:`simsock.trace`): ``trace_limit=N`` keeps N records
        in RAM (``trace_keep="last"``: a ring, or ``"first"``) and counts the rest in
        ``sim.trace.dropped``; ``trace_file="run.jsonl"`` streams records to disk as the
        run goes; ``trace_pcap="run.pcap"`` streams the packets seen at ``trace_pcap_at``
        (as ``sim.trace.to_pcap``); ``trace_payloads=True`` keeps payload bytes so that
        pcap frames carry the data (else they hold headers, as ``tcpdump -s`` does)."""
        self.cpu_batch_ns = parse_time(cpu_batch, what="cpu_batch")
        self.cpu_bin_ns = parse_time(cpu_bin, what="cpu_bin")
        if self.cpu_bin_ns <= 0:
            raise ValueError(f"cpu_bin must be a positive duration such as '10ms', got {cpu_bin!r}")
        self.rng = RandomStreams(seed)
        self.seed = seed
        self.profile = get_profile(profile)
        # one cache for every host (they share the profile): per-host caches were a cold
        # cache line or more per received datagram with many hosts (benchmarks/many_flows.py)
        self.udp_truesize = functools.lru_cache(maxsize=8192)(self.profile.udp_truesize)
        self.env = simpy.Environment()
        if isinstance(trace, Trace):
            self.trace = trace
        else:
            self.trace = Trace(trace, limit=trace_limit, keep=trace_keep, file=trace_file, pcap=trace_pcap,
                               pcap_at=trace_pcap_at, payloads=trace_payloads)
        self.trace.world = self
        self.nodes: dict[str, Node] = {}
        self.hosts: dict[str, Host] = {}
        self.routers: dict = {}
        self.links: list[Link] = []
        self.graph = nx.Graph()
        self.current_thread = None
        self.in_flight = 0
        self._uids = itertools.count(1)
        self._tids = itertools.count(1)
        self._routes: dict[str, dict[str, Channel | None]] = {}
        # the nodes' own route caches (Host._route_cache, Router._table) that hold entries:
        # a topology change clears just these, so building a world of n nodes is O(n)
        self._filled_route_caches: list[dict] = []
        self._next_hops: dict[str, dict[str, str]] = {}
        self._components: dict[str, int] | None = None
        self._default_routes: dict[str, str] = {}
        self.monitors = None          # the NetworkMonitor, once monitor() is called
        self._addresses: dict[str, Node] = {}
        self._names: dict[str, Node] = {}      # lower-cased name -> node (resolve_name)
        self._quiet_waiters: list[simpy.Event] = []
        self.drops: dict[str, int] = {}

    # -- time ---------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Simulated time in seconds."""
        return self.env.now / NS_PER_S

    @property
    def now_ns(self) -> int:
        return self.env.now

    def run(self, until=None) -> None:
        """Run until the given simulated time (seconds or "10s"), or until nothing is left
        to happen. A program that raises stops the run with SimulationError."""
        if self.current_thread is not None:
            raise RuntimeError(f"sim.run() was called from inside thread {self.current_thread.name!r}: a program "
                               f"cannot run the simulation it is part of; to let time pass, await k.sleep(...)")
        self.trace.ready()
        env = self.env
        gc_threshold = _relax_gc()
        previous, RUNNING.sim = RUNNING.sim, self
        warn_filters = warnings.catch_warnings()
        warn_filters.__enter__()
        _report_unawaited(self)
        try:
            if until is None:
                _run_events(env, None)
                return
            until_ns = parse_time(until, what="run(until=) time")
            if until_ns < env.now:
                raise ValueError(f"until={until!r} is in the past: the simulation is already at {self.now}s")
            # Everything due at exactly `until` happens too (SimPy's run(until) would stop
            # before it).
            _run_events(env, until_ns)
        except ThreadFailed as failed:
            err = failure_error(failed)
            install_excepthook()             # the user's frames only, unless SIMSOCK_DEBUG=1
            if isinstance(failed.exc, (ZeroTimeLoop, MissingAwait)):
                raise err from None          # its message names the program's line
            raise err from trim_failure(err, failed.exc)
        except simpy.core.EmptySchedule:       # pragma: no cover - SimPy handles it
            pass
        finally:
            warn_filters.__exit__(None, None, None)
            RUNNING.sim = previous
            self.trace.flush()
            if gc_threshold is not None:
                gc.set_threshold(*gc_threshold)

    # -- world building -------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a node name must be a non-empty str, got {name!r}")
        if name in self.nodes:
            raise ValueError(f"there is already a node called {name!r}")
        if name.lower() == "localhost":
            raise ValueError("'localhost' is every host's own loopback name; choose another host name")
        if is_dotted_quad(name):     # name resolution would take it as an address
            raise ValueError(f"node name {name!r} reads as an IPv4 address, which would resolve to that address "
                             f"rather than to the node (nodes get their own, e.g. 10.0.0.1): choose a name, "
                             f"e.g. 'server'")
        other = self._names.get(name.lower())
        if other is not None:
            raise ValueError(f"{name!r} differs from the existing node {other.name!r} only in case; names "
                             f"resolve case-insensitively (as in /etc/hosts and DNS), so choose another name")

    def add_host(self, name: str, cores: int = 1) -> Host:
        """A new host with ``cores`` CPU cores and a loopback interface."""
        self._check_name(name)
        validate.host(cores)
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores must be a positive int, got {cores!r}")
        host = Host(self, name, _host_address(len(self.hosts) + 1), cores)
        host.lo = Channel(self, f"{name}:lo", host, host, None, 0, self.profile.loopback_mtu, 1 << 30)
        self.nodes[name] = host
        self.hosts[name] = host
        self._addresses[host.address] = host
        self._names[name.lower()] = host
        self.graph.add_node(name, kind="host")
        self._topology_changed()
        return host

    def add_router(self, name: str, qdisc=None, queue=None, processing_delay=0):
        """A new router: a store-and-forward node with one output queue per port.

        qdisc: the queue discipline of each output port (the link's own ``qdisc=`` wins):
        an unused instance such as ``simsock.DropTail(packets=64)``, copied for every port
        (each port has its own queue and counters, in ``sim.stats()["routers"]``), or a
        callable returning a new one per port, e.g. ``qdisc=lambda: simsock.RED(...)``; queue: packet
        limit of each output port's default drop-tail queue (default: the profile's
        txqueuelen; the link's own ``queue=`` wins); processing_delay: seconds or "50us"
        between a packet's arrival and its enqueueing on the output port (default 0).
        See :mod:`simsock.net.router`.
        """
        self._check_name(name)
        qdisc, queue = validate.router(qdisc, queue, processing_delay)
        qdisc = qdisc_factory(qdisc, "add_router(qdisc=)")
        if queue is not None:
            queue = parse_size(queue, what="router queue")
            if queue < 1:
                raise ValueError(f"router queue must hold at least one packet, got {queue!r}")
        delay_ns = parse_time(processing_delay, what="router processing_delay")
        index = len(self.routers) + 1
        if index >= 1 << 16:
            raise ValueError("at most 65535 routers per simulation")
        router = Router(self, name, _router_address(index), qdisc, queue, delay_ns)
        self.nodes[name] = router
        self.routers[name] = router
        self._addresses[router.address] = router
        self._names[name.lower()] = router
        self.graph.add_node(name, kind="router")
        self._topology_changed()
        return router

    def set_default_route(self, node, via) -> None:
        """Give ``node`` a default route through its neighbour ``via``: packets for an address
        ``node`` has no path to (unknown, or in another part of the network) go to ``via``
        instead of failing with ENETUNREACH, as with a host's default gateway. A router then
        answers what it cannot forward with ICMP destination unreachable."""
        node, via = self._node(node), self._node(via)
        if not self.graph.has_edge(node.name, via.name):
            raise ValueError(f"a default route must point at a neighbour: {node.name!r} has no link to "
                             f"{via.name!r}; link them first with add_link")
        self._default_routes[node.name] = via.name
        self._topology_changed()

    def monitor(self, bin="10ms"):
        """Start recording queues, links and flows (see :mod:`simsock.net.monitor`); returns
        the :class:`~simsock.net.monitor.NetworkMonitor`, also ``sim.monitors``. ``bin`` is
        the width of throughput/drop bins (seconds or "10ms"). Call it before ``run``."""
        bin_ns = parse_time(bin, what="monitor bin")
        if bin_ns <= 0:
            raise ValueError(f"monitor bin must be a positive duration such as '10ms', got {bin!r}")
        if self.monitors is not None:
            if self.monitors.bin_ns != bin_ns:
                raise ValueError(f"this simulation is already monitored with bins of {self.monitors.bin_ns} ns; "
                                 f"a second monitor() must use the same bin (or none: sim.monitors)")
            return self.monitors
        mon = self.monitors = NetworkMonitor(self, bin_ns)
        for link in self.links:
            mon.attach(link.forward)
            mon.attach(link.backward)
        return mon

    def _node(self, node) -> Node:
        if isinstance(node, Node):
            if self.nodes.get(node.name) is not node:
                raise ValueError(f"{node!r} belongs to another simulation")
            return node
        if isinstance(node, str):
            if node not in self.nodes:
                raise ValueError(f"no host or router called {node!r}; known: {sorted(self.nodes)}")
            return self.nodes[node]
        raise TypeError(f"expected a host, router or node name, got {type(node).__name__}")

    def add_link(self, a, b, rate="1Gbit", delay="0ms", loss=0.0, mtu=1500, queue=None, qdisc=None,
                 jitter=None, *, ab=None, ba=None) -> Link:
        """A full-duplex link between ``a`` and ``b``.

        rate: bits/s or "100Mbit"; delay: one-way propagation, seconds or "10ms";
        loss: probability each packet is lost (or a loss model object); mtu: bytes;
        queue: transmit queue limit: an int is packets (default: the profile's txqueuelen),
        a byte size with a unit such as "64KiB" is bytes (a bfifo: DropTail(bytes=65536));
        jitter: a duration ("1ms": uniform extra delay up to it) or a simsock.Jitter;
        every value is checked here (simsock/validate.py);
        qdisc: the queue discipline of each direction (overrides queue): an unused instance,
        copied for each direction, or a callable returning a new one per direction.

        ab, ba: settings for one direction only (a->b: ``a``'s egress; b->a: ``b``'s), a dict
        with any of the keys rate, delay, loss, queue, qdisc, jitter, overriding the value
        given for both, as ``tc`` shapes one interface's egress, e.g.
        ``add_link(h, r, rate="1Gbit", ab={"qdisc": TBF(rate="10Mbit", burst=10_000,
        limit=30_000)})`` or ``add_link(h, r, ab={"rate": "10Mbit"}, ba={"rate": "100Mbit"})``.
        """
        a, b = self._node(a), self._node(b)
        if a is b:
            raise ValueError(f"a link needs two different nodes, got {a.name!r} twice")
        queue, qdisc, jitter = validate.link(rate, delay, loss, mtu, queue, qdisc, jitter)
        rate_bps = parse_rate(rate, what="link rate")
        delay_ns = parse_time(delay, what="link delay")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            if not 0.0 <= loss <= 1.0:
                raise ValueError(f"loss must be a probability between 0 and 1, got {loss!r}")
            loss_model = float(loss) if loss > 0 else None
        elif hasattr(loss, "lose"):
            loss_model = loss
        else:
            raise TypeError(f"loss must be a probability or a loss model with .lose(rng), got {loss!r}")
        mtu = parse_size(mtu, what="mtu")
        if not 68 <= mtu <= 65536:
            raise ValueError(f"mtu must be between 68 and 65536 bytes, got {mtu}")
        queue_packets = self.profile.txqueuelen if queue is None else parse_size(queue, what="queue")
        if queue_packets < 1:
            raise ValueError(f"queue must hold at least one packet, got {queue!r}")
        qdisc = qdisc_factory(qdisc, "add_link(qdisc=)")
        if self.graph.has_edge(a.name, b.name):
            raise ValueError(f"{a.name!r} and {b.name!r} are already linked")
        # A router's output ports take the router's queue settings unless the link has its own.
        queues = tuple(queue_packets if queue is not None or getattr(n, "queue", None) is None else n.queue
                       for n in (a, b))
        qdiscs = tuple(qdisc if qdisc is not None else getattr(n, "qdisc_factory", None) for n in (a, b))
        if ab is not None or ba is not None:
            rate_bps, delay_ns, loss_model, queues, qdiscs, jitter = per_direction(
                ab, ba, rate_bps, delay_ns, loss_model, queues, qdiscs, jitter)
        link = Link(self, a, b, rate_bps, delay_ns, loss_model, mtu, queues, qdiscs, jitter)
        a.links.append(link)
        b.links.append(link)
        self.links.append(link)
        self.graph.add_edge(a.name, b.name, delay=link.delay_ns, link=link, rate=link.rate_bps)
        self._topology_changed()
        return link

    # -- names and routes -----------------------------------------------------------------
    def _topology_changed(self) -> None:
        self._routes.clear()
        self._next_hops.clear()
        self._components = None
        for cache in self._filled_route_caches:
            cache.clear()
        self._filled_route_caches.clear()

    def resolve_name(self, name: str) -> str | None:
        """The address of the host or router called ``name`` (case-insensitive, as a lookup
        in /etc/hosts), or None. Programs reach it through ``gethostbyname``, ``connect``,
        ``sendto``...: a router is addressed by name like a host (what it answers is in
        :mod:`simsock.net.router`)."""
        node = self._names.get(name.lower())
        return node.address if node is not None else None

    def path_weight(self, u: str, v: str, data: dict) -> int:
        """The routing cost of going from node ``u`` to its neighbour ``v``: the link's delay
        plus 1 ns (so zero-delay links prefer fewer hops), plus a prohibitive cost for
        entering a host, so that no path passes *through* a host when another exists (hosts
        do not forward). A networkx weight function: ``nx.shortest_path(sim.graph, a, b,
        weight=sim.path_weight)`` is the path packets take (up to equal-cost ties)."""
        w = data["delay"] + 1
        if self.nodes[v].kind == "host":
            w += _HOST_TRANSIT_COST
        return w

    def _component_of(self, name: str) -> int:
        comps = self._components
        if comps is None:
            comps = self._components = {}
            for i, comp in enumerate(nx.connected_components(self.graph)):
                for n in comp:
                    comps[n] = i
        return comps[name]

    def _first_hops(self, node: Node) -> dict[str, str]:
        """node's forwarding table: destination node name -> neighbour name, from one
        single-source Dijkstra over the topology (weights: :meth:`path_weight`)."""
        hops = self._next_hops.get(node.name)
        if hops is None:
            paths = nx.single_source_dijkstra_path(self.graph, node.name, weight=self.path_weight)
            hops = {dst: path[1] for dst, path in paths.items() if len(path) > 1}
            self._next_hops[node.name] = hops
        return hops

    def next_hop(self, node: Node, dst_ip: str) -> Channel | None:
        """The channel ``node`` sends a packet for ``dst_ip`` on: the first hop of a shortest
        path by delay (:meth:`path_weight`); None if there is none and no default route.

        Each hop takes the next hop of *its own* shortest path, which is loop-free and
        as short as the sender's shortest path (every hop strictly shortens the remaining
        distance). A host with a single link sends everything reachable through it.
        """
        table = self._routes.get(node.name)
        if table is None:
            table = self._routes[node.name] = {}
        if dst_ip in table:
            return table[dst_ip]
        target = self._addresses.get(dst_ip)
        hop = None
        if target is not None and target is not node:
            if len(node.links) == 1 and node.kind == "host":
                if self._component_of(node.name) == self._component_of(target.name):
                    link = node.links[0]
                    hop = (link.b if link.a is node else link.a).name
            else:
                hop = self._first_hops(node).get(target.name)
        if hop is None and target is not node:
            hop = self._default_routes.get(node.name)
        channel = None
        if hop is not None:
            channel = self.graph.edges[node.name, hop]["link"].channel_from(node)
        table[dst_ip] = channel
        return channel

    def path_mtu(self, node: Node, dst_ip: str) -> int:
        """The smallest MTU on the path packets from ``node`` to ``dst_ip`` take (following
        each hop's own next hop); the first hop's MTU if the path ends before ``dst_ip``."""
        channel = self.next_hop(node, dst_ip)
        if channel is None:
            return self.profile.default_mtu
        mtu = channel.mtu
        for _ in range(len(self.nodes)):
            nxt = channel.dst
            if nxt.owns(dst_ip) or nxt.kind != "router":
                break
            channel = nxt.output_port(dst_ip)
            if channel is None:
                break
            mtu = min(mtu, channel.mtu)
        return mtu

    # -- bookkeeping ------------------------------------------------------------------------
    def _next_uid(self) -> int:
        return next(self._uids)

    def _next_tid(self) -> int:
        return next(self._tids)

    def _packet_dropped(self, channel, pkt, reason: str, where: str | None = None) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if self.monitors is not None:
            self.monitors.dropped(channel, pkt, reason, where, self.env.now)
        if self.trace.want_packets:
            self.trace.packet(self.env.now, where or channel.name, "drop", pkt, reason)

    def _network_quiet(self) -> None:
        waiters = self._quiet_waiters
        if waiters:
            self._quiet_waiters = []
            for ev in waiters:
                if not ev.triggered:
                    ev.succeed(None)

    def _timers_pending(self) -> bool:
        return any(h.tcp.timers_busy() for h in self.hosts.values())

    async def _settle(self) -> None:
        while self.in_flight or self._timers_pending():
            if self.in_flight:
                ev = simpy.Event(self.env)
                self._quiet_waiters.append(ev)
                await wait_event(ev)
            else:
                await wait_event(self.env.timeout(_QUIET_CHECK_NS))
        # let everything scheduled for this instant (deliveries, wake-ups) happen first
        await wait_event(self.env.timeout(0))

    # -- results ----------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters per host (and its sockets) and per link, plus drops by reason."""
        return {
            "time_s": self.now,
            "hosts": {name: h.stats() for name, h in self.hosts.items()},
            "links": {link.name: link.stats() for link in self.links},
            "routers": {name: r.stats() for name, r in self.routers.items()},
            "drops": dict(sorted(self.drops.items())),
        }

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            raise ValueError(f"no host called {name!r}; known: {sorted(self.hosts)}")
        return self.hosts[name]
