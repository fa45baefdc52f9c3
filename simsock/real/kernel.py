"""The kernel handle ``k`` a program receives on the real backend, and its notification objects.

It has the same calls as the simulated kernel's handle: ``k.now``, ``k.host``, ``k.thread``,
``await k.sleep(s)``, ``k.spawn(fn, *args)``, ``k.socket(...)``, ``k.gethostbyname(name)``,
``await k.settle()``, ``await k.compute(s)``, ``await k.select(...)``, ``k.poll()``,
``k.epoll()``. ``k.iocp()`` and ``k.io_uring()`` raise ``EOPNOTSUPP``: completion ports are
Windows', the machine this runs on is Linux, and Python has no io_uring binding.

select, poll and epoll are the :mod:`select` module's. Each of them also watches the world's
wake-up pipe, which becomes readable when the run is stopped (a thread failed, or the time
bound passed), so no program stays blocked in a wait after its world has ended; the pipe
never appears in a result.

Trace call names: ``socket``, ``select``, ``poll.register``/``modify``/``unregister``/``poll``,
``epoll`` (creation; result ``{"fd": n}``), ``epoll.register``/``modify``/``unregister``/
``poll``/``close``. File descriptors in poll and epoll arguments and results are rendered as
``{"fd": n}`` so that normalisation can tell them from other integers.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import select as _select
import socket as _socket
import termios
import threading
import time

from simsock.constants import AF_INET, SOCK_STREAM
from simsock.real.sockets import RealSocket, plain, recorded_call


def _fd_of(obj) -> int:
    if isinstance(obj, int):
        return obj
    if isinstance(obj, RealSocket):
        return obj._sock.fileno()
    return obj.fileno()


class ThreadHandle:
    """A thread started by ``spawn``; ``await handle.join()`` waits for it and returns its result."""

    def __init__(self, world, host, name: str, fn, args):
        self.world = world
        self.host = host
        self.name = name
        self.fn = fn
        self.args = args
        self.result = None
        self.error: BaseException | None = None
        self.stopped = False         # still running when the world ended
        self.failed_ns = 0
        self.done = threading.Event()
        self.current_call: str | None = None
        self.settled = threading.Event()   # reached a call that may wait (see RealWorld.run)
        self.os_thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.os_thread is not None and not self.done.is_set()

    async def join(self, timeout: float | None = None):
        caller = getattr(self.world._local, "thread", None)
        if caller is not None:
            caller.settled.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done.is_set():
            self.world._check_abort()
            wait = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            if self.done.wait(wait):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("timed out")
        self.world._check_abort()
        return self.result

    def __repr__(self) -> str:
        return f"<ThreadHandle {self.name} on {self.host.name}>"


class RealKernel:
    """What a program on the real backend calls ``k``."""

    def __init__(self, world, host, thread: ThreadHandle):
        self._world = world
        self._host = host
        self._thread = thread

    @property
    def now(self) -> float:
        """Seconds since the run started."""
        return self._world._now_ns() / 1e9

    @property
    def now_ns(self) -> int:
        """Nanoseconds since the run started."""
        return self._world._now_ns()

    @property
    def host(self) -> str:
        return self._host.name

    @property
    def thread(self) -> str:
        return self._thread.name

    async def sleep(self, seconds: float) -> None:
        self._world._check_abort()
        self._thread.settled.set()
        if self._world._abort_event.wait(max(0.0, float(seconds))):
            self._world._check_abort()

    async def compute(self, seconds: float) -> None:
        """Busy-loop on this CPU for ``seconds`` (application work)."""
        end = time.perf_counter() + float(seconds)
        while time.perf_counter() < end:
            if self._world._aborting:
                self._world._check_abort()

    def spawn(self, fn, *args, name: str | None = None) -> ThreadHandle:
        self._world._check_abort()
        return self._world._spawn(self._host, fn, args, name, start=True)

    def gethostbyname(self, name: str) -> str:
        return self._world.resolve(name)

    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> RealSocket:
        world = self._world
        world._check_abort()
        try:
            sock = _socket.socket(family, type, proto)
        except OSError as exc:
            world._record("socket", -1, [family, type, proto], None, exc)
            raise
        wrapped = RealSocket(world, self._host, sock)
        world._adopt_socket(wrapped)
        world._record("socket", sock.fileno(), [family, type, proto], {"fd": sock.fileno()}, None)
        return wrapped

    def ioctl(self, sock, request, arg=None):
        """``fcntl.ioctl`` on a socket of this world (see the simulator's ``k.ioctl``)."""
        if not isinstance(sock, RealSocket):
            raise TypeError(f"ioctl() needs a socket of this world, not {type(sock).__name__}")
        return sock.ioctl(request) if arg is None else sock.ioctl(request, arg)

    async def settle(self) -> None:
        """Wait until this host's sockets have nothing left to send (SIOCOUTQ is 0), at
        most 200 ms, then 20 ms more for the last packets to be delivered."""
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            if all(_outq(s) == 0 for s in self._world._sockets_of(self._host)):
                break
            if self._world._abort_event.wait(0.002):
                self._world._check_abort()
        if self._world._abort_event.wait(0.02):
            self._world._check_abort()

    async def select(self, rlist, wlist, xlist, timeout: float | None = None):
        world = self._world
        world._check_abort()
        args = [plain(list(rlist)) if isinstance(rlist, (list, tuple)) else plain(rlist),
                plain(list(wlist)) if isinstance(wlist, (list, tuple)) else plain(wlist),
                plain(list(xlist)) if isinstance(xlist, (list, tuple)) else plain(xlist), timeout]
        # Hand select.select the real sockets (and anything else as given, so that CPython
        # raises its own errors for bad items), then map its results back to our objects.
        wrapped = {}

        def unwrap(seq):
            try:
                items = list(seq)
            except TypeError:
                return seq
            out = []
            for obj in items:
                real = obj._sock if isinstance(obj, RealSocket) else obj
                wrapped[id(real)] = obj
                out.append(real)
            return out
        r_in, w_in, x_in = unwrap(rlist), unwrap(wlist), unwrap(xlist)
        wake = world._wake_r

        def do():
            r, w, x = _select.select(r_in + [wake] if isinstance(r_in, list) else r_in, w_in, x_in, timeout)
            back = lambda objs: [wrapped.get(id(o), o) for o in objs if o is not wake]   # noqa: E731
            return back(r), back(w), back(x)
        return recorded_call(world, "select", -1, args, do)

    def poll(self) -> "RealPoll":
        return RealPoll(self._world)

    def epoll(self, sizehint: int = -1, flags: int = 0) -> "RealEpoll":
        world = self._world
        world._check_abort()
        try:
            ep = _select.epoll(sizehint, flags)
        except OSError as exc:
            world._record("epoll", -1, [], None, exc)
            raise
        wrapped = RealEpoll(world, ep)
        world._record("epoll", ep.fileno(), [], {"fd": ep.fileno()}, None)
        return wrapped

    def iocp(self, *args, **kwargs):
        """Always fails: completion ports are Windows'; the real backend runs on Linux."""
        raise OSError(_errno.EOPNOTSUPP,
                      "I/O completion ports exist only in the simulator: Windows has them, Linux (which the "
                      "real backend runs on) does not; run this program with simsock.Simulation(...) instead")

    def io_uring(self, *args, **kwargs):
        """Always fails: the real backend does not drive io_uring."""
        raise OSError(_errno.EOPNOTSUPP,
                      "io_uring exists only in the simulator: Python's standard library has no io_uring binding, "
                      "so the real backend cannot submit requests to the host kernel's io_uring; run this program "
                      "with simsock.Simulation(...) instead")


def _outq(sock: RealSocket) -> int:
    """Bytes not yet sent (SIOCOUTQ); 0 for sockets where the question has no answer."""
    fd = sock._sock.fileno()
    if fd < 0:
        return 0
    buf = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.TIOCOUTQ, buf)   # SIOCOUTQ == TIOCOUTQ on Linux
    except OSError:
        return 0
    return int.from_bytes(buf, "little", signed=True)


