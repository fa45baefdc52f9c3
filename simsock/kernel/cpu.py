"""The CPU model: cores, a run queue, time slices, and what system calls cost.

A host has ``cores``; its simulated threads run on them. A thread's Python code runs in
zero simulated time, so what occupies a core is the *cost* of what the thread does:

* every system call costs the profile's ``syscall_ns`` (entry and exit, the fd lookup,
  the socket lock: the part of a socket call that does not depend on its size), and a call
  that moves data costs ``copy_ps_per_byte`` per byte copied between user and kernel memory;
* ``await k.compute(seconds)`` is application work;
* a core that changes from one thread to another costs ``context_switch_ns``
  (Linux's __schedule/context_switch: registers, address-space and TLB work, cache misses);
* a thread woken by an event (data arrived, space freed, a connection came) starts to
  run ``wakeup_ns`` after it (try_to_wake_up, the IPI, the idle core's exit); the delay is
  applied by the wait queue that wakes it, so it costs no extra SimPy event.

**CPU debt.** Costs are not paid one call at a time — that would be one SimPy event per
call, and a call that completes at once must schedule nothing (DESIGN.md, "Speed").
Each thread accumulates a *debt*, and pays it by holding its core while simulated time
advances:

* when the thread blocks (a wait that has to wait, ``k.sleep``): the core stays busy for
  the debt *after* the wait was registered, so a wake-up that happens meanwhile is not
  lost; the thread resumes no earlier than the end of the debt. Paying at block time needs
  no event at all (the core's ``busy_until`` is set; nobody needs to be told unless a
  thread is waiting for that core);
* when the debt reaches the simulation's batch bound (``Simulation(cpu_batch="20us")``) at
  an awaited call, or at ``k.compute``: the thread runs a *burst*, one SimPy event.

Effects of the calls in one batch happen at the start of the batch, so the timing error of
any call is at most the batch bound (plus the block-time debt, which is below it). A loop
of non-blocking calls that return EAGAIN reaches the bound every ``cpu_batch / syscall_ns``
calls and burns its core: simulated time advances and utilisation is 100% (C6.5).

**Spinning.** A burst whose batch made no progress — every call since the thread last ran
a burst or blocked returned EAGAIN (or reported nothing ready, for callers that say so with
``charge(..., spin=True)``) — is extended to the next event in the whole simulation, at
most one time slice: until that event nothing can change what such calls return (every
state change is an event), so the thread would spin on identical answers. The core's busy
time and the thread's CPU time are exact; what is *not* reproduced is the number of calls
the program makes while it spins (it makes about ``cpu_batch / syscall_ns`` per quiet
interval instead of ``interval / syscall_ns``). Without this, simulating one second of a
busy-poll loop would execute millions of Python calls.

**Scheduling.** A runnable thread takes a free core — the one it last ran on if it is free
(wake affine), else the lowest-numbered free core — or waits in the host's FIFO run queue.
A core running a burst while threads wait is preempted at the end of the running thread's
slice (``sched_slice_ns``, EEVDF's base slice scaled like Linux's sysctl_sched_base_slice by
1 + log2(min(cores, 8))); the preempted thread goes to the back of the queue with the rest
of its burst (an involuntary context switch). A thread that blocks makes a voluntary one.
Block-time debt payments are not preempted (they are below the batch bound; a larger debt
— many plain calls without an await — is run as a preemptible burst first).

**Accounting.** Per thread: CPU time, voluntary and involuntary context switches,
wake-ups. Per core: busy time, thread changes, busy time per time bin
(:class:`simsock.timeseries.BinnedCounter`, ``Simulation(cpu_bin="10ms")``). Per host: threads
alive over time and their peak. Busy time is accounted when it is committed (a block-time
payment, a burst) and corrected for the part still in the future when read, so that
``busy + idle == elapsed × cores`` holds at every instant.

:func:`charge` is the one function other kernel code calls to make the running thread pay
for work (select/poll/epoll scans, completion handling).
"""

from __future__ import annotations

from collections import deque
from types import coroutine

from simpy.core import Infinity
from simpy.events import Event

from simsock.timeseries import BinnedCounter, StepSeries

from .events import call_later

__all__ = ["charge", "checkpoint", "HostCpu", "Core", "BURST", "effective_slice_ns"]

#: Yielded by a thread to run its CPU debt on its core now (see :func:`run_debt`).
BURST = object()


@coroutine
def run_debt():
    """Await inside a thread: pay its CPU debt now, holding its core (a burst)."""
    yield BURST


