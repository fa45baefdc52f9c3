"""I/O completion ports: Windows' way of hearing that overlapped operations finished.

What a completion port is (Windows Internals, "I/O completion ports"; the Win32 calls
CreateIoCompletionPort, GetQueuedCompletionStatus, PostQueuedCompletionStatus, CancelIoEx):

* A **queue of completion packets**. A socket is *associated* with a port once, with a
  *completion key* the program chooses (usually its per-connection state). Every
  overlapped operation on that socket (``sock.recv_overlapped(n)``,
  ``send_overlapped(data)``, ``accept_overlapped()``, ``connect_overlapped(addr)``, see
  :mod:`simsock.kernel.completion`) queues one packet ``(key, op, nbytes, error)`` when
  it completes — also when it completes at once, inside the posting call (Windows queues
  a packet then too unless FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set, which this model
  does not offer). ``port.post(key, nbytes, op)`` queues a packet by hand
  (PostQueuedCompletionStatus), e.g. to tell workers to quit.
* **Waiting threads, last in first out.** ``await port.get(timeout)``
  (GetQueuedCompletionStatus) returns a queued packet at once if there is one (C9.4),
  else blocks. A packet goes to exactly *one* thread, and the thread that went to sleep
  *last* is woken first: its stack and cache are warm, and the others stay asleep (C9.7:
  a completion is a finished piece of work handed to one thread, so two threads never
  race for the same event). On timeout ``get`` raises ``TimeoutError`` (Windows fails
  with WAIT_TIMEOUT, 258).
* **The concurrency limit.** A thread that calls ``get`` becomes associated with the
  port. The port counts its *active* threads: associated threads released by ``get`` that
  are running — not waiting in ``get`` again and not blocked in some other call (a
  ``recv``, a ``sleep``, a lock). ``get`` releases a thread only while fewer than
  ``concurrency`` are active (0 means the host's number of cores, as
  NumberOfConcurrentThreads=0). A released thread counts as active from the moment it is
  released until it blocks again, also while it waits in the run queue for a core or has
  been preempted (threads > cores). When an active thread blocks elsewhere the count drops
  and a waiting thread may be released for the next packet; when its wait ends (it becomes
  runnable, with or without a core) it counts again, so the count can briefly exceed the limit — as on Windows — but the port never
  *releases* a thread while the limit is reached. Application work (``k.compute``) is
  running, not blocking.
* **Cancellation** (``op.cancel()``, closing the socket) completes the operation with
  ``OSError(ECANCELED)`` carrying ``winerror`` 995 (ERROR_OPERATION_ABORTED); that packet
  is queued like any other.

Association errors follow Windows: associating a socket that already belongs to a port
(this one or another) fails with ERROR_INVALID_PARAMETER (87), raised here as
``OSError(EINVAL)`` whose ``winerror`` is 87.

Every call and every completion leaves a syscall record in the trace: ``iocp`` (the port
is created), ``iocp.associate``, ``iocp.post``, ``iocp.get`` (result: key, op number,
bytes, errno), ``iocp.complete`` (thread ``-``: the kernel queued a packet), and on the
socket ``recv_overlapped`` / ``send_overlapped`` / ``accept_overlapped`` /
``connect_overlapped`` (result: the op number and whether it completed at once).
"""

from __future__ import annotations

import errno
from collections import deque

import simpy

from simsock.errors import os_error
from simsock.trace import errno_of

from . import completion
from .addr import check_int
from .completion import ACCEPT, CONNECT, RECV, SEND, CompletionSink, Operation, charge_cpu
from .thread import wait_event
from .wait import TIMED_OUT, arm_timeout

#: Windows' ERROR_INVALID_PARAMETER: associating a handle that already has a port.
ERROR_INVALID_PARAMETER = 87
#: Windows' WAIT_TIMEOUT: GetQueuedCompletionStatus found nothing before its timeout.
WAIT_TIMEOUT = 258

# A thread's relation to the port it last called get() on.
_WAITING, _ACTIVE, _BLOCKED = "waiting", "active", "blocked"


class Completion(tuple):
    """One completion packet: ``(key, op, nbytes, error)`` — a tuple with names."""

    __slots__ = ()

    def __new__(cls, key, op, nbytes: int, error):
        return tuple.__new__(cls, (key, op, nbytes, error))

    key = property(lambda self: self[0])
    op = property(lambda self: self[1])
    nbytes = property(lambda self: self[2])
    error = property(lambda self: self[3])


