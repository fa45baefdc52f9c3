"""The kernel handle ``k`` a program receives: its view of the host it runs on.

``k`` is per thread: ``k.thread`` is the calling thread's name, ``k.host`` the host's
name, ``k.now`` the simulated time in seconds. Everything a program does to the OS goes
through it: sockets, sleeping, spawning threads, select/poll/epoll, completion ports and
io_uring. Each mechanism is one module and one method here.
"""

from __future__ import annotations

import errno
import functools
import inspect
from heapq import heappush as _heappush

from simpy.events import Timeout as _Timeout

from simsock import constants as C
from simsock.errors import os_error
from simsock.units import NS_PER_S, parse_time

from . import select_poll
from .addr import check_int, resolve
from .cpu import run_debt
from .epoll import Epoll
from .iocp import CompletionPort
from .tcp_socket import TcpSocket
from .thread import RUNNING, ThreadHandle, thread_cpu_ns, wait_event
from .udp import UdpSocket
from .uring import IoUring
from .watchdog import SPAWN_WEIGHT, STEP_CALL_LIMIT, stop_thread

_new_event = object.__new__


def wrong_kernel(k) -> RuntimeError:
    """The error for a call on ``k`` from anywhere but the thread it was given to."""
    owner = k._thread
    current = k._sim.current_thread
    if current is not None:
        return RuntimeError(
            f"thread {current.name!r} on host {current.host.name!r} used the k of thread {owner.name!r} on host "
            f"{owner.host.name!r}: each program must use the k it was given (async def prog(k, ...)); a thread "
            f"started with k.spawn(fn, ...) or host.spawn(fn, ...) gets its own k as fn's first argument")
    if RUNNING.sim is not None:
        return RuntimeError(f"the k of thread {owner.name!r} on host {owner.host.name!r} was used from a program "
                            f"of another Simulation; each program must use the k it was given")
    return RuntimeError(f"the k of thread {owner.name!r} on host {owner.host.name!r} was used outside its program: "
                        f"k works only inside the thread it was given to, while the simulation runs")


