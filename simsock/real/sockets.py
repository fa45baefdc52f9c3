"""A real socket behind the simulator's socket interface, recording every call.

:class:`RealSocket` wraps a :class:`socket.socket` and exposes the same calls under the same
names: plain methods for calls that never wait and ``async def`` methods for calls that may
wait or move data. An awaited method does the blocking call directly — each program runs in
its own OS thread, driven by a loop that sends ``None`` into its coroutine, so no event loop
is involved and the real call's timing, errno and result are the host kernel's own.

Every call that is a system call appends one ``syscall`` record (see :mod:`simsock.trace`) when it returns, with
its arguments and result rendered by :func:`~simsock.trace.trace_value` and its failure by
:func:`~simsock.trace.errno_of`; the exception is then re-raised unchanged. ``fileno``, ``gettimeout`` and ``getblocking``
read state CPython caches and make no system call, so (as in the simulator) they are not
recorded.

Addresses: a host name in an address (``("server", 5959)``) is resolved through the world's
table before the real call; addresses in results stay numeric, as the socket module returns
them (``simsock.compare`` maps them back to host names). The trace keeps the arguments as
the program wrote them.

In a world without namespaces all hosts share the machine's loopback. So that the peer sees
which host a connection or datagram came from, an unbound socket that connects or sends to
another host's address (``127.0.1.N``) is first bound to its own host's address, port 0 —
the source address a simulated host would use. That implicit bind is not recorded, and an
unconnected datagram socket still reports 0.0.0.0 from ``getsockname``, as after Linux's
own implicit bind.
"""

from __future__ import annotations

import errno
import fcntl
import socket as _socket
import struct

from simsock.tcp.info import TCP_INFO_SIZE, unpack_tcp_info
from simsock.trace import trace_value


