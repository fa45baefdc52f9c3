"""Hosts: a kernel with its threads, sockets, port tables and network interfaces.

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

from simsock import constants as C
from simsock.errors import os_error
from simsock.kernel.addr import ANY, LOOPBACK, is_loopback
from simsock.kernel.thread import SimThread
from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Datagram, IcmpError, Packet, IP_HEADER, UDP_HEADER


class Fragment:
    """One IP fragment of a UDP datagram larger than the route's MTU."""
    __slots__ = ("datagram", "ident", "index", "count", "length")

    def __init__(self, datagram: Datagram, ident: int, index: int, count: int, length: int):
        self.datagram = datagram
        self.ident = ident
        self.index = index
        self.count = count
        self.length = length

    @property
    def wire_size(self) -> int:
        return self.length

    @property
    def sport(self):
        return self.datagram.sport

    @property
    def dport(self):
        return self.datagram.dport


class Node:
    """Anything with links: hosts and routers."""

    def __init__(self, sim, name: str, address: str):
        self.sim = sim
        self.name = name
        self.address = address
        self.links: list = []

    def receive(self, pkt, channel) -> None:
        raise NotImplementedError


class Host(Node):
    kind = "host"

    def __init__(self, sim, name: str, address: str, cores: int):
        super().__init__(sim, name, address)
        self.cores = cores
        self.profile = sim.profile
        self.threads: list[SimThread] = []
        self._thread_names: dict[str, int] = {}
        self._fds: dict[int, object] = {}
        self._free_fds: list[int] = []
        self._next_fd = 3
        self.udp_ports: dict[int, list] = {}
        self._ephemeral = sim.rng.stream(f"ports:{name}")
        self._frag_ident = 0
        self._reassembly: dict[tuple, list] = {}
        self._icmp_tokens: dict[str, tuple[int, int]] = {}
        self.udp_mib = {"InDatagrams": 0, "NoPorts": 0, "InErrors": 0, "OutDatagrams": 0,
                        "RcvbufErrors": 0, "SndbufErrors": 0}
        self.ip_mib = {"InReceives": 0, "InDelivers": 0, "OutRequests": 0, "OutNoRoutes": 0,
                       "ReasmFails": 0, "ReasmOKs": 0, "FragCreates": 0}
        self.drops_not_for_me = 0
        self.lo = None       # loopback channel, made by the simulation
        self._route_cache: dict[str, tuple] = {}
        self.udp_truesize = sim.udp_truesize      # the profile's, cached once per simulation
        from simsock.kernel.cpu import HostCpu
        self.cpu = HostCpu(self)       # cores, run queue, CPU accounting (kernel/cpu.py)

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
        from simsock.kernel.kernel import Kernel
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

    def _thread_exited(self, thread: SimThread) -> None:
        pass

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

    # -- UDP port table -------------------------------------------------------------------
    def udp_bind(self, sock, ip: str, port: int) -> None:
        if ip != ANY and not self.owns(ip):
            raise os_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = self._pick_ephemeral(self.udp_ports, sock, ip)
        else:
            for other in self.udp_ports.get(port, ()):
                if self._addr_conflict(other.local[0], ip) and not (
                        (sock._reuseaddr and other._reuseaddr) or (sock._reuseport and other._reuseport)):
                    raise os_error(errno.EADDRINUSE)
        sock.local = (ip, port)
        self.udp_ports.setdefault(port, []).append(sock)

    @staticmethod
    def _addr_conflict(a: str, b: str) -> bool:
        return a == b or a == ANY or b == ANY

    def _pick_ephemeral(self, table: dict, sock, ip: str) -> int:
        lo, hi = self.profile.ip_local_port_range
        span = hi - lo + 1
        start = self._ephemeral.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if not any(self._addr_conflict(o.local[0], ip) for o in table.get(port, ())):
                return port
        raise os_error(errno.EAGAIN, "no free ephemeral port")

    def udp_rehash(self, sock, ip: str) -> None:
        sock.local = (ip, sock.local[1])

    def udp_unbind(self, sock) -> None:
        if sock.local is None:
            return
        users = self.udp_ports.get(sock.local[1])
        if users and sock in users:
            users.remove(sock)
            if not users:
                del self.udp_ports[sock.local[1]]

    def _udp_lookup(self, dst: str, dport: int, src: str, sport: int):
        users = self.udp_ports.get(dport)
        if not users:
            return None
        if len(users) == 1:                  # the common case: one socket on the port
            sock = users[0]
            lip = sock.local[0]
            if (lip == ANY or lip == dst) and (sock.peer is None or sock.peer == (src, sport)):
                return sock
            return None
        best, best_score = None, -1
        for sock in users:
            score = 0
            lip = sock.local[0]
            if lip != ANY:
                if lip != dst and not (is_loopback(lip) and is_loopback(dst) and lip == dst):
                    continue
                score += 4
            if sock.peer is not None:
                if sock.peer != (src, sport):
                    continue
                score += 8
            if score >= best_score:          # ties: the most recently bound, as the hash chain
                best, best_score = sock, score
        return best

    def udp_output(self, sock, data: bytes, dest: tuple[str, int], route=None) -> int | None:
        """Build and send a datagram (fragmented above the MTU); returns the release time.
        ``route``: ``self.route(dest[0])`` when the caller has just looked it up."""
        sim = self.sim
        channel, mtu, route_src = route if route is not None else self.route(dest[0])
        local = sock.local
        src_ip = local[0]
        if src_ip == ANY:
            src_ip = route_src
        dgram = Datagram(local[1], dest[1], data)
        self.udp_mib["OutDatagrams"] += 1
        size = UDP_HEADER + len(data)
        if IP_HEADER + size <= mtu:
            self.ip_mib["OutRequests"] += 1
            return channel.send(Packet(next(sim._uids), src_ip, dest[0], PROTO_UDP, dgram, sim.env._now))
        per = (mtu - IP_HEADER) & ~7
        count = -(-size // per)
        self._frag_ident = (self._frag_ident + 1) & 0xFFFF
        released = None
        for i in range(count):
            length = min(per, size - i * per)
            frag = Fragment(dgram, self._frag_ident, i, count, length)
            pkt = Packet(sim._next_uid(), src_ip, dest[0], PROTO_UDP, frag, sim.env.now)
            self.ip_mib["FragCreates"] += 1
            released = self.ip_output(pkt)
        return released

    # -- receiving -------------------------------------------------------------------------
    def receive(self, pkt: Packet, channel) -> None:
        if pkt.dst != self.address and not self.owns(pkt.dst):
            self.drops_not_for_me += 1
            self.sim._packet_dropped(None, pkt, "not_for_me", where=self.name)
            return
        self.ip_mib["InReceives"] += 1
        if self.sim.netmon is not None:
            self.sim.netmon.delivered(pkt, self.sim.env.now)
        proto = pkt.proto
        if proto == PROTO_UDP:
            payload = pkt.payload
            if type(payload) is Fragment:
                payload = self._reassemble(pkt, payload)
                if payload is None:
                    return
            self._udp_receive(pkt, payload)
        elif proto == PROTO_TCP:
            self.tcp_receive(pkt)
        elif proto == PROTO_ICMP:
            self._icmp_receive(pkt)

    def tcp_receive(self, pkt: Packet) -> None:
        # Until TCP is wired in, a segment to this host reaches no socket.
        self.sim._packet_dropped(None, pkt, "no_socket", where=self.name)

    def _reassemble(self, pkt: Packet, frag: Fragment):
        key = (pkt.src, frag.ident)
        now = self.sim.env.now
        entry = self._reassembly.get(key)
        if entry is None:
            entry = [now, 0, 0]
            self._reassembly[key] = entry
            # ip_expire: give the datagram up after ipfrag_time if it is still incomplete
            timer = self.sim.env.timeout(self.profile.ipfrag_time_ns)
            timer.callbacks.append(lambda _ev, key=key, entry=entry: self._reassembly_expired(key, entry))
        entry[1] += 1
        # each fragment's skb stays in the reassembled one (ip_frag_reasm adds up truesize):
        # an skb of its IP length, charged as udp_truesize indexes it (UDP payload = length - 28)
        entry[2] += self.udp_truesize(pkt.size - 28)
        if entry[1] < frag.count:
            return None
        del self._reassembly[key]
        self.ip_mib["ReasmOKs"] += 1
        self._reasm_truesize = entry[2]
        return frag.datagram

    def _reassembly_expired(self, key, entry) -> None:
        if self._reassembly.get(key) is entry:
            del self._reassembly[key]
            self.ip_mib["ReasmFails"] += 1

    def _udp_receive(self, pkt: Packet, dgram: Datagram) -> None:
        sim = self.sim
        sock = self._udp_lookup(pkt.dst, dgram.dport, pkt.src, dgram.sport)
        if sock is None:
            self.udp_mib["NoPorts"] += 1
            sim._packet_dropped(None, pkt, "no_port", where=self.name)
            self.send_icmp_unreachable(pkt, code=3)
            return
        if type(pkt.payload) is Fragment:
            truesize = self._reasm_truesize     # the fragments' skbs, as on a veth (measured)
        else:
            truesize = self.udp_truesize(len(dgram.data))
        pkt.truesize = truesize
        if sock.deliver(dgram.data, (pkt.src, dgram.sport), truesize):
            self.udp_mib["InDatagrams"] += 1
            self.ip_mib["InDelivers"] += 1
            if sim.trace.want_packets:
                sim.trace.packet(sim.env.now, self.name, "deliver", pkt)
        else:
            self.udp_mib["RcvbufErrors"] += 1
            self.udp_mib["InErrors"] += 1
            sim._packet_dropped(None, pkt, "rcvbuf", where=self.name)

    # -- ICMP ------------------------------------------------------------------------------
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
            # __udp4_lib_err without IP_RECVERR reports only *hard* errors (icmp_err_convert
            # .fatal) to a connected socket: port unreachable is one; net and host
            # unreachable are transient (RFC 1122 3.2.2.1) and are not reported at all
            # (tests/net/test_router.py pins this against real namespaces).
            if err.code in (0, 1):
                return
            q = quoted.payload
            sock = self._udp_lookup(quoted.src, q.sport, quoted.dst, q.dport)
            if sock is not None and sock.peer == (quoted.dst, q.dport):
                sock.icmp_error(code)
        elif quoted.proto == PROTO_TCP:
            self.tcp_icmp(quoted, code)

    def tcp_icmp(self, quoted: Packet, code: int) -> None:
        pass

    # -- introspection ----------------------------------------------------------------------
    def sockets(self) -> list:
        return [self._fds[fd] for fd in sorted(self._fds)]

    def stats(self) -> dict:
        return {
            "address": self.address, "cores": self.cores, "cpu": self.cpu.stats(),
            "threads": {t.name: t.state for t in self.threads},
            "udp": dict(self.udp_mib), "ip": dict(self.ip_mib),
            "sockets": {str(fd): s.stats() for fd, s in sorted(self._fds.items()) if hasattr(s, "stats")},
        }

    def __repr__(self) -> str:
        return f"<Host {self.name!r} {self.address}>"
