"""Hosts: a kernel with its threads, descriptors, routes and network interfaces, and its
UDP and TCP stacks (``host.udp``: kernel/udp_stack.py, ``host.tcp``: kernel/tcp_stack.py).

A host has one IPv4 address on the simulated network (``10.x.y.z`` by order of creation)
plus its loopback interface ``lo`` (``127.0.0.1``, ``localhost``, MTU 65536, no
propagation delay, no rate limit), exactly as a Linux machine: traffic to ``127.0.0.0/8``
or to the host's own address never leaves it. All threads of a host are one process: file
descriptors are allocated lowest-first from 3, as Linux does.

Hosts do not forward (``ip_forward = 0``): a packet for another address that reaches a
host is dropped ("not_for_me"); routers forward.
"""

from __future__ import annotations

import errno
import heapq

from simsock.errors import os_error
from simsock.kernel.addr import LOOPBACK, is_loopback
from simsock.kernel.cpu import HostCpu
from simsock.kernel.kernel import Kernel
from simsock.kernel.tcp_stack import TcpStack
from simsock.kernel.thread import SimThread
from simsock.kernel.udp_stack import UdpStack
from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, IcmpError, Packet


class Node:
    """Anything with links: hosts and routers."""

    def __init__(self, sim, name: str, address: str):
        self.sim = sim
        self.name = name
        self.address = address
        self.profile = sim.profile
        self.links: list = []
        self._icmp_tokens: dict[str, tuple[int, int]] = {}   # destination -> (tokens, last refill)

    def receive(self, pkt, channel) -> None:
        raise NotImplementedError

    def owns(self, ip: str) -> bool:
        raise NotImplementedError

    def _icmp_allowed(self, dst: str) -> bool:
        """icmpv4_xrlim_allow: a token bucket per destination; loopback is exempt."""
        if self.owns(dst):
            return True
        prof = self.profile
        now = self.sim.env.now
        limit = prof.icmp_ratelimit_ns
        tokens, last = self._icmp_tokens.get(dst, (limit * prof.icmp_ratelimit_burst, now))
        tokens = min(limit * prof.icmp_ratelimit_burst, tokens + (now - last))
        if tokens >= limit:
            self._icmp_tokens[dst] = (tokens - limit, now)
            return True
        self._icmp_tokens[dst] = (tokens, now)
        return False


