"""Readiness notification: select, poll and epoll, as Linux implements them.

What the three mechanisms are
-----------------------------
Every open file can say what it could do now without blocking: its *poll mask*
(``file.poll_mask()``: POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDHUP ... — tcp_poll,
udp_poll, ep_eventpoll_poll). A program that handles many files asks the kernel to tell it
which of them are ready, and to sleep until one is.

**select and poll** (fs/select.c) are stateless: each call hands the kernel the whole list.
The kernel polls every descriptor once (``do_select``/``do_poll``); if one is ready, or the
timeout is zero, it returns at once. Otherwise it has, during that scan, put an entry on
each file's wait queue, and sleeps; *any* wake-up on *any* watched file whose key matches
what was asked (``pollwake``) wakes it, and it scans *all* descriptors again. The cost of a
call therefore grows with the number of descriptors watched, not with the number ready —
claim C7.6. select reports a descriptor readable for POLLIN_SET (IN, RDNORM, RDBAND, HUP,
ERR), writable for POLLOUT_SET (OUT, WRNORM, WRBAND, ERR), exceptional for POLLEX_SET
(PRI); hence a fresh, unconnected TCP socket (POLLOUT|POLLHUP) is both readable and
writable. select works on descriptor numbers below FD_SETSIZE (1024) only. poll reports
``revents = mask & (events | POLLERR | POLLHUP)``, and POLLNVAL for a descriptor that is not
open.

**epoll** (fs/eventpoll.c) keeps the interest list in the kernel. ``register`` (ep_insert)
puts one entry per (file, fd) in the instance and a callback (ep_poll_callback) on the
file's wait queue. Every wake-up of the file — new data, space freed, a state change —
runs the callback, which, if the wake-up's key matches the entry's events and the entry is
enabled, appends the entry to the instance's *ready list* (once: an entry already on it
stays where it is) and wakes one thread waiting in ``epoll_wait``. ``epoll_wait``
(ep_send_events) takes the ready list, polls each entry again and reports
``mask & events`` if that is not zero, at most ``maxevents`` entries; then:

* a level-triggered entry goes back to the tail of the ready list, so it is polled (and
  reported, if still ready) on the next call; entries not reached because of ``maxevents``
  are put back *before* it (list_splice in ep_done_scan), so every ready entry gets its turn;
* an edge-triggered entry (EPOLLET) is not put back: it is reported again only after the
  next wake-up of its file. Every new arrival of data is a wake-up, so ET reports again on
  each arrival — not only when the buffer goes from empty to non-empty (C8.2) — but a
  program that reads only part of what arrived and then waits is not told again until more
  arrives (C8.3);
* an EPOLLONESHOT entry is disabled after one report (its events become 0, so callbacks
  ignore it) until ``modify`` re-arms it;
* if the ready list is still not empty, one more waiting thread is woken (ep_done_scan):
  with level-triggered entries every thread waiting on one instance wakes in a chain,
  while with edge-triggered ones only one does.

Threads waiting in ``epoll_wait`` on one instance are exclusive waiters added at the head
of its wait queue: each callback wakes exactly one, the one that began waiting last (LIFO).
Several *instances* watching one file are woken all at once, unless their entries were
registered with EPOLLEXCLUSIVE: exclusive entries sit at the tail of the file's wait queue
and a wake-up stops at the first whose instance had a thread to wake (the thundering herd
and its cure). ``register`` and ``modify`` poll the file at once and queue the entry if it
is ready already. An epoll instance is itself a file: it is readable while an entry on its
ready list is ready, so it can be watched by select, poll or another epoll. When a file's
last reference is closed, its entries disappear from every instance.

Errors are the ones Linux's epoll_ctl and CPython's ``select`` module raise: EEXIST
(register twice), ENOENT (modify/unregister unknown), EINVAL (the instance itself,
EPOLLEXCLUSIVE with modify or with other bits than IN/OUT/ERR/HUP/ET/WAKEUP, or on an epoll
target), ELOOP (a cycle of instances), EBADF (a descriptor that is not open).

Costs and timing
----------------
Each call charges the calling thread through :func:`simsock.kernel.cpu.charge`:
``syscall_ns`` plus ``select_per_fd_ns`` per descriptor per scan for select and poll (a call
that sleeps scans once on entry and once per wake-up), ``syscall_ns`` plus
``epoll_per_event_ns`` per reported entry for epoll_wait. A call that finds nothing ready
with a zero timeout is charged as spinning. A woken thread resumes ``wakeup_ns`` after the
wake-up, like every other wait (kernel/wait.py). Callbacks only move entries between lists;
waking threads is a scheduled event, so a thread always runs after the change that woke it
(DESIGN.md, principle 4), and nothing is scheduled when nobody waits.

Trace records (the same shapes as the real backend, simsock/real/kernel.py): ``select``
(args: the three lists and the timeout; result: three lists), ``poll.register`` /
``poll.modify`` / ``poll.unregister`` / ``poll.poll``, ``epoll`` (creation; result
``{"fd": n}``), ``epoll.register`` / ``modify`` / ``unregister`` / ``poll`` / ``close``.
Descriptors in arguments and results are ``{"fd": n}`` so that trace comparison can
normalise them.
"""

