"""Simulated threads: ``async def`` programs driven by SimPy events.

A program is a coroutine. When it awaits a simsock call that has to wait (a blocking
``recv``, ``k.sleep``), the call's ``__await__`` yields one SimPy event and the thread
resumes when that event is processed; a call that can complete at once never yields, so it
costs no SimPy event at all (DESIGN.md, "Speed"). The thread is driven directly from the
event's callback list — there is no SimPy ``Process`` and no generator wrapper in between.

The thread that is running is ``sim.current_thread`` for the duration of its step, so
calls made from it (and traces) know who made them.

An exception escaping a program stops the simulation: :meth:`Simulation.run` raises
:class:`~simsock.errors.SimulationError` naming the host and thread, with the original
exception (and its traceback) as ``__cause__``.
"""

from __future__ import annotations

import sys
from types import coroutine

import simpy

from simsock.errors import SimulationError
from simsock.units import NS_PER_S

from .cpu import BURST, run_debt
from .watchdog import STEP_CALL_LIMIT, MissingAwait, ZeroTimeLoop, stop_suspended


class ThreadFailed(Exception):
    """Raised out of SimPy's event loop when a program raises; Simulation.run converts it."""

    def __init__(self, thread: "SimThread", exc: BaseException):
        super().__init__(thread, exc)
        self.thread = thread
        self.exc = exc


@coroutine
def wait_event(event: simpy.Event):
    """Await a SimPy event from inside a program; returns the event's value."""
    return (yield event)


class _Running:
    """The Simulation whose ``run`` is executing (None between runs): a call on an object of
    another simulation, made from this one's programs, is refused instead of quietly acting
    on a world that is not running (kernel/socket.py)."""

    __slots__ = ("sim",)

    def __init__(self):
        self.sim = None


RUNNING = _Running()


def foreign_use(obj, owner_host, thread) -> RuntimeError:
    """The error for a call on ``obj`` (of ``owner_host``) from ``thread`` of another host,
    or (thread None) from another simulation."""
    if thread is not None:
        where = f"by thread {thread.name!r} on host {thread.host.name!r}"
        fix = ("each host has its own sockets and descriptors, as separate machines do: create the "
               "socket on the host that uses it (k.socket in a program spawned there)")
    else:
        where = "from a program of another Simulation"
        fix = "objects of one Simulation cannot be used in another: create them inside the simulation that runs"
    return RuntimeError(f"{obj!r} belongs to host {owner_host.name!r}; it was used {where}; {fix}")


def closing_program() -> bool:
    """True while a program's coroutine is being closed (``GeneratorExit`` is propagating
    through its ``finally``): the garbage collector finalising a program of a simulation that
    no longer runs, perhaps while another one does. Its clean-up calls (``sock.close()``) act
    on its own simulation's objects and are not a foreign use."""
    return isinstance(sys.exc_info()[1], GeneratorExit)


def check_owner(obj, sim, host) -> None:
    """Refuse a call on ``obj`` (of ``host`` in ``sim``) from a thread of another host or from
    another simulation's program, with :func:`foreign_use`'s error."""
    thread = sim.current_thread
    if thread is not None:
        if thread.host is not host:
            raise foreign_use(obj, host, thread)
    elif RUNNING.sim is not None and RUNNING.sim is not sim and not closing_program():
        raise foreign_use(obj, host, None)