class CompletionPort(CompletionSink):
    """A simulated I/O completion port (see the module docstring). Made by ``k.iocp()``."""

    _what = "the completion port"

    def __init__(self, host, concurrency: int = 0):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TypeError(f"concurrency must be an int (0 = as many as the host has cores), "
                            f"not {type(concurrency).__name__}")
        if concurrency < 0:
            raise ValueError(f"concurrency must be >= 0 (0 = as many as the host has cores), got {concurrency}")
        super().__init__(host)
        self.concurrency = concurrency or host.cores
        self._queue: deque[Completion] = deque()
        self._waiters: list[list] = []        # [thread, event], last = first to wake (LIFO)
        self._tstate: dict = {}               # thread -> _WAITING / _ACTIVE / _BLOCKED
        self.active = 0                       # associated threads running now
        self.max_active_at_release = 0        # the largest active count a release produced
        self.counters = {"posted_ops": 0, "completions": 0, "manual_posts": 0, "delivered": 0,
                         "immediate": 0, "waited": 0, "timeouts": 0, "cancelled": 0}

    # -- plain calls ---------------------------------------------------------------------
    def associate(self, sock, key=None) -> None:
        """Attach ``sock`` to this port with completion ``key`` (CreateIoCompletionPort with
        an existing port). A socket belongs to at most one port, for good."""
        self._check_open()
        if not hasattr(sock, "_overlapped_attempt"):
            raise TypeError(f"only simsock sockets can be associated with a completion port, "
                            f"not {type(sock).__name__}")
        sock._check_open()
        if sock._host is not self._host:
            raise ValueError(f"{sock!r} belongs to host {sock._host.name!r}; this port is on "
                             f"{self._host.name!r}")
        if sock._iocp is not None:
            exc = os_error(errno.EINVAL, "this socket is already associated with a completion port; Windows "
                                         "fails CreateIoCompletionPort with ERROR_INVALID_PARAMETER (87): a "
                                         "socket belongs to one port for its whole life")
            exc.winerror = ERROR_INVALID_PARAMETER
            self._trace("iocp.associate", [{"fd": sock._fd}, key], None, exc)
            raise exc
        sock._iocp = (self, key)
        self._trace("iocp.associate", [{"fd": sock._fd}, key], None, None)

    def post(self, key=None, nbytes: int = 0, op=None) -> None:
        """Queue a completion packet by hand (PostQueuedCompletionStatus)."""
        self._check_open()
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be an int >= 0, got {nbytes!r}")
        self._charge_call()
        self.counters["manual_posts"] += 1
        self._trace("iocp.post", [key, nbytes, None if op is None else repr(op)], None, None)
        self._enqueue(Completion(key, op, nbytes, None))

    def close(self) -> None:
        """Close the port's handle. Threads blocked in ``get`` fail with EBADF (Windows:
        ERROR_ABANDONED_WAIT_0); sockets keep their association but their completions are
        dropped."""
        if self._closed:
            return
        self._release_fd()
        self._queue.clear()
        waiters, self._waiters = self._waiters, []
        for thread, ev in waiters:
            self._tstate[thread] = _ACTIVE
            self.active += 1
            ev.succeed(None)
        self._trace("iocp.close", [], None, None)

    # -- get -----------------------------------------------------------------------------
    async def get(self, timeout=None) -> Completion:
        """Dequeue one completion packet ``(key, op, nbytes, error)``, waiting up to
        ``timeout`` seconds (None = forever) — GetQueuedCompletionStatus. Raises
        ``TimeoutError`` if none came (WAIT_TIMEOUT)."""
        self._check_open()
        deadline = None
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout:
                raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
            if timeout < 0:
                raise ValueError(f"timeout must be >= 0 seconds or None (wait forever), got {timeout}")
            deadline = self._env.now + int(round(timeout * 1e9))
        sim = self._sim
        thread = sim.current_thread
        if thread is None:
            raise RuntimeError("iocp.get() must be awaited from a simulated thread")
        self._charge_call()
        self._enter_get(thread)
        if self._queue and self.active < self.concurrency:
            self.counters["immediate"] += 1
            packet = self._release(thread)
        else:
            ev = simpy.Event(self._env)
            self._waiters.append([thread, ev])
            if deadline is not None:
                arm_timeout(self._env, ev, max(0, deadline - self._env.now))
            packet = await wait_event(ev)
            if packet is TIMED_OUT:
                self._waiters[:] = [w for w in self._waiters if w[1] is not ev]
                if self._tstate.get(thread) == _WAITING:    # not yet counted at its wake-up
                    self._tstate[thread] = _ACTIVE
                    self.active += 1
                self.counters["timeouts"] += 1
                exc = TimeoutError(f"timed out: no completion within {timeout} s (Windows: WAIT_TIMEOUT, "
                                   f"{WAIT_TIMEOUT})")
                exc.winerror = WAIT_TIMEOUT
                self._trace("iocp.get", [timeout], None, exc)
                raise exc
            if packet is None:                # the port was closed under us
                raise os_error(errno.EBADF, "the completion port was closed while this thread waited in get()")
            self.counters["waited"] += 1
        op = packet[1]
        if isinstance(op, Operation) and op._copies and op.nbytes and op.kind in (RECV, SEND):
            self._charge_copy(op.nbytes)
        self._trace("iocp.get", [timeout], [packet[0], None if not isinstance(op, Operation) else op.seq,
                                            packet[2], errno_of(packet[3])], None)
        return packet

    def _enter_get(self, thread) -> None:
        """A thread calls get(): it is associated with this port (and no other) and no
        longer active."""
        for other in thread.observers:
            if other is not self and isinstance(other, CompletionPort):
                other._forget_thread(thread)
        if self not in thread.observers:
            thread.observers += (self,)
        if self._tstate.get(thread) == _ACTIVE:
            self.active -= 1
        self._tstate[thread] = _WAITING

    def _release(self, thread) -> Completion:
        packet = self._queue.popleft()
        self._tstate[thread] = _ACTIVE
        self.active += 1
        self.counters["delivered"] += 1
        if self.active > self.max_active_at_release:
            self.max_active_at_release = self.active
        return packet

    def _wake_waiters(self) -> None:
        """Hand queued packets to waiting threads, newest waiter first, within the limit."""
        waiters = self._waiters
        while self._queue and waiters and self.active < self.concurrency:
            thread, ev = waiters.pop()
            if ev.triggered:
                continue
            ev.succeed(self._release(thread))

    # -- the kernel side -----------------------------------------------------------------
    def _enqueue(self, packet: Completion) -> None:
        if self._closed:
            return
        self._queue.append(packet)
        self._wake_waiters()

    def _completed(self, op: Operation) -> None:
        """An overlapped operation of an associated socket finished (completion.py)."""
        self.counters["completions"] += 1
        if op.error is not None and getattr(op.error, "winerror", None) == completion.ERROR_OPERATION_ABORTED:
            self.counters["cancelled"] += 1
        key = op.sock._iocp[1] if op.sock._iocp is not None else None
        if self._sim.trace.want_syscalls:
            self._trace_completion("iocp.complete", op, [key, op.seq, op.nbytes, errno_of(op.error)])
        self._enqueue(Completion(key, op, op.nbytes, op.error))

    # -- thread observer (SimThread calls these while the thread is associated) ------------
    def thread_blocking(self, thread, target) -> None:
        if self._tstate.get(thread) != _ACTIVE or _is_cpu_work(thread, target):
            return
        self._tstate[thread] = _BLOCKED
        self.active -= 1
        self._wake_waiters()

    def thread_resuming(self, thread) -> None:
        """The thread's wait is over (SimThread._wake): it counts as running from now on,
        whether or not it has a core yet — Windows increments the port's count when the
        thread is readied, and preemption or waiting in the run queue does not decrement it."""
        state = self._tstate.get(thread)
        if state == _BLOCKED:
            self._tstate[thread] = _ACTIVE
            self.active += 1
        elif state == _WAITING:
            # Woken in get() without a packet (its timeout): released packets and a closed
            # port mark the thread active themselves.
            self._waiters[:] = [w for w in self._waiters if w[0] is not thread]
            self._tstate[thread] = _ACTIVE
            self.active += 1

    def thread_exited(self, thread) -> None:
        self._forget_thread(thread)

    def _forget_thread(self, thread) -> None:
        state = self._tstate.pop(thread, None)
        if state == _ACTIVE:
            self.active -= 1
            self._wake_waiters()
        thread.observers = tuple(o for o in thread.observers if o is not self)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Completion packets waiting for a thread."""
        return len(self._queue)

    @property
    def waiting_threads(self) -> int:
        return sum(1 for _t, ev in self._waiters if not ev.triggered)

    def stats(self) -> dict:
        return {"type": "iocp", "fd": self._fd, "concurrency": self.concurrency, "active": self.active,
                "queued": len(self._queue), "waiting_threads": self.waiting_threads,
                "copied_bytes": self.copied_bytes, "max_active_at_release": self.max_active_at_release,
                **self.counters}

    def __repr__(self) -> str:
        return (f"<simsock.CompletionPort fd={self._fd} host={self._host.name!r} concurrency={self.concurrency} "
                f"queued={len(self._queue)}>")


def _is_cpu_work(thread, target) -> bool:
    """Whether ``thread`` awaiting ``target`` is running (application work on a core)
    rather than blocked: the CPU model marks its work events with ``cpu_work``."""
    return bool(getattr(target, "cpu_work", False))


# -- the overlapped calls on sockets (Socket.recv_overlapped etc. delegate here) ------------
def _sink(sock):
    assoc = sock._iocp
    if assoc is None:
        return None
    port = assoc[0]
    return None if port._closed else port


def _post(sock, call: str, args, kind: str, **kw) -> Operation:
    sink = _sink(sock)
    charge_cpu(sock._sim, sock._host.profile.syscall_ns)
    try:
        op = completion.start(sock, kind, sink, None, **kw)
    except BaseException as exc:
        completion.trace_op_call(sock, call, args, None, exc)
        raise
    if sink is not None:
        sink.counters["posted_ops"] += 1
    completion.trace_op_call(sock, call, args, op, None)
    return op


def recv_overlapped(sock, nbytes) -> Operation:
    """Post an overlapped receive of up to ``nbytes`` into a new buffer (WSARecv with an
    OVERLAPPED); returns the operation. It completes with >= 1 byte, 0 at end of
    stream, or an error, and its completion goes to the socket's completion port."""
    nbytes = check_int(nbytes)
    if nbytes < 1:
        raise ValueError(f"recv_overlapped needs a buffer of at least 1 byte, got nbytes={nbytes}")
    buf = bytearray(nbytes)
    return _post(sock, "recv_overlapped", [nbytes], RECV, buffer=buf, request=nbytes, copies=True)


