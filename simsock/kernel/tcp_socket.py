"""TCP sockets: the connection's life around the sans-IO :mod:`simsock.tcp`.

A :class:`TcpSocket` binds through the host's :class:`~simsock.kernel.tcp_stack.TcpStack`
(``host.tcp``), listens with a :class:`~simsock.tcp.listener.TcpListener`, connects with a
:class:`~simsock.tcp.connection.TcpConnection`, and implements the socket layer's
semantics that are not TCP's: SS_CONNECTING (EINPROGRESS, EALREADY, the one ``connect``
that returns 0 after completion, ECONNABORTED after an error was already read),
shutdown of a listener, close. Its data path (send, recv) is :class:`TcpStream`'s
(kernel/tcp_stream.py); its IPPROTO_TCP options are in kernel/tcp_options.py.
"""

from __future__ import annotations

import errno

from simsock import constants as C
from simsock.errors import os_error, timeout_error
from simsock.signals import SIG_STATE
from simsock.tcp.connection import TcpConnection
from simsock.tcp.info import listener_info, tcp_info, unconnected_info
from simsock.tcp.listener import TcpListener

from .addr import ANY, LOOPBACK, check_int, parse_inet_address, resolve
from .socket import AGAIN, syscall
from .tcp_options import get_tcp_option, set_tcp_option
from .tcp_stream import TcpStream
from .wait import TIMED_OUT

_UNCONNECTED, _CONNECTING, _CONNECTED = 0, 1, 2


class TcpSocket(TcpStream):
    """A ``SOCK_STREAM`` socket."""

    _kind = "tcp"

    def __init__(self, host, family: int, type: int, proto: int, conn: TcpConnection | None = None):
        super().__init__(host, family, type, proto)
        prof = host.profile
        self.stack = host.tcp
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

    # -- options (the IPPROTO_TCP ones: kernel/tcp_options.py) ----------------------------
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
            self._notify(SIG_STATE, readers=True)      # tcp_data_ready: maybe readable now

    def _linger_changed(self) -> None:
        if self.conn is not None:
            self.conn.config.linger = self._linger[1] if self._linger[0] else None

    def _keepalive_changed(self) -> None:
        if self.conn is not None:
            self.conn.set_keepalive(self._keepalive, self._env.now)
            self._pump()

    def _take_protocol_error(self) -> int:
        return self.conn.take_error() if self.conn is not None else 0

    def _set_protocol_option(self, level: int, optname: int, value) -> None:
        if level != C.IPPROTO_TCP:
            raise os_error(errno.ENOPROTOOPT)
        set_tcp_option(self, optname, value)

    def _get_protocol_option(self, level: int, optname: int):
        if level != C.IPPROTO_TCP:
            raise os_error(errno.ENOPROTOOPT)
        return get_tcp_option(self, optname)

    def tcp_info(self) -> dict:
        """The fields getsockopt(IPPROTO_TCP, TCP_INFO) returns, as a dict named as in Linux's
        ``struct tcp_info`` without ``tcpi_`` (simsock/tcp/info.py); no system call, no trace."""
        if self.listener is not None:
            return listener_info(len(self.listener.accept_queue), self.listener.backlog)
        if self.conn is None:
            return unconnected_info()
        return tcp_info(self.conn, self._env.now)

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
                                    lambda src_addr: stack.config_for(self, src_addr),
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

    def _accepted(self, conn: TcpConnection) -> TcpSocket:
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
        self._hold()
        try:
            while self.conn.state in ("SYN_SENT", "SYN_RECV"):
                woke = await self.write_wait.wait(deadline)
                if woke is TIMED_OUT and self.conn.state in ("SYN_SENT", "SYN_RECV"):
                    if ktimeo is not None:
                        return errno.EALREADY if again else errno.EINPROGRESS
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
            self._notify(SIG_STATE, readers=True, writers=True)
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
        self._notify(SIG_STATE, readers=True, writers=True)

    def _release(self) -> None:
        if self.listener is not None:
            self._stop_listening()
        elif self.conn is not None:
            conn = self.conn
            conn.close(self._env.now)
            self.stack.pump(conn)
            if conn.finished:
                self.stack.sock_of.pop(conn, None)

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