from __future__ import annotations

import errno
import math
from collections import OrderedDict

import simpy

from simsock import constants as C
from simsock.errors import os_error
from simsock.trace import errno_of, trace_value

from .cpu import charge, checkpoint
from .thread import check_owner, wait_event
from .wait import SIG_CLOSE, SIG_IN, SIG_OUT, SIG_STATE, TIMED_OUT, FileState, _wake_later, arm_timeout

__all__ = ["select", "Poll", "Epoll", "POLLIN_SET", "POLLOUT_SET", "POLLEX_SET"]

# fs/select.c
POLLIN_SET = C.EPOLLRDNORM | C.EPOLLRDBAND | C.EPOLLIN | C.EPOLLHUP | C.EPOLLERR
POLLOUT_SET = C.EPOLLWRBAND | C.EPOLLWRNORM | C.EPOLLOUT | C.EPOLLERR
POLLEX_SET = C.EPOLLPRI

# fs/eventpoll.c
EP_PRIVATE_BITS = C.EPOLLWAKEUP | C.EPOLLONESHOT | C.EPOLLET | C.EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = (C.EPOLLIN | C.EPOLLOUT | C.EPOLLERR | C.EPOLLHUP | C.EPOLLWAKEUP | C.EPOLLET
                          | C.EPOLLEXCLUSIVE)
EP_MAX_NESTS = 4
_DEFAULT_MAXEVENTS = C.FD_SETSIZE - 1       # CPython's epoll.poll(maxevents=-1)

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


def _timeout_ns(value, unit_ns: int, round_to_ns: int, message: str) -> int | None:
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


def _record(sim, host, call: str, fd: int, args, result, exc) -> None:
    if sim.trace.want_syscalls:
        thread = sim.current_thread
        sim.trace.syscall(sim.env.now, host.name, thread.name if thread is not None else "-", call, fd,
                          trace_value(args), trace_value(result), errno_of(exc))


def _fd_arg(fd: int) -> dict:
    return {"fd": fd}


def _lookup(host, fd: int):
    f = host.file(fd)
    if f is None:
        raise os_error(errno.EBADF)
    return f


class _Sleeper:
    """One thread sleeping in select/poll: woken by any matching wake-up of a watched file."""

    __slots__ = ("event", "env", "delay")

    def __init__(self, env, delay: int):
        self.env = env
        self.delay = delay
        self.event = None

    def wake(self) -> None:
        ev = self.event
        if ev is not None and not ev.triggered:
            if self.delay:
                _wake_later(self.env, ev, self.delay)
            else:
                ev.succeed(None)


