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

import simpy

from .thread import wait_event

#: Value an expired wait resumes with.
TIMED_OUT = object()

# Edge signals (what happened), passed to watchers alongside the file's current mask.
SIG_IN = 0x1        # new data / connection / datagram arrived
SIG_OUT = 0x2       # write space became available
SIG_STATE = 0x4     # state change: connected, error, hang-up, peer closed


class WaitQueue:
    """Threads blocked on one condition of one file (Linux's wait_queue_head_t)."""

    __slots__ = ("env", "_waiters")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self._waiters: list[simpy.Event] = []

    def wait(self, deadline_ns: int | None = None):
        """An awaitable that resumes with None when woken, or TIMED_OUT at ``deadline_ns``."""
        env = self.env
        ev = simpy.Event(env)
        waiters = self._waiters
        if len(waiters) > 32:
            waiters[:] = [w for w in waiters if not w.triggered]
        waiters.append(ev)
        if deadline_ns is not None:
            delay = deadline_ns - env.now
            if delay <= 0:
                ev.succeed(TIMED_OUT)
            else:
                timer = env.timeout(delay)
                timer.callbacks.append(lambda _t, ev=ev: ev.triggered or ev.succeed(TIMED_OUT))
        return wait_event(ev)

    def wake_all(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        self._waiters = []
        for ev in waiters:
            if not ev.triggered:
                ev.succeed(None)

    def wake_one(self) -> bool:
        """Wake the longest-waiting thread (an exclusive wake-up, as for accept)."""
        waiters = self._waiters
        while waiters:
            ev = waiters.pop(0)
            if not ev.triggered:
                ev.succeed(None)
                return True
        return False

    def __len__(self) -> int:
        return sum(1 for w in self._waiters if not w.triggered)


class FileState:
    """Readiness watchers of one open file (select/poll/epoll subscribe here)."""

    __slots__ = ("watchers",)

    def __init__(self):
        self.watchers: list = []   # callables watcher(file, edges)

    def notify(self, file, edges: int) -> None:
        for watcher in tuple(self.watchers):
            watcher(file, edges)
