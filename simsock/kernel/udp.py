"""UDP sockets as Linux runs them.

Sending (udp_sendmsg): a datagram goes out whole or not at all. Its memory (skb truesize)
is charged to the sender's ``sk_wmem_alloc`` until the packet has left the host's
interface; a sender whose charged memory has reached ``SO_SNDBUF`` waits (blocking) or
gets ``EAGAIN`` — that is the only thing that ever stops a UDP sender: the receiver never
does (claim C5.4). A datagram that needs fragmenting is charged per fragment skb (so a
30000-byte datagram over a 1500-MTU link costs 47360 bytes, not 30832), and fails with
``ENOBUFS`` when its fragments would take the charge past twice ``SO_SNDBUF``
(``__ip_append_data``; see ``_fragments_truesize``). On loopback the skb is orphaned at once (loopback_xmit), so a loopback
sender never waits. A datagram larger than the route's MTU is fragmented (IP_PMTUDISC_WANT
does so locally); fragments are reassembled at the receiver, and a datagram with a lost
fragment is lost whole after ``ipfrag_time``.

Receiving (__udp_enqueue_schedule_skb): a datagram is charged its *truesize* — a
per-packet memory cost that depends on the payload size (profile ``udp_truesize``), 832
bytes even for an empty datagram — and is dropped (counted as RcvbufErrors) when
``rmem_alloc + truesize > SO_RCVBUF`` unless the queue is empty. The reader side keeps two
queues as Linux does (``sk_receive_queue`` and ``reader_queue``): ``recv`` splices all
arrivals into the reader queue when it is empty, and returns memory to ``rmem_alloc`` in
batches (udp_rmem_release's forward deficit: only once a quarter of SO_RCVBUF has been
read, or the reader queue is empty). Measured on Linux 6.18: a 212992-byte buffer holds
256 datagrams of 100 bytes; see tests/test_udp_linux.py.

Errors: ICMP port-unreachable is reported only to a *connected* socket, once, as
``ConnectionRefusedError`` on its next call (before any queued data), as Linux's
__udp4_lib_err does without IP_RECVERR.
"""

from __future__ import annotations

import errno
from collections import deque
from types import coroutine

from simsock import constants as C
from simsock.errors import os_error
from simsock.signals import SIG_IN, SIG_OUT, SIG_STATE

from .addr import ANY, BROADCAST, LOOPBACK, check_int, parse_inet_address, resolve
from .socket import AGAIN, Socket, syscall, syscall_may_wait


