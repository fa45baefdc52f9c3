"""The socket object programs use: :class:`socket.socket`'s names, Linux's semantics.

Calls that never wait (``bind``, ``setsockopt``, ``getsockname``, ``close`` ...) are plain
methods; calls that may wait or move data (``recv``, ``send``, ``connect``, ``accept``
...) are ``async`` and must be awaited. A call that can complete at once returns without
scheduling anything; one that must wait parks the calling simulated thread on the socket's
wait queue until the protocol reports a state change, or until the socket's timeout.

Blocking mode follows CPython exactly: ``settimeout(None)`` (the default) blocks,
``settimeout(0)`` / ``setblocking(False)`` raises ``BlockingIOError`` instead of waiting,
a positive timeout raises ``TimeoutError('timed out')`` when it expires.

Every call appends one ``syscall`` record to the simulation's trace (the same record the
real backend writes), when syscall tracing is on.
"""

from __future__ import annotations

import errno
import struct

from simsock import constants as C
from simsock.errors import os_error, timeout_error
from simsock.trace import errno_of, freeze
from simsock.signals import SIG_CLOSE

from . import iocp
from .addr import check_int
from .syscall import call_body, syscall, syscall_may_wait
from .wait import AGAIN, TIMED_OUT, FileState, WaitQueue

# AGAIN, syscall_may_wait: also imported from here by kernel/udp.py and kernel/tcp_socket.py.
__all__ = ["Socket", "AGAIN", "call_body", "syscall", "syscall_may_wait"]


_SO_ZEROCOPY = 60       # asm-generic/socket.h


