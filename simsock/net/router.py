"""Routers: store-and-forward nodes with one output queue per port.

A router receives a packet from a link, looks its destination up in a forwarding table and
hands it to the output port (the :class:`~simsock.net.link.Channel` from the router toward
the next hop) — whose queue, with its own queue discipline, is where congestion shows:
when packets arrive faster than the port's rate, they wait there, and once it is full they
are dropped. A router is what Linux does with ``net.ipv4.ip_forward = 1``
(``ip_forward()`` in ``net/ipv4/ip_forward.c``):

- **TTL.** A packet arriving with ``ttl <= 1`` is not forwarded (``ip_forward``:
  ``if (ip_hdr(skb)->ttl <= 1) goto too_many_hops``) and is dropped with reason ``"ttl"``;
  otherwise its TTL is decremented (``ip_decrease_ttl``). No ICMP time-exceeded is sent.
- **No route.** A destination the router has no route to is dropped (reason
  ``"no_route"``) and answered with ICMP destination unreachable (``ip_error``), subject to
  the same per-destination rate limit as a host's ICMP (``icmpv4_xrlim_allow``). The code
  is *host unreachable* (1) for an address inside the simulated network 10.0.0.0/8, where
  every node lives — a real router whose connected prefix holds the address but no
  neighbour answers for it reports that (``ipv4_link_failure``) — and *net unreachable* (0)
  for any other address (``fib_lookup`` finds nothing: ``-ENETUNREACH``). The simulated
  router answers at once; a real one first spends about 3 s in ARP retries
  (``mcast_solicit`` x ``retrans_time``) before ``ipv4_link_failure``.
- **MTU.** Routers do not fragment: Linux sends TCP and UDP with DF set (the default
  ``IP_PMTUDISC_WANT``). Hosts use the path's smallest MTU (:meth:`Simulation.path_mtu`),
  the value path MTU discovery converges to — without the first packets it loses on the
  way there (ICMP fragmentation-needed is not modelled). A packet that is still too big
  for the output port is dropped (reason ``"mtu"``).
- **Packets for the router itself** (its own address, or its name through
  :meth:`Simulation.resolve_name`): the router runs no programs, so it answers as a Linux
  router with no socket on the port: UDP gets ICMP port unreachable (``__udp4_lib_rcv`` ->
  ``icmp_send``; a connected socket then fails with ECONNREFUSED), a TCP segment gets a RST
  (``tcp_v4_send_reset``; ``connect`` fails with ECONNREFUSED at once); both are dropped
  here with reason ``"no_port"`` / ``"no_socket"`` as on a host. ICMP for the router is
  dropped (``"local"``): echo is not modelled. Pinned against a real forwarding namespace
  in ``tests/net/test_router_names.py``.

Forwarding tables come from :meth:`simsock.sim.Simulation.next_hop` (shortest paths by delay
with networkx, computed once per router and recomputed lazily when the topology changes);
the router keeps its own per-destination cache so the per-packet cost is one dict lookup.

Per-packet work is a few attribute reads and the output channel's ``send``: with a zero
``processing_delay`` (the default) forwarding schedules no SimPy event of its own; a
non-zero delay costs one event per packet.
"""

from __future__ import annotations

from simsock.host import Node
from simsock.kernel.events import call_later
from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, IcmpError, Packet
from simsock.tcp.listener import reset_for

__all__ = ["Router"]

ICMP_DEST_UNREACH = 3
ICMP_NET_UNREACH = 0
ICMP_HOST_UNREACH = 1
ICMP_PORT_UNREACH = 3


