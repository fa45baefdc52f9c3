"""The TCP driver: sockets and the kernel glue around the sans-IO :mod:`simsock.tcp`.

The protocol lives in :class:`simsock.tcp.connection.TcpConnection` and
:class:`simsock.tcp.listener.TcpListener`, which know nothing of SimPy. This module does
what a kernel does around them:

* demultiplexes arriving segments by 4-tuple, then to a listener, else answers with a
  RST (tcp_v4_rcv / tcp_v4_send_reset);
* after every app call, arriving segment or timer, *pumps* the connection: sends what
  ``segments_to_send`` returns, turns its edge signals into wake-ups of blocked threads
  and watchers, and keeps one entry per connection at ``next_deadline()`` in the host's
  timer heap (re-armed lazily: a later deadline never cancels an earlier entry; an entry
  no longer needed is dropped when it reaches the top), with **one** pending SimPy event
  per host for all of them (see ``_arm``);
* owns the port table: bind conflicts, SO_REUSEADDR, listeners, TIME_WAIT holders;
* implements the socket layer's semantics that are not TCP's: SS_CONNECTING
  (EINPROGRESS, EALREADY, the one ``connect`` that returns 0 after completion,
  ECONNABORTED after an error was already read), blocking ``send`` that queues everything
  (tcp_sendmsg waits for space), and CPython's timeout mode (poll, then one non-blocking
  call — so ``send`` with a timeout may return a partial count).
"""

from __future__ import annotations

import errno
import heapq
import itertools
from collections import deque

import simpy

from simsock import constants as C
from simsock.errors import os_error
from simsock.net.packet import PROTO_TCP, Packet
from simsock.tcp import cc as cc_registry
from simsock.tcp.config import SKB_TX_OVERHEAD, TcpConfig
from simsock.tcp.gso import merge_for_device
from simsock.tcp.connection import SEND_SHUTDOWN, TcpConnection
from simsock.tcp.info import listener_info, pack_tcp_info, tcp_info, unconnected_info
from simsock.tcp.listener import TcpListener, reset_for
from simsock.tcp.segment import ACK, FIN, RST, SYN
from simsock.tcp.signals import SIG_ACCEPT, SIG_DATA, SIG_SPACE, SIG_STATE

from .addr import ANY, LOOPBACK, check_int, parse_inet_address, resolve
from .socket import AGAIN, Socket, call_body, syscall
from .wait import SIG_IN, SIG_OUT, TIMED_OUT
from .wait import SIG_STATE as W_STATE

_UNCONNECTED, _CONNECTING, _CONNECTED = 0, 1, 2
_MSG_EOR = 0x80             # MSG_EOR (bits/socket.h)
_MSG_MORE = 0x8000          # MSG_MORE
_TCP_NOTSENT_LOWAT = 25     # linux/tcp.h
_TCP_FASTOPEN_CONNECT = 30
_TCP_USER_TIMEOUT = 18


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
        self.sock_of: dict[TcpConnection, "TcpSocket"] = {}
        self.parent: dict[TcpConnection, "TcpSocket"] = {}
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

    def bind(self, sock: "TcpSocket", ip: str, port: int) -> None:
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

    def listen_conflict(self, sock: "TcpSocket") -> None:
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
        start = self.host._ephemeral.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if not self._users(port):
                return port
        raise os_error(errno.EADDRNOTAVAIL, "no free ephemeral port")

    # -- config --------------------------------------------------------------------------
    def config_for(self, sock: "TcpSocket", remote_ip: str) -> TcpConfig:
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
    def register(self, conn: TcpConnection, sock: "TcpSocket | None") -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        self.conns[key] = conn
        if sock is not None:
            self.sock_of[conn] = sock
        if self.sim.trace.want_events:
            where = f"{self.host.name}:{conn.local[1]}>{conn.remote[0]}:{conn.remote[1]}"
            trace = self.sim.trace
            env = self.env
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
                    edges = ((SIG_IN if sig & SIG_DATA else 0) | (SIG_OUT if sig & SIG_SPACE else 0)
                             | (W_STATE if sig & SIG_STATE else 0))
                    sock._notify(edges, readers=bool(sig & (SIG_DATA | SIG_STATE)),
                                 writers=bool(sig & (SIG_SPACE | SIG_STATE)))
            if self.parent:
                lsock = self.parent.get(conn)
                if lsock is not None:
                    lsig = lsock.listener.take_signals()
                    if lsig:
                        lsock._notify(SIG_IN if lsig & SIG_ACCEPT else W_STATE, readers=True)
                    if conn._listener is None or conn.finished:
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
        env = self.env
        ev = simpy.Event(env)
        ev._ok = True
        ev._value = at
        ev.callbacks.append(self._timers_event)
        env.schedule(ev, 1, at - now if at > now else 0)

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
            self._syn_src = pkt.src
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
        if conn is not None and hasattr(conn, "icmp_error"):
            conn.icmp_error(code, self.env.now)
            self.pump(conn)


def attach_tcp(host) -> None:
    host.tcp = TcpStack(host)
    host.tcp_receive = host.tcp.receive
    host.tcp_icmp = host.tcp.icmp


def make_tcp_socket(host, family, type, proto):
    return TcpSocket(host, family, type, proto)