def _gather(buffers) -> bytes:
    """sendmsg's buffers: an iterable of bytes-like objects, joined (CPython's messages)."""
    try:
        items = list(buffers)
    except TypeError:
        raise TypeError("sendmsg() argument 1 must be an iterable") from None
    out = []
    for b in items:
        if isinstance(b, str) or not isinstance(b, (bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes-like object is required, not '{type(b).__name__}'")
        out.append(bytes(b))
    return b"".join(out)


def _ioctl_result(value: int, arg):
    """fcntl.ioctl's return shapes for an int-valued request: no ``arg`` -> the int itself
    (simsock's shortcut; fcntl.ioctl would pass NULL and fail with EFAULT); a mutable
    buffer -> filled with the value (as much of it as fits), 0 returned; immutable bytes ->
    a copy of them with the value written over the first 4 bytes."""
    raw = value.to_bytes(4, "little", signed=True)
    if arg is None:
        return value
    if isinstance(arg, bool) or isinstance(arg, int):
        raise os_error(errno.EFAULT, "this request writes an int: pass a buffer, e.g. bytearray(4), or no argument")
    if isinstance(arg, str):
        arg = arg.encode()
    if isinstance(arg, (bytearray, memoryview)) and not (isinstance(arg, memoryview) and arg.readonly):
        view = memoryview(arg).cast("B")
        n = min(len(view), 4)
        view[:n] = raw[:n]
        return 0
    if isinstance(arg, (bytes, memoryview)):
        buf = bytes(arg)
        return (raw + buf[4:])[:len(buf)] if len(buf) >= 4 else raw[:len(buf)]
    raise TypeError(f"ioctl() argument 3 must be an int, a bytes-like object or None, not {type(arg).__name__}")


def _int_option(value) -> int:
    if isinstance(value, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) < 4:
            raise os_error(errno.EINVAL)
        return int.from_bytes(raw[:4], "little", signed=True)
    value = check_int(value)
    if not -2**31 <= value < 2**31:
        # CPython's setsockopt parses an int option as a C int; out of range it falls back to
        # the bytes form, whose parse error is the one raised
        raise TypeError("a bytes-like object is required, not 'int'")
    return value


def _timeval_option(value, hz: int) -> int | None:
    """sock_set_timeout: a ``struct timeval`` (``struct.pack("ll", sec, usec)``) as the
    timeout in ns, rounded up to whole jiffies of a CONFIG_HZ=``hz`` kernel; None for
    0/0 (wait forever); 0 for a negative tv_sec (do not wait at all)."""
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) < 16:
        raise os_error(errno.EINVAL, "SO_RCVTIMEO/SO_SNDTIMEO take struct.pack('ll', seconds, microseconds)")
    sec, usec = struct.unpack("ll", bytes(value)[:16])
    if usec < 0 or usec >= 1_000_000:
        raise os_error(errno.EDOM)
    if sec < 0:
        return 0
    if sec == 0 and usec == 0:
        return None
    per_jiffy = 1_000_000 // hz
    jiffies = sec * hz + (usec + per_jiffy - 1) // per_jiffy
    return jiffies * (1_000_000_000 // hz)


def _timeval_bytes(timeo: int | None) -> bytes:
    """sock_get_timeout: the stored timeout as a ``struct timeval`` (0/0 for none)."""
    if not timeo:
        return struct.pack("ll", 0, 0)
    return struct.pack("ll", timeo // 1_000_000_000, timeo % 1_000_000_000 // 1000)


class Socket:
    """Base of the simulated socket types (see :class:`UdpSocket`, :class:`TcpSocket`)."""

    _kind = "socket"
    _overlapped = None      # completion.SocketOps once an overlapped operation was posted
    _iocp = None            # (port, key) once associated with a completion port

    def __init__(self, host, family: int, type: int, proto: int):
        self._host = host
        self._sim = host.sim
        self._env = host.sim.env
        self.family = family
        self.type = type
        self.proto = proto
        self._fd = host._alloc_fd(self)
        self._closed = False
        self._holders: list = []                 # threads in a blocking call on this socket (they hold the file)
        self._open_at_close: list = []           # of those, the ones still in it when close() came
        self._close_recorded = False             # close() has its trace record (a second one is on fd -1)
        self._timeout_ns: int | None = None      # None = blocking, 0 = non-blocking
        self._reuseaddr = False
        self._reuseport = False
        self._broadcast = False
        self._keepalive = False
        self._linger: tuple[int, int] = (0, 0)
        self._userlocks_snd = False
        self._userlocks_rcv = False
        self._rcvlowat = 1
        self._rcvtimeo_ns: int | None = None     # SO_RCVTIMEO (None: MAX_SCHEDULE_TIMEOUT)
        self._sndtimeo_ns: int | None = None     # SO_SNDTIMEO
        self._sk_err = 0
        self.local: tuple[str, int] | None = None     # (ip, port) once bound
        self.peer: tuple[str, int] | None = None
        self.read_wait = WaitQueue(self._env, host.cpu.wakeup_ns)
        self.write_wait = WaitQueue(self._env, host.cpu.wakeup_ns)
        self.file_state = FileState()

    # -- tracing -------------------------------------------------------------------------
    def _record(self, call: str, args, result, exc) -> None:
        if call.endswith("_into") and args:
            # a buffer is recorded by its length (recvmsg_into: the list of lengths)
            first = ([len(memoryview(b)) for b in args[0]] if call == "recvmsg_into" and isinstance(args[0], (list, tuple))
                     else len(memoryview(args[0])))
            args = (first,) + tuple(args[1:])
        sim = self._sim
        thread = sim.current_thread
        fd = self._fd
        if self._closed:
            # A call that began after close() (or a second close) is on descriptor -1, as
            # CPython's socket object makes it; a call that was blocked when another thread
            # closed the socket, and close() itself, are on the descriptor they started with.
            if thread in self._open_at_close:
                self._open_at_close.remove(thread)
            elif call != "close" or self._close_recorded:
                fd = -1
            if call == "close":
                self._close_recorded = True
        # freeze: arguments and results rendered when the trace is read (trace.py); an int
        # result and a call that did not fail need no call at all (buys the trace-on cost
        # of benchmarks/compare.py udp)
        sim.trace.syscall(sim.env._now, self._host.name, thread.name if thread is not None else "-", call,
                          fd, freeze(args), result if type(result) is int else freeze(result),
                          None if exc is None else errno_of(exc))

    # -- common plain calls --------------------------------------------------------------
    def fileno(self) -> int:
        return -1 if self._closed else self._fd

    def _check_open(self) -> None:
        if self._closed:
            raise os_error(errno.EBADF)

    @syscall
    def setblocking(self, flag: bool) -> None:
        self._check_open()
        flag = check_int(flag) if not isinstance(flag, bool) else flag
        self._timeout_ns = None if flag else 0

    def getblocking(self) -> bool:
        return self._timeout_ns != 0

    @syscall
    def settimeout(self, value) -> None:
        self._check_open()
        if value is None:
            self._timeout_ns = None
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
        if value != value:
            raise ValueError("Invalid value NaN (not a number)")
        if value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout_ns = int(round(value * 1e9))

    def gettimeout(self) -> float | None:
        return None if self._timeout_ns is None else self._timeout_ns / 1e9

    def _deadline(self) -> int | None:
        return None if not self._timeout_ns else self._env.now + self._timeout_ns

    async def _wait_for(self, attempt, queue: WaitQueue, flags: int = 0, tried: bool = False,
                        kdeadline: int | None = None):
        """Run ``attempt()`` until it returns something other than :data:`AGAIN`, waiting
        on ``queue`` in between; raises EAGAIN instead of waiting when non-blocking, and
        TimeoutError when the socket's timeout expires, EAGAIN when the kernel's
        SO_RCVTIMEO/SO_SNDTIMEO of a blocking socket does (``kdeadline``: that deadline,
        when the call began earlier). ``tried``: the caller has just made the first
        attempt, which returned AGAIN.

        Attempts signal "would block" by returning AGAIN rather than raising, because a
        Python exception per blocked call is the most expensive thing on this path.
        """
        if not tried:
            result = attempt()
            if result is not AGAIN:
                return result
        timeout = self._timeout_ns
        # self._nonblocking(flags), inlined (buys benchmarks/compare.py udp: one per blocked call)
        if timeout == 0 or (flags & C.MSG_DONTWAIT and timeout is None):
            raise os_error(errno.EAGAIN)
        deadline = None if not timeout else self._env._now + timeout      # self._deadline()
        ktimeo = None
        if timeout is None and (self._rcvtimeo_ns is not None or self._sndtimeo_ns is not None):
            # A blocking socket: the kernel's own SO_RCVTIMEO/SO_SNDTIMEO bound the wait
            # (sock_rcvtimeo/sock_sndtimeo), and expiry is EAGAIN, not TimeoutError.
            ktimeo = self._kernel_timeo(queue)
            if ktimeo == 0:
                raise os_error(errno.EAGAIN)
            if ktimeo is not None:
                deadline = kdeadline if kdeadline is not None else self._env._now + ktimeo
        thread = self._sim.current_thread
        self._holders.append(thread)                                        # self._hold()
        try:
            while True:
                woke = await queue.wait(deadline)
                if self._closed and self._timeout_ns:                      # self._closed_while_polled()
                    wanted = C.EPOLLIN if queue is self.read_wait else C.EPOLLOUT
                    if self._held_mask() & (wanted | C.EPOLLERR | C.EPOLLHUP):
                        raise os_error(errno.EBADF)
                    if woke is TIMED_OUT:
                        raise timeout_error()
                    continue
                result = attempt()
                if result is not AGAIN:
                    return result
                if woke is TIMED_OUT:
                    if ktimeo is not None:
                        raise os_error(errno.EAGAIN)
                    raise timeout_error()
        finally:
            if thread is None or self._closed or self._sim.current_thread is not thread:
                self._unhold()
            else:
                # self._unhold()'s common case, inlined (buys benchmarks/compare.py udp)
                self._holders.remove(thread)

    def _nonblocking(self, flags: int) -> bool:
        """Whether a call that would block fails with EAGAIN instead of waiting: the socket
        is non-blocking, or a blocking socket's call has MSG_DONTWAIT. In timeout mode CPython
        polls (up to the timeout) before every call, flags or not (sock_call_ex)."""
        timeout = self._timeout_ns
        return timeout == 0 or bool(flags & C.MSG_DONTWAIT and timeout is None)

    def _closed_while_polled(self) -> bool:
        """Whether another thread closed the descriptor while a call in CPython's timeout
        mode waited in poll(): poll then reports the socket ready (or times out), and the
        call is made on the descriptor that close() set to -1 (EBADF)."""
        return self._closed and bool(self._timeout_ns)

    def _hold(self) -> None:
        """The calling thread's call is about to block: it holds the file until :meth:`_unhold`."""
        self._holders.append(self._sim.current_thread)

    def _unhold(self) -> None:
        """A blocked call is returning: if the descriptor was closed meanwhile and this was
        the last call holding the file, the socket is released now (fput -> sock_close).

        Calls run only inside their thread's step; a coroutine closed outside one (garbage
        collection after the simulation was dropped) releases nothing."""
        thread = self._sim.current_thread
        if thread is None:
            return
        self._holders.remove(thread)
        if self._closed and not self._holders and not (self._overlapped is not None and self._overlapped._holding):
            self._release()
            self._file_released()

    def _held_mask(self) -> int:
        """The readiness of the socket behind a descriptor closed while a call holds it
        (poll_mask reports POLLNVAL for the descriptor itself)."""
        self._closed = False
        try:
            return self.poll_mask()
        finally:
            self._closed = True

    @syscall
    def getsockname(self) -> tuple[str, int]:
        self._check_open()
        return self.local if self.local is not None else ("0.0.0.0", 0)

    @syscall
    def getpeername(self) -> tuple[str, int]:
        self._check_open()
        if self.peer is None:
            raise os_error(errno.ENOTCONN)
        return self.peer

    @syscall
    def setsockopt(self, level, optname, value, optlen=None) -> None:
        self._check_open()
        level = check_int(level)
        optname = check_int(optname)
        if level == C.SOL_SOCKET:
            self._set_socket_option(optname, value)
        else:
            self._set_protocol_option(level, optname, value)

    def _set_socket_option(self, optname: int, value) -> None:
        prof = self._host.profile
        if optname in (C.SO_RCVTIMEO, C.SO_SNDTIMEO):
            timeo = _timeval_option(value, prof.hz)
            if optname == C.SO_RCVTIMEO:
                self._rcvtimeo_ns = timeo
            else:
                self._sndtimeo_ns = timeo
            return
        if optname == C.SO_LINGER:
            if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) < 8:
                raise os_error(errno.EINVAL, "SO_LINGER takes struct.pack('ii', onoff, seconds)")
            onoff, secs = struct.unpack("ii", bytes(value)[:8])
            self._linger = (1 if onoff else 0, secs)
            self._linger_changed()
            return
        v = _int_option(value)
        if optname == C.SO_SNDBUF:
            self._userlocks_snd = True
            self._set_sndbuf(prof.stored_sndbuf(v))
        elif optname == C.SO_RCVBUF:
            self._userlocks_rcv = True
            self._set_rcvbuf(prof.stored_rcvbuf(v))
        elif optname == C.SO_REUSEADDR:
            self._reuseaddr = bool(v)
        elif optname == C.SO_REUSEPORT:
            self._reuseport = bool(v)
        elif optname == C.SO_BROADCAST:
            self._broadcast = bool(v)
        elif optname == C.SO_KEEPALIVE:
            self._keepalive = bool(v)
            self._keepalive_changed()
        elif optname in (C.SO_SNDBUFFORCE, C.SO_RCVBUFFORCE):
            # __sock_set_sndbuf/__sock_set_rcvbuf without the net.core.*mem_max cap (the
            # caller has CAP_NET_ADMIN, as simulated programs do): negative -> 0, at most
            # INT_MAX/2, stored doubled, at least SOCK_MIN_*BUF.
            v = min(max(v, 0), 0x7FFFFFFF // 2) * 2
            if optname == C.SO_SNDBUFFORCE:
                self._userlocks_snd = True
                self._set_sndbuf(max(v, prof.sock_min_sndbuf))
            else:
                self._userlocks_rcv = True
                self._set_rcvbuf(max(v, prof.sock_min_rcvbuf))
        elif optname == C.SO_RCVLOWAT:
            # sock_setsockopt: negative -> INT_MAX; the protocol may cap it (tcp_set_rcvlowat);
            # 0 is stored as 1
            self._set_rcvlowat(0x7FFFFFFF if v < 0 else v)
        elif optname == C.SO_SNDLOWAT:
            raise os_error(errno.ENOPROTOOPT, "SO_SNDLOWAT cannot be changed on Linux (it is always 1)")
        elif optname == _SO_ZEROCOPY:
            # SOCK_ZEROCOPY: lets MSG_ZEROCOPY sends pin pages (what goes on the wire is
            # the same; completion notifications are not modelled). TCP and UDP only.
            if v not in (0, 1):
                raise os_error(errno.EINVAL)
            self._zerocopy = bool(v)
        else:
            raise os_error(errno.ENOPROTOOPT, f"socket option {optname} is not modelled")

    def _linger_changed(self) -> None:
        pass

    def _keepalive_changed(self) -> None:
        pass            # UDP: accepted and without effect, as on Linux

    def _set_rcvlowat(self, value: int) -> None:
        self._rcvlowat = value or 1

    def _kernel_timeo(self, queue) -> int | None:
        """SO_RCVTIMEO or SO_SNDTIMEO for a wait on ``queue`` (None: wait forever)."""
        return self._rcvtimeo_ns if queue is self.read_wait else self._sndtimeo_ns

    def _set_protocol_option(self, level: int, optname: int, value) -> None:
        raise os_error(errno.ENOPROTOOPT)

    @syscall
    def getsockopt(self, level, optname, buflen=None):
        self._check_open()
        level = check_int(level)
        optname = check_int(optname)
        if level == C.SOL_SOCKET:
            value = self._get_socket_option(optname)
        else:
            value = self._get_protocol_option(level, optname)
        if buflen is None or buflen == 0:
            if isinstance(value, bytes):
                return int.from_bytes(value[:4], "little", signed=True)
            return value
        buflen = check_int(buflen)
        if buflen <= 0 or buflen > 1024:
            raise OSError("getsockopt buflen out of range")
        raw = value if isinstance(value, bytes) else int(value).to_bytes(4, "little", signed=True)
        return raw[:buflen]

    def _get_socket_option(self, optname: int):
        if optname == C.SO_SNDBUF:
            return self._sndbuf()
        if optname == C.SO_RCVBUF:
            return self._rcvbuf()
        if optname == C.SO_REUSEADDR:
            return int(self._reuseaddr)
        if optname == C.SO_REUSEPORT:
            return int(self._reuseport)
        if optname == C.SO_TYPE:
            return self.type
        if optname == C.SO_ERROR:
            err, self._sk_err = self._sk_err, 0
            return err or self._take_protocol_error()
        if optname == C.SO_BROADCAST:
            return int(self._broadcast)
        if optname == C.SO_KEEPALIVE:
            return int(self._keepalive)
        if optname == C.SO_RCVLOWAT:
            return self._rcvlowat
        if optname == C.SO_SNDLOWAT:
            return 1
        if optname in (C.SO_RCVTIMEO, C.SO_SNDTIMEO):
            timeo = self._rcvtimeo_ns if optname == C.SO_RCVTIMEO else self._sndtimeo_ns
            return _timeval_bytes(timeo)
        if optname == C.SO_LINGER:
            return struct.pack("ii", *self._linger)
        if optname == _SO_ZEROCOPY:
            return int(getattr(self, "_zerocopy", False))
        raise os_error(errno.ENOPROTOOPT, f"socket option {optname} is not modelled")

    def _take_protocol_error(self) -> int:
        return 0

    def _get_protocol_option(self, level: int, optname: int):
        raise os_error(errno.ENOPROTOOPT)

    # -- ioctl -------------------------------------------------------------------------
    @syscall
    def ioctl(self, request, arg=None):
        """``ioctl(fd, request, arg)`` on this socket, shaped like :func:`fcntl.ioctl`
        (programs call ``k.ioctl(sock, request[, arg])``): FIONREAD/SIOCINQ, SIOCOUTQ,
        SIOCOUTQNSD. Without ``arg`` the value is returned as an int."""
        self._check_open()
        request = check_int(request)
        return _ioctl_result(self._ioctl(request), arg)

    def _ioctl(self, request: int) -> int:
        raise os_error(errno.ENOTTY)

    # -- recvmsg / sendmsg (CPython's shapes; ancillary data is not modelled) ------------
    @syscall
    async def sendmsg(self, buffers, ancdata=(), flags=0, address=None) -> int:
        data = _gather(buffers)
        for item in ancdata:
            raise os_error(errno.EOPNOTSUPP, "ancillary data (control messages) is not modelled by simsock: "
                           f"sendmsg got {item!r}; send without ancdata")
        flags = check_int(flags)
        if address is None or self._kind == "tcp":
            # tcp_sendmsg ignores msg_name on a connected socket (EPIPE if unconnected)
            return await call_body(type(self).send, self, data, flags)
        return await call_body(type(self).sendto, self, data, flags, address)

    @staticmethod
    def _recvmsg_args(bufsize, ancbufsize, flags, caller: str) -> tuple[int, int]:
        ancbufsize = check_int(ancbufsize)
        flags = check_int(flags)
        if bufsize is not None and check_int(bufsize) < 0:
            raise ValueError(f"negative buffer size in {caller}()")
        if ancbufsize < 0:
            raise ValueError("invalid ancillary data buffer length")
        return ancbufsize, flags

    @syscall
    async def recvmsg(self, bufsize, ancbufsize=0, flags=0):
        """``(data, ancdata, msg_flags, address)``. ``ancdata`` is always empty: the options
        that make Linux attach control messages (IP_PKTINFO, SO_TIMESTAMP, ...) are not
        modelled; ``msg_flags`` has MSG_TRUNC when a datagram was cut to ``bufsize``."""
        _, flags = self._recvmsg_args(bufsize, ancbufsize, flags, "recvmsg")
        data, msg_flags, address = await self._recvmsg(check_int(bufsize), flags)
        return data, [], msg_flags, address

    @syscall
    async def recvmsg_into(self, buffers, ancbufsize=0, flags=0):
        """``(nbytes, ancdata, msg_flags, address)``, the data scattered over ``buffers``."""
        _, flags = self._recvmsg_args(None, ancbufsize, flags, "recvmsg_into")
        views = []
        for b in buffers:
            if not isinstance(b, (bytearray, memoryview)) or (isinstance(b, memoryview) and b.readonly):
                raise TypeError("recvmsg_into() argument 1 must be an iterable of single-segment read-write buffers")
            views.append(memoryview(b).cast("B"))
        data, msg_flags, address = await self._recvmsg(sum(len(v) for v in views), flags)
        pos = 0
        for v in views:
            part = data[pos:pos + len(v)]
            v[:len(part)] = part
            pos += len(part)
        return len(data), [], msg_flags, address

    async def _recvmsg(self, bufsize: int, flags: int):
        raise os_error(errno.EOPNOTSUPP)

    # -- close ---------------------------------------------------------------------------
    @syscall
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        held_by_ops = False
        if self._overlapped is not None and len(self._overlapped):
            # closesocket aborts pending overlapped I/O; io_uring requests hold the file
            # (kernel/completion.py), which is released when the last of them completes.
            held_by_ops = self._overlapped.close_file()
        if held_by_ops and not self._holders:
            self._host._free_fd(self._fd)
            return
        if self._holders:
            self._open_at_close = list(self._holders)
            # Another thread is blocked in a call on this socket and holds the file (fdget),
            # as on Linux: the descriptor is gone (new calls get EBADF), but the socket is
            # released only when that call returns, and the call is not woken by the close
            # (conformance scenario tcp_close_while_blocked_in_recv).
            self._host._free_fd(self._fd)
            return
        self._release()
        self._host._free_fd(self._fd)
        self._file_released()

    def _release(self) -> None:
        raise NotImplementedError

    def _file_released(self) -> None:
        """The last reference is gone: epoll instances drop their entries for this file
        (eventpoll_release in __fput); select/poll waiters are not woken by it."""
        if self.file_state.watchers:
            self.file_state.notify(self, SIG_CLOSE)

    def detach(self) -> int:
        raise os_error(errno.EOPNOTSUPP, "detach() has no meaning in the simulator")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- overlapped I/O (completion ports: kernel/iocp.py, kernel/completion.py) ------------
    # The posting calls are iocp.py's functions of the socket, as methods.
    recv_overlapped = iocp.recv_overlapped
    recv_into_overlapped = iocp.recv_into_overlapped
    send_overlapped = iocp.send_overlapped
    accept_overlapped = iocp.accept_overlapped
    connect_overlapped = iocp.connect_overlapped

    def _overlapped_attempt(self, op):
        raise OSError(errno.EOPNOTSUPP, f"overlapped I/O is not modelled for {type(self).__name__}")

    def _overlapped_connect_start(self, op) -> None:
        raise os_error(errno.EOPNOTSUPP)

    # -- readiness (select/poll/epoll) ---------------------------------------------------
    def poll_mask(self) -> int:
        raise NotImplementedError

    def _notify(self, edges: int, readers: bool = True, writers: bool = False) -> None:
        if readers:
            self.read_wait.wake_all()
        if writers:
            self.write_wait.wake_all()
        if self.file_state.watchers:
            self.file_state.notify(self, edges)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return (f"<simsock.{type(self).__name__} {state} host={self._host.name!r} "
                f"laddr={self.local} raddr={self.peer}>")