def charge(sim, ns: int, spin: bool = False) -> None:
    """Charge ``ns`` nanoseconds of CPU to the running thread (nothing outside a thread).

    ``spin=True`` says the call changed nothing and found nothing (a non-blocking call that
    would block, a poll that found nothing ready): see "Spinning" in the module docstring.
    The debt is paid when the thread next blocks or at the next :func:`checkpoint`.
    """
    thread = sim.current_thread
    if thread is not None:
        thread.debt_ns += ns
        if not spin:
            thread.progress = True


async def checkpoint(sim) -> None:
    """Await after a call that completed at once: run the thread's debt if it has reached
    the batch bound (this is what makes simulated time advance in a polling loop)."""
    thread = sim.current_thread
    if thread is not None and thread.debt_ns >= sim.cpu_batch_ns:
        await run_debt()


def effective_slice_ns(base_ns: int, cores: int) -> int:
    """Linux's sysctl_sched_base_slice after update_sysctl() (SCHED_TUNABLESCALING_LOG):
    base × (1 + ilog2(min(cores, 8)))."""
    return base_ns * (1 + (min(cores, 8).bit_length() - 1))


class Core:
    """One CPU core: who holds it, until when it is busy, and what it has done."""

    __slots__ = ("index", "holder", "busy_until", "last", "slice_start", "busy_ns", "changes", "bins")

    def __init__(self, index: int, bin_ns: int):
        self.index = index
        self.holder = None          # the thread running on it (its Python code or a burst)
        self.busy_until = 0         # end of the last committed busy interval
        self.last = None            # the thread that ran on it last (context switch cost)
        self.slice_start = 0        # when the holder got the core
        self.busy_ns = 0            # committed busy time (may extend past now: see busy_at)
        self.changes = 0            # times it changed from one thread to another
        self.bins = BinnedCounter(bin_ns, name=f"core{index}")

    def busy_at(self, now: int) -> int:
        """Busy time up to ``now``."""
        ahead = self.busy_until - now
        return self.busy_ns - ahead if ahead > 0 else self.busy_ns

    def free(self, now: int) -> bool:
        return self.holder is None and self.busy_until <= now


def _add_bins(bins: BinnedCounter, start: int, length: int, sign: int = 1) -> None:
    """Spread ``length`` ns starting at ``start`` over the bins it covers."""
    width = bins.bin_ns
    while length > 0:
        room = width - start % width
        part = room if room < length else length
        bins.add(start, sign * part)
        start += part
        length -= part


