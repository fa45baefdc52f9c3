"""Wait queues and file state: how a blocked call learns it may proceed.

Every open file (socket, listener, later epoll instance and completion port) owns a
:class:`FileState`: its readiness mask (computed on demand by the file) and the watchers
that want to hear when it may have changed. A blocking call waits on one of the file's
:class:`WaitQueue` s; a state change (data arrived, space freed, connection reset) calls
:meth:`FileState.notify`, which *schedules* the wake-ups: waiters resume after the change
that caused them has finished, never from inside it (DESIGN.md, principle 4).

``notify(edges)`` carries edge signals — bits that say what happened (new data, space
freed, state change) rather than what the state is — for mechanisms that care about
arrivals rather than state, such as edge-triggered epoll.
"""

from __future__ import annotations

from heapq import heappush as _heappush

import simpy
from simpy.events import NORMAL, PENDING

from simsock.signals import SIG_CLOSE

from .events import succeed_later
from .thread import wait_event

_Event = simpy.Event
_new_event = object.__new__

#: Value an expired wait resumes with.
TIMED_OUT = object()

#: Returned by a protocol's attempt function when the call would block (kernel/socket.py:
#: a sentinel, not an exception, because an exception per blocked call is the most
#: expensive thing on that path).
AGAIN = object()


def arm_timeout(env: simpy.Environment, ev: simpy.Event, delay_ns: int) -> None:
    """Make ``ev`` resume its waiter with TIMED_OUT ``delay_ns`` from now, unless something
    triggers it first (the timer then does nothing)."""
    env.timeout(delay_ns).callbacks.append(lambda _t: ev.triggered or ev.succeed(TIMED_OUT))


class WaitQueue:
    """Threads blocked on one condition of one file (Linux's wait_queue_head_t).

    ``wake_delay_ns`` is the wake-up latency (the profile's ``wakeup_ns``): a woken
    thread resumes that long after the wake-up, which costs no extra event because the
    wake-up event itself is scheduled later (kernel/cpu.py).
    """

    __slots__ = ("env", "_waiters", "wake_delay_ns")

    def __init__(self, env: simpy.Environment, wake_delay_ns: int = 0):
        self.env = env
        self._waiters: list[simpy.Event] = []
        self.wake_delay_ns = wake_delay_ns

    def waiter(self) -> simpy.Event:
        """A new wait without deadline: the event that succeeds with None when woken. A
        generator-based coroutine yields it itself, one frame less than awaiting :meth:`wait`
        (udp.py's blocked recv: buys benchmarks/compare.py udp)."""
        ev = _new_event(_Event)                   # simpy.Event(env), inlined
        ev.env = self.env
        ev.callbacks = []
        waiters = self._waiters
        if len(waiters) > 32:
            waiters[:] = [w for w in waiters if not w.triggered]
        waiters.append(ev)
        return ev

    def wait(self, deadline_ns: int | None = None):
        """An awaitable that resumes with None when woken, or TIMED_OUT at ``deadline_ns``."""
        ev = self.waiter()
        if deadline_ns is not None:
            env = self.env
            delay = deadline_ns - env.now
            if delay <= 0:
                ev.succeed(TIMED_OUT)
            else:
                arm_timeout(env, ev, delay)
        return wait_event(ev)

    def wake_all(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        self._waiters = []
        delay = self.wake_delay_ns
        for ev in waiters:
            if ev._value is PENDING:             # not ev.triggered
                if delay:
                    # succeed_later(self.env, ev, delay), inlined (buys benchmarks/compare.py
                    # udp: one wake-up per datagram)
                    env = self.env
                    ev._ok = True
                    ev._value = None
                    _heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), ev))
                else:
                    ev.succeed(None)

    def wake_one(self) -> bool:
        """Wake the longest-waiting thread (an exclusive wake-up, as for accept)."""
        waiters = self._waiters
        while waiters:
            ev = waiters.pop(0)
            if not ev.triggered:
                if self.wake_delay_ns:
                    succeed_later(self.env, ev, self.wake_delay_ns)
                else:
                    ev.succeed(None)
                return True
        return False

    def __len__(self) -> int:
        return sum(1 for w in self._waiters if not w.triggered)


class FileState:
    """Readiness watchers of one open file (select/poll/epoll subscribe here).

    A watcher is a callable ``watcher(file, edges)``. One whose ``exclusive`` attribute is
    true is an exclusive entry (EPOLLEXCLUSIVE, add_wait_queue_exclusive): like
    __wake_up_common, a notification calls every non-exclusive watcher, and exclusive ones
    in registration order until one returns true ("I woke a waiter"). SIG_CLOSE reaches
    every watcher.
    """

    __slots__ = ("watchers",)

    def __init__(self):
        self.watchers: list = []   # callables watcher(file, edges)

    def notify(self, file, edges: int) -> None:
        woken = False
        for watcher in tuple(self.watchers):
            if getattr(watcher, "exclusive", False):
                if woken and not edges & SIG_CLOSE:
                    continue
                if watcher(file, edges):
                    woken = True
            else:
                watcher(file, edges)