def _with_hint(exc: BaseException) -> BaseException:
    """``exc``, or for the usual mistakes of a program written for simsock a copy of it that
    says what to write instead (the original stays its ``__cause__``)."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and "event loop" in text:
        hint = (f"{text} — this program called an asyncio function; simsock threads are not "
                f"asyncio tasks: use k.sleep() and simsock socket calls instead")
    elif isinstance(exc, TypeError) and "can't be used in 'await' expression" in text:
        hint = (f"{text} — this program awaited a call that never waits: bind, listen, close, "
                f"setsockopt, getsockname, setblocking, settimeout, fileno, k.socket, k.epoll, "
                f"register/modify/unregister, associate... are plain calls; drop the 'await'")
    elif isinstance(exc, (TypeError, AttributeError)) and "coroutine" in text:
        hint = (f"{text} — a call that may wait (recv, send, sendto, accept, connect, k.sleep, "
                f"select, poll, get...) returns a coroutine until it is awaited: write "
                f"'await', e.g. data = await s.recv(4096)")
    else:
        return exc
    try:
        new = type(exc)(hint)
    except Exception:           # a subclass with another signature: keep it as it is
        return exc
    new.__cause__ = exc
    return new


def thread_cpu_ns(thread, now: int) -> int:
    """CPU time of ``thread`` up to ``now`` (its committed time may extend past now)."""
    ahead = thread.run_until - now
    return thread.cpu_ns - ahead if ahead > 0 else thread.cpu_ns


class SimThread:
    """One simulated thread running one program coroutine on a host."""

    __slots__ = ("sim", "host", "name", "coro", "done", "result", "state", "tid", "_started_ns", "cpu_ns",
                 "observers", "debt_ns", "progress", "core", "last_core", "ready_at", "run_until", "token", "tick_at",
                 "then", "cont", "nvcsw", "nivcsw", "wakeups", "bursts", "spun_ns", "ops", "fault", "__weakref__")

    def __init__(self, sim, host, name: str, coro, tid: int):
        self.sim = sim
        self.host = host
        self.name = name
        self.coro = coro
        self.tid = tid
        self.done = simpy.Event(sim.env)     # succeeds with the program's return value
        self.result = None
        self.state = "new"                   # new -> running -> blocked <-> running -> exited
        self._started_ns = None
        self.cpu_ns = 0
        #: Mechanisms told when the thread blocks, resumes and exits (a completion port
        #: counts its running threads: iocp.py): each has ``thread_blocking(thread, target)``,
        #: ``thread_resuming(thread)`` and ``thread_exited(thread)``. A tuple, replaced on change.
        self.observers = ()
        # CPU model (kernel/cpu.py): debt not yet run on a core, scheduling state, counters.
        self.debt_ns = 0
        self.progress = False                # a call since the last burst/block did something
        self.core = None                     # the core held while running
        self.last_core = None
        self.ready_at = 0                    # end of the debt paid when it last blocked
        self.run_until = 0                   # end of its last committed CPU interval
        self.token = 0                       # identifies the current burst's end event
        self.tick_at = None
        self.then = None                     # the wait a burst is paying for
        self.cont = None                     # what to resume with when dispatched from the run queue
        self.nvcsw = 0                       # voluntary context switches (it blocked)
        self.nivcsw = 0                      # involuntary ones (preempted at the end of its slice)
        self.wakeups = 0
        self.bursts = 0
        self.spun_ns = 0                     # CPU time added by spin extension (cpu.py)
        self.ops = 0                         # calls since it last resumed from an event (watchdog.py)
        self.fault = None                    # an error found outside its calls (a discarded call), raised next

    @property
    def cpu_time(self) -> float:
        """CPU time the thread has used so far, in seconds (as ``ThreadHandle.cpu_time``:
        ``host.spawn`` returns the thread itself, ``k.spawn`` a handle)."""
        return thread_cpu_ns(self, self.sim.env.now) / 1e9

    @property
    def context_switches(self) -> dict:
        """``{"voluntary": n, "involuntary": m}`` (see ``ThreadHandle.context_switches``)."""
        return {"voluntary": self.nvcsw, "involuntary": self.nivcsw}

    async def join(self):
        """Wait (inside another program) for this thread to finish; returns its program's
        return value — as ``ThreadHandle.join`` for a thread started with ``k.spawn``."""
        return await ThreadHandle(self).join()

    @property
    def alive(self) -> bool:
        return self.state not in ("exited", "failed")

    def start(self) -> None:
        """Schedule the first step now (after everything already scheduled for this instant)."""
        ev = simpy.Event(self.sim.env)
        ev.callbacks.append(self._wake)
        ev.succeed(None)
        self.host.cpu.thread_started(self)

    def _wake(self, event: simpy.Event, on_core: bool = False) -> None:
        """What the thread waited for happened: run it on a core (kernel/cpu.py) once the
        debt it paid when it blocked is over, then step its program. ``on_core``: the CPU
        model has given it a core already (HostCpu.resume, a burst's end, the run queue):
        step at once.

        The wake-up and the step are one frame: every blocked call resumes through here
        (buys benchmarks/compare.py udp, two wake-ups per datagram, and c10k)."""
        sim = self.sim
        if not on_core:
            env = sim.env
            if self.observers:
                # The wait is over: from now the thread is runnable (a completion port counts it
                # as running even while it waits for a core: iocp.py).
                for observer in self.observers:
                    observer.thread_resuming(self)
            if self.ready_at > env._now:
                later = env.timeout(self.ready_at - env._now)
                later.callbacks.append(lambda _ev, event=event: self._wake(event))
                return
            if self.state != "new":
                self.wakeups += 1
            cpu = self.host.cpu
            core = self.last_core
            # HostCpu.resume's fast path, inlined: back on its own idle core, no switch.
            if (cpu.runqueue or core is None or core.holder is not None or core.busy_until > env._now
                    or core.last is not self):
                cpu.resume(self, event)
                return
            core.holder = self
            core.slice_start = env._now
            self.core = core
        previous = sim.current_thread
        sim.current_thread = self
        if self._started_ns is None:
            self._started_ns = sim.env._now
        self.state = "running"
        self.ops = 0
        try:
            while True:
                try:
                    if event._ok:
                        target = self.coro.send(event._value)
                    else:
                        event._defused = True
                        target = self.coro.throw(event._value)
                except StopIteration as stop:
                    if self.fault is not None:
                        self.state = "failed"
                        raise ThreadFailed(self, self.fault)
                    self._exit(stop.value)
                    return
                except BaseException as exc:
                    self.state = "failed"
                    raise ThreadFailed(self, _with_hint(exc)) from exc
                if self.ops > STEP_CALL_LIMIT or (not isinstance(target, simpy.Event) and target is not BURST):
                    raise self._refused(target)     # a zero-time loop, a fault, or a foreign await
                if target is BURST:               # pay the CPU debt now (kernel/cpu.py)
                    self.host.cpu.burst(self)
                    return
                if target.callbacks is None:      # already processed: resume at once
                    event = target
                    self.ops += 1
                    continue
                self.host.cpu.block(self, target)
                if self.observers and self.state == "blocked":
                    # A thread that first runs a burst for its debt (cpu.py) blocks at the
                    # burst's end: HostCpu._tick tells the observers then.
                    for observer in self.observers:
                        observer.thread_blocking(self, target)
                return
        finally:
            sim.current_thread = previous

    def _step(self, event: simpy.Event) -> None:
        """Step the program of a thread that holds its core (see :meth:`_wake`)."""
        self._wake(event, True)

    def _refused(self, target) -> ThreadFailed:
        """Stop the program: it made too many calls without time passing (or a fault was
        found: watchdog.py), or it awaited something that is not a simsock call."""
        if self.ops > STEP_CALL_LIMIT:
            err = self.fault or stop_suspended(self)     # read from the program's frames, before close
            self.coro.close()
            self.state = "failed"
            return ThreadFailed(self, err)
        self.coro.close()
        self.state = "failed"
        return ThreadFailed(self, TypeError(
            f"a simulated thread awaited {target!r}; programs may only await simsock calls "
            f"(k.sleep, socket methods, select/poll/epoll). asyncio functions such as "
            f"asyncio.sleep do not run inside simsock."))

    def _exit(self, value) -> None:
        self.state = "exited"
        self.result = value
        for observer in self.observers:
            observer.thread_exited(self)
        self.host.cpu.exited(self)
        self.done.succeed(value)

    def __repr__(self) -> str:
        return f"<SimThread {self.name!r} on {self.host.name!r} ({self.state})>"


class ThreadHandle:
    """A spawned thread, as seen by the program that spawned it."""

    __slots__ = ("_thread",)

    def __init__(self, thread):
        self._thread = thread

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def alive(self) -> bool:
        return self._thread.state not in ("exited", "failed")

    @property
    def cpu_time(self) -> float:
        """CPU time the thread has used so far, in seconds."""
        t = self._thread
        return thread_cpu_ns(t, t.sim.env.now) / NS_PER_S

    @property
    def cpu_ns(self) -> int:
        t = self._thread
        return thread_cpu_ns(t, t.sim.env.now)

    @property
    def context_switches(self) -> dict:
        """``{"voluntary": n, "involuntary": m}``, as Linux's /proc/PID/status counts them
        (voluntary: it blocked; involuntary: it was preempted at the end of its slice)."""
        return {"voluntary": self._thread.nvcsw, "involuntary": self._thread.nivcsw}

    @property
    def wakeups(self) -> int:
        return self._thread.wakeups

    async def join(self):
        """Wait for the thread to finish; returns its program's return value."""
        sim = self._thread.sim
        caller = sim.current_thread
        if caller is not None:
            caller.debt_ns += caller.host.cpu.syscall_ns      # pthread_join: a futex wait
            if self._thread.done.callbacks is None and caller.debt_ns >= sim.cpu_batch_ns:
                await run_debt()
        return await wait_event(self._thread.done)

    def __repr__(self) -> str:
        return f"<ThreadHandle {self._thread.name!r} ({self._thread.state})>"


def failure_error(failed: ThreadFailed) -> SimulationError:
    t = failed.thread
    exc = failed.exc
    if isinstance(exc, (ZeroTimeLoop, MissingAwait)):
        err = SimulationError(str(exc))
        err.thread = t.name
        err.host = t.host.name
        return err
    err = SimulationError(f"thread {t.name!r} on host {t.host.name!r} failed at t={t.sim.env.now / 1e9:.9f}s: "
                          f"{type(exc).__name__}: {exc}")
    err.thread = t.name
    err.host = t.host.name
    return err