class TcpSocket(Socket):
    """A ``SOCK_STREAM`` socket."""

    _kind = "tcp"

    def __init__(self, host, family: int, type: int, proto: int, conn: TcpConnection | None = None):
        super().__init__(host, family, type, proto)
        prof = host.profile
        self.stack: TcpStack = host.tcp
        self.sndbuf = prof.tcp_wmem[1]
        self.rcvbuf = prof.tcp_rmem[1]
        self._nodelay = False
        self._cork = False
        self._congestion = self.stack.default_congestion
        self._ka_time = prof.tcp_keepalive_time_ns       # TCP_KEEPIDLE / KEEPINTVL / KEEPCNT
        self._ka_intvl = prof.tcp_keepalive_intvl_ns
        self._ka_probes = prof.tcp_keepalive_probes
        self._user_mss = 0           # TCP_MAXSEG (rx_opt.user_mss)
        self._shutdown_flags = 0     # sk_shutdown set before there was a connection
        self._pingpong = False       # TCP_QUICKACK 0 before there was a connection
        self._syncnt = 0             # TCP_SYNCNT (0: net.ipv4.tcp_syn_retries)
        self._notsent_lowat = 0      # TCP_NOTSENT_LOWAT
        self._fastopen_connect = False   # TCP_FASTOPEN_CONNECT
        self._user_timeout = 0           # TCP_USER_TIMEOUT (ms)
        self._deferred_connect = None    # (ip, port) of a TFO connect() waiting for the first send
        self._notifies = 0
        self.conn = conn
        self.listener: TcpListener | None = None
        self._port_locked = False    # SOCK_BINDPORT_LOCK: bind() named a port (not 0)
        self._port_released = False  # shutdown(SHUT_RD) of a listener gave up an unlocked port
        self._sock_state = _CONNECTED if conn is not None else _UNCONNECTED
        if conn is not None:
            self.local = conn.local
            self.peer = conn.remote
            self.stack.sock_of[conn] = self

    # -- options -------------------------------------------------------------------------
    def _sndbuf(self) -> int:
        return self.conn.sndbuf if self.conn is not None else self.sndbuf

    def _rcvbuf(self) -> int:
        return self.conn.rcvbuf if self.conn is not None else self.rcvbuf

    def _set_sndbuf(self, value: int) -> None:
        self.sndbuf = value
        if self.conn is not None:
            self.conn.sndbuf = value
            self.conn.config.sndbuf_locked = True
            self._pump()

    def _set_rcvbuf(self, value: int) -> None:
        self.rcvbuf = value
        if self.conn is not None:
            self.conn.rcvbuf = value
            self.conn.config.rcvbuf_locked = True
            self._pump()

    def _set_rcvlowat(self, value: int) -> None:
        """tcp_set_rcvlowat: capped at half of tcp_rmem[2] (of SO_RCVBUF once set), and the
        receive buffer grows to hold that much unless SO_RCVBUF was set."""
        cap = (self._rcvbuf() if self._userlocks_rcv else self._host.profile.tcp_rmem[2]) >> 1
        value = min(value, cap)
        self._rcvlowat = value or 1
        if not self._userlocks_rcv:
            ratio = self.conn.scaling_ratio if self.conn is not None else 128
            space = (value << 8) // ratio            # tcp_space_from_win
            if space > self._rcvbuf():
                self.rcvbuf = space
                if self.conn is not None:
                    self.conn.rcvbuf = space
                    if self.conn.window_clamp and self.conn.window_clamp < value:
                        self.conn.window_clamp = value
                    self._pump()
        if self.conn is not None:
            self.conn.rcvlowat = self._rcvlowat
            self._pump()
            self._notify(W_STATE, readers=True)      # tcp_data_ready: maybe readable now

    def _linger_changed(self) -> None:
        if self.conn is not None:
            self.conn.config.linger = self._linger[1] if self._linger[0] else None

    def _keepalive_changed(self) -> None:
        if self.conn is not None:
            self.conn.set_keepalive(self._keepalive, self._env.now)
            self._pump()

    def _set_keepalive_option(self, optname: int, v: int) -> None:
        """TCP_KEEPIDLE / TCP_KEEPINTVL (1..32767 s) and TCP_KEEPCNT (1..127), else EINVAL
        (do_tcp_setsockopt; checked on Linux 6.18)."""
        limit = 127 if optname == C.TCP_KEEPCNT else 32767
        if not 1 <= v <= limit:
            raise os_error(errno.EINVAL)
        conn = self.conn
        if optname == C.TCP_KEEPIDLE:
            self._ka_time = v * 1_000_000_000
            if conn is not None:
                conn.config.keepalive_time = self._ka_time
                conn.keepalive_idle_changed(self._env.now)
                self._pump()
        elif optname == C.TCP_KEEPINTVL:
            self._ka_intvl = v * 1_000_000_000
            if conn is not None:
                conn.config.keepalive_intvl = self._ka_intvl
        else:
            self._ka_probes = v
            if conn is not None:
                conn.config.keepalive_probes = v

    def _take_protocol_error(self) -> int:
        return self.conn.take_error() if self.conn is not None else 0

    def _set_protocol_option(self, level: int, optname: int, value) -> None:
        if level != C.IPPROTO_TCP:
            raise os_error(errno.ENOPROTOOPT)
        if optname == C.TCP_CONGESTION:
            if isinstance(value, str):
                raise TypeError("a bytes-like object is required, not 'str'")
            name = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else value
            cc_registry.get(name)            # raises ENOENT for an unknown algorithm
            name = name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name)
            self._congestion = name
            if self.conn is not None:
                self.conn.config.congestion = name
                if hasattr(self.conn, "set_congestion"):
                    self.conn.set_congestion(name, self._env.now)
            return
        from .socket import _int_option
        v = _int_option(value)
        if optname == C.TCP_NODELAY:
            self._nodelay = bool(v)
            if self.conn is not None:
                self.conn.config.nodelay = bool(v)
                if v:
                    self.conn.push_now = True   # TCP_NAGLE_PUSH: this push ignores a cork
                self._pump()
        elif optname == C.TCP_CORK:
            self._cork = bool(v)
            if self.conn is not None:
                self.conn.config.cork = bool(v)
                self._pump()
        elif optname == C.TCP_MAXSEG:
            # do_tcp_setsockopt: 0 clears it, else TCP_MIN_MSS (88) .. MAX_TCP_WINDOW (32767);
            # it becomes rx_opt.user_mss, which caps the MSS this side advertises in its SYN
            # (or SYN-ACK: a listener's children inherit it) and clamps the peer's, so the
            # connection's mss_cache is user_mss less the timestamp option (1000 -> 988).
            # An established connection keeps its MSS.
            if v and not 88 <= v <= 32767:
                raise os_error(errno.EINVAL, "TCP_MAXSEG must be 0 or 88..32767")
            self._user_mss = v
        elif optname == _TCP_FASTOPEN_CONNECT:
            # do_tcp_setsockopt: 0 or 1, client TFO enabled, before connect()
            if v not in (0, 1):
                raise os_error(errno.EINVAL)
            if not self.stack.fastopen & 1:
                raise os_error(errno.EOPNOTSUPP)
            if self.conn is not None or self._deferred_connect is not None:
                raise os_error(errno.EINVAL)
            self._fastopen_connect = bool(v)
        elif optname == C.TCP_SYNCNT:
            # icsk_syn_retries: SYN retransmissions before connect() fails with ETIMEDOUT
            if not 1 <= v <= 127:                      # MAX_TCP_SYNCNT
                raise os_error(errno.EINVAL, "TCP_SYNCNT must be 1..127")
            self._syncnt = v
        elif optname == _TCP_USER_TIMEOUT:
            if v < 0:
                raise os_error(errno.EINVAL)
            self._user_timeout = v                  # milliseconds (icsk_user_timeout)
            if self.conn is not None:
                self.conn.user_timeout = v * 1_000_000
        elif optname == _TCP_NOTSENT_LOWAT:
            if v < 0:
                raise os_error(errno.EINVAL)
            self._notsent_lowat = v
            if self.conn is not None:
                self.conn.notsent_lowat = v
                self.conn.nospace = True          # sk->sk_write_space(sk)
                self.conn._check_space(self._env.now)
                self._pump()
        elif optname == C.TCP_QUICKACK:
            # __tcp_sock_set_quickack: 0 enters pingpong (delayed-ACK) mode, which also makes
            # a connecting socket delay the handshake's final ACK (tcp_rcv_synsent_state_process)
            if not v:
                self._pingpong = True
                if self.conn is not None:
                    self.conn.pingpong = max(self.conn.pingpong, 1)
            elif self.conn is not None:
                self._pingpong = False
                self.conn.quick = max(self.conn.quick, self.conn.config.max_quickacks)
                self.conn.pingpong = 0
            else:
                self._pingpong = False
        elif optname in (C.TCP_KEEPIDLE, C.TCP_KEEPINTVL, C.TCP_KEEPCNT):
            self._set_keepalive_option(optname, v)
        else:
            raise os_error(errno.ENOPROTOOPT, f"TCP option {optname} is not modelled")

    def _get_protocol_option(self, level: int, optname: int):
        if level != C.IPPROTO_TCP:
            raise os_error(errno.ENOPROTOOPT)
        if optname == C.TCP_NODELAY:
            return int(self._nodelay)
        if optname == C.TCP_CORK:
            return int(self._cork)
        if optname == C.TCP_CONGESTION:
            return self._congestion.encode().ljust(16, b"\0")
        if optname == C.TCP_KEEPIDLE:
            return self._ka_time // 1_000_000_000
        if optname == C.TCP_KEEPINTVL:
            return self._ka_intvl // 1_000_000_000
        if optname == C.TCP_KEEPCNT:
            return self._ka_probes
        if optname == C.TCP_INFO:
            return pack_tcp_info(self.tcp_info())
        if optname == C.TCP_SYNCNT:
            return self._syncnt or TcpConfig.syn_retries
        if optname == _TCP_NOTSENT_LOWAT:
            return self._notsent_lowat
        if optname == _TCP_USER_TIMEOUT:
            return self._user_timeout
        if optname == C.TCP_MAXSEG:
            if self._user_mss and (self.conn is None or self.listener is not None
                                   or self.conn.state == "CLOSE"):
                return self._user_mss       # user_mss in CLOSE and LISTEN
            if self.conn is None:
                return 536                  # TCP_MSS_DEFAULT (tcp_init_sock)
            # tp->mss_cache as tcp_sync_mss leaves it: bounded to half the peer's largest
            # window (tcp_bound_to_half_wnd), so 32741 right after a loopback connect.
            return self.conn.mss_cache
        raise os_error(errno.ENOPROTOOPT, f"TCP option {optname} is not modelled")

    def tcp_info(self) -> dict:
        """The fields getsockopt(IPPROTO_TCP, TCP_INFO) returns, as a dict named as in Linux's
        ``struct tcp_info`` without ``tcpi_`` (simsock/tcp/info.py); no system call, no trace."""
        if self.listener is not None:
            return listener_info(len(self.listener.accept_queue), self.listener.backlog)
        if self.conn is None:
            return unconnected_info()
        return tcp_info(self.conn, self._env.now)

    # -- helpers -------------------------------------------------------------------------
    def _pump(self) -> None:
        if self.conn is not None:
            self.stack.pump(self.conn)

    def _notify(self, edges: int, readers: bool = True, writers: bool = False) -> None:
        # Counted, because a call's own output can change its socket's state before the
        # call waits (a loopback peer answers inside the pump, TcpStack.loopback_input): a
        # call that found nothing to do re-checks instead of waiting when the count moved,
        # as Linux re-checks the condition after prepare_to_wait.
        self._notifies += 1
        super()._notify(edges, readers, writers)

    async def _wait_ready(self, queue, mask: int, flags: int, deadline: int | None = None):
        """CPython's timeout mode: poll for ``mask`` until ready or the timeout expires
        (at ``deadline`` when given: the call's own, kept across retries)."""
        if deadline is None:
            deadline = self._deadline()
        from .wait import TIMED_OUT
        want = mask | C.EPOLLERR | C.EPOLLHUP
        if self.poll_mask() & want:
            return
        self._hold()            # poll() holds the file (__pollwait), see Socket.close
        try:
            while True:
                woke = await queue.wait(deadline)
                if (self._held_mask() if self._closed else self.poll_mask()) & want:
                    if self._closed:
                        raise os_error(errno.EBADF)   # CPython's call on the descriptor -1
                    return
                if woke is TIMED_OUT:
                    from simsock.errors import timeout_error
                    raise timeout_error()
        finally:
            self._unhold()

    # -- binding, listening, connecting --------------------------------------------------
    @syscall
    def bind(self, address) -> None:
        self._check_open()
        host, port = parse_inet_address(address, "bind")
        ip = resolve(self._sim, host)
        if self.local is not None:
            raise os_error(errno.EINVAL)
        self.stack.bind(self, ip, port)
        self._port_locked = port != 0

    @syscall
    def listen(self, backlog=None) -> None:
        self._check_open()
        if backlog is None:
            backlog = min(C.SOMAXCONN, 128)
        backlog = check_int(backlog)
        if self.conn is not None:
            raise os_error(errno.EINVAL)
        if backlog < 0:
            backlog = 0
        if self.listener is not None:
            self.listener.backlog = min(backlog, self._host.profile.somaxconn)
            return
        if self.local is None:
            self.stack.bind(self, ANY, 0)
        elif self._port_released:
            self._rebind_released()
        else:
            self.stack.listen_conflict(self)
        stack = self.stack
        self.listener = TcpListener(self.local, min(backlog, self._host.profile.somaxconn),
                                    lambda: stack.config_for(self, stack._syn_src),
                                    syncookies=self._host.profile.tcp_syncookies)
        stack.listeners.setdefault(self.local[1], []).append(self)

    @syscall
    async def accept(self):
        self._check_open()
        if self.listener is None:
            raise os_error(errno.EINVAL)
        listener = self.listener

        def attempt():
            if self.listener is not listener:
                raise os_error(errno.EINVAL)    # shutdown(SHUT_RD) stopped listening meanwhile
            if not listener.accept_queue:
                return AGAIN
            return listener.accept(self._env.now)

        conn = await self._wait_for(attempt, self.read_wait)
        return self._accepted(conn), conn.remote

    def _accepted(self, conn: TcpConnection) -> "TcpSocket":
        """The socket for a connection just taken from the accept queue (inherits options)."""
        sock = TcpSocket(self._host, self.family, C.SOCK_STREAM, self.proto, conn)
        sock._reuseaddr = self._reuseaddr
        sock._nodelay = self._nodelay
        sock._congestion = self._congestion
        sock._keepalive = self._keepalive       # inherited from the listener (sk_clone_lock)
        sock._ka_time, sock._ka_intvl, sock._ka_probes = self._ka_time, self._ka_intvl, self._ka_probes
        sock._user_mss = self._user_mss
        sock._rcvlowat = conn.rcvlowat = self._rcvlowat
        sock._rcvtimeo_ns, sock._sndtimeo_ns = self._rcvtimeo_ns, self._sndtimeo_ns
        sock._notsent_lowat = conn.notsent_lowat = self._notsent_lowat
        sock._user_timeout = self._user_timeout
        conn.user_timeout = self._user_timeout * 1_000_000
        sock._userlocks_snd, sock._userlocks_rcv = self._userlocks_snd, self._userlocks_rcv
        self.stack.parent.pop(conn, None)
        self.stack.pump(conn)
        return sock

    @syscall
    async def connect(self, address) -> None:
        err = await self._connect(address)
        if err:
            raise os_error(err)

    @syscall
    async def connect_ex(self, address) -> int:
        return await self._connect(address)

    async def _connect(self, address) -> int:
        self._check_open()
        host, port = parse_inet_address(address, "connect")
        ip = resolve(self._sim, host)
        if ip == ANY:
            ip = LOOPBACK
        if self.listener is not None:
            return errno.EISCONN
        if self._sock_state == _CONNECTED:
            return errno.EISCONN
        again = self._sock_state == _CONNECTING
        if again:
            conn = self.conn
            if conn.state in ("SYN_SENT", "SYN_RECV"):
                if self._timeout_ns == 0:
                    return errno.EALREADY
            else:
                return self._connect_result()
        elif self._deferred_connect is not None:
            return 0 if self._deferred_connect == (ip, port) else errno.EISCONN
        else:
            if self._fastopen_connect and ip in self.stack.fastopen_cookies:
                # tcp_fastopen_defer_connect: with a cookie, the SYN waits for the first send
                # (it would carry that data); connect() returns 0 at once
                if self.local is None:
                    self.stack.bind(self, ANY, 0)
                self._deferred_connect = (ip, port)
                self.peer = (ip, port)
                return 0
            self._begin_connect(ip, port, b"" if self._fastopen_connect else None)
            if self._timeout_ns == 0:
                return errno.EINPROGRESS
        deadline = self._deadline()
        # A blocking socket waits at most SO_SNDTIMEO (inet_stream_connect: sock_sndtimeo),
        # then fails with EINPROGRESS, or EALREADY when it was already connecting.
        ktimeo = self._sndtimeo_ns if self._timeout_ns is None else None
        if ktimeo is not None:
            if ktimeo == 0 and self.conn.state in ("SYN_SENT", "SYN_RECV"):
                return errno.EALREADY if again else errno.EINPROGRESS
            deadline = self._env._now + ktimeo
        from .wait import TIMED_OUT
        self._hold()
        try:
            while self.conn.state in ("SYN_SENT", "SYN_RECV"):
                woke = await self.write_wait.wait(deadline)
                if woke is TIMED_OUT and self.conn.state in ("SYN_SENT", "SYN_RECV"):
                    if ktimeo is not None:
                        return errno.EALREADY if again else errno.EINPROGRESS
                    from simsock.errors import timeout_error
                    raise timeout_error()
            if self._closed and self._timeout_ns:
                raise os_error(errno.EBADF)    # CPython reads SO_ERROR on the descriptor -1
            return self._connect_result()
        finally:
            self._unhold()

    def fastopen_connect_without_data(self, address=None) -> None:
        """A TCP Fast Open send whose data could not be copied (a NULL buffer): Linux's
        tcp_send_syn_data falls back to a regular SYN with a cookie *request* (the cached
        cookie is not sent: measured on 6.18); a non-blocking call then fails with EINPROGRESS. Data in the SYN itself is not
        modelled (a send with data on a TFO socket is refused with EOPNOTSUPP)."""
        self._check_open()
        if self._deferred_connect is not None:
            ip, port = self._deferred_connect
            self._deferred_connect = None
        elif self.conn is None and address is not None:
            if not self.stack.fastopen & 1:
                raise os_error(errno.EOPNOTSUPP)
            host, port = parse_inet_address(address, "sendto")
            ip = resolve(self._sim, host)
        else:
            raise os_error(errno.EFAULT)
        self._begin_connect(ip, port, b"")
        raise os_error(errno.EINPROGRESS)

    def _begin_connect(self, ip: str, port: int, fastopen: bytes | None = None) -> None:
        """Send the SYN: the socket is SS_CONNECTING from here on. ``fastopen``: the TCP Fast
        Open option for the SYN (b"" requests a cookie)."""
        self._host.route_check(ip)
        if self.local is None:
            self.stack.bind(self, ANY, 0)
        elif self._port_released:
            self._rebind_released()
        src = self.local[0] if self.local[0] != ANY else self._host.route(ip)[2]
        conn = TcpConnection((src, self.local[1]), (ip, port), self.stack.config_for(self, ip),
                             self.stack.iss_rng.getrandbits(32))
        conn.notsent_lowat = self._notsent_lowat
        conn.user_timeout = self._user_timeout * 1_000_000
        if fastopen is not None:
            conn.fastopen_req = fastopen
            conn.fastopen_cache = self.stack.fastopen_cookies
        self.conn = conn
        self.peer = (ip, port)
        self.local = (src, self.local[1])
        self.stack.register(conn, self)
        conn.shutdown_flags |= self._shutdown_flags     # sk_shutdown survives connect()
        conn.rcvlowat = self._rcvlowat
        if self._pingpong:
            conn.pingpong = 1
        conn.connect(self._env.now)
        self._sock_state = _CONNECTING
        self._pump()

    def _rebind_released(self) -> None:
        """After shutdown(SHUT_RD) gave back an unlocked port (inet_num = 0), listen() and
        connect() take a new ephemeral port on the same address (inet_csk_listen_start ->
        get_port(sk, 0); __inet_hash_connect)."""
        self._port_released = False
        ip = self.local[0]
        self.local = None
        self.stack.bind(self, ip, 0)

    def _connect_result(self) -> int:
        conn = self.conn
        if conn.finished or conn.state == "CLOSE":
            err = conn.take_error() or errno.ECONNABORTED
            self._sock_state = _UNCONNECTED
            self.peer = None
            return err
        self._sock_state = _CONNECTED
        return 0

    # -- data ----------------------------------------------------------------------------
    @staticmethod
    def _data(data) -> memoryview:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")

    def _check_sendable(self) -> TcpConnection:
        self._check_open()
        if self._deferred_connect is not None:
            raise os_error(errno.EOPNOTSUPP, "TCP Fast Open: data in the SYN is not modelled")
        if self.conn is None or self.listener is not None:
            raise os_error(errno.EPIPE)
        return self.conn

    def _send_some(self, conn: TcpConnection, view) -> int:
        """``conn.send`` in pieces of 16 skbs, transmitting (and processing loopback input)
        between them, as tcp_sendmsg_locked calls sk_flush_backlog every 16 new skbs: a RST
        or ACKs that arrived meanwhile take effect in the middle of a large send, which then
        returns what it copied so far (found by the differential tests: a 1 MiB send to a
        peer that has closed is cut at 16 x 32768 bytes). Raises like ``conn.send`` only
        when nothing was accepted."""
        piece = 16 * conn._size_goal(conn._mss_now())
        total = len(view)
        if total <= piece:
            return conn.send(view, self._env._now)      # one piece (the common case)
        sent = 0
        while True:
            if sent:
                self._pump()
                if conn.sk_err or conn.shutdown_flags & SEND_SHUTDOWN or conn.state not in (
                        "ESTABLISHED", "CLOSE_WAIT"):
                    return sent            # the error stays pending for the next call
            try:
                n = conn.send(view[sent:sent + piece], self._env.now)
            except OSError:
                if sent:
                    return sent
                raise
            sent += n
            if sent >= total or n < piece:
                return sent

    def _try_send_once(self, view) -> int:
        conn = self.conn
        n = conn.send(view, self._env.now)
        self._pump()
        return n if n else AGAIN

    @syscall
    async def send(self, data, flags=0) -> int:
        flags = check_int(flags)
        if not flags & (_MSG_EOR | _MSG_MORE):
            return await self._send(data, flags)
        # MSG_EOR: the call's last skb takes no later data (tcp_sendmsg_locked: skb->eor);
        # MSG_MORE: no PSH mark, and the push at the end of the call is corked (tcp_push)
        conn = self._check_sendable()
        conn.send_eor = bool(flags & _MSG_EOR)
        conn.send_more = bool(flags & _MSG_MORE)
        try:
            return await self._send(data, flags)
        finally:
            conn.send_eor = conn.send_more = False

    async def _send(self, data, flags: int) -> int:
        view = self._data(data)
        conn = self._check_sendable()
        # MSG_DONTWAIT matters only without a timeout: CPython's timeout mode polls first.
        nonblock = self._timeout_ns == 0 or (flags & C.MSG_DONTWAIT and self._timeout_ns is None)
        if nonblock:
            try:
                n = self._send_some(conn, view)
            finally:
                self._pump()
            if n == 0 and len(view):
                raise os_error(errno.EAGAIN)
            return n
        if self._timeout_ns is not None:
            # CPython's timeout mode (sock_call_ex): poll, one non-blocking send; an EAGAIN
            # after poll said writable is a false positive: poll again until the deadline.
            deadline = self._deadline()
            while True:
                await self._wait_ready(self.write_wait, C.EPOLLOUT, flags, deadline)
                try:
                    n = self._send_some(conn, view)
                except BlockingIOError:
                    n = 0
                finally:
                    self._pump()
                if n or not len(view):
                    return n
                if deadline <= self._env._now:
                    from simsock.errors import timeout_error
                    raise timeout_error()
                if self.poll_mask() & (C.EPOLLOUT | C.EPOLLERR | C.EPOLLHUP):
                    await self.write_wait.wait(deadline)    # not writable after all: wait for space
        # Blocking: tcp_sendmsg queues everything, waiting for space as needed -- up to
        # SO_SNDTIMEO, after which it returns what it copied, or EAGAIN
        # (sk_stream_wait_memory). A full buffer at the call is a wait, not EAGAIN; an error
        # after some bytes were copied returns the count and stays pending for the next
        # call (do_error: "if (copied) goto out"), which reports it (sk_stream_error).
        sent = 0
        total = len(view)
        kdeadline = None if self._sndtimeo_ns is None else self._env._now + self._sndtimeo_ns
        self._hold()       # a close() by another thread does not end this call (Socket.close)
        try:
            while True:
                seen = self._notifies
                if sent and self._send_stopped(conn):
                    return sent
                try:
                    n = self._send_some(conn, view[sent:])
                except BlockingIOError:
                    n = 0                  # no space (or still connecting): wait
                except OSError:
                    self._pump()
                    raise                  # nothing copied: the error is this call's
                self._pump()
                sent += n
                if sent >= total:
                    return sent
                if self._notifies == seen:
                    if kdeadline is not None and self._env._now >= kdeadline:
                        if sent:
                            return sent
                        raise os_error(errno.EAGAIN)
                    await self.write_wait.wait(kdeadline)
        finally:
            self._unhold()

    @staticmethod
    def _send_stopped(conn: TcpConnection) -> bool:
        """tcp_sendmsg_locked's check before copying more: a pending error, the send side
        shut down, or no longer a state that sends (the error is left for the next call)."""
        return bool(conn.sk_err or conn.shutdown_flags & SEND_SHUTDOWN
                    or conn.state not in ("ESTABLISHED", "CLOSE_WAIT"))

    @syscall
    async def sendall(self, data, flags=0) -> None:
        view = self._data(data)
        flags = check_int(flags)
        conn = self._check_sendable()
        sent = 0
        total = len(view)
        deadline = self._deadline()
        # A blocking socket with SO_SNDTIMEO: CPython's sendall is a loop of send() calls,
        # each of which waits up to the timeout and returns what it copied; one that copied
        # nothing fails with EAGAIN.
        ktimeo = self._sndtimeo_ns if self._timeout_ns is None else None
        if ktimeo is not None:
            deadline = self._env._now + ktimeo
            mark = 0
        self._hold()       # a close() by another thread does not end this call (Socket.close)
        try:
            nonblock = self._timeout_ns == 0 or (flags & C.MSG_DONTWAIT and self._timeout_ns is None)
            while sent < total or total == 0:
                seen = self._notifies
                try:
                    n = self._send_some(conn, view[sent:])
                except BlockingIOError:
                    # CPython's sendall loops on send(): a blocking send waits for space
                    # (and a timeout-mode one polls again), only a non-blocking one raises.
                    if nonblock:
                        raise
                    n = 0
                finally:
                    self._pump()
                sent += n
                if sent >= total:
                    return None
                if nonblock:
                    if n == 0:
                        raise os_error(errno.EAGAIN)
                    continue
                if self._notifies != seen:
                    continue
                if ktimeo is not None and self._env._now >= deadline:
                    if sent == mark:
                        raise os_error(errno.EAGAIN)
                    mark = sent                      # that send() returned; the next one starts
                    deadline = self._env._now + ktimeo
                    continue
                woke = await self.write_wait.wait(deadline)
                if self._closed and self._timeout_ns:
                    # CPython's timeout mode polls, then sends on the descriptor close() set to -1.
                    if self._held_mask() & (C.EPOLLOUT | C.EPOLLERR | C.EPOLLHUP):
                        raise os_error(errno.EBADF)
                if woke is TIMED_OUT and ktimeo is not None:
                    continue                         # decided at the top of the loop
                if woke is TIMED_OUT and not (self._held_mask() if self._closed else self.poll_mask()) & C.EPOLLOUT:
                    from simsock.errors import timeout_error
                    raise timeout_error()
        finally:
            self._unhold()
        return None

    async def sendto(self, data, flags_or_address, address=None) -> int:
        # Linux ignores the address on a connected TCP socket (EISCONN only with
        # MSG_FASTOPEN); on an unconnected one sendto is EPIPE like send.
        flags = 0 if address is None else check_int(flags_or_address)
        return await self.send(data, flags)

    def _recv_attempt(self, n: int, flags: int):
        conn = self.conn
        if conn is None:
            return b""          # shutdown(SHUT_RD) of a never-connected socket: end of stream
        try:
            data = conn.recv_or_none(n, self._env._now, bool(flags & C.MSG_PEEK))
        except BaseException:
            self._pump()
            raise
        if data is None:
            # Nothing to read changed nothing, and every change to the connection was
            # pumped when it was made: no pump, and so no notification to re-check for.
            return AGAIN
        self.stack.pump(conn)
        return data

    def _recv_lowat_attempt(self, n: int, flags: int):
        """A blocking recv with SO_RCVLOWAT above 1: wait until min(rcvlowat, n) bytes are
        queued (tcp_recvmsg's target, sock_rcvlowat), or end of stream or an error."""
        conn = self.conn
        if conn is not None:
            q = conn.rcvq.size
            if q < min(self._rcvlowat, n) and not (conn.sock_done or conn.sk_err or conn.shutdown_flags & 1
                                                   or conn.state == "CLOSE"):
                return AGAIN
        return self._recv_attempt(n, flags)

    async def _recv_wait(self, bufsize: int, flags: int):
        """The blocking part of recv: wait for data (up to SO_RCVTIMEO, if set)."""
        attempt = self._recv_attempt if self._rcvlowat == 1 else self._recv_lowat_attempt
        try:
            return await self._wait_for(lambda: attempt(bufsize, flags), self.read_wait, flags, tried=True)
        except BlockingIOError:
            if self._rcvlowat > 1 and self.conn is not None and self.conn.rcvq.size:
                return self._recv_attempt(bufsize, flags)   # SO_RCVTIMEO expired below the low mark
            raise

    def _check_receivable(self) -> TcpConnection:
        self._check_open()
        if self.listener is not None or (self.conn is None and not self._shutdown_flags & 1):
            raise os_error(errno.ENOTCONN)
        return self.conn

    async def _recv(self, bufsize: int, flags: int) -> bytes:
        self._check_receivable()
        if bufsize == 0:
            return b""
        if self._timeout_ns is not None and self._timeout_ns > 0:     # CPython polls first, MSG_DONTWAIT or not
            deadline = self._deadline()
            while True:
                await self._wait_ready(self.read_wait, C.EPOLLIN, flags, deadline)
                result = self._recv_attempt(bufsize, flags & ~C.MSG_WAITALL)
                if result is not AGAIN:
                    return result
                # A false positive (another thread took the data): CPython polls again.
                if deadline <= self._env._now:
                    from simsock.errors import timeout_error
                    raise timeout_error()
                await self.read_wait.wait(deadline)
        if flags & C.MSG_WAITALL and not (self._timeout_ns == 0 or flags & C.MSG_DONTWAIT):
            chunks = []
            got = 0
            kdeadline = None if not self._rcvtimeo_ns else self._env._now + self._rcvtimeo_ns
            self._hold()          # one system call: the file is held throughout
            try:
                conn = self.conn

                def attempt():
                    if got and conn.sk_err and not conn.rcvq.size:
                        return b""     # tcp_recvmsg: once bytes were copied, an error ends the call
                    return self._recv_attempt(bufsize - got, flags & ~C.MSG_WAITALL)   # and stays pending
                while got < bufsize:
                    try:
                        part = await self._wait_for(attempt, self.read_wait, flags,
                                                    kdeadline=kdeadline)
                    except BlockingIOError:
                        if chunks:
                            break         # SO_RCVTIMEO expired: what was copied so far
                        raise
                    if not part:
                        break
                    chunks.append(part)
                    got += len(part)
            finally:
                self._unhold()
            return b"".join(chunks)
        blocking = self._timeout_ns is None and not flags & C.MSG_DONTWAIT
        result = (self._recv_lowat_attempt if blocking and self._rcvlowat > 1 else self._recv_attempt)(bufsize, flags)
        if result is not AGAIN:
            return result
        return await self._recv_wait(bufsize, flags)

    @syscall
    async def recv(self, bufsize, flags=0) -> bytes:
        if type(bufsize) is not int:
            bufsize = check_int(bufsize)
        if type(flags) is not int:
            flags = check_int(flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if bufsize == 0:
            return b""      # CPython's sock_recv makes no system call: no EBADF, no ENOTCONN
        if not self._timeout_ns and not flags & C.MSG_WAITALL:
            # _recv's last case (blocking or non-blocking, no MSG_WAITALL), inlined: one
            # coroutine less per call on the hot path.
            self._check_receivable()
            if self._rcvlowat > 1 and self._timeout_ns is None and not flags & C.MSG_DONTWAIT:
                result = self._recv_lowat_attempt(bufsize, flags)
            else:
                result = self._recv_attempt(bufsize, flags)
            if result is not AGAIN:
                return result
            if self._timeout_ns == 0 or flags & C.MSG_DONTWAIT:
                raise os_error(errno.EAGAIN)        # as _wait_for would
            return await self._recv_wait(bufsize, flags)
        return await self._recv(bufsize, flags)

    @syscall
    async def recvfrom(self, bufsize, flags=0):
        bufsize = check_int(bufsize)
        flags = check_int(flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        data = await self._recv(bufsize, flags)
        return data, None

    @syscall
    async def recv_into(self, buffer, nbytes=0, flags=0) -> int:
        from .udp import UdpSocket
        n, flags = UdpSocket._into_args(buffer, nbytes, flags, "recv_into")
        if n == 0:
            return 0        # no system call (CPython's sock_recv_into), as for recv(0)
        data = await self._recv(n, flags)
        buffer[:len(data)] = data
        return len(data)

    async def _recvmsg(self, bufsize: int, flags: int):
        # tcp_recvmsg fills no msg_name: CPython's address is None; msg_flags stays 0
        data = await call_body(TcpSocket.recv, self, bufsize, flags)
        return data, 0, None

    def _ioctl(self, request: int) -> int:
        """tcp_ioctl: SIOCINQ bytes queued to read, SIOCOUTQ bytes not yet acknowledged
        (write_seq - snd_una), SIOCOUTQNSD bytes not yet sent (write_seq - snd_nxt); 0 in
        SYN_SENT/SYN_RECV and before any connection; EINVAL on a listener."""
        if request not in (C.SIOCINQ, C.SIOCOUTQ, C.SIOCOUTQNSD):
            raise os_error(errno.ENOTTY)
        if self.listener is not None:
            raise os_error(errno.EINVAL)
        conn = self.conn
        if conn is None or conn.state in ("SYN_SENT", "SYN_RECV"):
            return 0
        if request == C.SIOCINQ:
            return conn.inq
        if request == C.SIOCOUTQ:
            return conn.outq
        if conn.state == "CLOSE":
            return 0
        return max(conn.sendq.end + (1 if conn.fin_queued else 0) - conn.snd_nxt, 0)

    # -- shutdown and close --------------------------------------------------------------
    @syscall
    def shutdown(self, how) -> None:
        self._check_open()
        how = check_int(how)
        if how not in (C.SHUT_RD, C.SHUT_WR, C.SHUT_RDWR):
            raise os_error(errno.EINVAL)
        if self.listener is not None:
            # inet_shutdown, case TCP_LISTEN: only a shutdown with RCV_SHUTDOWN in it (SHUT_RD,
            # SHUT_RDWR) disconnects; SHUT_WR alone does nothing (not even sk_shutdown) and
            # the socket keeps listening. tcp_disconnect -> inet_csk_listen_stop resets the
            # queued connections, drops the SYN_RECV ones and leaves the socket in TCP_CLOSE:
            # accept then fails with EINVAL, connects are refused, listen() works again, and
            # tcp_set_state(TCP_CLOSE) gives back the port unless bind() named it
            # (SOCK_BINDPORT_LOCK); getsockname still shows the old port (inet_sport).
            # Checked on Linux 6.18: tests/tcp/test_fidelity_gaps.py.
            if how == C.SHUT_WR:
                return
            self._stop_listening()
            self.listener = None
            if not self._port_locked:
                users = self.stack.ports.get(self.local[1], [])
                users[:] = [b for b in users if b.sock is not self]
                self._port_released = True
            return
        if self.conn is None:
            # inet_shutdown, case TCP_CLOSE: ENOTCONN, but sk_shutdown is set all the same
            # (then falls through): after SHUT_RD/SHUT_RDWR recv returns b"" and poll shows
            # IN|OUT|HUP|RDHUP; the flags stay for a later connect (checked on Linux 6.18,
            # tests/conformance/test_socket_api.py).
            self._shutdown_flags |= {C.SHUT_RD: 1, C.SHUT_WR: 2, C.SHUT_RDWR: 3}[how]
            self._notify(W_STATE, readers=True, writers=True)
            raise os_error(errno.ENOTCONN)
        if self._sk_state_closed():
            if not self.conn.finished:
                self.conn.shutdown_flags |= {C.SHUT_RD: 1, C.SHUT_WR: 2, C.SHUT_RDWR: 3}[how]
            raise os_error(errno.ENOTCONN)       # inet_shutdown: sk_state TCP_CLOSE
        self.conn.shutdown(how, self._env.now)
        self._pump()

    def _sk_state_closed(self) -> bool:
        """The socket's own sk_state is TCP_CLOSE: never connected, reset or closed — or its
        connection went to TIME_WAIT, which tcp_time_wait() hands to a separate timewait sock
        before tcp_done() closes the socket the program holds (differential tests)."""
        conn = self.conn
        return conn is None or conn.finished or conn.state in ("CLOSE", "TIME_WAIT")

    @syscall
    def getpeername(self) -> tuple[str, int]:
        self._check_open()
        # inet_getname: ENOTCONN in TCP_CLOSE and SYN_SENT (a socket in TIME_WAIT is CLOSE).
        if self.peer is None or self._sk_state_closed() or self.conn.state == "SYN_SENT":
            raise os_error(errno.ENOTCONN)
        return self.peer

    def _stop_listening(self) -> None:
        listener = self.listener
        for conn in listener.close(self._env.now):
            self.stack.pump(conn)
        users = self.stack.listeners.get(self.local[1], [])
        if self in users:
            users.remove(self)
        self._notify(W_STATE, readers=True, writers=True)

    def _release(self) -> None:
        if self.listener is not None:
            self._stop_listening()
        elif self.conn is not None:
            conn = self.conn
            conn.close(self._env.now)
            self.stack.pump(conn)
            self.stack.sock_of.pop(conn, None) if conn.finished else None

    # -- overlapped I/O (kernel/completion.py drives these) ---------------------------------
    def _overlapped_attempt(self, op):
        """Try to finish ``op`` now: its result, AGAIN to wait, or an OSError to fail it."""
        kind = op.kind
        now = self._env.now
        if kind == "recv":
            conn = self._check_receivable()
            if conn is None:
                op.nbytes = 0       # shut down before any connect: end of stream
                return 0
            try:
                data = conn.recv(op.request, now)
            except BlockingIOError:
                return AGAIN
            finally:
                self._pump()
            n = len(data)
            op.buffer[:n] = data
            op.nbytes = n
            return n
        if kind == "send":
            conn = self._check_sendable()
            view = op.view
            while op.nbytes < len(view):
                try:
                    n = conn.send(view[op.nbytes:], now)
                except BlockingIOError:
                    n = 0
                finally:
                    self._pump()
                if n == 0:
                    return AGAIN
                op.nbytes += n
            return op.nbytes
        if kind == "accept":
            self._check_open()
            if self.listener is None:
                raise os_error(errno.EINVAL, "accept_overlapped needs a listening socket: call listen() first")
            if not self.listener.accept_queue:
                return AGAIN
            conn = self.listener.accept(now)
            return self._accepted(conn), conn.remote
        # connect
        if self.conn is not None and self.conn.state in ("SYN_SENT", "SYN_RECV"):
            return AGAIN
        err = self._connect_result()
        if err:
            raise os_error(err)
        return None

    def _overlapped_connect_start(self, op) -> None:
        host, port = parse_inet_address(op.address, "connect_overlapped")
        ip = resolve(self._sim, host)
        if ip == ANY:
            ip = LOOPBACK
        if self.listener is not None or self._sock_state == _CONNECTED:
            raise os_error(errno.EISCONN)
        if self._sock_state == _CONNECTING:
            raise os_error(errno.EALREADY)
        self._begin_connect(ip, port)

    # -- readiness -----------------------------------------------------------------------
    def poll_mask(self) -> int:
        if self._closed:
            return C.POLLNVAL
        if self.listener is not None:
            return self.listener.poll()
        if self.conn is None:
            if self._shutdown_flags & 1:        # RCV_SHUTDOWN (shutdown before any connect)
                return C.EPOLLOUT | C.EPOLLHUP | C.EPOLLIN | C.EPOLLRDNORM | C.EPOLLRDHUP
            return C.EPOLLOUT | C.EPOLLHUP      # tcp_poll on a fresh socket (state CLOSE)
        return self.conn.poll()

    def stats(self) -> dict:
        out = {"type": "tcp", "fd": self._fd, "local": list(self.local) if self.local else None,
               "peer": list(self.peer) if self.peer else None}
        if self.listener is not None:
            lst = self.listener
            out.update(state="LISTEN", accept_queue=len(lst.accept_queue), backlog=lst.backlog,
                       syn_recv=len(lst.syn_recv), syn_drops=lst.syn_drops, ack_drops=lst.ack_drops,
                       cookies_sent=lst.cookies_sent, cookies_accepted=lst.cookies_accepted)
        elif self.conn is not None:
            out.update(state=self.conn.state, **self.conn.stats(), outq=self.conn.outq, inq=self.conn.inq)
        return out
