"""The host's UDP stack (``host.udp``): the port table, demultiplexing, output with IP
fragmentation, reassembly, and ICMP errors for UDP.

Ports (udp_lib_get_port): a port may be shared by sockets that all set SO_REUSEADDR, or all
SO_REUSEPORT; an unused ephemeral port is picked at random in ``ip_local_port_range``.
An arriving datagram goes to the best match on its port (__udp4_lib_lookup's score: a
socket bound to the address beats a wildcard one, a connected one beats an unconnected one;
among equals the most recently bound), else it is counted as NoPorts and answered with ICMP
port unreachable.

A datagram larger than the route's MTU leaves in fragments of ``(mtu - 20) & ~7`` bytes
(ip_fragment), and the receiver reassembles them (ip_defrag), charging the datagram the
truesize of all its fragments' skbs; an incomplete datagram is given up after
``ipfrag_time`` (ip_expire). The counters are those of /proc/net/snmp's ``Udp:`` line
(``mib``); the IP ones are the host's (``host.ip_mib``).
"""

from __future__ import annotations

import errno

from simsock.errors import os_error
from simsock.net.packet import IP_HEADER, PROTO_UDP, UDP_HEADER, Datagram, Packet

from .addr import ANY, is_loopback

_new = object.__new__


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


def _addr_conflict(a: str, b: str) -> bool:
    return a == b or a == ANY or b == ANY


