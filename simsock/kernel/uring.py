"""io_uring: Linux's completion-based I/O, as liburing presents it.

An io_uring instance is two ring buffers shared between the program and the kernel
(io_uring(7), io_uring_setup(2), io_uring_enter(2)):

* the **submission queue** (SQ): the program fills submission queue entries (SQEs) —
  ``ring.prep_recv(sock, nbytes, user_data)``, ``prep_send``, ``prep_accept``,
  ``prep_connect``, ``prep_cancel`` — which are only *prepared* until ``ring.submit()``
  hands them all to the kernel in one system call (io_uring_enter) and returns how many it
  took. ``entries`` is rounded up to a power of two (at most 32768, IORING_MAX_ENTRIES);
  preparing more SQEs than the SQ holds before a submit fails (liburing's
  io_uring_get_sqe returns NULL; here ``OSError(EBUSY)``).
* the **completion queue** (CQ), twice as large as the SQ (IORING_SETUP_CQSIZE not
  modelled): one completion queue entry (CQE) ``(user_data, res, extra)`` per finished
  request, where ``res`` is what the equivalent system call would return — bytes
  transferred, 0 at end of stream, the new descriptor for accept — or ``-errno``. A
  socket request that cannot finish yet does not fail with ``-EAGAIN``: the kernel arms
  a poll on the socket and retries when it becomes ready (io_uring's internal poll), so
  ``-EAGAIN`` never appears for sockets. ``extra`` carries what C leaves in the caller's
  memory: for a receive the filled part of the buffer (a memoryview), for an accept the
  ``(socket, address)`` pair (the simulated socket object that ``res`` is the fd of).
  ``await ring.wait_cqe(timeout)`` returns (and consumes) the next CQE, waiting if there
  is none; ``ring.peek_cqe()`` returns the next one or None without waiting.

Completion semantics are those of :mod:`simsock.kernel.completion` (shared with IOCP):
receives complete with >= 1 byte or 0 at EOF, sends when every byte was accepted, requests
on one socket complete in submission order per direction, cancellation completes the
request with ``-ECANCELED``. Unlike IOCP, an error known at submission is still reported
as a CQE, never by ``submit()``.

**CQ overflow** (io_uring/io_uring.c, io_cqring_event_overflow on kernels >= 5.5 with
IORING_FEAT_NODROP, as 6.x): a completion that finds the CQ full is not dropped; it goes
on the ring's *overflow list* and IORING_SQ_CQ_OVERFLOW is set in the SQ flags
(``ring.cq_overflow_flag``). Overflowed CQEs are flushed into the CQ, in order, when
the program next enters the kernel with room in the CQ (a submit, a wait, or a peek that
finds the CQ empty — liburing enters the kernel then because the flag is set); the flag
clears when the list is empty. A CQE is dropped (``cq_overflow`` counter) only when the
kernel cannot allocate the overflow entry, which this model never does, so
``stats()["dropped"]`` stays 0 and ``overflowed`` counts the CQEs that took the list.

Costs: one ``syscall_ns`` per ``submit()`` and per ``wait_cqe``/``peek_cqe`` that has to
enter the kernel (a CQE already in the ring is read from shared memory with no system
call — the point of the design); each transferred byte is copied once between user and
kernel memory (no zero-copy send in this model), charged to the thread that reaps the CQE
(the copy is done on the submitting task's behalf, io_uring's task_work).

Closing the ring cancels its pending requests (io_uring_queue_exit). Closing a *socket*
does not: a request holds its own reference to the file, so ``sock.close()`` frees the
descriptor (new SQEs on it get ``-EBADF``) while pending requests stay in flight — a
receive completes when data or end of stream arrives, any request when it is cancelled
with ``prep_cancel`` or the ring is closed — and the socket itself (its connection: no FIN
yet) is released when the last of them completes (see :mod:`simsock.kernel.completion`).

Trace records: ``io_uring`` (setup), ``io_uring.submit`` (result: number submitted),
``io_uring.wait_cqe`` / ``io_uring.peek_cqe`` (result: user_data, res),
``io_uring.complete`` (thread ``-``: the kernel posted a CQE).
"""

from __future__ import annotations

import errno
from collections import deque

import simpy

from simsock.errors import os_error

from . import completion
from .addr import check_int
from .completion import ACCEPT, CONNECT, RECV, SEND, CompletionSink, Operation
from .thread import wait_event
from .wait import TIMED_OUT, arm_timeout

IORING_MAX_ENTRIES = 32768
IORING_SQ_CQ_OVERFLOW = 1 << 1      # the SQ flags bit (include/uapi/linux/io_uring.h)

_CANCEL = "cancel"


class Cqe(tuple):
    """One completion queue entry ``(user_data, res, extra)``."""

    __slots__ = ()

    def __new__(cls, user_data, res: int, extra=None):
        return tuple.__new__(cls, (user_data, res, extra))

    user_data = property(lambda self: self[0])
    res = property(lambda self: self[1])
    extra = property(lambda self: self[2])


