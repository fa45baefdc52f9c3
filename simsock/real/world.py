"""A world of real hosts: the same world-building calls as :class:`simsock.Simulation`.

``w = RealWorld()``, ``h = w.add_host(name)``, ``h.spawn(prog, *args)``, ``w.run(until=s)``,
``w.trace``. Threads are named as the simulator names them: the function's name, then
``name-2``, ``name-3`` … for more threads of one function on one host. Each program runs in its own OS thread against the machine's real sockets; its
calls are recorded in ``w.trace`` in the simulator's format.

Addresses (without namespaces). Every host's own loopback is 127.0.0.1, exactly like the
simulator's per-host ``lo``, so programs using "127.0.0.1" talk over ``lo`` on both kernels.
In addition each host has a distinct address ``127.0.1.N`` (N = 1, 2, … in ``add_host``
order) by which other hosts reach it; ``k.gethostbyname(name)`` and host names in addresses
resolve through the world's table (``"localhost"`` is 127.0.0.1), and unknown names raise
:class:`socket.gaierror`. All hosts share the machine's port space: two hosts cannot both
bind the same port on 0.0.0.0. Use ``RealWorld(namespaces=True)`` (root only) when they must,
or when links need a rate: there each host is a network namespace (see
:mod:`simsock.real.netns`) and a name resolves to the host's address on its first link.

Links. As in the simulator (where hosts do not forward), a host reaches another only over a
link joining the two: a ``connect`` or ``sendto`` to a host it shares no link with raises
ENETUNREACH, although without namespaces the machine's loopback could deliver it. A UDP
socket bound to 0.0.0.0 sends to another host from its own host's address (``IP_PKTINFO``),
not from 127.0.0.1, so replies name the host as a simulated reply does.

Start order. The simulator runs the threads spawned before ``run`` in spawn order at time 0,
each until it first waits. Real threads run at once, so a client could send before the
server spawned before it has bound its port. ``run`` therefore starts them one after
another: each once the previous one has reached a call that may wait (``recv``, ``accept``,
``sleep``, ``epoll.poll`` … or has returned), at most ``STARTUP_WAIT`` seconds later. What
remains different: after that, threads of different hosts run truly in parallel, so events
that the simulator orders by nanoseconds (two clients' connects at the same instant, how
many bytes have arrived when a ``recv`` returns) can come in another order or split
differently; programs that are compared should leave time between such events.

Time. ``until`` is wall-clock seconds from ``run``. A run ends when every thread has
returned, when one fails (its exception is re-raised as :class:`SimulationError`), or at the
bound. Stopping a run shuts down and closes every socket its programs still hold and wakes
every select/poll/epoll/sleep, so blocked threads return; their remaining calls are not
recorded. Threads still running at the bound are an error naming them (``unfinished=
"raise"``, the default) or are stopped quietly and listed in ``w.unfinished``
(``unfinished="stop"``, for servers that loop forever).
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import os
import socket as _socket
import threading
import time

from simsock import validate
from simsock.errors import SimulationError, gai_error
from simsock.net.tbf import TBF
from simsock.trace import Trace, errno_of
from simsock.units import parse_size, parse_time
from simsock.real import netns
from simsock.real.kernel import RealKernel, ThreadHandle
from simsock.real.sockets import RealSocket, plain


STARTUP_WAIT = 0.5   # seconds run() waits for a thread to reach a call that may wait
# Calls that may wait: a thread that reaches one lets run() start the next thread.
_MAY_WAIT = frozenset({"accept", "connect", "connect_ex", "recv", "recvfrom", "recv_into",
                       "recvfrom_into", "send", "sendall", "sendto", "select", "poll.poll",
                       "epoll.poll", "sleep", "join"})


class _Aborted(BaseException):
    """Raised inside a program's thread once its world has stopped: unwinds it quietly."""


_world_ids = iter(range(1, 1 << 30))