def on_own_thread(fn):
    """Declare a method of the kernel handle: refused with :func:`wrong_kernel`'s error
    unless called from the thread ``k`` was given to (plain or ``async``)."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def guarded_call(self, *args, **kwargs):
            if self._sim.current_thread is not self._thread:
                raise wrong_kernel(self)
            return await fn(self, *args, **kwargs)
        return guarded_call

    @functools.wraps(fn)
    def guarded(self, *args, **kwargs):
        if self._sim.current_thread is not self._thread:
            raise wrong_kernel(self)
        return fn(self, *args, **kwargs)
    return guarded


class Kernel:
    __slots__ = ("_host", "_thread", "_sim")

    def __init__(self, host, thread):
        self._host = host
        self._thread = thread
        self._sim = host.sim

    @property
    def host(self) -> str:
        """The name of the host this thread runs on."""
        return self._host.name

    @property
    def thread(self) -> str:
        return self._thread.name

    @property
    def now(self) -> float:
        """Simulated time in seconds."""
        return self._sim.env.now / NS_PER_S

    @property
    def now_ns(self) -> int:
        return self._sim.env.now

    async def sleep(self, seconds) -> None:
        """Block this thread for ``seconds`` (a number or a string such as "10ms").

        The sleep starts once the CPU the thread has used so far is paid for (its CPU debt,
        kernel/cpu.py), so a thread that works then sleeps is away for work + sleep."""
        # on_own_thread's check, inlined: one coroutine frame less per sleep (buys
        # benchmarks/udp_blast.py, whose sender sleeps between datagrams)
        if self._sim.current_thread is not self._thread:
            raise wrong_kernel(self)
        if type(seconds) is float and 0.0 <= seconds < 1e9:     # fast path for the common case
            delay = int(round(seconds * NS_PER_S))
        else:
            delay = parse_time(seconds, what="sleep time")
        if not delay:
            # sleep(0) is a yield (sched_yield): a system call, and others run first
            self._thread.debt_ns += self._host.cpu.syscall_ns
        # env.timeout(delay + debt), inlined (same event, same heap entry; buys
        # benchmarks/udp_blast.py, whose sender sleeps between datagrams)
        env = self._sim.env
        delay += self._thread.debt_ns
        ev = _new_event(_Timeout)
        ev.env = env
        ev.callbacks = []
        ev._value = None
        ev._delay = delay
        ev._ok = True
        _heappush(env._queue, (env._now + delay, 1, next(env._eid), ev))
        await wait_event(ev)

    @on_own_thread
    async def compute(self, seconds) -> None:
        """Use the CPU for ``seconds`` (a number or a string such as "2ms") of application
        work: the thread holds a core that long (sharing it with others in time slices when
        there are more runnable threads than cores)."""
        if type(seconds) is float and 0.0 <= seconds < 1e9:
            ns = int(round(seconds * NS_PER_S))
        else:
            ns = parse_time(seconds, what="compute time")
        thread = self._thread
        thread.debt_ns += ns
        if ns:
            thread.progress = True
        # compute(0) is no work: in a loop it spins, and a burst that made no progress lasts
        # until the next event (cpu.py, "Spinning"), so time goes on as on a real machine.
        await run_debt()

    @property
    def cpu_time(self) -> float:
        """CPU time this thread has used so far, in seconds (what it ran on a core)."""
        return thread_cpu_ns(self._thread, self._sim.env.now) / NS_PER_S

    @on_own_thread
    def spawn(self, fn, *args, name: str | None = None):
        """Start ``fn(k, *args)`` as a new thread on the same host; returns a handle whose
        ``join()`` can be awaited for the program's return value."""
        thread = self._thread
        thread.debt_ns += self._host.cpu.syscall_ns      # clone()
        thread.ops += SPAWN_WEIGHT
        if thread.ops > STEP_CALL_LIMIT:
            raise stop_thread(thread, "spawn")
        return ThreadHandle(self._host.spawn(fn, *args, name=name))

    @on_own_thread
    def socket(self, family=C.AF_INET, type=C.SOCK_STREAM, proto=0):
        """A new socket, like ``socket.socket(family, type, proto)``."""
        family = check_int(family)
        type = check_int(type)
        proto = check_int(proto)
        self._thread.debt_ns += self._host.cpu.syscall_ns
        nonblock = bool(type & C.SOCK_NONBLOCK)
        base_type = type & ~(C.SOCK_NONBLOCK | C.SOCK_CLOEXEC)
        if family == C.AF_INET6:
            raise os_error(errno.EAFNOSUPPORT, "IPv6 is not modelled by simsock; use AF_INET")
        if family != C.AF_INET:
            raise os_error(errno.EAFNOSUPPORT)
        if base_type == C.SOCK_DGRAM:
            if proto not in (0, C.IPPROTO_UDP):
                raise os_error(errno.EPROTONOSUPPORT)
            sock = UdpSocket(self._host, family, type, proto)
        elif base_type == C.SOCK_STREAM:
            if proto not in (0, C.IPPROTO_TCP):
                raise os_error(errno.EPROTONOSUPPORT)
            sock = TcpSocket(self._host, family, type, proto)
        else:
            raise os_error(errno.EINVAL)
        if nonblock:
            sock._timeout_ns = 0
        if self._sim.trace.want_syscalls:
            sock._record("socket", (family, type, proto), sock, None)
        return sock

    @on_own_thread
    def ioctl(self, sock, request, arg=None):
        """``fcntl.ioctl(sock, request, arg)`` for a socket: FIONREAD/SIOCINQ, SIOCOUTQ,
        SIOCOUTQNSD (names importable from simsock). With ``arg`` the result has fcntl's
        shape (a mutable buffer is filled and 0 returned; bytes give filled bytes back);
        without it, the value as an int."""
        if not hasattr(sock, "_ioctl"):
            raise TypeError(f"ioctl() needs a simsock socket, not {type(sock).__name__}")
        return sock.ioctl(request) if arg is None else sock.ioctl(request, arg)

    @on_own_thread
    def iocp(self, concurrency: int = 0):
        """A new I/O completion port (Windows' CreateIoCompletionPort): at most
        ``concurrency`` associated threads run at once (0 = the host's cores). See
        :mod:`simsock.kernel.iocp`."""
        port = CompletionPort(self._host, concurrency)
        port._trace("iocp", [concurrency], {"fd": port._fd, "concurrency": port.concurrency}, None)
        return port

    @on_own_thread
    def io_uring(self, entries: int = 256):
        """A new io_uring instance with ``entries`` submission slots (rounded up to a
        power of two) and twice as many completion slots. See :mod:`simsock.kernel.uring`."""
        return IoUring(self._host, entries)

    @on_own_thread
    async def select(self, rlist, wlist, xlist, timeout=None):
        """``select.select``: the objects (or descriptor numbers) of the three lists that are
        readable, writable, exceptional; waits up to ``timeout`` seconds (None: forever).
        See :mod:`simsock.kernel.select_poll`."""
        return await select_poll.select(self, rlist, wlist, xlist, timeout)

    @on_own_thread
    def poll(self):
        """A new ``select.poll`` object: ``register``/``modify``/``unregister`` and
        ``await p.poll(timeout_ms)``."""
        return select_poll.Poll(self)

    @on_own_thread
    def epoll(self, sizehint=-1, flags=0):
        """A new epoll instance (``select.epoll``), a file of this host."""
        ep = Epoll(self, sizehint, flags)
        self._thread.debt_ns += self._host.cpu.syscall_ns
        ep._trace("epoll", [], {"fd": ep._fd}, None)
        return ep

    def gethostbyname(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"gethostbyname() argument 1 must be str, not {type(name).__name__}")
        return resolve(self._sim, name)

    async def settle(self) -> None:
        """Wait until the network is quiet: no packet in flight and no protocol timer due
        soon (delayed ACKs, retransmissions). Lets a scenario's outcome not depend on how
        fast a real network would have been."""
        await self._sim._settle()

    def __repr__(self) -> str:
        return f"<Kernel host={self.host!r} thread={self.thread!r}>"
