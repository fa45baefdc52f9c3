"""Already-triggered SimPy events: a callback at a known time, a wake-up after a delay.

Most of what the kernel and the network schedule is known to happen when it is scheduled:
a packet arrives at its computed arrival time, a burst ends when its CPU time is paid, a
woken thread resumes ``wakeup_ns`` later. Each of these is one SimPy event that is
triggered (``_ok``, ``_value``) at once and put on the heap with a delay, exactly what
``simpy.Event(env)`` + ``ev.succeed(value)`` + ``env.schedule(ev, NORMAL, delay)`` would
do, in one call instead of three: like SimPy's own ``Environment.schedule`` and
``Timeout``, they set the event's fields and push the heap entry directly, inlined for
performance reasons. Each consumes ``next(env._eid)`` once, at scheduling time, with
priority NORMAL, so the order of events at one instant is the order they were scheduled.

This module imports nothing but SimPy, so ``simsock.net`` can use it too.
"""

from __future__ import annotations

from heapq import heappush

from simpy.events import NORMAL, Event

__all__ = ["call_later", "succeed_later"]

_new_event = object.__new__


def call_later(env, delay: int, callback, value=None) -> Event:
    """Run ``callback(event)`` ``delay`` ns from now, with ``event._value`` = ``value``.
    Returns the (already triggered) event."""
    ev = _new_event(Event)
    ev.env = env
    ev.callbacks = [callback]
    ev._ok = True
    ev._value = value
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), ev))
    return ev


def succeed_later(env, ev: Event, delay: int, value=None) -> None:
    """``ev.succeed(value)`` ``delay`` ns from now. The event counts as triggered at once,
    so a timeout racing with it sees it taken."""
    ev._ok = True
    ev._value = value
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), ev))
