"""The simulation: a world of hosts, routers and links, run on one SimPy environment.

``Simulation(seed=1, profile="linux")`` builds a world; ``add_host``, ``add_link`` (and
``add_router``) shape it; ``host.spawn(program)`` starts programs; ``run(until=...)``
advances time. Time is integer nanoseconds inside (``env.now``); :attr:`now` reports
seconds. Everything random draws from one seeded generator split into named streams, so a
run is a pure function of (world, programs, seed).
"""

from __future__ import annotations

import errno
import itertools

import networkx as nx
import simpy

from simsock.errors import SimulationError
from simsock.kernel.thread import ThreadFailed, failure_error, wait_event
from simsock.net.link import Channel, Link
from simsock.profiles import get_profile
from simsock.rng import RandomStreams
from simsock.trace import Trace
from simsock.units import NS_PER_S, parse_rate, parse_size, parse_time

from .host import Host, Node


def _host_address(index: int) -> str:
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


class Simulation:
    """A simulated world. See the module docstring."""

    def __init__(self, seed: int = 1, profile="linux", trace=True):
        self.rng = RandomStreams(seed)
        self.seed = seed
        self.profile = get_profile(profile)
        self.env = simpy.Environment()
        self.trace = Trace(trace)
        self.nodes: dict[str, Node] = {}
        self.hosts: dict[str, Host] = {}
        self.links: list[Link] = []
        self.graph = nx.Graph()
        self.current_thread = None
        self.in_flight = 0
        self._uids = itertools.count(1)
        self._tids = itertools.count(1)
        self._routes: dict[str, dict[str, Channel | None]] = {}
        self._addresses: dict[str, Node] = {}
        self._quiet_waiters: list[simpy.Event] = []
        self._tcp_socket_factory = None
        self.drops: dict[str, int] = {}
        self._install_protocols()

    def _install_protocols(self) -> None:
        try:
            from simsock.kernel.tcp import make_tcp_socket, attach_tcp
        except ImportError:
            return
        self._tcp_socket_factory = make_tcp_socket
        self._attach_tcp = attach_tcp

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
        env = self.env
        try:
            if until is None:
                env.run()
                return
            until_ns = parse_time(until, what="until")
            if until_ns < env.now:
                raise ValueError(f"until={until!r} is in the past: the simulation is already at {self.now}s")
            if until_ns > env.now:
                env.run(until=until_ns)
            # Everything due at exactly `until` happens too (SimPy would stop before it).
            while env.peek() == until_ns:
                env.step()
        except ThreadFailed as failed:
            raise failure_error(failed) from failed.exc
        except simpy.core.EmptySchedule:       # pragma: no cover - SimPy handles it
            pass

    # -- world building -------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a node name must be a non-empty str, got {name!r}")
        if name in self.nodes:
            raise ValueError(f"there is already a node called {name!r}")
        if name.lower() == "localhost":
            raise ValueError("'localhost' is every host's own loopback name; choose another host name")

    def add_host(self, name: str, cores: int = 1) -> Host:
        """A new host with ``cores`` CPU cores and a loopback interface."""
        self._check_name(name)
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores must be a positive int, got {cores!r}")
        host = Host(self, name, _host_address(len(self.hosts) + 1), cores)
        host.lo = Channel(self, f"{name}:lo", host, host, None, 0, self.profile.loopback_mtu, 1 << 30)
        self.nodes[name] = host
        self.hosts[name] = host
        self._addresses[host.address] = host
        self.graph.add_node(name, kind="host")
        if hasattr(self, "_attach_tcp"):
            self._attach_tcp(host)
        self._topology_changed()
        return host

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
                 jitter=None) -> Link:
        """A full-duplex link between ``a`` and ``b``.

        rate: bits/s or "100Mbit"; delay: one-way propagation, seconds or "10ms";
        loss: probability each packet is lost (or a loss model object); mtu: bytes;
        queue: transmit queue limit in packets (default: the profile's txqueuelen);
        qdisc: a callable returning a fresh queue discipline per direction (overrides queue).
        """
        a, b = self._node(a), self._node(b)
        if a is b:
            raise ValueError(f"a link needs two different nodes, got {a.name!r} twice")
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
        if qdisc is not None and not callable(qdisc):
            raise TypeError("qdisc must be a callable returning a new queue discipline for each direction, "
                            "e.g. qdisc=lambda: simsock.DropTail(packets=64)")
        if self.graph.has_edge(a.name, b.name):
            raise ValueError(f"{a.name!r} and {b.name!r} are already linked")
        link = Link(self, a, b, rate_bps, delay_ns, loss_model, mtu, queue_packets, qdisc, jitter)
        a.links.append(link)
        b.links.append(link)
        self.links.append(link)
        self.graph.add_edge(a.name, b.name, delay=delay_ns, link=link)
        self._topology_changed()
        return link

    # -- names and routes -----------------------------------------------------------------
    def _topology_changed(self) -> None:
        self._routes.clear()
        for host in self.hosts.values():
            host._route_cache.clear()

    def resolve_name(self, name: str) -> str | None:
        node = self.hosts.get(name)
        if node is None:
            for host_name, host in self.hosts.items():
                if host_name.lower() == name:
                    node = host
                    break
        return node.address if node is not None else None

    def next_hop(self, node: Node, dst_ip: str) -> Channel | None:
        """The channel ``node`` sends a packet for ``dst_ip`` on (shortest path by delay)."""
        table = self._routes.get(node.name)
        if table is None:
            table = self._routes[node.name] = {}
        if dst_ip in table:
            return table[dst_ip]
        target = self._addresses.get(dst_ip)
        channel = None
        if target is not None and target is not node:
            try:
                # weight: delay plus one nanosecond per hop, so zero-delay links prefer fewer hops
                path = nx.shortest_path(self.graph, node.name, target.name,
                                        weight=lambda u, v, d: d["delay"] + 1)
            except nx.NetworkXNoPath:
                path = None
            if path is not None:
                link = self.graph.edges[path[0], path[1]]["link"]
                channel = link.channel_from(node)
        table[dst_ip] = channel
        return channel

    # -- bookkeeping ------------------------------------------------------------------------
    def _next_uid(self) -> int:
        return next(self._uids)

    def _next_tid(self) -> int:
        return next(self._tids)

    def _packet_dropped(self, channel, pkt, reason: str, where: str | None = None) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
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
        return any(h.tcp.timers_busy() for h in self.hosts.values() if hasattr(h, "tcp"))

    async def _settle(self) -> None:
        while self.in_flight or self._timers_pending():
            if self.in_flight:
                ev = simpy.Event(self.env)
                self._quiet_waiters.append(ev)
                await wait_event(ev)
            else:
                await wait_event(self.env.timeout(self._next_quiet_check()))
        # let everything scheduled for this instant (deliveries, wake-ups) happen first
        await wait_event(self.env.timeout(0))

    def _next_quiet_check(self) -> int:
        return 1_000_000

    # -- results ----------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counters per host (and its sockets) and per link, plus drops by reason."""
        return {
            "time_s": self.now,
            "hosts": {name: h.stats() for name, h in self.hosts.items()},
            "links": {link.name: link.stats() for link in self.links},
            "drops": dict(sorted(self.drops.items())),
        }

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            raise ValueError(f"no host called {name!r}; known: {sorted(self.hosts)}")
        return self.hosts[name]
