"""The system-call wrappers of socket methods: owner check, CPU charge, watchdog, trace.

A socket method decorated with :func:`syscall` (plain or ``async``) or
:func:`syscall_may_wait` (an awaitable call whose body is a plain function) is one system
call: it is refused from a thread of another host (or another simulation), charges the
calling thread ``syscall_ns`` plus ``copy_ps_per_byte`` per byte copied (kernel/cpu.py),
counts towards the zero-time watchdog (kernel/watchdog.py), and appends one ``syscall``
record to the trace when syscall tracing is on (the same record the real backend writes).
"""

from __future__ import annotations

import functools
import inspect
from types import CoroutineType, GeneratorType

from simsock.trace import SYSCALL, freeze

from .cpu import run_debt
from .thread import RUNNING, closing_program, foreign_use
from .watchdog import STEP_CALL_LIMIT, stop_thread

__all__ = ["syscall", "syscall_may_wait", "call_body"]


def _returned_int(args, result) -> int:
    return result if type(result) is int else 0


def _returned_bytes(args, result) -> int:
    if type(result) is tuple:
        result = result[0]
    return result if type(result) is int else len(result)


def _argument_bytes(args, result) -> int:
    return memoryview(args[0]).nbytes if args else 0


#: Bytes a successful call copies between user and kernel memory (the CPU model charges them).
_COPIED = {"send": _returned_int, "sendto": _returned_int, "sendall": _argument_bytes,
           "recv": _returned_bytes, "recvfrom": _returned_bytes,
           "recv_into": _returned_bytes, "recvfrom_into": _returned_bytes,
           "sendmsg": _returned_int, "recvmsg": _returned_bytes, "recvmsg_into": _returned_bytes}


def syscall(fn):
    """Record each call of ``fn`` (plain or async) in the trace when it returns or raises,
    and charge it to the calling thread's CPU (kernel/cpu.py): ``syscall_ns`` per call plus
    ``copy_ps_per_byte`` per byte moved. An awaited call that leaves the thread's CPU debt at
    the batch bound pays it before returning; a call that fails with EAGAIN counts as
    spinning."""
    if inspect.iscoroutinefunction(fn):
        return syscall_may_wait(fn)     # an async body returns its coroutine: awaited there
    name = fn.__name__

    @functools.wraps(fn)
    def traced(self, *args, **kwargs):
        thread = self._sim.current_thread
        if thread is not None:
            if thread.host is not self._host:
                raise foreign_use(self, self._host, thread)
            thread.debt_ns += self._host.cpu.syscall_ns
            thread.progress = True
            thread.ops += 1
            if thread.ops > STEP_CALL_LIMIT:
                raise stop_thread(thread, "call")
        elif RUNNING.sim is not None and RUNNING.sim is not self._sim and not closing_program():
            raise foreign_use(self, self._host, None)
        try:
            result = fn(self, *args, **kwargs)
        except BaseException as exc:
            if self._sim.trace.want_syscalls:
                self._record(name, args, None, exc)
            raise
        if self._sim.trace.want_syscalls:
            self._record(name, args, result, None)
        return result
    return traced


def syscall_may_wait(fn):
    """:func:`syscall` for an awaitable call whose body is a *plain* function: the body
    returns the result when the call completes at once, or the coroutine that finishes
    it when it must wait (an ``async def`` body always does; :func:`syscall` uses this). The wrapper is an ``async def`` exactly as :func:`syscall` makes
    for an ``async`` body (same trace records, CPU charges, foreign-use check, errors), but
    a call that completes at once runs one coroutine frame instead of one per layer
    (benchmarks/udp_blast.py)."""
    name = fn.__name__
    copied = _COPIED.get(name)
    # _returned_int / _returned_bytes, inlined below by shape (buys benchmarks/compare.py udp)
    copies_int = copied is _returned_int
    copies_result = copied is _returned_bytes
    plain_record = not name.endswith("_into")     # Socket._record's common case applies

    @functools.wraps(fn)
    async def traced(self, *args, **kwargs):
        sim = self._sim
        thread = sim.current_thread
        if thread is not None:
            if thread.host is not self._host:
                raise foreign_use(self, self._host, thread)
            cpu = self._host.cpu
            thread.debt_ns += cpu.syscall_ns     # entry: paid even if the call blocks
            thread.ops += 1
            if thread.ops > STEP_CALL_LIMIT:     # a loop that never lets time pass (watchdog.py)
                raise stop_thread(thread, "call" if thread.progress else "eagain")
        elif RUNNING.sim is not None and RUNNING.sim is not sim and not closing_program():
            raise foreign_use(self, self._host, None)
        try:
            result = fn(self, *args, **kwargs)
            if type(result) is CoroutineType or type(result) is GeneratorType:   # a waiting call
                result = await result
        except Exception as exc:
            if sim.trace.want_syscalls:
                self._record(name, args, None, exc)
            if thread is not None:
                if type(exc) is not BlockingIOError:
                    thread.progress = True
                if thread.debt_ns >= sim.cpu_batch_ns:
                    await run_debt()
            raise
        trace = sim.trace
        if trace.want_syscalls:
            if plain_record and not self._closed:
                # Socket._record's common case and Trace.syscall, inlined (buys the trace-on
                # cost of benchmarks/compare.py udp): the same record
                trace._append((sim.env._now, SYSCALL, self._host.name, thread.name if thread is not None else "-",
                               name, self._fd, freeze(args), result if type(result) is int else freeze(result), None))
            else:
                self._record(name, args, result, None)
        if thread is not None:
            if copies_int:
                n = result if type(result) is int else 0
            elif copies_result:
                n = result[0] if type(result) is tuple else result
                if type(n) is not int:
                    n = len(n)
            elif copied is not None:
                n = copied(args, result)
            else:
                n = -1
            if n >= 0:
                cpu.copied_bytes += n          # counted by the kernel, not by the program
                thread.debt_ns += n * cpu.copy_ps // 1000
            thread.progress = True
            if thread.debt_ns >= sim.cpu_batch_ns:
                await run_debt()
        return result
    return traced


async def call_body(method, sock, *args):
    """Run the body of the traced socket call ``method`` (a class attribute made by
    :func:`syscall`) without tracing or charging it: for a call made inside another one
    (sendmsg is send on the gathered buffers), which is recorded once, under its own name."""
    result = method.__wrapped__(sock, *args)
    if type(result) is CoroutineType or type(result) is GeneratorType:
        result = await result
    return result
