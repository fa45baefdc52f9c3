"""select and poll, as Linux implements them (fs/select.c).

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


Costs: ``syscall_ns`` plus ``select_per_fd_ns`` per descriptor per scan (a call that sleeps
scans once on entry and once per wake-up); see :mod:`simsock.kernel.readiness` for what
all readiness mechanisms share.

Trace records: ``select`` (args: the three lists and the timeout; result: three lists),
``poll.register`` / ``poll.modify`` / ``poll.unregister`` / ``poll.poll``.
"""

from __future__ import annotations

import errno

import simpy

from simsock import constants as C
from simsock.errors import os_error
from simsock.trace import trace_value
from simsock.signals import SIG_CLOSE

from .cpu import charge, checkpoint
from .events import succeed_later
from .readiness import as_fd, fd_arg, fd_call, record, timeout_to_ns, wake_key
from .thread import check_owner, wait_event
from .wait import TIMED_OUT, arm_timeout

__all__ = ["select", "Poll", "POLLIN_SET", "POLLOUT_SET", "POLLEX_SET"]

# fs/select.c
POLLIN_SET = C.EPOLLRDNORM | C.EPOLLRDBAND | C.EPOLLIN | C.EPOLLHUP | C.EPOLLERR
POLLOUT_SET = C.EPOLLWRBAND | C.EPOLLWRNORM | C.EPOLLOUT | C.EPOLLERR
POLLEX_SET = C.EPOLLPRI


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
                succeed_later(self.env, ev, self.delay)
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
        record(sim, host, "select", -1, args, None, exc)
        raise
    record(sim, host, "select", -1, args, _as_called(result, lists, args), None)
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
    timeout_ns = timeout_to_ns(timeout, 1_000_000_000, 1000, "timeout must be a float or None")
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

    _fd = -1        # not a file: its trace records are on no descriptor

    def __init__(self, k):
        self._sim = k._sim
        self._host = k._host
        self._fds: dict[int, int] = {}
        self._running = False
        self.polls = 0
        self.scanned = 0
        self.reported = 0

    @fd_call("poll.register", charge=False, check=_eventmask_ushort)
    def register(self, n, eventmask=C.POLLIN | C.POLLPRI | C.POLLOUT) -> None:
        self._fds[n] = eventmask

    @fd_call("poll.modify", charge=False, check=_eventmask_ushort)
    def modify(self, n, eventmask) -> None:
        if n not in self._fds:
            raise os_error(errno.ENOENT)
        self._fds[n] = eventmask

    @fd_call("poll.unregister", charge=False)
    def unregister(self, n) -> None:
        if n not in self._fds:
            raise KeyError(n)
        del self._fds[n]

    async def poll(self, timeout_ms=None):
        """Wait up to ``timeout_ms`` milliseconds (None or negative: forever); returns
        ``[(fd, revents), ...]`` for the descriptors with events, in registration order."""
        sim, host = self._sim, self._host
        check_owner(self, sim, host)
        try:
            result = await self._poll(timeout_ms)
        except Exception as exc:
            record(sim, host, "poll.poll", -1, [timeout_ms], None, exc)
            raise
        record(sim, host, "poll.poll", -1, [timeout_ms], [[fd_arg(f), ev] for f, ev in result], None)
        await checkpoint(sim)     # a loop of zero-timeout calls must let time advance (C6.5)
        return result

    async def _poll(self, timeout_ms):
        sim, host = self._sim, self._host
        timeout_ns = timeout_to_ns(timeout_ms, 1_000_000, 1_000_000, "timeout must be an integer or None")
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