class _PollEntry:
    """pollwake: the sleeper's entry on one file's wait queue, with the events it wants."""

    __slots__ = ("sleeper", "key")
    exclusive = False

    def __init__(self, sleeper: _Sleeper, key: int):
        self.sleeper = sleeper
        self.key = key

    def __call__(self, file, edges: int):
        if edges & SIG_CLOSE:
            return None           # the poll table holds the file: closing does not wake
        key = wake_key(edges)
        if key and not key & self.key:
            return None
        self.sleeper.wake()
        return None


async def _sleep_until_woken(sim, host, files_keys, deadline: int | None, first_wait: list):
    """Put entries on the files' wait queues (once per call) and sleep; TIMED_OUT or None."""
    sleeper = first_wait[0] if first_wait else None
    env = sim.env
    if sleeper is None:
        sleeper = _Sleeper(env, host.cpu.wakeup_ns)
        entries = []
        for f, key in files_keys:
            e = _PollEntry(sleeper, key)
            f.file_state.watchers.append(e)
            entries.append((f, e))
            hold = getattr(f, "_hold", None)
            if hold is not None:
                hold()            # __pollwait takes a reference: a close() leaves the file open
        first_wait.extend((sleeper, entries))
    ev = simpy.Event(env)
    sleeper.event = ev
    if deadline is not None:
        delay = deadline - env.now
        if delay <= 0:
            return TIMED_OUT
        arm_timeout(env, ev, delay)
    return await wait_event(ev)


def _remove_entries(first_wait: list, sim) -> None:
    """poll_freewait: take the entries off the wait queues and drop the references to the
    files; a file whose descriptor another thread closed meanwhile is released now (a TCP
    socket sends its FIN only then), as on Linux."""
    if first_wait:
        thread = sim.current_thread
        for f, e in first_wait[1]:
            try:
                f.file_state.watchers.remove(e)
            except ValueError:
                pass
            unhold = getattr(f, "_unhold", None)
            if unhold is not None:
                unhold()
                if thread in f._open_at_close:     # select/poll is not a call on the socket
                    f._open_at_close.remove(thread)
        first_wait[0].event = None


# -- select ---------------------------------------------------------------------------------
def _select_seq(seq, fds: list) -> list:
    if isinstance(seq, (list, tuple)):
        items = list(seq)
    else:
        try:
            items = list(seq)
        except TypeError:
            raise TypeError("arguments 1-3 must be sequences") from None
    if len(items) > C.FD_SETSIZE:
        raise ValueError("too many file descriptors in select()")
    out = []
    for obj in items:
        fd = as_fd(obj)
        if fd >= C.FD_SETSIZE:
            raise ValueError("filedescriptor out of range in select()")
        out.append((obj, fd))
    return out


async def select(k, rlist, wlist, xlist, timeout=None):
    """``select.select`` on kernel handle ``k`` (see the module docstring)."""
    sim, host = k._sim, k._host
    args = [rlist if isinstance(rlist, list) else list(rlist) if isinstance(rlist, tuple) else rlist,
            wlist if isinstance(wlist, list) else list(wlist) if isinstance(wlist, tuple) else wlist,
            xlist if isinstance(xlist, list) else list(xlist) if isinstance(xlist, tuple) else xlist, timeout]
    lists = args[:3]
    if sim.trace.want_syscalls:
        args = trace_value(args)       # the descriptors as passed (another thread may close one)
    try:
        result = await _select(sim, host, rlist, wlist, xlist, timeout)
    except Exception as exc:
        _record(sim, host, "select", -1, args, None, exc)
        raise
    _record(sim, host, "select", -1, args, _as_called(result, lists, args), None)
    await checkpoint(sim)     # a loop of zero-timeout calls must let time advance (C6.5)
    return result


def _as_called(result, lists, targs):
    """select's result for the trace, each object shown with the descriptor it had when the
    call began (the result lists are subsequences of the argument lists)."""
    if not all(isinstance(seq, list) for seq in lists) or not isinstance(targs, list):
        return result
    out = []
    for res, seq, tseq in zip(result, lists, targs):
        row, j = [], 0
        for obj in res:
            while j < len(seq) and seq[j] is not obj:
                j += 1
            if j == len(seq):
                return result
            row.append(tseq[j])
            j += 1
        out.append(row)
    return out