class RealSocket:
    """One open socket of a :class:`~simsock.real.RealWorld` host."""

    def __init__(self, world, host, sock: _socket.socket):
        self._world = world
        self._host = host
        self._sock = sock
        self._bound = False
        self._autobound = False    # bound by _autobind, not by the program
        self._connected = False
        self._fd = sock.fileno()

    # -- properties mirroring socket.socket ----------------------------------------------
    @property
    def family(self):
        return self._sock.family

    @property
    def type(self):
        return self._sock.type

    @property
    def proto(self):
        return self._sock.proto

    def __repr__(self) -> str:
        return f"<RealSocket fd={self._fd} host={self._host.name} {self._sock!r}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the recording wrapper -----------------------------------------------------------
    def _call(self, call: str, args: list, fn, result_for_trace=None):
        """Run the real call ``fn()``, record it, and return its result (or re-raise)."""
        return recorded_call(self._world, call, self._sock.fileno(), args, fn, result_for_trace)

    def _resolve(self, address):
        return self._world._resolve_address(address)

    def _autobind(self, resolved) -> None:
        """Bind an unbound socket to its host's own address before it talks to another host."""
        self._world._check_route(self._host, resolved)
        if self._bound or self._world.namespaces or self._sock.family != _socket.AF_INET:
            return
        if isinstance(resolved, tuple) and self._world._is_host_address(resolved[0]):
            try:
                self._sock.bind((self._host.address, 0))
                self._autobound = True
            except OSError:
                pass
        self._bound = True

    def _local_name(self):
        name = self._sock.getsockname()
        # Linux's implicit bind of a UDP socket keeps INADDR_ANY; hide our own bind to the
        # host's address from an unconnected datagram socket, as the simulator does.
        if (self._autobound and not self._connected and self._sock.type == _socket.SOCK_DGRAM
                and name[0] == self._host.address):
            return ("0.0.0.0", *name[1:])
        return name

    # -- plain calls ---------------------------------------------------------------------
    def bind(self, address) -> None:
        def do():
            self._sock.bind(self._resolve(address))
            self._bound = True
        return self._call("bind", [address], do)

    def listen(self, backlog: int | None = None) -> None:
        args = [] if backlog is None else [backlog]

        def do():
            self._sock.listen(*args)
            self._bound = True
        return self._call("listen", args, do)

    def setblocking(self, flag: bool) -> None:
        return self._call("setblocking", [flag], lambda: self._sock.setblocking(flag))

    def settimeout(self, value) -> None:
        return self._call("settimeout", [value], lambda: self._sock.settimeout(value))

    def gettimeout(self):
        return self._sock.gettimeout()

    def getblocking(self) -> bool:
        return self._sock.getblocking()

    def setsockopt(self, level: int, optname: int, value, *optlen) -> None:
        return self._call("setsockopt", [level, optname, value, *optlen],
                          lambda: self._sock.setsockopt(level, optname, value, *optlen))

    def getsockopt(self, level: int, optname: int, *buflen):
        return self._call("getsockopt", [level, optname, *buflen],
                          lambda: self._sock.getsockopt(level, optname, *buflen))

    def getsockname(self):
        return self._call("getsockname", [], self._local_name)

    def getpeername(self):
        return self._call("getpeername", [], self._sock.getpeername)

    def fileno(self) -> int:
        return self._sock.fileno()

    def shutdown(self, how: int) -> None:
        return self._call("shutdown", [how], lambda: self._sock.shutdown(how))

    def close(self) -> None:
        def do():
            self._world._forget_socket(self)
            self._sock.close()
        return self._call("close", [], do)

    # -- awaited calls -------------------------------------------------------------------
    async def connect(self, address) -> None:
        def do():
            resolved = self._resolve(address)
            self._autobind(resolved)
            self._sock.connect(resolved)
            self._connected = True
        return self._call("connect", [address], do)

    async def connect_ex(self, address) -> int:
        def do():
            resolved = self._resolve(address)
            self._autobind(resolved)
            code = self._sock.connect_ex(resolved)
            self._connected = self._connected or code in (0, errno.EINPROGRESS)
            return code
        return self._call("connect_ex", [address], do)

    async def accept(self):
        def do():
            conn, addr = self._sock.accept()
            wrapped = RealSocket(self._world, self._host, conn)
            wrapped._bound = True
            self._world._adopt_socket(wrapped)
            return wrapped, addr
        return self._call("accept", [], do)

    async def send(self, data, *flags) -> int:
        return self._call("send", [data, *flags], lambda: self._sock.send(data, *flags))

    async def sendall(self, data, *flags) -> None:
        return self._call("sendall", [data, *flags], lambda: self._sock.sendall(data, *flags))

    async def sendto(self, data, *flags_and_address) -> int:
        if len(flags_and_address) not in (1, 2):
            raise TypeError("sendto() takes (data, address) or (data, flags, address)")
        *flags, address = flags_and_address

        def do():
            resolved = self._resolve(address)
            self._autobind(resolved)
            if self._wildcard_to_host(resolved):
                # A socket bound to 0.0.0.0 would send from 127.0.0.1 (lo's primary address);
                # a simulated host sends from its own address, so say that one (IP_PKTINFO).
                info = struct.pack("=i4s4s", 0, _socket.inet_aton(self._host.address), bytes(4))
                return self._sock.sendmsg([data], [(_socket.IPPROTO_IP, _IP_PKTINFO, info)],
                                          *(flags or [0]), resolved)
            return self._sock.sendto(data, *flags, resolved)
        return self._call("sendto", [data, *flags_and_address], do)

    def _wildcard_to_host(self, resolved) -> bool:
        """A UDP socket bound to 0.0.0.0 sending to another host (loopback aliases only)."""
        if self._world.namespaces or self._sock.type != _socket.SOCK_DGRAM:
            return False
        if not (isinstance(resolved, tuple) and self._world._is_host_address(resolved[0])
                and resolved[0] != self._host.address):
            return False
        return self._sock.getsockname()[0] == "0.0.0.0"

    async def recv(self, bufsize: int, *flags) -> bytes:
        return self._call("recv", [bufsize, *flags], lambda: self._sock.recv(bufsize, *flags))

    async def recvfrom(self, bufsize: int, *flags):
        return self._call("recvfrom", [bufsize, *flags], lambda: self._sock.recvfrom(bufsize, *flags))

    async def recv_into(self, buffer, nbytes: int = 0, *flags) -> int:
        # The buffer is recorded by its length (its old contents mean nothing).
        args = [len(memoryview(buffer)), *([nbytes] if nbytes or flags else []), *flags]
        return self._call("recv_into", args, lambda: self._sock.recv_into(buffer, nbytes, *flags))

    async def recvfrom_into(self, buffer, nbytes: int = 0, *flags):
        args = [len(memoryview(buffer)), *([nbytes] if nbytes or flags else []), *flags]
        return self._call("recvfrom_into", args, lambda: self._sock.recvfrom_into(buffer, nbytes, *flags))


    # -- recvmsg / sendmsg / ioctl (the simulator's shapes) ----------------------------------
    async def sendmsg(self, buffers, *rest) -> int:
        # recorded as the program wrote it; a host name in the address is resolved first
        def do():
            if len(rest) < 3 or rest[2] is None:
                return self._sock.sendmsg(buffers, *rest[:2])
            resolved = self._resolve(rest[2])
            self._autobind(resolved)
            return self._sock.sendmsg(buffers, rest[0], rest[1], resolved)
        return self._call("sendmsg", [buffers, *rest], do)

    async def recvmsg(self, bufsize, *rest):
        return self._call("recvmsg", [bufsize, *rest], lambda: self._sock.recvmsg(bufsize, *rest))

    async def recvmsg_into(self, buffers, *rest):
        buffers = list(buffers)
        return self._call("recvmsg_into", [[len(memoryview(b)) for b in buffers], *rest],
                          lambda: self._sock.recvmsg_into(buffers, *rest))

    def tcp_info(self) -> dict:
        """The real kernel's ``struct tcp_info`` as a dict (the simulator's ``tcp_info()``);
        no trace record, like the simulated one."""
        return unpack_tcp_info(self._sock.getsockopt(_socket.IPPROTO_TCP, _socket.TCP_INFO, TCP_INFO_SIZE))

    def ioctl(self, request, arg=None):
        """fcntl.ioctl on the socket; without ``arg`` the int the request reads (as the
        simulator's ``k.ioctl``)."""
        def do():
            fd = self._sock.fileno()
            if fd < 0:
                raise OSError(errno.EBADF, "Bad file descriptor")
            if arg is None:
                buf = bytearray(4)
                fcntl.ioctl(fd, request, buf)
                return int.from_bytes(buf, "little", signed=True)
            return fcntl.ioctl(fd, request, arg)
        return self._call("ioctl", [request] if arg is None else [request, arg], do)