def _events_for_trace(events):
    return [[{"fd": f}, ev] for f, ev in events]


class _RealWatchSet:
    """What :class:`RealPoll` and :class:`RealEpoll` share: a :mod:`select` object
    (``_obj``) that also watches the world's wake-up pipe, whose calls are recorded as
    ``<_name>.register`` etc. on descriptor ``_trace_fd()``."""

    _name = ""

    def __init__(self, world, obj):
        self._world = world
        self._obj = obj

    def _trace_fd(self) -> int:
        return -1

    def _plain_call(self, call, args, fn):
        """A call that never waits: recorded, but not shown as the thread's current call."""
        world = self._world
        world._check_abort()
        fd = self._trace_fd()
        try:
            result = fn()
        except BaseException as exc:
            world._record(call, fd, args, None, exc)
            raise
        world._record(call, fd, args, None, None)
        return result

    def _register(self, fd, eventmask: int) -> None:
        n = _fd_of(fd)
        return self._plain_call(f"{self._name}.register", [{"fd": n}, eventmask],
                                lambda: self._obj.register(n, eventmask))

    def modify(self, fd, eventmask: int) -> None:
        n = _fd_of(fd)
        return self._plain_call(f"{self._name}.modify", [{"fd": n}, eventmask], lambda: self._obj.modify(n, eventmask))

    def unregister(self, fd) -> None:
        n = _fd_of(fd)
        return self._plain_call(f"{self._name}.unregister", [{"fd": n}], lambda: self._obj.unregister(n))

    def _wait(self, fd: int, args: list, fn):
        """poll.poll / epoll.poll: the real wait ``fn()``, without the wake-up pipe."""
        wake_fd = self._world._wake_r
        return recorded_call(self._world, f"{self._name}.poll", fd, args,
                             lambda: [(f, ev) for f, ev in fn() if f != wake_fd], _events_for_trace)


