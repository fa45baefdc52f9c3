"""Overlapped operations: the kernel side of completion-based I/O (IOCP and io_uring).

Readiness-based I/O (select, poll, epoll) tells a program *that* it may call ``recv``; the
program then makes the call, copies the data, and may find that someone else got there
first. Completion-based I/O turns this around: the program hands the kernel an
*operation* — "receive up to n bytes into this buffer", "send all of these bytes",
"accept the next connection", "connect to this address" — and the kernel carries it out
whenever the socket allows, then reports that it is *finished*. Windows calls such a
request overlapped I/O (an OVERLAPPED structure plus the caller's buffer, reported through
an I/O completion port); Linux's io_uring does the same with submission and completion
queue entries. This module is what both share; :mod:`simsock.kernel.iocp` and
:mod:`simsock.kernel.uring` are the two ways of *reporting* completions.

The rules, as both systems define them:

* **The operation owns its buffer until it completes.** A receive's data lands straight
  in the buffer the program supplied (``op.buffer``), so completion involves no further
  copy; the program must not touch the buffer before the completion.
* **No partial result to retry.** A send completes when *all* its bytes have been
  accepted by the transport (the kernel keeps pushing as send-buffer space frees up); a
  receive completes with whatever has arrived, at least one byte, or with 0 bytes at
  end of stream. The EAGAIN dance of non-blocking sockets never reaches the program.
* **Errors arrive as completions.** A connection reset while an operation is pending
  completes it with the error. An error already known when the operation is *posted*
  (IOCP: the socket is not connected, the connection was reset) makes the posting call
  itself fail, as ``WSARecv`` returns ``SOCKET_ERROR`` at once and queues nothing;
  io_uring reports even those as a completion with a negative ``res``.
* **Ordering.** Several outstanding operations of the same direction on one socket
  complete in posting order: receives (and accepts) in the order they were posted, sends
  (and connects) likewise. The two directions are independent of each other.
* **Cancellation** (``op.cancel()``, Windows' CancelIoEx, io_uring's ASYNC_CANCEL)
  completes a pending operation with an "operation aborted" error; it still produces its
  completion, exactly once. An operation that already completed cannot be cancelled.
* **Closing the socket** differs. Windows' closesocket cancels the socket's pending
  overlapped operations the same way (they complete with ERROR_OPERATION_ABORTED). On
  Linux an io_uring request holds its own reference to the file (the SQE's fget), so
  ``close()`` only removes the descriptor: pending requests stay in flight on the socket,
  which lives on (no FIN is sent) until the last of them completes — a receive when data or
  end of stream arrives, any request when it is cancelled (ASYNC_CANCEL, ring teardown:
  ``io_uring_files_cancel`` runs at task exit and ring close, never at fd close).

Costs (C7.3, C7.4): posting is one system call for the poster. A receive copies the
received bytes once, from the kernel into the operation's buffer; an IOCP send copies
nothing, because the kernel transmits from the caller's pinned pages (the point of
overlapped sends), while an io_uring send copies like ``send`` (no zero-copy in this
model). The bytes copied are counted per completion mechanism (``copied_bytes`` in its
``stats()``) and charged to the CPU model when one is installed.

Implementation: operations are kernel objects, not threads. A socket with pending
operations has one :class:`SocketOps` watching its ``file_state``; a notification
(new data, space freed, a state change) schedules *one* SimPy event for that socket —
coalesced, never from inside the protocol's state change (DESIGN.md principle 4) — and
that event retries the head operation of each direction. An operation that can finish
when it is posted completes at once and schedules nothing.
"""

from __future__ import annotations

import errno
from collections import deque

import simpy

from simsock.errors import os_error
from simsock.trace import errno_of, trace_value

from .cpu import charge
from .events import call_later
from .thread import check_owner, wait_event
from .wait import AGAIN

#: Windows' ERROR_OPERATION_ABORTED (995, WSA_OPERATION_ABORTED): what a cancelled
#: overlapped operation completes with.
ERROR_OPERATION_ABORTED = 995

RECV, SEND, ACCEPT, CONNECT = "recv", "send", "accept", "connect"
_READ_SIDE = (RECV, ACCEPT)