class IoUring(CompletionSink):
    """A simulated io_uring instance (see the module docstring). Made by ``k.io_uring()``."""

    _what = "the io_uring"
    _cancel_on_close = False           # requests hold the file: close(fd) does not cancel them

    def __init__(self, host, entries: int = 256):
        if isinstance(entries, bool) or not isinstance(entries, int):
            raise TypeError(f"entries must be an int, not {type(entries).__name__}")
        if entries < 1 or entries > IORING_MAX_ENTRIES:
            raise os_error(errno.EINVAL, f"io_uring entries must be between 1 and {IORING_MAX_ENTRIES} "
                                         f"(IORING_MAX_ENTRIES), got {entries}")
        size = 1
        while size < entries:
            size <<= 1
        super().__init__(host)
        self.sq_entries = size
        self.cq_entries = 2 * size
        self._sq: list[tuple] = []               # prepared, not yet submitted
        self._cq: deque = deque()                # (Cqe, bytes to charge as copied when reaped)
        self._overflow: deque = deque()
        self._waiters: deque = deque()           # events of threads in wait_cqe, FIFO
        self._inflight: dict = {}                # op seq -> op (submitted, not completed), insertion order
        self.counters = {"submitted": 0, "completions": 0, "overflowed": 0, "dropped": 0, "enters": 0,
                         "cancelled": 0}
        self._trace("io_uring", [entries], {"sq_entries": size, "cq_entries": 2 * size}, None)

    @property
    def cq_overflow_flag(self) -> bool:
        """IORING_SQ_CQ_OVERFLOW: completions are waiting on the overflow list."""
        return bool(self._overflow)

    @property
    def sq_flags(self) -> int:
        return IORING_SQ_CQ_OVERFLOW if self._overflow else 0

    # -- preparing SQEs ----------------------------------------------------------------------
    def _prep(self, sqe: tuple) -> None:
        self._check_open()
        if len(self._sq) >= self.sq_entries:
            raise os_error(errno.EBUSY, f"the submission queue is full ({self.sq_entries} entries prepared): "
                                        f"call submit() before preparing more")
        self._sq.append(sqe)

    @staticmethod
    def _check_sock(sock, caller: str) -> None:
        if not hasattr(sock, "_overlapped_attempt"):
            raise TypeError(f"{caller}() needs a simsock socket, not {type(sock).__name__}")

    def prep_recv(self, sock, nbytes, user_data=None) -> None:
        """IORING_OP_RECV: receive up to ``nbytes`` (res: bytes received, 0 at EOF)."""
        self._check_sock(sock, "prep_recv")
        nbytes = check_int(nbytes)
        if nbytes < 1:
            raise ValueError(f"prep_recv needs nbytes >= 1, got {nbytes}")
        self._prep((RECV, sock, user_data, nbytes))

    def prep_send(self, sock, data, user_data=None) -> None:
        """IORING_OP_SEND: send all of ``data`` (res: bytes sent). The buffer belongs to
        the request until its CQE arrives."""
        self._check_sock(sock, "prep_send")
        self._prep((SEND, sock, user_data, completion.check_data(data, "prep_send")))

    def prep_accept(self, sock, user_data=None) -> None:
        """IORING_OP_ACCEPT: res is the new socket's fd; extra is ``(socket, address)``."""
        self._check_sock(sock, "prep_accept")
        self._prep((ACCEPT, sock, user_data, None))

    def prep_connect(self, sock, address, user_data=None) -> None:
        """IORING_OP_CONNECT: res is 0 once connected, or -errno."""
        self._check_sock(sock, "prep_connect")
        self._prep((CONNECT, sock, user_data, address))

    def prep_cancel(self, target_user_data, user_data=None) -> None:
        """IORING_OP_ASYNC_CANCEL: cancel the first pending request with
        ``target_user_data`` (res 0; -ENOENT if there is none)."""
        self._prep((_CANCEL, None, user_data, target_user_data))

    # -- submitting --------------------------------------------------------------------------
    def submit(self) -> int:
        """Hand every prepared SQE to the kernel (io_uring_enter); returns how many."""
        self._check_open()
        self._enter()
        sqes, self._sq = self._sq, []
        for kind, sock, user_data, arg in sqes:
            if kind == _CANCEL:
                self._cancel(arg, user_data)
                continue
            self.counters["submitted"] += 1
            kw = {}
            if kind == RECV:
                kw = {"buffer": bytearray(arg), "request": arg}
            elif kind == SEND:
                kw = {"view": arg}
            elif kind == CONNECT:
                kw = {"address": arg}
            try:
                op = completion.start(sock, kind, self, user_data, raise_early_errors=False, copies=True, **kw)
            except OSError as exc:             # EBADF, a bad address: the CQE says so
                self._post_cqe(Cqe(user_data, -(exc.errno or errno.EINVAL), None))
                continue
            if not op.done:
                self._inflight[op.seq] = op
        self._trace("io_uring.submit", [len(sqes)], len(sqes), None)
        return len(sqes)

    def _cancel(self, target, user_data) -> None:
        for seq, op in self._inflight.items():
            if op.tag == target and not op.done:
                op.cancel()
                self._post_cqe(Cqe(user_data, 0, None))
                return
        self._post_cqe(Cqe(user_data, -errno.ENOENT, None))

    # -- reaping -----------------------------------------------------------------------------
    def peek_cqe(self):
        """The next CQE, consumed, or None if none is ready (no waiting)."""
        self._check_open()
        if not self._cq and self._overflow:
            self._enter()              # liburing enters the kernel to flush the overflow list
        if not self._cq:
            return None
        return self._reap("io_uring.peek_cqe", None)

    async def wait_cqe(self, timeout=None) -> Cqe:
        """The next CQE, consumed, waiting up to ``timeout`` seconds (None: forever);
        raises ``TimeoutError`` (io_uring_wait_cqe_timeout's -ETIME) if none came."""
        self._check_open()
        if self._cq:
            return self._reap("io_uring.wait_cqe", timeout)
        self._enter()
        if self._cq:
            return self._reap("io_uring.wait_cqe", timeout)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout or timeout < 0:
                raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
        ev = simpy.Event(self._env)
        self._waiters.append(ev)
        if timeout is not None:
            arm_timeout(self._env, ev, int(round(timeout * 1e9)))
        woke = await wait_event(ev)
        if woke is TIMED_OUT:
            try:
                self._waiters.remove(ev)
            except ValueError:
                pass
            exc = TimeoutError(f"timed out: no completion within {timeout} s (io_uring_wait_cqe_timeout: -ETIME)")
            self._trace("io_uring.wait_cqe", [timeout], None, exc)
            raise exc
        if woke is None:
            raise os_error(errno.EBADF, "the io_uring was closed while this thread waited in wait_cqe()")
        self._check_open()
        return self._reap("io_uring.wait_cqe", timeout)

    def _reap(self, call: str, timeout) -> Cqe:
        cqe, copy_bytes = self._cq.popleft()
        if copy_bytes:
            self._charge_copy(copy_bytes)
        self._trace(call, [timeout] if call.endswith("wait_cqe") else [], [cqe[0], cqe[1]], None)
        return cqe

    # -- the kernel side ---------------------------------------------------------------------
    def _enter(self) -> None:
        """One io_uring_enter: costs a system call and flushes overflowed CQEs."""
        self.counters["enters"] += 1
        self._charge_call()
        overflow = self._overflow
        cq = self._cq
        while overflow and len(cq) < self.cq_entries:
            cq.append(overflow.popleft())
        self._wake()

    def _completed(self, op: Operation) -> None:
        self._inflight.pop(op.seq, None)
        self.counters["completions"] += 1
        err = op.error
        if err is not None:
            res = -(err.errno or errno.EIO)
            if err.errno == errno.ECANCELED:
                self.counters["cancelled"] += 1
            extra = None
        elif op.kind == ACCEPT:
            res = op.result[0].fileno()
            extra = op.result
        elif op.kind == RECV:
            res = op.nbytes
            extra = op.result
        elif op.kind == SEND:
            res = op.nbytes
            extra = None
        else:
            res = 0
            extra = None
        copy_bytes = op.nbytes if op._copies and op.kind in (RECV, SEND) else 0
        if self._sim.trace.want_syscalls:
            self._trace_completion("io_uring.complete", op, [op.tag, res])
        self._post_cqe(Cqe(op.tag, res, extra), copy_bytes)

    def _post_cqe(self, cqe: Cqe, copy_bytes: int = 0) -> None:
        if self._closed:
            return
        if self._overflow or len(self._cq) >= self.cq_entries:
            self._overflow.append((cqe, copy_bytes))     # io_cqring_event_overflow: kept, flag set
            self.counters["overflowed"] += 1
            return
        self._cq.append((cqe, copy_bytes))
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        n = len(self._cq)
        while waiters and n:
            ev = waiters.popleft()
            if ev.triggered:
                continue
            ev.succeed(True)
            n -= 1

    def close(self) -> None:
        """Tear the ring down: pending requests are cancelled, waiters fail with EBADF."""
        if self._closed:
            return
        for op in list(self._inflight.values()):
            if not op.done:
                op.cancel()
        self._release_fd()
        waiters, self._waiters = self._waiters, deque()
        for ev in waiters:
            if not ev.triggered:
                ev.succeed(None)
        self._trace("io_uring.close", [], None, None)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def ready(self) -> int:
        """CQEs in the completion queue (not counting the overflow list)."""
        return len(self._cq)

    @property
    def pending(self) -> int:
        """Submitted requests not yet completed."""
        return len(self._inflight)

    def stats(self) -> dict:
        return {"type": "io_uring", "fd": self._fd, "sq_entries": self.sq_entries, "cq_entries": self.cq_entries,
                "prepared": len(self._sq), "pending": len(self._inflight), "ready": len(self._cq),
                "overflow_list": len(self._overflow), "copied_bytes": self.copied_bytes, **self.counters}

    def __repr__(self) -> str:
        return (f"<simsock.IoUring fd={self._fd} host={self._host.name!r} sq={self.sq_entries} "
                f"cq={self.cq_entries} ready={len(self._cq)}>")