class RealPoll(_RealWatchSet):
    """``select.poll`` with recording; ``await p.poll(timeout_ms)``."""

    _name = "poll"

    def __init__(self, world):
        super().__init__(world, _select.poll())
        self._obj.register(world._wake_r, _select.POLLIN)

    def register(self, fd, eventmask: int = _select.POLLIN | _select.POLLPRI | _select.POLLOUT) -> None:
        return self._register(fd, eventmask)

    async def poll(self, timeout_ms: float | None = None):
        return self._wait(-1, [timeout_ms], lambda: self._obj.poll(timeout_ms))


class RealEpoll(_RealWatchSet):
    """``select.epoll`` with recording; ``await ep.poll(timeout, maxevents)``."""

    _name = "epoll"

    def __init__(self, world, ep):
        super().__init__(world, ep)
        self._fd = ep.fileno()
        # The wake-up pipe: level-triggered, so every waiter sees it once the world stops.
        ep.register(world._wake_r, _select.EPOLLIN)
        world._adopt_file(ep)

    def fileno(self) -> int:
        return self._obj.fileno()

    @property
    def closed(self) -> bool:
        return self._obj.closed

    def _trace_fd(self) -> int:
        return self._obj.fileno() if not self._obj.closed else self._fd

    def register(self, fd, eventmask: int = _select.EPOLLIN | _select.EPOLLPRI | _select.EPOLLOUT) -> None:
        return self._register(fd, eventmask)

    def close(self) -> None:
        def do():
            self._world._forget_file(self._obj)
            self._obj.close()
        return self._plain_call("epoll.close", [], do)

    async def poll(self, timeout: float = -1, maxevents: int = -1):
        return self._wait(self._obj.fileno(), [timeout, maxevents], lambda: self._obj.poll(timeout, maxevents))