_IP_PKTINFO = 8   # <linux/in.h>; the socket module does not export it


def recorded_call(world, call: str, fd: int, args: list, fn, result_for_trace=None):
    """Run the real system call ``fn()`` as the current thread's ``call`` (what a stopped
    world reports the thread was in), record it on descriptor ``fd`` with ``args`` and its
    result (``result_for_trace(result)`` if given) or its failure, and return the result or
    re-raise. A world that was stopped meanwhile aborts the thread first."""
    world._check_abort()
    world._enter_call(call)
    try:
        result = fn()
    except BaseException as exc:
        world._leave_call()
        world._check_abort()
        world._record(call, fd, args, None, exc)
        raise
    world._leave_call()
    world._check_abort()
    traced = result if result_for_trace is None else result_for_trace(result)
    world._record(call, fd, args, traced, None)
    return result


def plain(value):
    """``value`` with every :class:`RealSocket` replaced by ``{"fd": n}`` (without recording
    a ``fileno`` call), then rendered by :func:`trace_value`."""
    return trace_value(_strip(value))


def _strip(value):
    if isinstance(value, RealSocket):
        return {"fd": value._sock.fileno() if value._sock.fileno() >= 0 else value._fd}
    if isinstance(value, (tuple, list)):
        return [_strip(v) for v in value]
    return value
