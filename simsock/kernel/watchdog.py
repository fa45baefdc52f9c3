"""The zero-time watchdog: a run whose simulated time stops moving is stopped, with a reason.

Simulated time advances only through events. A program that loops on calls which complete at
once — ``while True: s.getsockname()``, repeated ``await h.join()`` on a finished thread,
``k.spawn`` in a loop without an await, a non-blocking ``recv`` polling loop when the profile
has no CPU costs — never lets an event happen, and ``run(until=...)`` would never return. A
real machine's clock would go on while such a loop spins; the simulator's cannot, so the
loop is a bug of the program and is reported as one (issue 13, item 2).

Two counters, both kept where the work already is (no extra call per step):

* **calls within one step.** A thread counts the calls it makes between two resumptions
  (``SimThread.ops``: each socket call, ``k.spawn``, ``join``, and every await that resumes at
  once); the count is reset each time the thread resumes from an event. Past
  :data:`STEP_CALL_LIMIT` calls the thread is stopped with :class:`ZeroTimeLoop`, which
  derives from ``BaseException`` so that a program's ``except Exception`` cannot swallow it.
* **events at one instant.** :func:`simsock.sim._run_events` counts events processed without
  the clock moving; past :data:`SAME_TIME_EVENT_LIMIT` it raises :class:`SimulationError`
  naming the threads that keep scheduling them (``while True: await k.sleep(0)`` under
  ``profiles.without_cpu_costs()``, where a yield costs no time).

Both messages name the thread, host and time, the program line it loops on, its last calls
(from the trace, when syscalls are traced) and what to write instead. A legitimate program
comes nowhere near either limit: with CPU costs every awaited call's debt reaches the batch
bound within tens of calls and time advances (kernel/cpu.py), and a million calls or a
million events at one nanosecond have no meaning in a network simulation.
"""

from __future__ import annotations

import linecache
import os
import sys

from simsock.errors import SimulationError

#: Calls a thread may make without letting time pass (between two resumptions from an event).
STEP_CALL_LIMIT = 1_000_000
#: Events the simulation may process at one instant before it is declared stuck.
SAME_TIME_EVENT_LIMIT = 1_000_000
#: What one ``k.spawn`` counts for (a thread is much heavier than a call: stop early).
SPAWN_WEIGHT = 20

_SIMSOCK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ZeroTimeLoop(BaseException):
    """Raised inside a program that loops without letting simulated time pass; the run
    stops with a :class:`SimulationError` carrying the same message. A BaseException, so
    that ``except Exception`` in the program's loop does not hide it."""


_ADVICE = {
    "sleep": ("await k.sleep(0) only yields the processor (like sched_yield): it lets other threads "
              "run but takes no time when the profile has no CPU costs. To wait, sleep for an "
              "interval (await k.sleep('1ms')) or block on what you are waiting for (a blocking "
              "recv, await ep.poll(timeout), await h.join())"),
    "compute": ("await k.compute(0) is no work at all: give it the work's duration "
                "(await k.compute('10us')) or block on what you are waiting for"),
    "join": ("join() of a thread that has already finished returns at once: call it once (its value "
             "does not change), or check handle.alive"),
    "spawn": ("k.spawn() in a loop never lets the new threads run until the spawning thread waits: await "
              "something in the loop (a join(), k.sleep, a blocking call), or spawn a bounded number"),
    "eagain": ("a non-blocking call that fails with EAGAIN in a loop is busy polling; without CPU costs "
               "(profiles.without_cpu_costs()) each try takes no time, so nothing else can happen. Block "
               "instead (setblocking(True), or wait with select/poll/epoll), or sleep between tries "
               "(await k.sleep('1ms'))"),
    "call": ("these calls complete at once and cost no simulated time between them: a loop of them "
             "never lets the simulation go on. Wait for something in the loop (a blocking call, "
             "await ep.poll(timeout), await k.sleep('1ms'))"),
}


def _user_line(frames) -> str | None:
    """'file:line: source' of the innermost frame outside simsock among ``frames`` (innermost last)."""
    for frame in reversed(frames):
        path = frame.f_code.co_filename
        if not os.path.abspath(path).startswith(_SIMSOCK_DIR + os.sep):
            src = linecache.getline(path, frame.f_lineno).strip()
            return f"{os.path.basename(path)}:{frame.f_lineno}: {src}" if src else f"{path}:{frame.f_lineno}"
    return None


