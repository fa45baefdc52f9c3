"""The host's TCP stack: the kernel glue around the sans-IO :mod:`simsock.tcp`.

The protocol lives in :class:`simsock.tcp.connection.TcpConnection` and
:class:`simsock.tcp.listener.TcpListener`, which know nothing of SimPy. The stack
(``host.tcp``) does what a kernel does around them:

* demultiplexes arriving segments by 4-tuple, then to a listener, else answers with a
  RST (tcp_v4_rcv / tcp_v4_send_reset);
* after every app call, arriving segment or timer, *pumps* the connection: sends what
  ``segments_to_send`` returns, turns its edge signals into wake-ups of blocked threads
  and watchers, and keeps one entry per connection at ``next_deadline()`` in the host's
  timer heap (re-armed lazily: a later deadline never cancels an earlier entry; an entry
  no longer needed is dropped when it reaches the top), with **one** pending SimPy event
  per host for all of them (see ``_arm``);
* owns the port table: bind conflicts, SO_REUSEADDR, listeners, TIME_WAIT holders.

The socket layer's semantics that are not TCP's live in :mod:`simsock.kernel.tcp_socket`.
"""

from __future__ import annotations

import errno
import heapq
import itertools
from collections import deque
from typing import TYPE_CHECKING

from simsock.errors import os_error
from simsock.net.packet import PROTO_TCP, Packet
from simsock.signals import SIG_IN, SIG_OUT, SIG_STATE
from simsock.tcp.config import SKB_TX_OVERHEAD, TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.gso import merge_for_device
from simsock.tcp.listener import reset_for

from .addr import ANY
from .events import call_later

if TYPE_CHECKING:
    from .tcp_socket import TcpSocket


class _Binding:
    """One user of a local TCP port: a socket, or a connection that outlived its socket."""
    __slots__ = ("ip", "reuseaddr", "reuseport", "sock", "conn")

    def __init__(self, ip, reuseaddr, reuseport, sock=None, conn=None):
        self.ip = ip
        self.reuseaddr = reuseaddr
        self.reuseport = reuseport
        self.sock = sock
        self.conn = conn

    @property
    def alive(self) -> bool:
        if self.conn is not None:
            return not self.conn.finished
        s = self.sock
        if s._closed:
            return s.conn is not None and not s.conn.finished
        return True

    @property
    def listening(self) -> bool:
        s = self.sock
        return s is not None and not s._closed and s.listener is not None