class UdpStack:
    """Per-host UDP state: sockets by local port, reassembly queues, counters."""

    def __init__(self, host):
        self.host = host
        self.sim = host.sim
        self.ports: dict[int, list] = {}       # local port -> UdpSockets bound to it
        self.mib = {"InDatagrams": 0, "NoPorts": 0, "InErrors": 0, "OutDatagrams": 0,
                    "RcvbufErrors": 0, "SndbufErrors": 0}
        self.truesize = host.sim.udp_truesize  # the profile's, cached once per simulation
        self._frag_ident = 0
        self._reassembly: dict[tuple, list] = {}   # (source, ident) -> [first arrival, fragments, truesize]

    # -- ports ----------------------------------------------------------------------------
    def bind(self, sock, ip: str, port: int) -> None:
        host = self.host
        if ip != ANY and not host.owns(ip):
            raise os_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = self._pick_ephemeral(ip)
        else:
            for other in self.ports.get(port, ()):
                if _addr_conflict(other.local[0], ip) and not (
                        (sock._reuseaddr and other._reuseaddr) or (sock._reuseport and other._reuseport)):
                    raise os_error(errno.EADDRINUSE)
        sock.local = (ip, port)
        self.ports.setdefault(port, []).append(sock)

    def _pick_ephemeral(self, ip: str) -> int:
        lo, hi = self.host.profile.ip_local_port_range
        span = hi - lo + 1
        start = self.host.port_rng.randrange(span)
        ports = self.ports
        for i in range(span):
            port = lo + (start + i) % span
            if not any(_addr_conflict(o.local[0], ip) for o in ports.get(port, ())):
                return port
        raise os_error(errno.EAGAIN, "no free ephemeral port")

    def rehash(self, sock, ip: str) -> None:
        """A wildcard-bound socket takes ``ip`` as its source (ip4_datagram_connect)."""
        sock.local = (ip, sock.local[1])

    def unbind(self, sock) -> None:
        if sock.local is None:
            return
        users = self.ports.get(sock.local[1])
        if users and sock in users:
            users.remove(sock)
            if not users:
                del self.ports[sock.local[1]]

    def lookup(self, dst: str, dport: int, src: str, sport: int):
        """The socket a datagram from (src, sport) to (dst, dport) goes to, or None."""
        users = self.ports.get(dport)
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

    # -- output ---------------------------------------------------------------------------
    def output(self, sock, data: bytes, dest: tuple[str, int], route=None) -> int | None:
        """Build and send a datagram (fragmented above the MTU); returns the release time.
        ``route``: ``host.route(dest[0])`` when the caller has just looked it up."""
        host = self.host
        sim = self.sim
        channel, mtu, route_src = route if route is not None else host.route(dest[0])
        local = sock.local
        src_ip = local[0]
        if src_ip == ANY:
            src_ip = route_src
        # Datagram(local[1], dest[1], data), inlined (buys benchmarks/compare.py udp)
        dgram = _new(Datagram)
        dgram.sport = local[1]
        dgram.dport = dest[1]
        dgram.data = data
        self.mib["OutDatagrams"] += 1
        size = UDP_HEADER + len(data)
        if IP_HEADER + size <= mtu:
            # host.ip_output with the route already known, inlined (benchmarks/udp_blast.py)
            host.ip_mib["OutRequests"] += 1
            # Packet(next(sim._uids), src_ip, dest[0], PROTO_UDP, dgram, now), inlined: the
            # same fields, no __init__ or wire_size frame (buys benchmarks/compare.py udp)
            pkt = _new(Packet)
            pkt.uid = next(sim._uids)
            pkt.src = src_ip
            pkt.dst = dest[0]
            pkt.proto = PROTO_UDP
            pkt.payload = dgram
            pkt.size = IP_HEADER + size
            pkt.created = sim.env._now
            pkt.ttl = 64
            pkt.enqueued_at = 0
            pkt.truesize = 0
            pkt.trace_hdr = None
            return channel.send(pkt)
        per = (mtu - IP_HEADER) & ~7
        count = -(-size // per)
        self._frag_ident = (self._frag_ident + 1) & 0xFFFF
        released = None
        for i in range(count):
            length = min(per, size - i * per)
            frag = Fragment(dgram, self._frag_ident, i, count, length)
            pkt = Packet(sim._next_uid(), src_ip, dest[0], PROTO_UDP, frag, sim.env.now)
            host.ip_mib["FragCreates"] += 1
            released = host.ip_output(pkt)
        return released

    # -- input ----------------------------------------------------------------------------
    def receive(self, pkt: Packet) -> None:
        """A UDP packet (a datagram or a fragment of one) addressed to this host."""
        sim = self.sim
        host = self.host
        dgram = pkt.payload
        if type(dgram) is Fragment:
            truesize = self._reassemble(pkt, dgram)
            if truesize is None:
                return
            dgram = dgram.datagram
        else:
            truesize = None
        users = self.ports.get(dgram.dport)
        if users and len(users) == 1:
            # self.lookup's one-socket case, inlined (buys benchmarks/compare.py udp)
            sock = users[0]
            lip = sock.local[0]
            if not ((lip == ANY or lip == pkt.dst) and (sock.peer is None or sock.peer == (pkt.src, dgram.sport))):
                sock = None
        else:
            sock = self.lookup(pkt.dst, dgram.dport, pkt.src, dgram.sport)
        if sock is None:
            self.mib["NoPorts"] += 1
            sim._packet_dropped(None, pkt, "no_port", where=host.name)
            host.send_icmp_unreachable(pkt, code=3)
            return
        if truesize is None:
            truesize = self.truesize(len(dgram.data))
        pkt.truesize = truesize
        if sock.deliver(dgram.data, (pkt.src, dgram.sport), truesize):
            self.mib["InDatagrams"] += 1
            host.ip_mib["InDelivers"] += 1
            if sim.trace.want_packets:
                sim.trace.packet(sim.env.now, host.name, "deliver", pkt)
        else:
            self.mib["RcvbufErrors"] += 1
            self.mib["InErrors"] += 1
            sim._packet_dropped(None, pkt, "rcvbuf", where=host.name)

    def _reassemble(self, pkt: Packet, frag: Fragment) -> int | None:
        """Queue a fragment; when it completes its datagram, the truesize of all the
        fragments' skbs (the fragments' skbs, as on a veth: measured), else None."""
        key = (pkt.src, frag.ident)
        now = self.sim.env.now
        entry = self._reassembly.get(key)
        if entry is None:
            entry = [now, 0, 0]
            self._reassembly[key] = entry
            # ip_expire: give the datagram up after ipfrag_time if it is still incomplete
            timer = self.sim.env.timeout(self.host.profile.ipfrag_time_ns)
            timer.callbacks.append(lambda _ev, key=key, entry=entry: self._reassembly_expired(key, entry))
        entry[1] += 1
        # each fragment's skb stays in the reassembled one (ip_frag_reasm adds up truesize):
        # an skb of its IP length, charged as udp_truesize indexes it (UDP payload = length - 28)
        entry[2] += self.truesize(pkt.size - 28)
        if entry[1] < frag.count:
            return None
        del self._reassembly[key]
        self.host.ip_mib["ReasmOKs"] += 1
        return entry[2]

    def _reassembly_expired(self, key, entry) -> None:
        if self._reassembly.get(key) is entry:
            del self._reassembly[key]
            self.host.ip_mib["ReasmFails"] += 1

    def icmp(self, quoted: Packet, icmp_code: int, err: int) -> None:
        """ICMP destination unreachable (``icmp_code``, as errno ``err``) about a datagram
        this host sent.

        __udp4_lib_err without IP_RECVERR reports only *hard* errors (icmp_err_convert
        .fatal) to a connected socket: port unreachable is one; net and host unreachable
        are transient (RFC 1122 3.2.2.1) and are not reported at all
        (tests/net/test_router.py pins this against real namespaces)."""
        if icmp_code in (0, 1):
            return
        q = quoted.payload
        sock = self.lookup(quoted.src, q.sport, quoted.dst, q.dport)
        if sock is not None and sock.peer == (quoted.dst, q.dport):
            sock.icmp_error(err)