def operation_aborted() -> OSError:
    """The error a cancelled operation completes with: ``OSError(ECANCELED)`` whose
    ``winerror`` is 995 (Windows' ERROR_OPERATION_ABORTED)."""
    exc = os_error(errno.ECANCELED, "the I/O operation has been aborted because of either a thread exit or "
                                    "an application request: Windows ERROR_OPERATION_ABORTED (995)")
    exc.winerror = ERROR_OPERATION_ABORTED
    return exc


def charge_cpu(sim, ns: int) -> None:
    """Charge ``ns`` (> 0) of CPU time to the running thread; no charge for 0 (which would
    count as progress: kernel/cpu.py, "Spinning")."""
    if ns > 0:
        charge(sim, ns)


class CompletionSink:
    """What every completion mechanism (an IOCP port, an io_uring) is besides its queue: a
    descriptor on its host, open or closed, the bytes its completions copied
    (``copied_bytes``), its system-call charge and its trace records.

    A subclass sets ``_what`` (how error messages name it) and implements
    ``_completed(op)``, which :func:`_complete` calls once for each of its operations.
    """

    _what = "the completion mechanism"
    #: Whether closing a socket cancels this mechanism's pending operations on it
    #: (closesocket: yes; io_uring requests hold the file: no).
    _cancel_on_close = True

    def __init__(self, host):
        self._host = host
        self._sim = host.sim
        self._env = host.sim.env
        self._fd = host._alloc_fd(self)
        self._closed = False
        self.copied_bytes = 0

    def fileno(self) -> int:
        return -1 if self._closed else self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        check_owner(self, self._sim, self._host)
        if self._closed:
            raise os_error(errno.EBADF, f"{self._what} is closed")

    def _release_fd(self) -> None:
        """Mark it closed and give its descriptor back to the host."""
        self._closed = True
        self._host._free_fd(self._fd)

    def _charge_call(self) -> None:
        """One system call's CPU time for the calling thread."""
        charge_cpu(self._sim, self._host.profile.syscall_ns)

    def _charge_copy(self, nbytes: int) -> None:
        """CPU time for copying ``nbytes`` between user and kernel memory (C7.3)."""
        charge_cpu(self._sim, nbytes * self._host.profile.copy_ps_per_byte // 1000)

    def _trace(self, call: str, args, result, exc) -> None:
        """A syscall record by the running thread on this descriptor."""
        sim = self._sim
        if sim.trace.want_syscalls:
            thread = sim.current_thread
            sim.trace.syscall(self._env.now, self._host.name, thread.name if thread is not None else "-", call,
                              self._fd, trace_value(args), trace_value(result), errno_of(exc))

    def _trace_completion(self, call: str, op: Operation, result) -> None:
        """A record of the kernel (thread ``-``) finishing ``op``; callers check
        ``want_syscalls`` first so that building ``result`` costs nothing untraced."""
        self._sim.trace.syscall(self._env.now, self._host.name, "-", call, self._fd, [op.kind, op.seq],
                                trace_value(result), None)

    def _completed(self, op: Operation) -> None:
        raise NotImplementedError


class Operation:
    """One overlapped operation (an OVERLAPPED / an SQE), from posting to completion.

    ``done`` says whether it has completed; then ``nbytes`` is the bytes transferred,
    ``error`` the OSError it failed with (or None) and ``result`` its value: for a receive a
    memoryview of the filled part of ``buffer`` (no copy), for a send the byte count, for
    an accept ``(socket, address)``, for a connect None. ``await op.wait()`` waits for it
    (GetOverlappedResult with bWait=TRUE); ``op.cancel()`` aborts it if still pending.
    """

    __slots__ = ("kind", "sock", "sink", "tag", "buffer", "request", "view", "address", "done", "result",
                 "error", "nbytes", "seq", "posted_ns", "completed_ns", "_event", "_copies", "__weakref__")

    def __init__(self, kind: str, sock, sink, tag, seq: int, copies: bool):
        self.kind = kind
        self.sock = sock
        self.sink = sink              # the completion port or ring that hears of it (or None)
        self.tag = tag                # IOCP: unused (the key lives on the association); io_uring: user_data
        self.buffer = None            # recv: where the data lands
        self.request = 0              # recv: bytes asked for
        self.view = None              # send: the bytes to send
        self.address = None           # connect: where to
        self.done = False
        self.result = None
        self.error: OSError | None = None
        self.nbytes = 0
        self.seq = seq                # posting number on this host (traces, deterministic order)
        self.posted_ns = 0
        self.completed_ns = None
        self._event = None
        self._copies = copies         # whether moving the bytes costs a user<->kernel copy

    @property
    def pending(self) -> bool:
        return not self.done

    def cancel(self) -> bool:
        """Abort the operation if it is still pending (CancelIoEx); it then completes with
        :func:`operation_aborted` (winerror 995). Returns False if it had already completed."""
        if self.done:
            return False
        ops = getattr(self.sock, "_overlapped", None)
        if ops is not None:
            ops.remove(self)
        _complete(self, None, operation_aborted())
        return True

    async def wait(self):
        """Wait until the operation completes; returns ``result`` or raises ``error``."""
        if not self.done:
            if self._event is None:
                self._event = simpy.Event(self.sock._env)
            await wait_event(self._event)
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("failed" if self.error is not None else "done")
        return f"<Operation #{self.seq} {self.kind} fd={self.sock._fd} {state} nbytes={self.nbytes}>"


def _complete(op: Operation, result, error: OSError | None) -> None:
    """Finish ``op`` exactly once and hand it to its completion mechanism."""
    if op.done:
        raise AssertionError(f"{op!r} completed twice")       # an internal bug, never the program's
    sock = op.sock
    op.done = True
    op.error = error
    op.completed_ns = sock._env.now
    if op.kind == RECV:
        if error is None or op.nbytes:
            op.result = memoryview(op.buffer)[:op.nbytes]
    elif op.kind == SEND:
        op.result = op.nbytes
    else:
        op.result = result
    sink = op.sink
    if sink is not None:
        if op._copies and op.nbytes and op.kind in (RECV, SEND):
            sink.copied_bytes += op.nbytes
        sink._completed(op)
    if op._event is not None:
        op._event.succeed(None)


class SocketOps:
    """The pending overlapped operations of one socket, and the watcher that drives them."""

    __slots__ = ("sock", "reads", "writes", "_scheduled", "_watching", "_holding")

    def __init__(self, sock):
        self.sock = sock
        self.reads: deque[Operation] = deque()     # recv and accept, in posting order
        self.writes: deque[Operation] = deque()    # send and connect, in posting order
        self._scheduled = False
        self._watching = False
        self._holding = False      # the socket was closed and its pending requests hold the file

    def __len__(self) -> int:
        return len(self.reads) + len(self.writes)

    def post(self, op: Operation, tried: bool = False) -> None:
        """Queue ``op``; run it at once if it is first in its direction and can finish
        (``tried``: the caller has just tried it and it must wait)."""
        queue = self.reads if op.kind in _READ_SIDE else self.writes
        queue.append(op)
        if len(queue) == 1 and not tried:
            self._drain(queue)
        if queue and not self._watching:
            self.sock.file_state.watchers.append(self._on_notify)
            self._watching = True

    def remove(self, op: Operation) -> None:
        queue = self.reads if op.kind in _READ_SIDE else self.writes
        try:
            queue.remove(op)
        except ValueError:
            return
        self._unwatch_if_idle()

    def _unwatch_if_idle(self) -> None:
        if self._watching and not self.reads and not self.writes:
            self.sock.file_state.watchers.remove(self._on_notify)
            self._watching = False
        if self._holding and not self.reads and not self.writes:
            # The last request holding a closed socket's file finished: fput -> sock_close,
            # unless a blocked call still holds it too (then Socket._unhold releases it).
            self._holding = False
            sock = self.sock
            if not sock._holders:
                sock._release()
                sock._file_released()

    def _on_notify(self, _file, _edges: int) -> None:
        # Called from inside the protocol's state change: defer, one event per socket.
        if self._scheduled:
            return
        self._scheduled = True
        call_later(self.sock._env, 0, self._run)

    def _run(self, _ev) -> None:
        self._scheduled = False
        if self.reads:
            self._drain(self.reads)
        if self.writes:
            self._drain(self.writes)
        self._unwatch_if_idle()

    def _drain(self, queue: deque) -> None:
        """Complete the head operation of ``queue`` while it can finish."""
        sock = self.sock
        held = sock._closed            # closed, the file kept alive by these requests
        while queue:
            op = queue[0]
            try:
                if held:
                    sock._closed = False   # the request works on the file, not the descriptor
                    try:
                        outcome = sock._overlapped_attempt(op)
                    finally:
                        sock._closed = True
                else:
                    outcome = sock._overlapped_attempt(op)
            except OSError as exc:
                queue.popleft()
                _complete(op, None, exc)
                continue
            if outcome is AGAIN:
                return
            queue.popleft()
            _complete(op, outcome, None)

    def close_file(self) -> bool:
        """The socket's descriptor is being closed: operations whose mechanism cancels on
        close (IOCP, or none) complete as aborted, in posting order; the others (io_uring)
        stay pending and hold the file. Returns whether any still hold it."""
        pending = [op for op in list(self.reads) + list(self.writes)
                   if op.sink is None or op.sink._cancel_on_close]
        for op in pending:
            (self.reads if op.kind in _READ_SIDE else self.writes).remove(op)
        self._holding = bool(self.reads or self.writes)
        if not self._holding:
            self._unwatch_if_idle()
        for op in sorted(pending, key=lambda o: o.seq):
            _complete(op, None, operation_aborted())
        return self._holding


def check_buffer(buffer, caller: str):
    if not isinstance(buffer, (bytearray, memoryview)) or (isinstance(buffer, memoryview) and buffer.readonly):
        raise TypeError(f"{caller}() argument 1 must be a writable bytes-like object (a bytearray or a writable "
                        f"memoryview) that the operation owns until it completes, not {type(buffer).__name__}")
    return memoryview(buffer).cast("B") if isinstance(buffer, memoryview) else memoryview(buffer)


def check_data(data, caller: str) -> memoryview:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    raise TypeError(f"{caller}() argument 1 must be a bytes-like object, not '{type(data).__name__}'")


def start(sock, kind: str, sink, tag, *, buffer=None, request: int = 0, view=None, address=None,
          copies: bool = True, raise_early_errors: bool = True) -> Operation:
    """Create and post an operation on ``sock`` (the shared body of every overlapped call).

    With ``raise_early_errors`` (IOCP), an error the socket reports when the operation is
    first tried raises out of the posting call and no completion is queued; otherwise
    (io_uring) it becomes the operation's completion.
    """
    sock._check_open()
    host = sock._host
    seq = getattr(host, "_op_seq", 0) + 1
    host._op_seq = seq
    op = Operation(kind, sock, sink, tag, seq, copies)
    op.buffer = buffer
    op.request = request
    op.view = view
    op.address = address
    op.posted_ns = sock._env.now
    if kind == CONNECT:
        sock._overlapped_connect_start(op)      # raises for a bad address or socket state
    ops = sock._overlapped
    if ops is None:
        ops = sock._overlapped = SocketOps(sock)
    tried = False
    # A connect that was started reports its outcome as a completion, even one known at
    # once (a refusal on loopback), as a non-blocking connect returns EINPROGRESS first.
    if raise_early_errors and kind != CONNECT:
        queue = ops.reads if kind in _READ_SIDE else ops.writes
        if not queue:
            outcome = sock._overlapped_attempt(op)      # an OSError here fails the posting call
            if outcome is not AGAIN:
                _complete(op, outcome, None)
                return op
            tried = True
    ops.post(op, tried)
    return op


def trace_op_call(sock, call: str, args, op: Operation | None, exc: BaseException | None) -> None:
    sim = sock._sim
    if not sim.trace.want_syscalls:
        return
    thread = sim.current_thread
    sim.trace.syscall(sim.env.now, sock._host.name, thread.name if thread is not None else "-", call, sock._fd,
                      trace_value(args), None if op is None else {"op": op.seq, "done": op.done}, errno_of(exc))
