"""epoll, as Linux implements it (fs/eventpoll.c).

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


Costs: ``syscall_ns`` per call, plus ``epoll_per_event_ns`` per reported entry for
epoll_wait; see :mod:`simsock.kernel.readiness` for what all readiness mechanisms share.

Trace records: ``epoll`` (creation; result ``{"fd": n}``), ``epoll.register`` /
``modify`` / ``unregister`` / ``poll`` / ``close``.
"""

from __future__ import annotations

import errno
from collections import OrderedDict

import simpy

from simsock import constants as C
from simsock.errors import os_error
from simsock.signals import SIG_CLOSE, SIG_IN

from .cpu import charge, checkpoint
from .events import succeed_later
from .readiness import fd_arg, fd_call, lookup, record, timeout_to_ns, wake_key
from .thread import check_owner, wait_event
from .wait import TIMED_OUT, FileState, arm_timeout

__all__ = ["Epoll", "EpollEntry"]

# fs/eventpoll.c
EP_PRIVATE_BITS = C.EPOLLWAKEUP | C.EPOLLONESHOT | C.EPOLLET | C.EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = (C.EPOLLIN | C.EPOLLOUT | C.EPOLLERR | C.EPOLLHUP | C.EPOLLWAKEUP | C.EPOLLET
                          | C.EPOLLEXCLUSIVE)
EP_MAX_NESTS = 4
_DEFAULT_MAXEVENTS = C.FD_SETSIZE - 1       # CPython's epoll.poll(maxevents=-1)


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
        record(self._sim, self._host, call, self._fd, args, result, exc)

    # -- epoll_ctl ------------------------------------------------------------------------------
    @staticmethod
    def _eventmask(eventmask) -> int:
        if isinstance(eventmask, bool) or not isinstance(eventmask, int):
            raise TypeError(f"'{type(eventmask).__name__}' object cannot be interpreted as an integer")
        return eventmask & 0xFFFFFFFF                 # unsigned int, bitwise (argument clinic)

    def _target(self, fd, events: int | None, op: str):
        f = lookup(self._host, fd)
        if f is self:
            raise os_error(errno.EINVAL)
        if events is not None and events & C.EPOLLEXCLUSIVE:
            if op == "modify":
                raise os_error(errno.EINVAL)
            if isinstance(f, Epoll) or events & ~EPOLLEXCLUSIVE_OK_BITS:
                raise os_error(errno.EINVAL)
        return f

    @fd_call("epoll.register")
    def register(self, n, eventmask=C.EPOLLIN | C.EPOLLPRI | C.EPOLLOUT) -> None:
        """epoll_ctl(EPOLL_CTL_ADD)."""
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

    @fd_call("epoll.modify")
    def modify(self, n, eventmask) -> None:
        """epoll_ctl(EPOLL_CTL_MOD): new events; re-arms an EPOLLONESHOT entry."""
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

    @fd_call("epoll.unregister")
    def unregister(self, n) -> None:
        """epoll_ctl(EPOLL_CTL_DEL)."""
        self._check_open()
        f = self._target(n, None, "unregister")
        entry = self._entries.get((n, f))
        if entry is None:
            raise os_error(errno.ENOENT)
        self._remove(entry)

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
                    succeed_later(self._env, ev, delay)
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
            self._trace("epoll.poll", [timeout, maxevents], [[fd_arg(f), ev] for f, ev in result], None)
        await checkpoint(sim)     # a loop of zero-timeout calls must let time advance (C6.5)
        return result

    async def _poll(self, timeout, maxevents):
        self._check_open()
        timeout_ns = timeout_to_ns(timeout, 1_000_000_000, 1_000_000, "timeout must be an integer or None")
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