class Host(Node):
    kind = "host"

    def __init__(self, sim, name: str, address: str, cores: int):
        super().__init__(sim, name, address)
        self.cores = cores
        self.threads: list[SimThread] = []
        self._thread_names: dict[str, int] = {}
        self._fds: dict[int, object] = {}
        self._free_fds: list[int] = []
        self._next_fd = 3
        self.port_rng = sim.rng.stream(f"ports:{name}")   # both stacks' ephemeral ports
        self.ip_mib = {"InReceives": 0, "InDelivers": 0, "OutRequests": 0, "OutNoRoutes": 0,
                       "ReasmFails": 0, "ReasmOKs": 0, "FragCreates": 0}
        self.drops_not_for_me = 0
        self.lo = None       # loopback channel, made by the simulation
        self._route_cache: dict[str, tuple] = {}
        self.cpu = HostCpu(self)       # cores, run queue, CPU accounting (kernel/cpu.py)
        self.udp = UdpStack(self)
        self.tcp = TcpStack(self)

    # -- threads -------------------------------------------------------------------------
    def spawn(self, fn, *args, name: str | None = None) -> SimThread:
        """Start ``fn(k, *args)`` as a new simulated thread on this host (now, or when the
        simulation runs)."""
        if not callable(fn):
            raise TypeError(f"spawn() needs an async function, got {fn!r}")
        if name is None:
            base = getattr(fn, "__name__", "thread")
            count = self._thread_names.get(base, 0) + 1
            self._thread_names[base] = count
            name = base if count == 1 else f"{base}-{count}"
        elif not isinstance(name, str):
            raise TypeError(f"thread name must be a str, not {type(name).__name__}")
        thread = SimThread(self.sim, self, name, None, self.sim._next_tid())
        k = Kernel(self, thread)
        coro = fn(k, *args)
        if not hasattr(coro, "send"):
            raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not an async function: programs are "
                            f"'async def f(k, ...)' so that the calls that wait can be awaited")
        thread.coro = coro
        self.threads.append(thread)
        thread.start()
        return thread

    # -- file descriptors ----------------------------------------------------------------
    def _alloc_fd(self, obj) -> int:
        if self._free_fds:
            fd = heapq.heappop(self._free_fds)
        else:
            fd = self._next_fd
            self._next_fd += 1
        self._fds[fd] = obj
        return fd

    def _free_fd(self, fd: int) -> None:
        if self._fds.pop(fd, None) is not None:
            heapq.heappush(self._free_fds, fd)

    def file(self, fd: int):
        return self._fds.get(fd)

    # -- addresses and routes --------------------------------------------------------------
    def owns(self, ip: str) -> bool:
        return ip == self.address or is_loopback(ip)

    def source_address_for(self, dst: str) -> str:
        return self.route(dst)[2]

    def route(self, dst: str):
        """(channel, mtu, source address) for packets to ``dst``; channel None = no route.

        Cached per destination; the simulation clears the cache when the topology changes.
        """
        entry = self._route_cache.get(dst)
        if entry is None:
            if self.owns(dst):
                entry = (self.lo, self.profile.loopback_mtu, LOOPBACK if is_loopback(dst) else dst)
            else:
                channel = self.sim.next_hop(self, dst)
                # the path's smallest MTU: path MTU discovery's converged value (routers
                # do not fragment; see simsock.net.router)
                entry = (channel, self.sim.path_mtu(self, dst) if channel is not None else self.profile.default_mtu,
                         self.address)
            cache = self._route_cache
            if not cache:
                self.sim._filled_route_caches.append(cache)     # cleared on a topology change
            cache[dst] = entry
        return entry

    def route_check(self, dst: str) -> None:
        """Raise ENETUNREACH if no route leads to ``dst`` (as connect/sendto do on Linux)."""
        if self.route(dst)[0] is None:
            self.ip_mib["OutNoRoutes"] += 1
            raise os_error(errno.ENETUNREACH)

    def mtu_to(self, dst: str) -> int:
        return self.route(dst)[1]

    def ip_output(self, pkt: Packet) -> int | None:
        """Send a packet; returns when it has left this host (None: dropped here)."""
        self.ip_mib["OutRequests"] += 1
        channel = self.route(pkt.dst)[0]
        if channel is None:
            self.ip_mib["OutNoRoutes"] += 1
            self.sim._packet_dropped(None, pkt, "no_route", where=self.name)
            return None
        return channel.send(pkt)

    # -- receiving -------------------------------------------------------------------------
    def receive(self, pkt: Packet, channel) -> None:
        if pkt.dst != self.address and not self.owns(pkt.dst):
            self.drops_not_for_me += 1
            self.sim._packet_dropped(None, pkt, "not_for_me", where=self.name)
            return
        self.ip_mib["InReceives"] += 1
        if self.sim.monitors is not None:
            self.sim.monitors.delivered(pkt, self.sim.env.now)
        proto = pkt.proto
        if proto == PROTO_UDP:
            self.udp.receive(pkt)
        elif proto == PROTO_TCP:
            self.tcp.receive(pkt)
        elif proto == PROTO_ICMP:
            self._icmp_receive(pkt)

    # -- ICMP ------------------------------------------------------------------------------
    def send_icmp_unreachable(self, offending: Packet, code: int) -> None:
        if offending.proto == PROTO_ICMP or not self._icmp_allowed(offending.src):
            return
        sim = self.sim
        src = offending.dst if self.owns(offending.dst) else self.address
        icmp = Packet(sim._next_uid(), src, offending.src, PROTO_ICMP, IcmpError(3, code, offending), sim.env.now)
        self.ip_output(icmp)

    def _icmp_receive(self, pkt: Packet) -> None:
        err = pkt.payload
        quoted = err.quoted
        code = {3: errno.ECONNREFUSED, 1: errno.EHOSTUNREACH, 0: errno.ENETUNREACH}.get(err.code, errno.EHOSTUNREACH)
        if quoted.proto == PROTO_UDP:
            self.udp.icmp(quoted, err.code, code)
        elif quoted.proto == PROTO_TCP:
            self.tcp.icmp(quoted, code)

    # -- introspection ----------------------------------------------------------------------
    def sockets(self) -> list:
        return [self._fds[fd] for fd in sorted(self._fds)]

    def stats(self) -> dict:
        return {
            "address": self.address, "cores": self.cores, "cpu": self.cpu.stats(),
            "threads": {t.name: t.state for t in self.threads},
            "udp": dict(self.udp.mib), "ip": dict(self.ip_mib),
            "sockets": {str(fd): s.stats() for fd, s in sorted(self._fds.items()) if hasattr(s, "stats")},
        }

    def __repr__(self) -> str:
        return f"<Host {self.name!r} {self.address}>"