def _data_arg(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")


def recv_into_args(buffer, nbytes, flags, caller: str) -> tuple[int, int]:
    """recv_into/recvfrom_into's arguments as CPython checks them: (bytes to read, flags)."""
    if not isinstance(buffer, (bytearray, memoryview)) or (isinstance(buffer, memoryview) and buffer.readonly):
        raise TypeError(f"{caller}() argument 1 must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}")
    nbytes = check_int(nbytes)
    flags = check_int(flags)
    if nbytes < 0:
        raise ValueError(f"negative buffersize in {caller}")
    if nbytes == 0:
        nbytes = len(buffer)
    elif nbytes > len(buffer):
        raise ValueError("buffer too small for requested bytes" if caller == "recv_into"
                         else "nbytes is greater than the length of the buffer")
    return nbytes, flags


class UdpSocket(Socket):
    """A ``SOCK_DGRAM`` socket."""

    _kind = "udp"
    _shut = 0               # SHUT_RD/SHUT_WR bits once shutdown() was called

    def __init__(self, host, family: int, type: int, proto: int):
        super().__init__(host, family, type, proto)
        prof = host.profile
        self.stack = host.udp
        self.sndbuf = prof.wmem_default
        self.rcvbuf = prof.rmem_default
        self.receive_queue: deque = deque()   # (data, src_addr, truesize)
        self.reader_queue: deque = deque()
        self.rmem_alloc = 0
        self.forward_deficit = 0
        self.wmem_alloc = 0
        self._wmem_pending: deque = deque()   # (release_ns, truesize): skbs still in our interface queue
        self._wmem_timer = None
        # counters (per socket; host-wide ones live in host.udp.mib)
        self.sent_datagrams = 0
        self.sent_bytes = 0
        self.received_datagrams = 0
        self.received_bytes = 0
        self.drops = 0                        # SO_RXQ_OVFL: dropped for lack of receive buffer
        self.monitor = None                   # optional callable(now, rmem_alloc, queued_datagrams)
        self._dest_cache = None               # (address as given, resolved) of the last sendto

    # -- buffers -------------------------------------------------------------------------
    def _sndbuf(self) -> int:
        return self.sndbuf

    def _rcvbuf(self) -> int:
        return self.rcvbuf

    def _set_sndbuf(self, value: int) -> None:
        self.sndbuf = value
        self._notify(SIG_OUT, readers=False, writers=True)

    def _set_rcvbuf(self, value: int) -> None:
        self.rcvbuf = value

    @property
    def queued_datagrams(self) -> int:
        return len(self.receive_queue) + len(self.reader_queue)

    # -- binding -------------------------------------------------------------------------
    @syscall
    def bind(self, address) -> None:
        self._check_open()
        host, port = parse_inet_address(address, "bind")
        ip = resolve(self._sim, host, for_bind=True)
        if self.local is not None:
            raise os_error(errno.EINVAL)
        self.stack.bind(self, ip, port)

    def _autobind(self) -> None:
        if self.local is None:
            self.stack.bind(self, ANY, 0)

    def listen(self, backlog=None) -> None:
        self._check_open()
        raise os_error(errno.EOPNOTSUPP)

    async def accept(self):
        self._check_open()
        raise os_error(errno.EOPNOTSUPP)

    @syscall
    async def connect(self, address) -> None:
        self._check_open()
        self._connect(address)

    @syscall
    async def connect_ex(self, address) -> int:
        self._check_open()
        try:
            self._connect(address)
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def _connect(self, address) -> None:
        host, port = parse_inet_address(address, "connect")
        ip = resolve(self._sim, host)
        if ip == ANY:
            ip = LOOPBACK        # Linux: connecting to INADDR_ANY means the local host
        self._check_broadcast(ip)
        self._host.route_check(ip)
        self._autobind()
        if self.local[0] == ANY:
            # ip4_datagram_connect fixes the source address from the route.
            self.stack.rehash(self, self._host.source_address_for(ip))
        self.peer = (ip, port)
        # A pending error (an ICMP port unreachable) survives a new connect():
        # ip4_datagram_connect does not clear sk_err (differential test; conformance
        # scenario udp_reconnect_keeps_pending_error).

    @syscall
    def shutdown(self, how) -> None:
        self._check_open()
        how = check_int(how)
        if how not in (C.SHUT_RD, C.SHUT_WR, C.SHUT_RDWR):
            raise os_error(errno.EINVAL)
        if self.peer is None:
            raise os_error(errno.ENOTCONN)
        self._shut = self._shut | (1 << how if how != C.SHUT_RDWR else 3)
        self._notify(SIG_STATE, readers=True, writers=True)

    def _release(self) -> None:
        self.stack.unbind(self)
        self.receive_queue.clear()
        self.reader_queue.clear()
        self.rmem_alloc = 0

    # -- sending -------------------------------------------------------------------------
    def _reclaim_wmem(self, now: int) -> None:
        pending = self._wmem_pending
        while pending and pending[0][0] <= now:
            self.wmem_alloc -= pending.popleft()[1]

    def _try_send(self, data: bytes, dest: tuple[str, int], route=None) -> int:
        # No descriptor check: callers check on entry, and a call blocked when another
        # thread closed the descriptor goes on with the socket (Socket.close).
        if self._sk_err:
            err, self._sk_err = self._sk_err, 0
            raise os_error(err)
        if self._shut & 2:
            raise os_error(errno.EPIPE)
        now = self._env._now
        pending = self._wmem_pending
        # self._reclaim_wmem(now), inlined (buys benchmarks/compare.py udp: one per datagram)
        while pending and pending[0][0] <= now:
            self.wmem_alloc -= pending.popleft()[1]
        if self.wmem_alloc >= self.sndbuf:           # sock_alloc_send_pskb
            self._arm_wmem_wakeup()
            return AGAIN
        host = self._host
        length = len(data)
        if route is None:
            route = host._route_cache.get(dest[0]) or host.route(dest[0])
        if length + 28 <= route[1]:                  # IP + UDP headers fit the route's MTU
            truesize = self.stack.truesize(length)
        else:
            truesize = self._fragments_truesize(length, route[1])
        self.wmem_alloc += truesize
        release = self.stack.output(self, data, dest, route)
        if release is None or release <= now:
            self.wmem_alloc -= truesize
        else:
            pending.append((release, truesize))
        self.sent_datagrams += 1
        self.sent_bytes += length
        return length

    def _fragments_truesize(self, length: int, mtu: int) -> int:
        """The send-buffer charge of a datagram fragmented at ``mtu``, or ENOBUFS.

        __ip_append_data builds one linear skb per fragment, each charged as an skb of its
        IP length (the same sizes as ``udp_truesize``, which is indexed by UDP payload:
        hence ``ip_len - 28``). Only the first comes from sock_alloc_send_skb (which waits
        while ``wmem_alloc >= sndbuf``, checked by the caller); each later one is allocated
        only while ``sk_wmem_alloc`` (which counts 1 more than the memory) plus what this
        call has allocated so far stays within ``2 * sndbuf``, otherwise the whole datagram
        fails with ENOBUFS and nothing is sent (measured on Linux 6.18 over a 1500-MTU veth:
        SO_SNDBUF 4096 accepts at most 11832 bytes, 8 fragments; 30000 bytes: ENOBUFS;
        tests/net/test_udp_tx_linux.py).
        """
        per = (mtu - 20) & ~7
        size = 8 + length
        count = -(-size // per)
        ts = self.stack.truesize
        full = ts(per + 20 - 28)
        last = ts(size - (count - 1) * per + 20 - 28)
        if 1 + self.wmem_alloc + (count - 1) * full > 2 * self.sndbuf:
            self.stack.mib["SndbufErrors"] += 1
            raise os_error(errno.ENOBUFS)
        return (count - 1) * full + last

    def _arm_wmem_wakeup(self) -> None:
        """Wake blocked senders when enough queued skbs have left the interface."""
        if self._wmem_timer is not None or not self._wmem_pending:
            return
        env = self._env
        # the earliest time at which wmem_alloc drops below sndbuf / 2: sock_wfree ->
        # sock_def_write_space wakes writers only when sock_writeable()
        alloc = self.wmem_alloc
        when = None
        for release, size in self._wmem_pending:
            alloc -= size
            if alloc < (self.sndbuf >> 1):
                when = release
                break
        if when is None:
            return
        timer = env.timeout(max(0, when - env.now))
        self._wmem_timer = timer

        def fire(_ev):
            self._wmem_timer = None
            self._reclaim_wmem(env.now)
            self._notify(SIG_OUT, readers=False, writers=True)

        timer.callbacks.append(fire)

    def _dest(self, address, caller: str) -> tuple[str, int]:
        # Only (str, int) addresses are cached: they cannot change, and an equal one parses
        # the same (a float port equal to the cached one must still raise TypeError).
        plain = type(address) is tuple and len(address) == 2 and type(address[0]) is str and type(address[1]) is int
        cached = self._dest_cache
        if plain and cached is not None and cached[0] == address:
            return cached[1]
        host, port = parse_inet_address(address, caller)
        ip = resolve(self._sim, host)
        if ip == ANY:
            ip = LOOPBACK
        if plain:
            self._dest_cache = (address, (ip, port))
        return ip, port

    # send/sendto/recv/recvfrom are awaitable calls whose bodies are plain functions
    # (syscall_may_wait): a call that completes at once runs no extra coroutine frame.
    @syscall_may_wait
    def send(self, data, flags=0) -> int:
        if type(data) is not bytes:
            data = _data_arg(data)
        if type(flags) is not int:
            flags = check_int(flags)
        if self._closed:
            raise os_error(errno.EBADF)
        if self.peer is None:
            raise os_error(errno.EDESTADDRREQ)
        return self._send(data, self.peer, flags)

    @syscall_may_wait
    def sendto(self, data, flags_or_address, address=None) -> int:
        if type(data) is not bytes:
            data = _data_arg(data)
        if address is None:
            flags, address = 0, flags_or_address
        else:
            flags = check_int(flags_or_address)
        if self._closed:
            raise os_error(errno.EBADF)
        cached = self._dest_cache
        if cached is not None and cached[0] is address:
            dest = cached[1]                     # the same address object as last time
        else:
            dest = self._dest(address, "sendto")
        host = self._host
        if flags or len(data) > host.profile.udp_max_payload or self.local is None:
            return self._send(data, dest, flags)
        # self._send(data, dest, 0) on a bound socket, inlined (buys benchmarks/compare.py udp)
        route = host._route_cache.get(dest[0]) or host.route(dest[0])      # Host.route's cache, inlined
        if route[0] is None:
            self._check_broadcast(dest[0])
            host.route_check(dest[0])
        result = self._try_send(data, dest, route)
        if result is not AGAIN:
            return result
        return self._wait_for(lambda: self._try_send(data, dest), self.write_wait, flags, tried=True)

    async def sendall(self, data, flags=0) -> None:
        data = _data_arg(data)
        await self.send(data, flags)

    def _check_broadcast(self, ip: str) -> None:
        """The limited broadcast address: EACCES without SO_BROADCAST (udp_sendmsg and
        ip4_datagram_connect on an RTCF_BROADCAST route; checked on Linux 6.18). With it,
        Linux delivers to every host of the segment, which simsock does not model."""
        if ip == BROADCAST:
            if not self._broadcast:
                raise os_error(errno.EACCES)
            raise os_error(errno.EOPNOTSUPP, "broadcast delivery is not modelled; send to each host's address")

    def _send(self, data: bytes, dest, flags: int):
        """Send now: the result, or the coroutine that waits for buffer space."""
        host = self._host
        if len(data) > host.profile.udp_max_payload:
            raise os_error(errno.EMSGSIZE)
        if flags and flags & C.MSG_OOB:
            raise os_error(errno.EOPNOTSUPP)         # udp_sendmsg: no out-of-band data on UDP
        route = host._route_cache.get(dest[0]) or host.route(dest[0])      # Host.route's cache, inlined
        if route[0] is None:
            self._check_broadcast(dest[0])
            host.route_check(dest[0])
        if self.local is None:
            self._autobind()
        result = self._try_send(data, dest, route)
        if result is not AGAIN:
            return result
        return self._wait_for(lambda: self._try_send(data, dest), self.write_wait, flags, tried=True)

    # -- receiving -----------------------------------------------------------------------
    def deliver(self, data: bytes, src: tuple[str, int], truesize: int) -> bool:
        """Called by the host for an arriving datagram; False if the buffer refused it."""
        rmem = self.rmem_alloc
        if rmem + truesize > self.rcvbuf and rmem:
            self.drops += 1
            return False
        self.rmem_alloc = rmem + truesize
        self.receive_queue.append((data, src, truesize))
        if self.monitor is not None:
            self.monitor(self._env.now, self.rmem_alloc, self.queued_datagrams)
        self.read_wait.wake_all()                # self._notify(SIG_IN, readers=True), inlined
        if self.file_state.watchers:
            self.file_state.notify(self, SIG_IN)
        return True

    def icmp_error(self, code: int) -> None:
        """ICMP destination unreachable for a datagram we sent (only connected sockets hear it)."""
        if self.peer is None:
            return
        self._sk_err = code
        self._notify(SIG_STATE, readers=True, writers=True)

    def _try_recv(self, bufsize: int, flags: int):
        # No descriptor check (see _try_send).
        if self._sk_err:
            err, self._sk_err = self._sk_err, 0
            raise os_error(err)
        reader = self.reader_queue
        if not reader:
            if not self.receive_queue:
                if self._shut & 1:
                    return b"", None, 0
                return AGAIN
            reader.extend(self.receive_queue)        # splice, as __skb_recv_udp does
            self.receive_queue.clear()
        if flags & C.MSG_PEEK:
            data, src, _ = reader[0]
        else:
            data, src, truesize = reader.popleft()
            if self.monitor is None:
                # self._rmem_release(truesize) without a monitor, inlined (buys
                # benchmarks/compare.py udp: one per datagram)
                deficit = self.forward_deficit + truesize
                if deficit < (self.rcvbuf >> 2) and reader:
                    self.forward_deficit = deficit
                else:
                    self.forward_deficit = 0
                    self.rmem_alloc -= deficit
            else:
                self._rmem_release(truesize)
            self.received_datagrams += 1
            self.received_bytes += len(data)
        length = len(data)
        if length > bufsize:
            data = data[:bufsize]
            if flags & C.MSG_TRUNC:
                # CPython resizes its buffer to the datagram's real length; the bytes past
                # bufsize are whatever the buffer held (undefined): zeros here.
                data = data + bytes(length - bufsize)
        return data, src, length

    def _rmem_release(self, truesize: int) -> None:
        # udp_rmem_release(partial=1): batch the release until a quarter of the buffer
        # has been consumed or the reader queue runs empty.
        deficit = self.forward_deficit + truesize
        if deficit < (self.rcvbuf >> 2) and self.reader_queue:
            self.forward_deficit = deficit
        else:
            self.forward_deficit = 0
            self.rmem_alloc -= deficit
        if self.monitor is not None:
            self.monitor(self._env.now, self.rmem_alloc, self.queued_datagrams)

    def _recv_args(self, bufsize, flags, caller: str = "recv") -> tuple[int, int]:
        bufsize = check_int(bufsize)
        flags = check_int(flags)
        if bufsize < 0:
            raise ValueError(f"negative buffersize in {caller}")
        return bufsize, flags

    @coroutine
    def _recv_blocking(self, bufsize: int, flags: int, with_src: bool):
        """``_wait_for`` of a blocked recv/recvfrom on a blocking socket without timeouts
        (no timeout, no SO_RCVTIMEO, no MSG_DONTWAIT), after a first attempt found nothing:
        the same waits and results without the closure and the timeout cases (buys
        benchmarks/compare.py udp, whose receiver blocks once per datagram). A generator-based
        coroutine, which yields the wait's event itself: each coroutine a wait resumes costs a
        C-level frame, and this is one fewer (no ``wait_event``) on entry and on wake-up."""
        thread = self._sim.current_thread
        self._holders.append(thread)                                        # self._hold()
        try:
            while True:
                yield self.read_wait.waiter()         # await self.read_wait.wait(None)
                if self._closed and self._timeout_ns:                      # self._closed_while_polled()
                    # settimeout and close by other threads meanwhile (a wait without a
                    # deadline never times out)
                    if self._held_mask() & (C.EPOLLIN | C.EPOLLERR | C.EPOLLHUP):
                        raise os_error(errno.EBADF)
                    continue
                got = self._try_recv(bufsize, flags)
                if got is not AGAIN:
                    return (got[0], got[1]) if with_src else got[0]
        finally:
            if thread is None or self._closed or self._sim.current_thread is not thread:
                self._unhold()
            else:
                self._holders.remove(thread)                                # self._unhold()'s common case

    @syscall_may_wait
    def recv(self, bufsize, flags=0) -> bytes:
        if type(bufsize) is not int or type(flags) is not int or bufsize < 0:
            bufsize, flags = self._recv_args(bufsize, flags)
        if bufsize == 0:
            return b""          # CPython's sock_recv: no system call for a zero-length read
        if self._closed:
            raise os_error(errno.EBADF)
        got = self._try_recv(bufsize, flags)
        if got is not AGAIN:
            return got[0]
        if self._timeout_ns is None and self._rcvtimeo_ns is None and not flags & C.MSG_DONTWAIT:
            return self._recv_blocking(bufsize, flags, False)

        def attempt():
            got = self._try_recv(bufsize, flags)
            return got if got is AGAIN else got[0]
        return self._wait_for(attempt, self.read_wait, flags, tried=True)

    @syscall_may_wait
    def recvfrom(self, bufsize, flags=0):
        if type(bufsize) is not int or type(flags) is not int or bufsize < 0:
            bufsize, flags = self._recv_args(bufsize, flags, "recvfrom")
        if self._closed:
            raise os_error(errno.EBADF)
        got = self._try_recv(bufsize, flags)
        if got is not AGAIN:
            return got[0], got[1]
        if self._timeout_ns is None and self._rcvtimeo_ns is None and not flags & C.MSG_DONTWAIT:
            return self._recv_blocking(bufsize, flags, True)

        def attempt():
            got = self._try_recv(bufsize, flags)
            return got if got is AGAIN else (got[0], got[1])
        return self._wait_for(attempt, self.read_wait, flags, tried=True)

    @syscall
    async def recv_into(self, buffer, nbytes=0, flags=0) -> int:
        n, flags = recv_into_args(buffer, nbytes, flags, "recv_into")
        if n == 0:
            return 0
        self._check_open()
        data, _, length = await self._wait_for(lambda: self._try_recv(n, flags & ~C.MSG_TRUNC), self.read_wait,
                                               flags)
        buffer[:len(data)] = data
        return length if flags & C.MSG_TRUNC else len(data)

    @syscall
    async def recvfrom_into(self, buffer, nbytes=0, flags=0):
        n, flags = recv_into_args(buffer, nbytes, flags, "recvfrom_into")
        self._check_open()
        data, src, length = await self._wait_for(lambda: self._try_recv(n, flags & ~C.MSG_TRUNC),
                                                 self.read_wait, flags)
        buffer[:len(data)] = data
        return (length if flags & C.MSG_TRUNC else len(data)), src

    async def _recvmsg(self, bufsize: int, flags: int):
        self._check_open()
        data, src, length = await self._wait_for(lambda: self._try_recv(bufsize, flags & ~C.MSG_TRUNC),
                                                 self.read_wait, flags)
        return data, (C.MSG_TRUNC if length > bufsize else 0), src

    def _ioctl(self, request: int) -> int:
        """udp_ioctl: SIOCINQ is the payload of the next datagram (0 if none), SIOCOUTQ
        the send-buffer memory still held by sent datagrams (sk_wmem_alloc); other requests,
        SIOCOUTQNSD included, ENOTTY."""
        if request == C.SIOCINQ:
            q = self.reader_queue or self.receive_queue
            return len(q[0][0]) if q else 0
        if request == C.SIOCOUTQ:
            self._reclaim_wmem(self._env.now)
            return self.wmem_alloc
        raise os_error(errno.ENOTTY)

    # -- overlapped I/O (kernel/completion.py drives these) ---------------------------------
    def _overlapped_attempt(self, op):
        """Try to finish ``op`` now: its result, AGAIN to wait, or an OSError to fail it.
        A receive takes one datagram (cut to the buffer, as recv does); a send sends one
        datagram to the connected peer."""
        kind = op.kind
        if kind == "recv":
            self._check_open()
            outcome = self._try_recv(op.request, 0)
            if outcome is AGAIN:
                return AGAIN
            data = outcome[0]
            n = len(data)
            op.buffer[:n] = data
            op.nbytes = n
            return n
        if kind == "send":
            self._check_open()
            if self.peer is None:
                raise os_error(errno.EDESTADDRREQ, "send_overlapped on a UDP socket needs connect() first")
            data = bytes(op.view)
            if len(data) > self._host.profile.udp_max_payload:
                raise os_error(errno.EMSGSIZE)
            self._autobind()
            n = self._try_send(data, self.peer)
            if n is AGAIN:
                return AGAIN
            op.nbytes = n
            return n
        if kind == "accept":
            raise os_error(errno.EOPNOTSUPP)
        return None                      # connect: done when posted (UDP connect never waits)

    def _overlapped_connect_start(self, op) -> None:
        self._connect(op.address)

    # -- readiness -----------------------------------------------------------------------
    def poll_mask(self) -> int:
        """udp_poll/datagram_poll: readable with a datagram or an error; writable while
        less than half the send buffer is charged (sock_writeable)."""
        if self._closed:
            return C.POLLNVAL
        mask = 0
        if self._sk_err:
            mask |= C.EPOLLERR
        shut = self._shut
        if shut == 3:
            mask |= C.EPOLLHUP
        if shut & 1:
            mask |= C.EPOLLIN | C.EPOLLRDNORM | C.EPOLLRDHUP
        if self.reader_queue or self.receive_queue:
            mask |= C.EPOLLIN | C.EPOLLRDNORM
        self._reclaim_wmem(self._env.now)
        if self.wmem_alloc < (self.sndbuf >> 1):
            mask |= C.EPOLLOUT | C.EPOLLWRNORM | C.EPOLLWRBAND
        return mask

    def stats(self) -> dict:
        return {
            "type": "udp", "fd": self._fd, "local": list(self.local) if self.local else None,
            "peer": list(self.peer) if self.peer else None,
            "sent_datagrams": self.sent_datagrams, "sent_bytes": self.sent_bytes,
            "received_datagrams": self.received_datagrams, "received_bytes": self.received_bytes,
            "drops_rcvbuf": self.drops, "queued_datagrams": self.queued_datagrams,
            "rmem_alloc": self.rmem_alloc, "rcvbuf": self.rcvbuf, "sndbuf": self.sndbuf,
        }