async def _select(sim, host, rlist, wlist, xlist, timeout):
    timeout_ns = _timeout_ns(timeout, 1_000_000_000, 1000, "timeout must be a float or None")
    if timeout_ns is not None and timeout_ns < 0:
        raise ValueError("timeout must be non-negative")
    r = _select_seq(rlist, [])
    w = _select_seq(wlist, [])
    x = _select_seq(xlist, [])
    cpu = host.cpu
    prof = host.profile
    wanted: dict[int, int] = {}            # fd -> which sets (1 in, 2 out, 4 ex)
    for bit, seq in ((1, r), (2, w), (4, x)):
        for _obj, fd in seq:
            wanted[fd] = wanted.get(fd, 0) | bit
    fds = sorted(wanted)
    files = {}
    for fd in fds:                          # max_select_fd: every descriptor must be open
        f = host.file(fd)
        if f is None:
            charge(sim, cpu.syscall_ns)
            raise os_error(errno.EBADF)
        files[fd] = f
    scan_cost = prof.select_per_fd_ns * len(fds)
    charge(sim, cpu.syscall_ns, spin=True)   # progress only if something is found
    deadline = None if timeout_ns is None else sim.env.now + timeout_ns
    first_wait: list = []
    try:
        while True:
            charge(sim, scan_cost, spin=True)
            ready_in, ready_out, ready_ex = set(), set(), set()
            for fd in fds:
                f = host.file(fd)
                mask = f.poll_mask() if f is not None else C.POLLNVAL
                if f is None:
                    mask |= POLLIN_SET | POLLOUT_SET | POLLEX_SET
                bits = wanted[fd]
                if bits & 1 and mask & POLLIN_SET:
                    ready_in.add(fd)
                if bits & 2 and mask & POLLOUT_SET:
                    ready_out.add(fd)
                if bits & 4 and mask & POLLEX_SET:
                    ready_ex.add(fd)
            if ready_in or ready_out or ready_ex or timeout_ns == 0:
                break
            keys = []
            for fd in fds:
                bits = wanted[fd]
                key = POLLEX_SET | (POLLIN_SET if bits & 1 else 0) | (POLLOUT_SET if bits & 2 else 0)
                keys.append((files[fd], key))
            woke = await _sleep_until_woken(sim, host, keys, deadline, first_wait)
            if woke is TIMED_OUT:
                deadline = sim.env.now          # one last scan, then return (do_select)
                timeout_ns = 0
    finally:
        _remove_entries(first_wait, sim)
    if ready_in or ready_out or ready_ex:
        charge(sim, 0)                      # found something: the caller makes progress
    return ([o for o, fd in r if fd in ready_in], [o for o, fd in w if fd in ready_out],
            [o for o, fd in x if fd in ready_ex])


# -- poll -----------------------------------------------------------------------------------
def _eventmask_ushort(mask) -> int:
    if isinstance(mask, bool) or not isinstance(mask, int):
        raise TypeError(f"'{type(mask).__name__}' object cannot be interpreted as an integer")
    if mask < 0:
        raise ValueError("value must be positive")
    if mask > 0xFFFF:
        raise OverflowError("Python int too large for C unsigned short")
    return mask