def recv_into_overlapped(sock, buffer, nbytes=0) -> Operation:
    """Like :meth:`recv_overlapped` into the caller's ``buffer``, which the operation
    owns until it completes."""
    view = completion.check_buffer(buffer, "recv_into_overlapped")
    nbytes = check_int(nbytes)
    if nbytes < 0 or nbytes > len(view):
        raise ValueError(f"nbytes must be between 0 (the whole buffer) and len(buffer)={len(view)}, got {nbytes}")
    n = nbytes or len(view)
    if n < 1:
        raise ValueError("recv_into_overlapped needs a buffer of at least 1 byte")
    return _post(sock, "recv_into_overlapped", [n], RECV, buffer=view, request=n, copies=True)


def send_overlapped(sock, data) -> Operation:
    """Post an overlapped send (WSASend): completes when all of ``data`` has been
    accepted by the transport."""
    view = completion.check_data(data, "send_overlapped")
    # Windows (AFD) copies a WSASend's bytes into the socket's send buffer, as send() does,
    # unless the program set SO_SNDBUF to 0: then the transport sends from the caller's
    # pinned pages and nothing is copied. Linux semantics cannot express SO_SNDBUF = 0
    # (it clamps to a minimum), so a program marks such a socket with win_sndbuf_zero.
    zero_copy = bool(getattr(sock, "win_sndbuf_zero", False))
    return _post(sock, "send_overlapped", [view], SEND, view=view, copies=not zero_copy)


def accept_overlapped(sock) -> Operation:
    """Post an overlapped accept (AcceptEx) on a listening socket; completes with
    ``(socket, address)`` as its result."""
    return _post(sock, "accept_overlapped", [], ACCEPT)


def connect_overlapped(sock, address) -> Operation:
    """Post an overlapped connect (ConnectEx); completes when the connection is
    established or has failed."""
    return _post(sock, "connect_overlapped", [address], CONNECT, address=address)
