"""The byte stream of a TCP socket: send, sendall, recv and their variants (tcp_sendmsg,
tcp_recvmsg), and the socket-level waits around them.

:class:`TcpStream` is the base of :class:`simsock.kernel.tcp_socket.TcpSocket`, which owns
the connection's life (bind, listen, accept, connect, shutdown, close) and the state used
here: ``conn`` (the :class:`~simsock.tcp.connection.TcpConnection`, None before connect),
``listener``, ``stack`` (the host's :class:`~simsock.kernel.tcp_stack.TcpStack`).

What is the socket layer's and not TCP's: a blocking ``send`` queues everything
(tcp_sendmsg waits for space), copying in pieces of 16 skbs between which arrivals take
effect; CPython's timeout mode polls, then makes one non-blocking call, so ``send`` with a
timeout may return a partial count; ``MSG_WAITALL`` and ``SO_RCVLOWAT`` set how much a
blocking ``recv`` waits for.
"""

from __future__ import annotations

import errno

from simsock import constants as C
from simsock.errors import os_error, timeout_error
from simsock.tcp.connection import SEND_SHUTDOWN, TcpConnection
from simsock.tcp.listener import TcpListener

from .addr import check_int
from .socket import AGAIN, Socket, call_body, syscall
from .udp import recv_into_args
from .wait import TIMED_OUT

_MSG_EOR = 0x80             # MSG_EOR (bits/socket.h)
_MSG_MORE = 0x8000          # MSG_MORE


class TcpStream(Socket):
    """The data path of a ``SOCK_STREAM`` socket (see the module docstring)."""

    conn: TcpConnection | None       # both set by TcpSocket.__init__, with stack (host.tcp)
    listener: TcpListener | None

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
                    raise timeout_error()
        finally:
            self._unhold()


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
        piece = 16 * conn.size_goal(conn.mss_now())
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
        n, flags = recv_into_args(buffer, nbytes, flags, "recv_into")
        if n == 0:
            return 0        # no system call (CPython's sock_recv_into), as for recv(0)
        data = await self._recv(n, flags)
        buffer[:len(data)] = data
        return len(data)

    async def _recvmsg(self, bufsize: int, flags: int):
        # tcp_recvmsg fills no msg_name: CPython's address is None; msg_flags stays 0
        data = await call_body(TcpStream.recv, self, bufsize, flags)
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