class HostCpu:
    """A host's cores and run queue. Threads call into it when they resume, block, burst
    and exit (see :class:`simsock.kernel.thread.SimThread`)."""

    def __init__(self, host):
        sim = host.sim
        prof = host.profile
        self.host = host
        self.sim = sim
        self.env = sim.env
        self.cores = [Core(i, sim.cpu_bin_ns) for i in range(host.cores)]
        self.runqueue: deque = deque()
        self.syscall_ns = prof.syscall_ns
        self.copy_ps = prof.copy_ps_per_byte
        #: bytes the socket calls of this host's threads copied between user and kernel
        #: memory (send/recv and their variants; the completion mechanisms count their own)
        self.copied_bytes = 0
        self.switch_ns = prof.context_switch_ns
        self.wakeup_ns = prof.wakeup_ns
        self.slice_ns = effective_slice_ns(prof.sched_slice_ns, host.cores)
        self.batch_ns = sim.cpu_batch_ns
        self.bin_ns = sim.cpu_bin_ns
        self._dispatch_at = None     # time of the pending dispatch event, if any
        self.threads_alive = 0
        self.threads_peak = 0
        self.threads_series = StepSeries("q", name=f"{host.name}:threads")
        self.spawned = 0

    # -- threads coming and going -------------------------------------------------------------
    def thread_started(self, thread) -> None:
        self.spawned += 1
        self.threads_alive += 1
        if self.threads_alive > self.threads_peak:
            self.threads_peak = self.threads_alive
        self.threads_series.record(self.env.now, self.threads_alive)

    def exited(self, thread) -> None:
        """The thread's program returned: pay its last debt and give the core up."""
        self.threads_alive -= 1
        self.threads_series.record(self.env.now, self.threads_alive)
        if thread.core is not None:
            self._release(thread, thread.debt_ns)

    # -- getting a core ---------------------------------------------------------------------
    def _free_core(self, thread):
        now = self.env.now
        last = thread.last_core
        if last is not None and last.holder is None and last.busy_until <= now:
            return last
        for core in self.cores:
            if core.holder is None and core.busy_until <= now:
                return core
        return None

    def _take(self, core: Core, thread) -> None:
        now = self.env._now
        core.holder = thread
        core.slice_start = now
        if core.last is not thread:
            if core.last is not None:
                core.changes += 1
                thread.debt_ns += self.switch_ns
            core.last = thread
        thread.core = core
        thread.last_core = core

    def resume(self, thread, event: Event) -> None:
        """``thread`` became runnable (its wait ended, or it was started): run it on a free
        core now, or queue it."""
        if not self.runqueue:
            core = thread.last_core
            if core is not None and core.holder is None and core.busy_until <= self.env._now and core.last is thread:
                # Fast path: back on its own idle core, no switch.
                core.holder = thread
                core.slice_start = self.env._now
                thread.core = core
                thread._wake(event, True)
                return
            core = self._free_core(thread)
        else:
            core = None
        if core is None:
            thread.state = "runnable"
            thread.cont = event
            self.runqueue.append(thread)
            self._need_core()
            return
        self._take(core, thread)
        thread._wake(event, True)

    # -- giving the core up -------------------------------------------------------------------
    def _commit(self, core: Core, thread, start: int, length: int) -> None:
        """Account ``length`` ns of ``thread`` on ``core`` from ``start`` (may be future)."""
        end = start + length
        core.busy_ns += length
        core.busy_until = end
        thread.cpu_ns += length
        thread.run_until = end
        bins = core.bins
        width = bins.bin_ns
        i = start // width
        values = bins.bins
        if i < len(values) and (end - 1) // width == i:
            values[i] += length                 # the common case: inside one existing bin
        else:
            _add_bins(bins, start, length)

    def _release(self, thread, debt: int) -> None:
        """Give the core up after paying ``debt`` on it (without an event)."""
        core = thread.core
        now = self.env._now
        thread.debt_ns = 0
        thread.progress = False
        if debt:
            self._commit(core, thread, now, debt)
        thread.ready_at = now + debt
        core.holder = None
        thread.core = None
        if self.runqueue:
            self._need_core()

    def block(self, thread, target: Event) -> None:
        """``thread`` waits for ``target``: pay its debt, release the core, and be woken by
        ``target`` (which is already registered, so nothing is lost meanwhile)."""
        debt = thread.debt_ns
        if debt > self.batch_ns:
            self.burst(thread, then=target)      # a large debt is preemptible
            return
        thread.state = "blocked"
        thread.nvcsw += 1
        core = thread.core
        now = self.env._now
        thread.debt_ns = 0
        thread.progress = False
        end = now + debt
        if debt:
            # self._commit(core, thread, now, debt), inlined (every blocking call pays its
            # debt here; buys benchmarks/udp_blast.py and c10k)
            core.busy_ns += debt
            core.busy_until = end
            thread.cpu_ns += debt
            thread.run_until = end
            bins = core.bins
            width = bins.bin_ns
            i = now // width
            values = bins.bins
            if i < len(values) and (end - 1) // width == i:
                values[i] += debt
            else:
                _add_bins(bins, now, debt)
        thread.ready_at = end
        core.holder = None
        thread.core = None
        target.callbacks.append(thread._wake)
        if self.runqueue:
            self._need_core()

    # -- bursts -------------------------------------------------------------------------------
    def burst(self, thread, then: Event | None = None) -> None:
        """Run the thread's debt on its core now (one event); then continue its program, or
        (``then``) block on ``then``."""
        env = self.env
        now = env.now
        length = thread.debt_ns
        if not thread.progress:
            # Spinning: nothing can change before the next event anywhere (module docstring).
            horizon = env.peek()
            if horizon == Infinity:
                horizon = now + self.slice_ns
            stretch = min(horizon - now, self.slice_ns)
            if stretch > length:
                thread.spun_ns += stretch - length
                length = stretch
        thread.debt_ns = 0
        thread.progress = False
        thread.then = then
        thread.bursts += 1
        self._commit(thread.core, thread, now, length)
        self._arm(thread)

    def _arm(self, thread) -> None:
        """Schedule the event that ends the thread's current burst, or its slice if threads
        are waiting for a core."""
        env = self.env
        now = env.now
        end = thread.run_until
        at = end
        if self.runqueue:
            slice_end = thread.core.slice_start + self.slice_ns
            if slice_end < end:
                at = slice_end if slice_end > now else now
        thread.token += 1
        thread.tick_at = at
        call_later(env, at - now, lambda _ev, thread=thread, token=thread.token: self._tick(thread, token))

    def _tick(self, thread, token: int) -> None:
        if token != thread.token:
            return                           # re-armed since
        now = self.env.now
        if now < thread.run_until:
            if self.runqueue:
                self._preempt(thread)
            else:
                self._arm(thread)
            return
        then = thread.then
        thread.then = None
        if then is None:
            thread._wake(_DONE, True)         # continue the program, still on its core
            return
        # The burst paid a blocking call's debt; now wait (or go on if it already happened).
        if then.callbacks is None:
            thread._wake(then, True)
            return
        thread.state = "blocked"
        thread.nvcsw += 1
        self._release(thread, 0)
        then.callbacks.append(thread._wake)
        for observer in thread.observers:     # it stops running only now (thread.py)
            observer.thread_blocking(thread, then)

    def _preempt(self, thread) -> None:
        """The running burst's slice is over and threads wait: to the back of the queue."""
        core = thread.core
        now = self.env.now
        left = thread.run_until - now
        # Un-commit the part not run.
        core.busy_ns -= left
        core.busy_until = now
        thread.cpu_ns -= left
        thread.run_until = now
        _add_bins(core.bins, now, left, -1)
        thread.nivcsw += 1
        thread.token += 1
        core.holder = None
        thread.core = None
        thread.state = "runnable"
        thread.cont = left                    # an int: the rest of a burst
        self.runqueue.append(thread)
        self._dispatch()

    # -- the run queue --------------------------------------------------------------------------
    def _need_core(self) -> None:
        """Threads are queued: make sure something happens when a core may become free."""
        env = self.env
        now = env.now
        soonest = None
        for core in self.cores:
            holder = core.holder
            if holder is None:
                t = core.busy_until if core.busy_until > now else now
                if soonest is None or t < soonest:
                    soonest = t
            elif holder.tick_at is not None and holder.core is core and holder.run_until > now:
                # In a burst: bring its tick forward to the end of its slice.
                slice_end = core.slice_start + self.slice_ns
                if slice_end < holder.tick_at:
                    self._arm(holder)
        if soonest is not None and (self._dispatch_at is None or soonest < self._dispatch_at):
            self._dispatch_at = soonest
            call_later(env, soonest - now, lambda _ev, at=soonest: self._dispatch_event(at))

    def _dispatch_event(self, at: int) -> None:
        if self._dispatch_at == at:
            self._dispatch_at = None
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free cores to queued threads, first come first served."""
        queue = self.runqueue
        while queue:
            core = self._free_core(queue[0])
            if core is None:
                break
            thread = queue.popleft()
            self._take(core, thread)
            cont = thread.cont
            thread.cont = None
            if type(cont) is int:            # the rest of a preempted burst
                thread.debt_ns += cont
                thread.progress = True
                self.burst(thread, then=thread.then)
            else:
                thread._wake(cont, True)
        if queue:
            self._need_core()

    # -- reading --------------------------------------------------------------------------------
    def busy_ns(self, now: int | None = None) -> int:
        now = self.env.now if now is None else now
        return sum(core.busy_at(now) for core in self.cores)

    def stats(self) -> dict:
        now = self.env.now
        busy = [core.busy_at(now) for core in self.cores]
        threads = self.host.threads
        return {
            "cores": len(self.cores),
            "busy_ns": sum(busy),
            "idle_ns": now * len(self.cores) - sum(busy),
            "utilisation": (sum(busy) / (now * len(self.cores))) if now else 0.0,
            "per_core_busy_ns": busy,
            "core_changes": sum(core.changes for core in self.cores),
            "voluntary_switches": sum(t.nvcsw for t in threads),
            "involuntary_switches": sum(t.nivcsw for t in threads),
            "wakeups": sum(t.wakeups for t in threads),
            "threads_spawned": self.spawned,
            "threads_alive": self.threads_alive,
            "threads_peak": self.threads_peak,
            "stack_bytes_peak": self.threads_peak * self.host.profile.thread_stack_bytes,
            "runqueue": len(self.runqueue),
            "slice_ns": self.slice_ns,
        }

    def utilisation(self, until: int | None = None) -> tuple[list[int], list[float]]:
        """(bin start times in ns, utilisation of the host's cores in each bin, 0..1)."""
        until = self.env.now if until is None else until
        n = -(-until // self.bin_ns) if until else 0
        total = [0] * n
        for core in self.cores:
            values = core.bins.bins
            for i in range(min(n, len(values))):
                total[i] += values[i]
        cap = self.bin_ns * len(self.cores)
        return [i * self.bin_ns for i in range(n)], [v / cap for v in total]


class _Done:
    """The 'event' a thread resumes with after a burst: succeeded, value None."""
    __slots__ = ()
    _ok = True
    _value = None
    callbacks = None


_DONE = _Done()