class TcpStack:
    """Per-host TCP state: connections by 4-tuple, listeners and bindings by port."""

    def __init__(self, host):
        self.host = host
        self.sim = host.sim
        self.env = host.sim.env
        self.conns: dict[tuple, TcpConnection] = {}
        self.listeners: dict[int, list] = {}         # port -> listening TcpSockets
        self.ports: dict[int, list[_Binding]] = {}
        self.sock_of: dict[TcpConnection, TcpSocket] = {}
        self.parent: dict[TcpConnection, TcpSocket] = {}
        self.timer_at: dict[TcpConnection, int] = {}    # deadline of each connection's live heap entry
        self._theap: list = []           # (deadline, arming order, connection), see _arm
        self._tseq = itertools.count()
        self._tev_at: int | None = None  # time of the host's pending timer event
        self.iss_rng = host.sim.rng.stream(f"tcp_iss:{host.name}")
        self.resets_sent = 0
        self.fastopen = 1                # net.ipv4.tcp_fastopen (0x1: client enabled)
        self.fastopen_cookies: dict[str, bytes] = {}   # TFO cookies by server address
        self.listen_drops = 0
        self._busy = 0                   # pumps / backlog drains in progress
        self._backlog: deque = deque()   # loopback segments waiting for them to finish
        self.default_congestion = host.profile.tcp_congestion_control   # net.ipv4.tcp_congestion_control

    # -- ports ---------------------------------------------------------------------------
    def _users(self, port: int) -> list[_Binding]:
        users = self.ports.get(port)
        if users:
            live = [b for b in users if b.alive]
            if len(live) != len(users):
                users[:] = live
        return users or []

    def bind(self, sock: TcpSocket, ip: str, port: int) -> None:
        host = self.host
        if ip != ANY and not host.owns(ip):
            raise os_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = self._ephemeral(ip)
        else:
            for b in self._users(port):
                if not (b.ip == ip or b.ip == ANY or ip == ANY):
                    continue
                if sock._reuseport and b.reuseport:
                    continue
                # inet_csk_bind_conflict: both SO_REUSEADDR and the other not listening
                if sock._reuseaddr and b.reuseaddr and not b.listening:
                    continue
                raise os_error(errno.EADDRINUSE)
        sock.local = (ip, port)
        self.ports.setdefault(port, []).append(_Binding(ip, sock._reuseaddr, sock._reuseport, sock=sock))

    def listen_conflict(self, sock: TcpSocket) -> None:
        """inet_csk_listen_start re-checks the port (inet_csk_get_port): two sockets bound to
        one port with SO_REUSEADDR (allowed while neither listens) cannot both listen, so
        the second listen() raises EADDRINUSE unless both set SO_REUSEPORT."""
        ip, port = sock.local
        for b in self._users(port):
            if b.sock is sock or not b.listening:
                continue
            if not (b.ip == ip or b.ip == ANY or ip == ANY):
                continue
            if sock._reuseport and b.reuseport:
                continue
            raise os_error(errno.EADDRINUSE)

    def _ephemeral(self, ip: str) -> int:
        lo, hi = self.host.profile.ip_local_port_range
        span = hi - lo + 1
        start = self.host.port_rng.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if not self._users(port):
                return port
        raise os_error(errno.EADDRNOTAVAIL, "no free ephemeral port")

    # -- config --------------------------------------------------------------------------
    def config_for(self, sock: TcpSocket, remote_ip: str) -> TcpConfig:
        prof = self.host.profile
        channel, mtu, _ = self.host.route(remote_ip)
        linger = sock._linger[1] if sock._linger[0] else None
        # loopback: the receiver queues the sender's own skbs (truesize = payload + the
        # sender's per-skb overhead) and coalesces them (tcp_try_coalesce)
        lo = {"skb_rx_overhead": SKB_TX_OVERHEAD, "rx_coalesce": True} if channel is self.host.lo else {}
        cfg = TcpConfig.for_mtu(
            mtu, sndbuf=sock.sndbuf, rcvbuf=sock.rcvbuf, sndbuf_locked=sock._userlocks_snd,
            rcvbuf_locked=sock._userlocks_rcv, nodelay=sock._nodelay, cork=sock._cork, linger=linger,
            congestion=sock._congestion, tcp_wmem=tuple(prof.tcp_wmem), tcp_rmem=tuple(prof.tcp_rmem),
            keepalive=sock._keepalive, keepalive_time=sock._ka_time, keepalive_intvl=sock._ka_intvl,
            keepalive_probes=sock._ka_probes, orphan_retries=prof.tcp_orphan_retries,
            rmem_max=prof.rmem_max, sack=prof.tcp_sack, dsack=prof.tcp_dsack,
            recovery=prof.tcp_recovery, early_retrans=prof.tcp_early_retrans,
            syn_linear_timeouts=prof.tcp_syn_linear_timeouts,
            fq_pacing=prof.default_qdisc == "fq" and channel is not self.host.lo,
            pacing_ss_ratio=prof.tcp_pacing_ss_ratio, pacing_ca_ratio=prof.tcp_pacing_ca_ratio, **lo)
        cfg.extra["pmtu"] = min(mtu, 65535)
        if sock._user_mss:
            cfg.mss = min(cfg.mss, sock._user_mss)     # tcp_advertise_mss / mss_clamp
            cfg.extra["user_mss"] = sock._user_mss
        if sock._syncnt:
            cfg.syn_retries = sock._syncnt
        return cfg

    # -- driving connections -------------------------------------------------------------
    def register(self, conn: TcpConnection, sock: TcpSocket | None) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        self.conns[key] = conn
        if sock is not None:
            self.sock_of[conn] = sock
        if self.sim.trace.want_events:
            where = f"{self.host.name}:{conn.local[1]}>{conn.remote[0]}:{conn.remote[1]}"
            trace = self.sim.trace
            conn.trace = lambda kind, now, fields: trace.event(now, where, "tcp_" + kind, fields)

    def pump(self, conn: TcpConnection) -> None:
        """Send what ``conn`` has to send, deliver its signals, arm its timer; then process
        the loopback segments that this caused (see :meth:`loopback_input`)."""
        self._busy += 1
        try:
            env = self.env
            now = env._now
            segs = conn.segments_to_send(now)
            if segs:
                host = self.host
                uids = self.sim._uids
                src, dst = conn.local[0], conn.remote[0]
                if len(segs) > 1 and getattr(host.route(dst)[0], "tso", False):
                    segs = merge_for_device(conn, segs)   # the device takes TSO bursts
                for seg in segs:
                    host.ip_output(Packet(next(uids), src, dst, PROTO_TCP, seg, now))
            sig = conn.signals               # conn.take_signals(), inlined (hot path)
            if sig:
                conn.signals = 0
                sock = self.sock_of.get(conn)
                if sock is not None:
                    sock._notify(sig, readers=bool(sig & (SIG_IN | SIG_STATE)),
                                 writers=bool(sig & (SIG_OUT | SIG_STATE)))
            if self.parent:
                lsock = self.parent.get(conn)
                if lsock is not None:
                    lsig = lsock.listener.take_signals()
                    if lsig:
                        lsock._notify(SIG_IN if lsig & SIG_IN else SIG_STATE, readers=True)
                    if conn.listener is None or conn.finished:
                        del self.parent[conn]
            if conn.finished:
                self._forget(conn)
            else:
                deadline = conn.next_deadline()
                if deadline is not None:
                    pending = self.timer_at.get(conn)
                    if pending is None or deadline < pending:
                        self._arm(conn, deadline, now)
        finally:
            self._busy -= 1
        if not self._busy and self._backlog:
            self._drain()

    def loopback_input(self, pkt: Packet, channel) -> None:
        """A segment sent on this host's loopback: processed before the sending call returns,
        as Linux's softirq does on the way out of the syscall (loopback_xmit -> netif_rx ->
        net_rx_action), so a loopback connect() finds the handshake done and a SYN to a full
        accept queue is dropped before the next connect. Segments wait in a FIFO backlog
        while a connection's output is in progress and are processed in order after it."""
        self._backlog.append((pkt, channel))
        if not self._busy:
            self._drain()

    def _drain(self) -> None:
        backlog = self._backlog
        trace = self.sim.trace
        host = self.host
        self._busy += 1
        try:
            while backlog:
                pkt, channel = backlog.popleft()
                if trace.want_packets:
                    trace.packet(self.env.now, channel.name, "arrive", pkt)
                host.receive(pkt, channel)
        finally:
            self._busy -= 1

    # -- timers: one heap per host, one SimPy event for all of them -------------------------
    # A connection's timers are lazy (a later deadline never cancels an earlier entry), and
    # most never fire: a retransmission timer is armed by every send and stopped by the ACK
    # a few ms later. Entries therefore wait in the host's heap, not SimPy's: the host keeps
    # one SimPy event, at its earliest entry that may still be due, and an entry whose
    # connection no longer needs it is dropped (or moved to the later deadline) when it
    # reaches the top, without an event. A timer fires at exactly the instant it would with
    # one SimPy event per connection; timers due at the same instant run in the order they
    # were armed.
    def _arm(self, conn: TcpConnection, deadline: int, now: int) -> None:
        """``conn``'s next deadline is ``deadline``, earlier than any entry it has."""
        self.timer_at[conn] = deadline
        heapq.heappush(self._theap, (deadline, next(self._tseq), conn))
        if self._tev_at is None or deadline < self._tev_at:
            self._schedule_timers(deadline, now)

    def _schedule_timers(self, at: int, now: int) -> None:
        self._tev_at = at
        call_later(self.env, at - now if at > now else 0, self._timers_event, at)

    def _timers_event(self, ev) -> None:
        if self._tev_at == ev._value:
            self._tev_at = None
        now = self.env._now
        theap = self._theap
        timer_at = self.timer_at
        while theap and theap[0][0] <= now:
            at, _, conn = heapq.heappop(theap)
            if timer_at.get(conn) != at:
                continue                    # replaced by an earlier entry, or forgotten
            del timer_at[conn]
            if conn.finished:
                continue
            deadline = conn.next_deadline()
            if deadline is None:
                continue                    # the timers were stopped since (an ACK came)
            if deadline <= now:
                conn.handle_timer(now)
                self.pump(conn)             # may arm a new entry
            elif conn not in timer_at:
                self._arm(conn, deadline, now)   # moved later since: nothing due, only re-arm
        self._prune_timers(now)

    def _prune_timers(self, now: int) -> None:
        """Drop (or move later) the entries at the top of the heap whose connection does
        not need them any more, then make sure the host's event is at the earliest one
        left."""
        theap = self._theap
        timer_at = self.timer_at
        while theap:
            at, _, conn = theap[0]
            if timer_at.get(conn) != at:
                heapq.heappop(theap)
                continue
            deadline = None if conn.finished else conn.next_deadline()
            if deadline is not None and deadline <= at:
                break                       # still due then
            heapq.heappop(theap)
            del timer_at[conn]
            if deadline is not None:
                timer_at[conn] = deadline
                heapq.heappush(theap, (deadline, next(self._tseq), conn))
        if theap and (self._tev_at is None or theap[0][0] < self._tev_at):
            self._schedule_timers(theap[0][0], now)

    def _forget(self, conn: TcpConnection) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if self.conns.get(key) is conn:
            del self.conns[key]
        self.timer_at.pop(conn, None)
        self.parent.pop(conn, None)
        sock = self.sock_of.get(conn)
        if sock is None or sock._closed:
            self.sock_of.pop(conn, None)

    def timers_busy(self) -> bool:
        """True while some connection has work due soon (for settle): retransmissions,
        delayed ACKs, unsent data; TIME_WAIT, zero-window probes and handshake
        retransmissions do not count.

        A SYN or SYN-ACK retransmission (1 s and more away) means a handshake was dropped —
        a full accept queue drops SYNs and final ACKs (tcp_conn_request, tcp_check_req) —
        and waiting for it is not what the real settle does: SIOCOUTQ is 0 in SYN_SENT and
        SYN_RECV and EINVAL on a listener, so the real side moves on after ~20 ms with the
        client still in SYN_SENT (conformance scenario ``tcp_backlog_overflow``).

        A retransmission timer facing a zero window counts as a zero-window probe: the
        receiver dropped the data for lack of memory and advertised a zero window
        (ICSK_ACK_NOMEM), so only its reader can make progress, and the retransmissions
        become probes (tcp_retransmit_timer) that go on as long as the peer answers."""
        for conn in self.conns.values():
            if conn.delack_at is not None or (conn.rto_at is not None
                                              and conn.rto_kind not in ("probe", "syn", "synack")
                                              and conn.snd_wnd):
                if not conn.in_time_wait:
                    return True
        return False

    # -- network side --------------------------------------------------------------------
    def receive(self, pkt: Packet) -> None:
        seg = pkt.payload
        now = self.env.now
        conn = self.conns.get((pkt.dst, seg.dport, pkt.src, seg.sport))
        if conn is not None:
            conn.receive_segment(seg, now)
            self.pump(conn)
            return
        lsock = self._listener_for(pkt.dst, seg.dport)
        if lsock is not None:
            iss = self.iss_rng.getrandbits(32)
            listener = lsock.listener
            child = listener.receive_segment(seg, (pkt.src, seg.sport), now, iss=iss)
            if listener.out:
                for reply in listener.take_output():      # a SYN cookie's SYN-ACK
                    self.host.ip_output(Packet(self.sim._next_uid(), pkt.dst, pkt.src, PROTO_TCP, reply, now))
                return
            if child is not None:
                child.local = (pkt.dst, seg.dport)
                self.register(child, None)
                self.parent[child] = lsock
                self.ports.setdefault(seg.dport, []).append(
                    _Binding(pkt.dst, lsock._reuseaddr, lsock._reuseport, conn=child))
                self.pump(child)
                return
            if listener.dropped:
                # accept queue (or, without cookies, SYN queue) full: the SYN, or a cookie's
                # ACK, is dropped silently (LINUX_MIB_LISTENOVERFLOWS / LISTENDROPS)
                self.listen_drops += 1
                self.sim._packet_dropped(None, pkt, "listen_overflow", where=self.host.name)
                return
        self._send_reset(pkt)

    def _listener_for(self, ip: str, port: int):
        best = None
        for sock in self.listeners.get(port, ()):
            lip = sock.local[0]
            if lip == ip:
                return sock
            if lip == ANY and best is None:
                best = sock
        return best

    def _send_reset(self, pkt: Packet) -> None:
        rst = reset_for(pkt.payload)
        self.sim._packet_dropped(None, pkt, "no_socket", where=self.host.name)
        if rst is None:
            return
        self.resets_sent += 1
        self.host.ip_output(Packet(self.sim._next_uid(), pkt.dst, pkt.src, PROTO_TCP, rst, self.env.now))

    def icmp(self, quoted: Packet, code: int) -> None:
        seg = quoted.payload
        conn = self.conns.get((quoted.src, seg.sport, quoted.dst, seg.dport))
        if conn is not None:
            conn.icmp_error(code, self.env.now)
            self.pump(conn)