class Router(Node):
    """A store-and-forward router. Build it with :meth:`Simulation.add_router`.

    ``qdisc``: a zero-argument callable returning a new queue discipline, used for every
    output port unless the link passes its own ``qdisc=``; ``queue``: the packet limit of the
    default drop-tail queue of every output port (the link's ``queue=`` wins);
    ``processing_delay``: nanoseconds between a packet's arrival and its enqueueing on the
    output port (0: at once).
    """

    kind = "router"

    def __init__(self, sim, name: str, address: str, qdisc=None, queue: int | None = None,
                 processing_delay: int = 0):
        super().__init__(sim, name, address)
        self.qdisc_factory = qdisc
        self.queue = queue
        self.processing_delay = processing_delay
        self.received = 0
        self.forwarded = 0
        self.delivered_local = 0
        self.drops: dict[str, int] = {}
        self._table: dict[str, object] = {}     # dst ip -> output Channel or None
        self.icmp_sent = 0
        self.resets_sent = 0

    # -- addresses ------------------------------------------------------------------------
    def owns(self, ip: str) -> bool:
        return ip == self.address

    def output_port(self, dst_ip: str):
        """The channel this router forwards packets for ``dst_ip`` on (None: no route)."""
        table = self._table
        if dst_ip in table:
            return table[dst_ip]
        if not table:
            self.sim._filled_route_caches.append(table)     # cleared on a topology change
        channel = table[dst_ip] = self.sim.next_hop(self, dst_ip)
        return channel

    def ports(self) -> list:
        """The router's output channels, in the order its links were added."""
        return [link.channel_from(self) for link in self.links]

    # -- forwarding -----------------------------------------------------------------------
    def receive(self, pkt: Packet, channel) -> None:
        self.received += 1
        dst = pkt.dst
        if dst == self.address:
            self._local_input(pkt)
            return
        if pkt.ttl <= 1:
            self._drop(pkt, "ttl")
            return
        table = self._table
        out = table[dst] if dst in table else self.output_port(dst)
        if out is None:
            self._drop(pkt, "no_route")
            self._send_unreachable(pkt, ICMP_HOST_UNREACH if dst.startswith("10.") else ICMP_NET_UNREACH)
            return
        if pkt.size > out.mtu:
            self._drop(pkt, "mtu")
            return
        pkt.ttl -= 1
        self.forwarded += 1
        if self.processing_delay:
            self.sim.in_flight += 1
            call_later(self.sim.env, self.processing_delay, self._processed, (pkt, out))
            return
        out.send(pkt)

    def _processed(self, ev) -> None:
        pkt, out = ev._value
        sim = self.sim
        sim.in_flight -= 1
        out.send(pkt)
        if sim.in_flight == 0:
            sim._network_quiet()

    def _drop(self, pkt: Packet, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self.sim._packet_dropped(None, pkt, reason, where=self.name)

    def _local_input(self, pkt: Packet) -> None:
        self.delivered_local += 1
        if pkt.proto == PROTO_UDP:
            self._drop(pkt, "no_port")
            self._send_unreachable(pkt, ICMP_PORT_UNREACH)
        elif pkt.proto == PROTO_TCP:
            self._drop(pkt, "no_socket")
            self._send_reset(pkt)
        else:
            self._drop(pkt, "local")

    def _send_reset(self, offending: Packet) -> None:
        """tcp_v4_send_reset: the RST answering a segment that reaches no socket (none for a
        RST); not rate limited."""
        rst = reset_for(offending.payload)
        out = self.output_port(offending.src) if rst is not None else None
        if out is None:
            return
        sim = self.sim
        self.resets_sent += 1
        out.send(Packet(sim._next_uid(), self.address, offending.src, PROTO_TCP, rst, sim.env.now))

    def _send_unreachable(self, offending: Packet, code: int) -> None:
        """icmp_send(ICMP_DEST_UNREACH): never about an ICMP error, rate limited per source."""
        if offending.proto == PROTO_ICMP or not self._icmp_allowed(offending.src):
            return
        out = self.output_port(offending.src)
        if out is None:
            return
        sim = self.sim
        icmp = Packet(sim._next_uid(), self.address, offending.src, PROTO_ICMP,
                      IcmpError(ICMP_DEST_UNREACH, code, offending), sim.env.now)
        self.icmp_sent += 1
        out.send(icmp)

    # -- introspection ----------------------------------------------------------------------
    def stats(self) -> dict:
        """Packets received, forwarded, delivered to the router itself, dropped here by reason,
        and per output port (channel name): the port's queue counters."""
        return {
            "address": self.address,
            "received": self.received,
            "forwarded": self.forwarded,
            "local": self.delivered_local,
            "icmp_sent": self.icmp_sent,
            "resets_sent": self.resets_sent,
            "dropped": dict(sorted(self.drops.items())),
            "ports": {ch.name: ch.port_stats() for ch in self.ports()},
        }

    def __repr__(self) -> str:
        return f"<Router {self.name!r} {self.address}>"