class RealHost:
    """A host of a :class:`RealWorld`: a name, addresses, and the programs it runs."""

    def __init__(self, world: "RealWorld", name: str, index: int, cores: int):
        self.world = world
        self.name = name
        self.index = index
        self.cores = cores
        self.loopback_alias = f"127.0.1.{index}"
        self.address = self.loopback_alias   # the address other hosts reach it by
        self.addresses = [self.loopback_alias]
        self.namespace: str | None = None
        self._thread_names: dict[str, int] = {}

    def spawn(self, fn, *args, name: str | None = None) -> ThreadHandle:
        """Run ``fn(k, *args)`` in a new thread on this host when the world runs."""
        return self.world._spawn(self, fn, args, name, start=False)

    def __repr__(self) -> str:
        return f"<RealHost {self.name} {self.address}>"


class RealWorld:
    """Hosts, links and programs on the machine's real network stack."""

    def __init__(self, seed: int = 0, *, namespaces: bool = False, trace=("syscall", "event")):
        self.seed = seed
        self.namespaces = namespaces
        # a Trace object may bound or stream the trace (Trace(limit=..., file=...))
        self.trace = trace if isinstance(trace, Trace) else Trace(trace)
        self.hosts: dict[str, RealHost] = {}
        self.links: list[dict] = []
        self.unfinished: list[str] = []
        self._id = next(_world_ids)
        self._threads: list[ThreadHandle] = []
        self._lock = threading.RLock()
        self._changed = threading.Event()
        self._abort_event = threading.Event()
        self._aborting = False
        self._started = False
        self._ended = False
        self._t0 = time.monotonic_ns()
        self._local = threading.local()
        self._sockets: list[RealSocket] = []
        self._files: list = []
        self._wake_r, self._wake_w = os.pipe()
        self._failure: tuple[ThreadHandle, BaseException] | None = None
        if namespaces:
            ok, reason = netns.namespaces_available()
            if not ok:
                raise OSError(f"RealWorld(namespaces=True) is not available here: {reason}")
            netns.cleanup_stale_namespaces()

    # -- building ------------------------------------------------------------------------
    def add_host(self, name: str, cores: int = 1, **_ignored) -> RealHost:
        if not isinstance(name, str) or not name:
            raise ValueError("a host needs a non-empty name")
        if name in self.hosts or name == "localhost":
            raise ValueError(f"host name {name!r} is already taken")
        if self._started:
            raise ValueError("hosts must be added before run()")
        host = RealHost(self, name, len(self.hosts) + 1, cores)
        if self.namespaces:
            host.namespace = netns.namespace_name(self._id, name)
            try:
                netns.create_namespace(host.namespace)
                netns.add_address(host.namespace, host.loopback_alias, 32, "lo")
            except OSError:
                self.close()
                raise
        self.hosts[name] = host
        return host

    def add_router(self, name: str, *args, **kwargs):
        raise ValueError("the real backend has no routers: link hosts directly "
                         "(RealWorld(namespaces=True).add_link)")

    def add_link(self, a, b, rate=None, delay=None, mtu=None, queue=None, loss=None, qdisc=None, *,
                 ab=None, ba=None, **_ignored) -> dict:
        """Join two hosts. Without namespaces all hosts already share the loopback, so a link
        is accepted only without a rate or delay. With namespaces it is a veth pair, rate
        limited by a token bucket; delay and loss are refused (no netem on this kernel).

        A :class:`simsock.TBF` given as ``qdisc=`` (both ends) or in ``ab=``/``ba=`` (one end's
        egress, as in the simulator) becomes that ``tc qdisc ... tbf`` with the same rate,
        burst, limit and peak rate; ``ab``/``ba`` may also set ``rate`` and ``queue`` for one
        end. Other settings per direction are refused, as are other qdiscs in ``ab``/``ba``
        (only tbf is reproduced)."""
        ha, hb = self._host(a), self._host(b)
        has_delay = delay is not None and parse_time(delay, what="delay") > 0
        has_loss = loss is not None and float(loss) > 0
        ends = self._link_ends(rate, queue, qdisc, ab, ba)
        if not self.namespaces:
            if rate is not None or has_delay or has_loss or any(e[0] is not None or e[2] is not None for e in ends):
                raise ValueError("real links with a rate, delay or loss need RealWorld(namespaces=True); "
                                 "without namespaces all hosts share the machine's loopback")
            link = {"a": ha.name, "b": hb.name}
            self.links.append(link)
            return link
        if has_delay or has_loss:
            raise ValueError("the real backend cannot add delay or loss to a link: that needs the netem "
                             "qdisc, which this kernel does not have; only rate (tc tbf) is reproduced")
        index = len(self.links)
        if index > 255:
            raise ValueError("at most 256 links in a namespaces world")
        dev = f"sl{index}"
        mtu_v = 1500 if mtu is None else parse_size(mtu, what="mtu")
        addr_a, addr_b = f"10.77.{index}.1", f"10.77.{index}.2"
        try:
            netns.create_veth(ha.namespace, hb.namespace, dev, mtu_v)
            netns.add_address(ha.namespace, addr_a, 24, dev)
            netns.add_address(hb.namespace, addr_b, 24, dev)
            for h, addr in ((ha, addr_a), (hb, addr_b)):
                if h.address == h.loopback_alias:
                    h.address = addr
                h.addresses.append(addr)
            # Each end reaches the other's primary address over this link.
            if hb.address != addr_b:
                netns.add_route(ha.namespace, hb.address, addr_b, dev)
            if ha.address != addr_a:
                netns.add_route(hb.namespace, ha.address, addr_a, dev)
            for h, (end_rate, end_queue, tbf) in zip((ha, hb), ends):
                if tbf is not None:
                    netns.tbf(h.namespace, dev, tbf.rate, tbf.burst, tbf.limit, tbf.peakrate, tbf.mtu)
                elif end_rate is not None:
                    bps = validate.rate(end_rate, "link rate")
                    qp = qb = None
                    if end_queue is not None:
                        kind, n = validate.queue(end_queue, "queue")
                        qp, qb = (n, None) if kind == "packets" else (None, n)
                    netns.rate_limit(h.namespace, dev, bps, mtu_v, qp, qb)
        except OSError:
            self.close()
            raise
        link = {"a": ha.name, "b": hb.name, "dev": dev, "rate": rate, "mtu": mtu_v, "queue": queue,
                "addresses": (addr_a, addr_b)}
        self.links.append(link)
        return link

    @staticmethod
    def _link_ends(rate, queue, qdisc, ab, ba) -> list:
        """(rate, queue, TBF or None) for the a->b and b->a ends of a real link."""
        def as_tbf(q, what):
            if q is None:
                return None
            if not isinstance(q, TBF) and callable(q) and not hasattr(q, "enqueue"):
                q = q()
            return q if isinstance(q, TBF) else None
        base = as_tbf(qdisc, "add_link(qdisc=)")
        ends = []
        for name, over in (("ab", ab), ("ba", ba)):
            over = {} if over is None else over
            if not isinstance(over, dict):
                raise TypeError(f"add_link({name}=) must be a dict of settings for one direction")
            other = sorted(set(over) - {"rate", "queue", "qdisc"})
            if other:
                raise ValueError(f"add_link({name}=): the real backend reproduces only rate, queue and a "
                                 f"simsock.TBF qdisc per direction, not {', '.join(other)}")
            tbf = as_tbf(over.get("qdisc"), f"add_link({name}=)")
            if over.get("qdisc") is not None and tbf is None:
                raise ValueError(f"add_link({name}=): the real backend reproduces only a simsock.TBF qdisc "
                                 f"(as tc tbf), not {over['qdisc']!r}")
            ends.append((over.get("rate", rate), over.get("queue", queue), tbf if tbf is not None else base))
        return ends

    def _host(self, h) -> RealHost:
        if isinstance(h, RealHost):
            return h
        if h in self.hosts:
            return self.hosts[h]
        raise ValueError(f"no host named {h!r} in this world")

    # -- names ---------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """A host name, ``localhost`` or numeric address -> numeric IPv4 address."""
        if name == "localhost":
            return "127.0.0.1"
        host = self.hosts.get(name)
        if host is not None:
            return host.address
        try:
            ipaddress.ip_address(name)
            return name
        except ValueError:
            raise gai_error(name) from None

    def _resolve_address(self, address):
        """A program's (host, port, ...) with the host resolved, refused (PermissionError,
        EPERM) unless it stays inside this world: see :meth:`check_address`."""
        if isinstance(address, tuple) and address and isinstance(address[0], str):
            if address[0] in ("", "<broadcast>"):
                self.check_address(address[0])
                return address
            resolved = (self.resolve(address[0]), *address[1:])
            self.check_address(resolved[0], given=address[0])
            return resolved
        return address

    def check_address(self, ip: str, given: str | None = None) -> None:
        """Refuse an address outside this world, so that no program on the real backend
        reaches beyond the machine (or beyond the namespaces this world made).

        Allowed: the wildcard (``0.0.0.0``, ``::``, ``""``), loopback (``127.0.0.0/8``,
        ``::1``, ``::ffff:127.x.y.z``) and, with namespaces, the addresses of this world's
        hosts, 255.255.255.255 and its links' broadcast addresses (they stay on veth pairs
        between namespaces it made). Anything else raises :class:`PermissionError` with
        ``errno.EPERM`` — what a firewall rule refusing the packet gives on Linux — and a
        message saying why; bind, connect, connect_ex and sendto check it before the call."""
        text = "255.255.255.255" if ip == "<broadcast>" else ip
        if text == "":
            return
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return    # not an IP address (an AF_UNIX path, ...): nothing leaves the machine
        mapped = getattr(addr, "ipv4_mapped", None)
        for a in (addr, mapped):
            if a is not None and (a.is_loopback or a.is_unspecified):
                return
        if self.namespaces:
            plain = str(mapped or addr)
            if self._is_host_address(plain) or plain == "255.255.255.255" or any(
                    plain == ipaddress.ip_interface(f"{x}/24").network.broadcast_address.compressed
                    for link in self.links for x in link.get("addresses", ())[:1]):
                return
            where = ("only loopback and the addresses of this world's namespaces ("
                     + ", ".join(sorted({a for h in self.hosts.values() for a in h.addresses})) + ")")
        else:
            where = ("only loopback (127.0.0.0/8, ::1): without namespaces a packet to any other address "
                     "would leave through this machine's real interfaces; use a host name of this world, "
                     "127.0.0.1, or RealWorld(namespaces=True)")
        shown = ip if given is None or given == ip else f"{given} ({ip})"
        raise PermissionError(_errno.EPERM, f"simsock.real refuses address {shown}: the real backend reaches "
                                            f"{where}")

    def _check_route(self, host: RealHost, address) -> None:
        """ENETUNREACH for a call to another host that shares no link with ``host``, as the
        simulator (and Linux without a route) answers; the machine's loopback (without
        namespaces) or the namespace's own ``lo`` would otherwise deliver it somewhere."""
        if not (isinstance(address, tuple) and address and isinstance(address[0], str)):
            return
        target = next((h for h in self.hosts.values() if address[0] in h.addresses), None)
        if target is None or target is host:
            return
        if not any({link["a"], link["b"]} == {host.name, target.name} for link in self.links):
            raise OSError(_errno.ENETUNREACH, os.strerror(_errno.ENETUNREACH))

    def _is_host_address(self, ip: str) -> bool:
        return any(ip in h.addresses for h in self.hosts.values())

    # -- programs ------------------------------------------------------------------------
    def _spawn(self, host: RealHost, fn, args, name, start: bool) -> ThreadHandle:
        if not callable(fn):
            raise TypeError(f"spawn needs an async function, got {fn!r}")
        with self._lock:
            if name is None:   # as the simulator names threads: f, f-2, f-3, ... per host
                base = getattr(fn, "__name__", "thread")
                count = host._thread_names.get(base, 0) + 1
                host._thread_names[base] = count
                name = base if count == 1 else f"{base}-{count}"
            th = ThreadHandle(self, host, name, fn, args)
            self._threads.append(th)
            if start:
                self._start(th)
        return th

    def _start(self, th: ThreadHandle) -> None:
        t = threading.Thread(target=self._thread_main, args=(th,), name=f"simsock:{th.host.name}:{th.name}",
                             daemon=True)
        th.os_thread = t
        t.start()

    def _start_in_order(self) -> None:
        """Start the threads spawned before run() one after another, each once the one before
        has reached its first call that may wait (or returned, or STARTUP_WAIT passed): a
        server spawned before its clients is then listening before they start, as in the
        simulator, where threads started at time 0 run in spawn order until they wait."""
        with self._lock:
            pending = list(self._threads)
        for th in pending:
            with self._lock:
                self._start(th)
            deadline = time.monotonic() + STARTUP_WAIT
            while not (th.settled.is_set() or th.done.is_set() or self._failure is not None):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                th.settled.wait(min(left, 0.01))

    def _thread_main(self, th: ThreadHandle) -> None:
        self._local.thread = th
        status = "ok"
        try:
            if th.host.namespace is not None:
                netns.enter(th.host.namespace)
            coro = th.fn(RealKernel(self, th.host, th), *th.args)
            if not hasattr(coro, "send"):
                raise TypeError(f"program {getattr(th.fn, '__name__', th.fn)!r} must be an 'async def' function")
            th.result = _drive(coro)
        except _Aborted:
            th.stopped = True
            status = "stopped"
        except BaseException as exc:   # noqa: BLE001 - reported by run()
            th.error = exc
            th.failed_ns = self._now_ns()
            status = "failed"
            with self._lock:
                if self._failure is None and not self._aborting:
                    self._failure = (th, exc)
        finally:
            if self.trace.want_events and not self._ended:
                with self._lock:
                    self.trace.event(self._now_ns(), th.host.name, "thread_exit", {"thread": th.name, "status": status})
            th.done.set()
            self._changed.set()

    def run(self, until=None, *, unfinished: str = "raise") -> None:
        """Start every spawned thread and wait for them, at most ``until`` seconds."""
        if unfinished not in ("raise", "stop"):
            raise ValueError("unfinished must be 'raise' or 'stop'")
        if self._started:
            raise RuntimeError("a RealWorld runs once; build a new one")
        self._started = True
        bound_ns = None if until is None else parse_time(until, what="until")
        # SIGTERM/SIGINT stop the run, delete its namespaces and exit with one line
        with netns._lock:
            netns.running_worlds += 1
        netns.guard_signals()
        netns.on_signal_stop = self._stop
        try:
            self._t0 = time.monotonic_ns()
            if self.trace.want_events:
                for h in self.hosts.values():
                    self.trace.event(0, h.name, "host", {"index": h.index, "addresses": list(h.addresses)})
            self._start_in_order()
            while True:
                self._changed.clear()
                with self._lock:
                    alive = [t for t in self._threads if not t.done.is_set()]
                    failure = self._failure
                if failure is not None or not alive:
                    break
                if bound_ns is not None:
                    left = (bound_ns - self._now_ns()) / 1e9
                    if left <= 0:
                        break
                    self._changed.wait(min(left, 0.5))
                else:
                    self._changed.wait(0.5)
            with self._lock:
                alive = [t for t in self._threads if not t.done.is_set()]
                failure = self._failure
            self.unfinished = [] if failure else [f"{t.name} on host {t.host.name}" for t in alive]
            descriptions = [_describe(t) for t in alive]
            self._stop()
            if failure is not None:
                th, exc = failure
                err = SimulationError(f"thread {th.name!r} on host {th.host.name!r} failed at "
                                      f"t={th.failed_ns / 1e9:.9f}s: {type(exc).__name__}: {exc}")
                err.thread, err.host = th.name, th.host.name
                raise err from exc
            if alive and unfinished == "raise":
                raise SimulationError(f"threads still running at the bound ({bound_ns / 1e9:g}s): "
                                      + ", ".join(descriptions))
        finally:
            self._ended = True
            self.close()
            self.trace.flush()
            with netns._lock:
                netns.running_worlds -= 1
            if netns.on_signal_stop == self._stop:
                netns.on_signal_stop = None
            netns.release_signals()

    def _stop(self) -> None:
        """Wake and unwind every thread still running, then give them a moment to return."""
        with self._lock:
            self._aborting = True
            sockets = list(self._sockets)
        self._abort_event.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        for s in sockets:
            try:
                s._sock.shutdown(_socket.SHUT_RDWR)   # wakes accept/recv/send/connect blocked in it
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        for th in list(self._threads):
            if th.os_thread is not None:
                th.os_thread.join(max(0.0, deadline - time.monotonic()))
        self._ended = True

    def close(self) -> None:
        """Close every socket and file the programs left open and delete the namespaces."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
            files, self._files = self._files, []
        for s in sockets:
            try:
                s._sock.close()
            except OSError:
                pass
        for f in files:
            try:
                f.close()
            except OSError:
                pass
        for h in self.hosts.values():
            if h.namespace is not None:
                netns.delete_namespace(h.namespace)
                h.namespace = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1
        self._ended = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._ended = True
        self.close()

    # -- used by sockets and kernels -----------------------------------------------------
    def _now_ns(self) -> int:
        return time.monotonic_ns() - self._t0

    def _check_abort(self) -> None:
        if self._aborting:
            raise _Aborted()

    def _enter_call(self, call: str) -> None:
        th = getattr(self._local, "thread", None)
        if th is not None:
            th.current_call = call
            if call in _MAY_WAIT:
                th.settled.set()

    def _leave_call(self) -> None:
        th = getattr(self._local, "thread", None)
        if th is not None:
            th.current_call = None

    def _record(self, call: str, fd: int, args, result, exc: BaseException | None) -> None:
        if not self.trace.want_syscalls or self._ended:
            return
        th = getattr(self._local, "thread", None)
        host = th.host.name if th is not None else "?"
        thread = th.name if th is not None else threading.current_thread().name
        a = plain(args)
        r = None if exc is not None else plain(result)
        with self._lock:   # times are taken under the lock, so records are in time order
            self.trace.syscall(self._now_ns(), host, thread, call, fd, a, r, errno_of(exc))

    def _adopt_socket(self, s: RealSocket) -> None:
        with self._lock:
            self._sockets.append(s)

    def _forget_socket(self, s: RealSocket) -> None:
        with self._lock:
            if s in self._sockets:
                self._sockets.remove(s)

    def _adopt_file(self, f) -> None:
        with self._lock:
            self._files.append(f)

    def _forget_file(self, f) -> None:
        with self._lock:
            if f in self._files:
                self._files.remove(f)

    def _sockets_of(self, host: RealHost) -> list[RealSocket]:
        with self._lock:
            return [s for s in self._sockets if s._host is host]


def _drive(coro):
    """Run a coroutine whose awaits never suspend (they block the thread instead)."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise TypeError(f"the program awaited {yielded!r}, which is not a simsock call; on the real backend "
                    "every awaited call blocks its own thread, so asyncio objects cannot be awaited")


def _describe(th: ThreadHandle) -> str:
    where = f" (blocked in {th.current_call})" if th.current_call else ""
    return f"{th.name} on host {th.host.name}{where}"