def _coro_frames(coro) -> list:
    """The frames of a suspended coroutine chain, outermost first."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def _last_calls(sim, thread, n: int = 5) -> list[str]:
    trace = sim.trace
    if not getattr(trace, "want_syscalls", False):
        return []
    rows = getattr(trace, "_rows", None) or []
    out = []
    for i in range(len(rows) - 1, max(-1, len(rows) - 20000), -1):
        r = rows[i]
        if r[1] == "syscall" and r[2] == thread.host.name and r[3] == thread.name:
            out.append(f"{r[4]}()" + (f" -> {r[8]}" if r[8] else ""))
            if len(out) == n:
                break
    return out[::-1]


def message(thread, what: str, count: int, line: str | None, unit: str = "calls") -> str:
    sim = thread.sim
    calls = _last_calls(sim, thread)
    if calls and all(c.endswith("EAGAIN") for c in calls) and what == "call":
        what = "eagain"
    doing = (f"made {count:,} calls without letting time pass" if unit == "calls" else
             f"kept the simulation at this instant for {count:,} events")
    parts = [f"simulated time stopped at t={sim.env.now / 1e9:.9f}s: thread {thread.name!r} on host "
             f"{thread.host.name!r} {doing}"]
    if line:
        parts.append(f"it loops at {line}")
    if calls:
        parts.append("its last calls: " + ", ".join(calls))
    parts.append(_ADVICE.get(what, _ADVICE["call"]))
    return "; ".join(parts)


def kind_of_call(name: str, exc: BaseException | None = None) -> str:
    if type(exc) is BlockingIOError:
        return "eagain"
    return {"sleep": "sleep", "compute": "compute", "join": "join", "spawn": "spawn"}.get(name, "call")


def _guess(what: str, line: str | None) -> str:
    if what == "call" and line:
        for word in ("join", "sleep", "compute", "spawn"):
            if f"{word}(" in line:
                return word
    return what


def stop_suspended(thread) -> ZeroTimeLoop:
    """The exception for a thread whose awaits keep resuming at once (a finished join())."""
    line = _user_line(_coro_frames(thread.coro))
    return ZeroTimeLoop(message(thread, _guess("call", line), thread.ops, line))


def stop_thread(thread, what: str) -> BaseException:
    """The exception that stops ``thread``, raised from inside its step (a call it made)."""
    if thread.fault is not None:
        return thread.fault
    frames = []
    f = sys._getframe(1)
    while f is not None:
        frames.append(f)
        f = f.f_back
    frames.reverse()
    line = _user_line(frames)
    return ZeroTimeLoop(message(thread, _guess(what, line), thread.ops, line))


def stuck_events(sim, count: int) -> SimulationError:
    """The error for ``count`` events at one instant in ``sim``: name the threads involved."""
    threads = []
    seen = set()
    for entry in sorted(sim.env._queue)[:64]:
        if entry[0] != sim.env._now:
            break
        for cb in entry[3].callbacks or ():
            t = getattr(cb, "__self__", None)
            if t is None and getattr(cb, "__defaults__", None):
                t = next((d for d in cb.__defaults__ if type(d).__name__ == "SimThread"), None)
            if type(t).__name__ == "SimThread" and id(t) not in seen:
                seen.add(id(t))
                threads.append(t)
    if not threads:
        threads = [t for h in sim.hosts.values() for t in h.threads if t.state in ("running", "blocked", "runnable")][:1]
    if not threads:
        return SimulationError(f"simulated time stopped at t={sim.env.now / 1e9:.9f}s: {count:,} events happened "
                               f"at this instant without time advancing")
    t = threads[0]
    line = _user_line(_coro_frames(t.coro)) if t.coro is not None else None
    what = "sleep" if line and "sleep(" in line else "compute" if line and "compute(" in line else "call"
    err = SimulationError(message(t, what, count, line, unit="events"))
    err.thread = t.name
    err.host = t.host.name
    return err


#: Classes (and the module function's qualname) whose awaitable calls a program makes.
_SIMSOCK_CALLERS = frozenset({"Socket", "UdpSocket", "TcpSocket", "Kernel", "ThreadHandle", "SimThread", "Poll",
                              "Epoll", "CompletionPort", "IoUring", "Operation", "select"})


class MissingAwait(BaseException):
    """A program called a simsock call that must be awaited and discarded its result: the
    call never happened. Raised at the thread's next call (or when it waits or ends)."""


def unawaited(sim, message: str, filename: str, lineno: int) -> bool:
    """Python reports a coroutine that was never awaited (a RuntimeWarning, issued when the
    discarded coroutine is freed — at once, at the statement that discarded it). During a
    run, inside a thread, that is a missing ``await``: stop the thread with an error that
    names the call and the line. Returns False when it is not a thread's."""
    thread = sim.current_thread if sim is not None else None
    if thread is None or thread.fault is not None:
        return False
    text = str(message)
    call = text.split("'")[1] if text.count("'") >= 2 else ""
    if call.split(".")[0] not in _SIMSOCK_CALLERS:
        # only simsock's own calls: a program's helper coroutine (or garbage of another run
        # collected now) keeps Python's usual warning
        return False
    src = linecache.getline(filename, lineno).strip()
    where = f"{os.path.basename(filename)}:{lineno}" + (f": {src}" if src else "")
    short = call.rsplit(".", 1)[-1]
    fix = f"await {src}" if src and f"{short}(" in src and not src.startswith("await") else f"await ...{short}(...)"
    thread.fault = MissingAwait(
        f"thread {thread.name!r} on host {thread.host.name!r} called {call}() without 'await' at {where} "
        f"(t={sim.env.now / 1e9:.9f}s): the call returned a coroutine that was discarded, so it never "
        f"happened; write {fix!r} (calls that may wait or move data are awaited)")
    thread.ops = STEP_CALL_LIMIT + 1         # the thread's next call (or wait, or end) raises it
    return True