class Poll:
    """``select.poll()``: ``register``, ``modify``, ``unregister``, ``await poll(timeout_ms)``.

    The registered descriptors are kept in registration order (CPython's dict); results
    come in that order. Descriptors are numbers: a closed one reports POLLNVAL, and a
    number reused by a new file reports the new file, as on Linux.
    """

    def __init__(self, k):
        self._sim = k._sim
        self._host = k._host
        self._fds: dict[int, int] = {}
        self._running = False
        self.polls = 0
        self.scanned = 0
        self.reported = 0

    def _plain(self, call, args, fn):
        thread = self._sim.current_thread
        if thread is not None:
            thread.debt_ns += self._host.cpu.syscall_ns if call == "poll.poll" else 0
        try:
            result = fn()
        except Exception as exc:
            _record(self._sim, self._host, call, -1, args, None, exc)
            raise
        _record(self._sim, self._host, call, -1, args, None, None)
        return result

    def register(self, fd, eventmask=C.POLLIN | C.POLLPRI | C.POLLOUT) -> None:
        n = as_fd(fd)
        mask = _eventmask_ushort(eventmask)

        def do():
            self._fds[n] = mask
        return self._plain("poll.register", [_fd_arg(n), eventmask], do)

    def modify(self, fd, eventmask) -> None:
        n = as_fd(fd)
        mask = _eventmask_ushort(eventmask)

        def do():
            if n not in self._fds:
                raise os_error(errno.ENOENT)
            self._fds[n] = mask
        return self._plain("poll.modify", [_fd_arg(n), eventmask], do)

    def unregister(self, fd) -> None:
        n = as_fd(fd)

        def do():
            if n not in self._fds:
                raise KeyError(n)
            del self._fds[n]
        return self._plain("poll.unregister", [_fd_arg(n)], do)

    async def poll(self, timeout_ms=None):
        """Wait up to ``timeout_ms`` milliseconds (None or negative: forever); returns
        ``[(fd, revents), ...]`` for the descriptors with events, in registration order."""
        sim, host = self._sim, self._host
        check_owner(self, sim, host)
        try:
            result = await self._poll(timeout_ms)
        except Exception as exc:
            _record(sim, host, "poll.poll", -1, [timeout_ms], None, exc)
            raise
        _record(sim, host, "poll.poll", -1, [timeout_ms], [[_fd_arg(f), ev] for f, ev in result], None)
        await checkpoint(sim)     # a loop of zero-timeout calls must let time advance (C6.5)
        return result

    async def _poll(self, timeout_ms):
        sim, host = self._sim, self._host
        timeout_ns = _timeout_ns(timeout_ms, 1_000_000, 1_000_000, "timeout must be an integer or None")
        if timeout_ns is not None and timeout_ns < 0:
            timeout_ns = None
        if self._running:
            raise RuntimeError("concurrent poll() invocation")
        self._running = True
        self.polls += 1
        cpu = host.cpu
        items = list(self._fds.items())
        scan_cost = host.profile.select_per_fd_ns * len(items)
        charge(sim, cpu.syscall_ns, spin=True)   # progress only if something is found
        deadline = None if timeout_ns is None else sim.env.now + timeout_ns
        first_wait: list = []
        try:
            while True:
                charge(sim, scan_cost, spin=True)
                self.scanned += len(items)
                out = []
                for fd, events in items:
                    f = host.file(fd)
                    if f is None:
                        out.append((fd, C.POLLNVAL))
                        continue
                    # do_pollfd: the POLLIN... bits asked for, plus POLLERR and POLLHUP always
                    rev = f.poll_mask() & (events | C.POLLERR | C.POLLHUP)
                    if rev:
                        out.append((fd, rev))
                if out or timeout_ns == 0:
                    break
                keys = []
                for fd, events in items:
                    f = host.file(fd)
                    if f is not None:
                        keys.append((f, events | C.POLLERR | C.POLLHUP))
                woke = await _sleep_until_woken(sim, host, keys, deadline, first_wait)
                if woke is TIMED_OUT:
                    timeout_ns = 0
        finally:
            _remove_entries(first_wait, sim)
            self._running = False
        if out:
            charge(sim, 0)                  # found something: the caller makes progress
        self.reported += len(out)
        return out

    def stats(self) -> dict:
        return {"registered": len(self._fds), "polls": self.polls, "scanned": self.scanned,
                "reported": self.reported}


