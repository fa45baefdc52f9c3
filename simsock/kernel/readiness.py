"""Readiness notification: what select, poll and epoll share.

Every open file can say what it could do now without blocking: its *poll mask*
(``file.poll_mask()``: POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDHUP ... — tcp_poll,
udp_poll, ep_eventpoll_poll). A program that handles many files asks the kernel to tell it
which of them are ready, and to sleep until one is: statelessly with select and poll
(:mod:`simsock.kernel.select_poll`), or with an interest list kept in the kernel, epoll
(:mod:`simsock.kernel.epoll`). Completion-based I/O is the other family
(:mod:`simsock.kernel.iocp`, :mod:`simsock.kernel.uring`).

What all three share, and this module holds: a file's wake-up carries edge signals
(kernel/wait.py) that become the poll *key* a watcher matches against the events it asked
for (:func:`wake_key`); arguments are converted as CPython's ``select`` module converts
them; every call charges the calling thread through :func:`simsock.kernel.cpu.charge`, and
a call that finds nothing ready with a zero timeout is charged as spinning. A woken thread
resumes ``wakeup_ns`` after the wake-up, like every other wait (kernel/wait.py). Callbacks
only move entries between lists; waking threads is a scheduled event, so a thread always
runs after the change that woke it (DESIGN.md, principle 4), and nothing is scheduled when
nobody waits.

Trace records have the same shapes as the real backend's (simsock/real/kernel.py);
descriptors in arguments and results are ``{"fd": n}`` so that trace comparison can
normalise them.
"""

from __future__ import annotations

import errno
import functools
import math

from simsock import constants as C
from simsock.errors import os_error
from simsock.signals import SIG_IN, SIG_OUT, SIG_STATE
from simsock.trace import errno_of, trace_value


# The key a wake-up carries (sock_def_readable, sk_stream_write_space, sock_def_wakeup).
_KEY_IN = C.EPOLLIN | C.EPOLLPRI | C.EPOLLRDNORM | C.EPOLLRDBAND
_KEY_OUT = C.EPOLLOUT | C.EPOLLWRNORM | C.EPOLLWRBAND


def wake_key(edges: int) -> int:
    """The poll key of a wake-up with these edge signals; 0 (a state change) matches all."""
    if edges & SIG_STATE:
        return 0
    key = 0
    if edges & SIG_IN:
        key |= _KEY_IN
    if edges & SIG_OUT:
        key |= _KEY_OUT
    return key


# -- argument conversion, as CPython's select module does it ---------------------------------
def as_fd(obj) -> int:
    """PyObject_AsFileDescriptor: an int, or the result of ``obj.fileno()``."""
    if isinstance(obj, int):
        fd = int(obj)
    else:
        meth = getattr(obj, "fileno", None)
        if meth is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = meth()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    if fd > 0x7FFFFFFF:
        raise OverflowError("Python int too large to convert to C int")
    return fd


def timeout_to_ns(value, unit_ns: int, round_to_ns: int, message: str) -> int | None:
    """A timeout in ``unit_ns`` units to ns, rounded up to ``round_to_ns`` (_PyTime_ROUND_TIMEOUT);
    None for None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(message)
    if isinstance(value, float) and value != value:
        raise ValueError("Invalid value NaN (not a number)")
    if isinstance(value, float) and math.isinf(value):
        raise OverflowError("timestamp too large to convert to C _PyTime_t")
    ns = math.ceil(value * unit_ns) if isinstance(value, float) else value * unit_ns
    if ns >= 0:
        ns = -(-ns // round_to_ns) * round_to_ns
    else:
        ns = -((-ns) // round_to_ns) * round_to_ns
    return ns


def record(sim, host, call: str, fd: int, args, result, exc) -> None:
    if sim.trace.want_syscalls:
        thread = sim.current_thread
        sim.trace.syscall(sim.env.now, host.name, thread.name if thread is not None else "-", call, fd,
                          trace_value(args), trace_value(result), errno_of(exc))


def fd_arg(fd: int) -> dict:
    return {"fd": fd}


def lookup(host, fd: int):
    f = host.file(fd)
    if f is None:
        raise os_error(errno.EBADF)
    return f


def fd_call(call: str, *, charge: bool = True, check=None):
    """Declare ``method(self, n, *args)`` of a poll or epoll instance as the plain system
    call ``call`` on descriptor ``n`` (epoll_ctl, poll's register...). The caller passes a
    descriptor or an object with ``fileno()``; :func:`as_fd` converts it, and ``check``
    (if given) validates ``args``, both before anything is charged or recorded, as CPython
    converts arguments before the call. Then the calling thread is charged ``syscall_ns``
    (``charge``), the body runs, and one record ``[{"fd": n}, *args] -> None`` (or the
    error) goes to the trace on ``self._fd``. Defaults of the body count as passed."""
    def wrap(fn):
        code = fn.__code__
        names = code.co_varnames[2:code.co_argcount]
        defaults = dict(zip(names[len(names) - len(fn.__defaults__ or ()):], fn.__defaults__ or ()))

        @functools.wraps(fn)
        def traced(self, fd, *args, **kwargs):
            n = as_fd(fd)
            if len(args) < len(names):
                missing = [name for name in names[len(args):] if name not in kwargs and name not in defaults]
                if missing:
                    raise TypeError(f"{fn.__name__}() missing required argument: {missing[0]!r}")
                args += tuple(kwargs.pop(name) if name in kwargs else defaults[name] for name in names[len(args):])
            if kwargs:
                raise TypeError(f"{fn.__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")
            if check is not None:
                check(*args)
            sim = self._sim
            if charge:
                thread = sim.current_thread
                if thread is not None:
                    thread.debt_ns += self._host.cpu.syscall_ns
            targs = [fd_arg(n), *args]
            try:
                result = fn(self, n, *args)
            except Exception as exc:
                record(sim, self._host, call, self._fd, targs, None, exc)
                raise
            record(sim, self._host, call, self._fd, targs, None, None)
            return result
        return traced
    return wrap