# -- epoll ----------------------------------------------------------------------------------
class EpollEntry:
    """One (file, fd) in an epoll instance's interest list (struct epitem)."""

    __slots__ = ("ep", "file", "fd", "events", "exclusive")

    def __init__(self, ep: "Epoll", file, fd: int, events: int):
        self.ep = ep
        self.file = file
        self.fd = fd
        self.events = events
        self.exclusive = bool(events & C.EPOLLEXCLUSIVE)

    def __call__(self, file, edges: int) -> bool:
        """ep_poll_callback; returns True when an exclusive entry woke a waiter."""
        ep = self.ep
        if edges & SIG_CLOSE:
            ep._remove(self)                # eventpoll_release
            return False
        events = self.events
        if not events & ~EP_PRIVATE_BITS:
            return False                    # disabled (EPOLLONESHOT after its report)
        key = wake_key(edges)
        if key and not key & events:
            return False
        ready = ep._ready
        if self not in ready:
            ready[self] = None
        ewake = False
        if ep._waiters:
            if self.exclusive:
                inout = key & (C.EPOLLIN | C.EPOLLOUT)
                ewake = (inout == 0 or (inout == C.EPOLLIN and events & C.EPOLLIN)
                         or (inout == C.EPOLLOUT and events & C.EPOLLOUT))
            ep._wake_one()
        if ep.file_state.watchers:
            ep.file_state.notify(ep, SIG_IN)    # ep_poll_safewake: the instance became readable
        if not self.exclusive:
            return True
        return bool(ewake)

    def __repr__(self) -> str:
        return f"<EpollEntry fd={self.fd} events={self.events:#x}>"


class Epoll:
    """``select.epoll()``: an epoll instance, a file of its own (see the module docstring)."""

    _kind = "epoll"

    def __init__(self, k, sizehint=-1, flags=0):
        if isinstance(sizehint, bool) or not isinstance(sizehint, int):
            raise TypeError(f"'{type(sizehint).__name__}' object cannot be interpreted as an integer")
        if isinstance(flags, bool) or not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        if sizehint != -1 and sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != C.SOCK_CLOEXEC:
            raise OSError("invalid flags")
        host = k._host
        self._host = host
        self._sim = host.sim
        self._env = host.sim.env
        self._entries: dict[tuple[int, object], EpollEntry] = {}
        self._ready: OrderedDict[EpollEntry, None] = OrderedDict()
        self._waiters: list[simpy.Event] = []       # threads in poll(); woken LIFO, one at a time
        self.file_state = FileState()
        self._closed = False
        self._fd = host._alloc_fd(self)
        self.waits = 0
        self.wakeups = 0
        self.empty_wakeups = 0
        self.reported = 0

    # -- file interface ----------------------------------------------------------------------
    def fileno(self) -> int:
        if self._closed:
            raise ValueError("I/O operation on closed epoll object")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def poll_mask(self) -> int:
        """ep_eventpoll_poll: readable while an entry on the ready list is ready; entries
        no longer ready leave the list."""
        if self._closed:
            return C.POLLNVAL
        ready = self._ready
        for entry in list(ready):
            if entry.file.poll_mask() & entry.events:
                return C.EPOLLIN | C.EPOLLRDNORM
            del ready[entry]
        return 0

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed epoll object")

    def _trace(self, call: str, args, result, exc) -> None:
        _record(self._sim, self._host, call, self._fd, args, result, exc)

    def _plain(self, call: str, args, fn):
        thread = self._sim.current_thread
        if thread is not None:
            thread.debt_ns += self._host.cpu.syscall_ns
        try:
            result = fn()
        except Exception as exc:
            self._trace(call, args, None, exc)
            raise
        self._trace(call, args, None, None)
        return result

    # -- epoll_ctl ------------------------------------------------------------------------------
    @staticmethod
    def _eventmask(eventmask) -> int:
        if isinstance(eventmask, bool) or not isinstance(eventmask, int):
            raise TypeError(f"'{type(eventmask).__name__}' object cannot be interpreted as an integer")
        return eventmask & 0xFFFFFFFF                 # unsigned int, bitwise (argument clinic)

    def _target(self, fd, events: int | None, op: str):
        f = _lookup(self._host, fd)
        if f is self:
            raise os_error(errno.EINVAL)
        if events is not None and events & C.EPOLLEXCLUSIVE:
            if op == "modify":
                raise os_error(errno.EINVAL)
            if isinstance(f, Epoll) or events & ~EPOLLEXCLUSIVE_OK_BITS:
                raise os_error(errno.EINVAL)
        return f

    def register(self, fd, eventmask=C.EPOLLIN | C.EPOLLPRI | C.EPOLLOUT) -> None:
        """epoll_ctl(EPOLL_CTL_ADD)."""
        n = as_fd(fd)

        def do():
            self._check_open()
            events = self._eventmask(eventmask)
            f = self._target(n, events, "register")
            if isinstance(f, Epoll) and f._reaches(self, 1):
                raise os_error(errno.ELOOP)
            if (n, f) in self._entries:
                raise os_error(errno.EEXIST)
            entry = EpollEntry(self, f, n, events | C.EPOLLERR | C.EPOLLHUP)
            self._entries[(n, f)] = entry
            if entry.exclusive:
                f.file_state.watchers.append(entry)         # add_wait_queue_exclusive: the tail
            else:
                f.file_state.watchers.insert(0, entry)      # add_wait_queue: the head
            self._poll_now(entry)
        self._plain("epoll.register", [_fd_arg(n), eventmask], do)

    def modify(self, fd, eventmask) -> None:
        """epoll_ctl(EPOLL_CTL_MOD): new events; re-arms an EPOLLONESHOT entry."""
        n = as_fd(fd)

        def do():
            self._check_open()
            events = self._eventmask(eventmask)
            f = self._target(n, events, "modify")
            entry = self._entries.get((n, f))
            if entry is None:
                raise os_error(errno.ENOENT)
            if entry.exclusive:
                raise os_error(errno.EINVAL)
            entry.events = events | C.EPOLLERR | C.EPOLLHUP
            self._poll_now(entry)
        self._plain("epoll.modify", [_fd_arg(n), eventmask], do)

    def unregister(self, fd) -> None:
        """epoll_ctl(EPOLL_CTL_DEL)."""
        n = as_fd(fd)

        def do():
            self._check_open()
            f = self._target(n, None, "unregister")
            entry = self._entries.get((n, f))
            if entry is None:
                raise os_error(errno.ENOENT)
            self._remove(entry)
        self._plain("epoll.unregister", [_fd_arg(n)], do)

    def _poll_now(self, entry: EpollEntry) -> None:
        """ep_insert/ep_modify: queue the entry at once if its file is ready already."""
        if entry.file.poll_mask() & entry.events and entry not in self._ready:
            self._ready[entry] = None
            if self._waiters:
                self._wake_one()
            if self.file_state.watchers:
                self.file_state.notify(self, SIG_IN)

    def _remove(self, entry: EpollEntry) -> None:
        if self._entries.get((entry.fd, entry.file)) is entry:
            del self._entries[(entry.fd, entry.file)]
        self._ready.pop(entry, None)
        try:
            entry.file.file_state.watchers.remove(entry)
        except ValueError:
            pass

    def _reaches(self, target: "Epoll", depth: int) -> bool:
        """ep_loop_check: would adding self under ``target`` make a cycle or nest too deep?"""
        if self is target or depth > EP_MAX_NESTS:
            return True
        for e in self._entries.values():
            if isinstance(e.file, Epoll) and e.file._reaches(target, depth + 1):
                return True
        return False

    def _wake_one(self) -> None:
        """wake_up(&ep->wq): the thread that began waiting last (exclusive, added at the head)."""
        waiters = self._waiters
        while waiters:
            ev = waiters.pop()
            if not ev.triggered:
                self.wakeups += 1
                delay = self._host.cpu.wakeup_ns
                if delay:
                    _wake_later(self._env, ev, delay)
                else:
                    ev.succeed(None)
                return

    # -- epoll_wait ------------------------------------------------------------------------------
    async def poll(self, timeout=None, maxevents=-1):
        """Wait up to ``timeout`` seconds (None or negative: forever) for events; returns
        ``[(fd, events), ...]``, at most ``maxevents`` (-1: FD_SETSIZE - 1), in ready-list order."""
        sim = self._sim
        check_owner(self, sim, self._host)
        try:
            result = await self._poll(timeout, maxevents)
        except Exception as exc:
            self._trace("epoll.poll", [timeout, maxevents], None, exc)
            raise
        if sim.trace.want_syscalls:
            self._trace("epoll.poll", [timeout, maxevents], [[_fd_arg(f), ev] for f, ev in result], None)
        await checkpoint(sim)     # a loop of zero-timeout calls must let time advance (C6.5)
        return result

    async def _poll(self, timeout, maxevents):
        self._check_open()
        timeout_ns = _timeout_ns(timeout, 1_000_000_000, 1_000_000, "timeout must be an integer or None")
        if timeout_ns is not None and timeout_ns < 0:
            timeout_ns = None
        if isinstance(maxevents, bool) or not isinstance(maxevents, int):
            raise TypeError(f"'{type(maxevents).__name__}' object cannot be interpreted as an integer")
        if maxevents == -1:
            maxevents = _DEFAULT_MAXEVENTS
        elif maxevents < 1:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        sim, env = self._sim, self._env
        cpu = self._host.cpu
        prof = self._host.profile
        charge(sim, cpu.syscall_ns, spin=True)   # progress only if events are reported
        self.waits += 1
        deadline = None if timeout_ns is None else env.now + timeout_ns
        woken = False
        while True:
            if self._ready:
                events = self._send_events(maxevents)
                if events:
                    charge(sim, prof.epoll_per_event_ns * len(events))
                    return events
                if woken:
                    self.empty_wakeups += 1
            if timeout_ns == 0 or (deadline is not None and env.now >= deadline):
                charge(sim, 0, spin=True)
                return []
            ev = simpy.Event(env)
            self._waiters.append(ev)
            if deadline is not None:
                arm_timeout(env, ev, deadline - env.now)
            woke = await wait_event(ev)
            if woke is TIMED_OUT:
                try:
                    self._waiters.remove(ev)
                except ValueError:
                    pass
                charge(sim, 0, spin=True)
                return []
            woken = True
            if self._closed:
                continue

    def _send_events(self, maxevents: int) -> list[tuple[int, int]]:
        """ep_send_events + ep_done_scan (see the module docstring)."""
        txlist = list(self._ready)
        self._ready = ready = OrderedDict()
        out = []
        relink = []
        i = 0
        for i, entry in enumerate(txlist):
            if len(out) >= maxevents:
                break
            revents = entry.file.poll_mask() & entry.events
            if not revents:
                continue
            out.append((entry.fd, revents))
            if entry.events & C.EPOLLONESHOT:
                entry.events &= EP_PRIVATE_BITS
            elif not entry.events & C.EPOLLET:
                relink.append(entry)
        else:
            i = len(txlist)
        for entry in txlist[i:]:            # not reached: first in line next time
            ready[entry] = None
        for entry in relink:                # level-triggered: back at the tail
            if entry not in ready:
                ready[entry] = None
        self.reported += len(out)
        if ready and self._waiters:
            self._wake_one()
        return out

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the instance: its entries go away; closing twice does nothing."""
        if self._closed:
            return
        thread = self._sim.current_thread
        if thread is not None:
            thread.debt_ns += self._host.cpu.syscall_ns
        for entry in list(self._entries.values()):
            self._remove(entry)
        self._ready.clear()
        self._closed = True
        self._host._free_fd(self._fd)
        self._trace("epoll.close", [], None, None)
        if self.file_state.watchers:
            self.file_state.notify(self, SIG_CLOSE)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stats(self) -> dict:
        """Counters: entries, ready entries, epoll_wait calls, wake-ups (and those that
        found nothing to report), entries reported."""
        return {"type": "epoll", "fd": self._fd, "entries": len(self._entries), "ready": len(self._ready),
                "waits": self.waits, "wakeups": self.wakeups, "empty_wakeups": self.empty_wakeups,
                "reported": self.reported}

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<simsock.Epoll {state} host={self._host.name!r} entries={len(self._entries)}>"
