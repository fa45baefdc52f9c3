"""Running a packetdrill script against one simulated Linux host.

The world (:mod:`.world`) is what packetdrill builds with its tun device: one host whose
route to the script's remote address is a device with no queue and no delay. ``<`` packets
are handed to the host at their script times as if they arrived on that device; everything
the host sends there is captured, in order, with its time, and each ``>`` line takes the
next captured packets and matches them with packetdrill's rules (run_packet.c, in
:mod:`.packets`): addresses and ports of the script's socket, flags, sequence numbers
relative to the initial sequence numbers, ack, window (when the script gives one), TCP
options in order (``<...>`` skips them), and payload length — consecutive captured packets
of one flow are aggregated until they reach the expected length, as packetdrill does for
segmentation offload unless ``--strict_segments``.

Timing follows run.c: a ``+t`` event is relative to when the previous event finished
(consecutive inbound packets to the previous one's script time); an event is late or
early beyond ``--tolerance_usecs`` (default 4000) or ``--tolerance_percent`` (12.5 %) of the
gap since the previous event, and the strict mode makes both zero. A system call with an
end time (``+0...0.3 read(...)``) runs in a thread of its own while the script continues,
and must return by its end time; other calls run on the script's thread, so a call that
blocks holds the script as it holds packetdrill.

System calls (:mod:`.syscalls`) take the socket API's shape: file descriptors are the
script's numbers mapped to the simulated objects, ``...`` buffers are zeros, ``...``
addresses are the script's (bind to the local address and ``--bind_port`` 8080, connect to
the remote address and ``--connect_port`` 8080), and results are compared as the C call
would return them (``-1`` with an errno name when the call raises).
"""

from __future__ import annotations

import dataclasses
import errno as E
import os
from dataclasses import dataclass

import simpy

from simsock import TcpSocket
from simsock.net.packet import PROTO_TCP, Packet
from simsock.tcp.info import tcp_info

from . import setup as _setup
from . import world
from .code import evaluate
from .config import Config, apply_options
from .packets import US, Flow, check_tcp_line, fragment_mismatch
from .result import Mismatch, Result, Unsupported
from .script import Event, Script, ScriptError, expr_text, parse_file
from .syscalls import dispatch

_CALL_HOLD_NS = 10_000_000_000     # how long a call without an end time may block the script
_IDLE_WAIT_NS = 1_000_000_000      # syscalls_free: a blocking call's time to finish


class _Box:
    """What a system call's thread leaves for the script: its value or errno, or the
    exception it raised, its end time, and checks of its output arguments."""
    __slots__ = ("done", "end_ns", "err", "exc", "out", "value")

    def __init__(self):
        self.done = False
        self.value = None
        self.err = None
        self.end_ns = None
        self.out = None
        self.exc = None


@dataclass
class _Blocking:
    """A call with an end time, running while the script goes on."""
    event: Event
    box: _Box


class Runner:
    def __init__(self, script: Script, config: Config | None = None):
        self.script = script
        self.cfg = config or Config()
        self.notes: list[str] = []
        self.settings: dict = {}          # the sysctls the setup lines set
        self.sim = self.host = self.env = self.device = None
        self.flow: Flow | None = None
        self.fds: dict[int, object] = {}  # the script's descriptors -> simulated objects
        self.epoll_data: dict = {}        # (epoll id, fd) -> the script's epoll_event data
        self.blocking: _Blocking | None = None
        self.captured_pos = 0             # the device's next captured packet to match

    # -- time
    def _now_us(self) -> int:
        return self.env._now // US

    def _run_until_ns(self, t_ns: int) -> None:
        self.sim.run(until=f"{max(t_ns, self.env._now)}ns")
        self._check_blocking()

    def _step(self, limit_ns: int) -> bool:
        """Process the next instant with events, if it is not after ``limit_ns``; False when
        nothing is left before the limit (the clock is then at the limit)."""
        nxt = self.env.peek()
        if nxt == simpy.core.Infinity or nxt > limit_ns:
            self._run_until_ns(limit_ns)
            return False
        self._run_until_ns(int(nxt))
        return True

    def _tolerance_us(self, ev: Event, last_us: int | None) -> int:
        if self.cfg.strict:
            return 0
        tol = self.cfg.tolerance_usecs
        if last_us is not None:
            dyn = int(self.cfg.tolerance_percent / 100.0 * (ev.time_us - last_us))
            tol = max(tol, dyn)
        return tol

    def _verify_time(self, ev: Event, actual_us: int, what: str, last_us: int | None,
                     start_us: int | None = None, end_us: int | None = None) -> None:
        if ev.time_type == "any" and start_us is None:
            return
        tol = self._tolerance_us(ev, last_us)
        lo = ev.time_us if start_us is None else start_us
        hi = (ev.time_end_us if ev.time_type in ("absolute_range", "relative_range") else lo) \
            if end_us is None else end_us
        if actual_us < lo - tol or actual_us > hi + tol:
            if lo == hi:
                exp = f"at {lo / 1e6:.6f} sec"
            else:
                exp = f"in time range {lo / 1e6:.6f}~{hi / 1e6:.6f} sec"
            raise Mismatch(ev.line, f"timing error: expected {what} {exp} but happened at "
                                    f"{actual_us / 1e6:.6f} sec; tolerance {tol / 1e6:.6f} sec",
                           actual_us * US)

    # -- main loop
    def run(self) -> Result:
        path = self.script.path
        try:
            apply_options(self.cfg, self.script.options)
            script_dir = os.path.dirname(os.path.abspath(path))
            if self.script.init_command:
                _setup.run_commands(self.script.init_command, script_dir, self.settings, self.notes)
            for ev in self.script.events:
                if ev.kind == "command":
                    _setup.run_commands(ev.command, script_dir, self.settings, self.notes)
            if self.script.cleanup_command:
                _setup.run_commands(self.script.cleanup_command, script_dir, self.settings, self.notes)
            self.sim, self.host, self.device = world.build(self.cfg, self.settings)
            self.env = self.sim.env
            self._execute()
        except Mismatch as m:
            return Result(path, False, f"line {m.line}: {m.message} (simulated time {m.now_ns / 1e9:.6f} s)",
                          m.line, m.now_ns / 1e9, self.notes)
        except Unsupported as u:
            return Result(path, False, f"unsupported: {u}", None, None, self.notes)
        except _setup.SetupError as s:
            return Result(path, False, f"setup: {s}", None, None, self.notes)
        return Result(path, True, "", None, self.env._now / 1e9, self.notes)

    def _execute(self) -> None:
        events = self.script.events
        if events[0].time_type not in ("absolute", "absolute_range") or events[0].time_us != 0:
            if not (events[0].time_type == "relative" and events[0].time_us == 0):
                raise Mismatch(events[0].line, "first event should be at time 0", 0)
        self.flow = Flow(self.cfg)
        last: Event | None = None
        last_script_us: int | None = None
        for ev in events:
            if ev.time_type in ("relative", "relative_range", "any"):
                self._adjust_relative_time(ev, last)
            if (last is not None and ev.time_type in ("absolute", "absolute_range")
                    and last.time_type in ("absolute", "absolute_range") and ev.time_us < last.time_us):
                raise Mismatch(ev.line, f"time goes backward in script from {last.time_us} usec to "
                                        f"{ev.time_us} usec", self.env._now)
            if ev.kind == "packet" and ev.packet.direction == ">":
                self._expect_packet(ev, last_script_us)
            else:
                # wait_for_event, then check the start time
                if ev.time_type != "any":
                    self._run_until_ns(ev.time_us * US)
                if ev.kind != "command":
                    self._verify_time(ev, self._now_us(), _describe(ev), last_script_us)
                if ev.kind == "packet":
                    self._inject(ev)
                elif ev.kind == "syscall":
                    self._syscall_event(ev)
                elif ev.kind == "code":
                    self._code_event(ev)
                # commands were read before the run (setup); nothing happens at their time
            last = ev
            last_script_us = ev.time_us
        if self.blocking is not None:
            self._await_idle(self.blocking.event, at_exit=True)

    def _adjust_relative_time(self, ev: Event, last: Event | None) -> None:
        """adjust_relative_event_times: a relative time counts from now, and consecutive
        inbound packets from the previous one's script time."""
        if (last is not None and last.kind == "packet" and last.packet.direction == "<"
                and ev.kind == "packet" and ev.packet.direction == "<"):
            offset = last.time_us
        else:
            offset = self._now_us()
        ev.time_us += offset
        if ev.time_type == "relative_range":
            ev.time_end_us += offset
        if ev.time_type == "relative" and ev.kind == "syscall" and ev.syscall.end_us is not None:
            ev.syscall.end_us += offset

    # -- blocking calls
    def _check_blocking(self) -> None:
        b = self.blocking
        if b is not None and b.box.done:
            self.blocking = None
            self._finish_syscall(b.event, b.box, blocking=True)

    def _await_idle(self, ev: Event, at_exit: bool = False) -> None:
        b = self.blocking
        if b is None:
            return
        limit = self.env._now + _IDLE_WAIT_NS
        while self.blocking is not None and self._step(limit):
            pass
        if self.blocking is not None:
            what = ("exiting while a blocking system call is in progress" if at_exit else
                    "blocking system call while another blocking system call is already in progress")
            raise Mismatch(b.event.line if at_exit else ev.line, f"runtime error: {what}", self.env._now)

    # -- packets
    def _inject(self, ev: Event) -> None:
        seg = self.flow.inbound(ev, self.env._now)
        pkt = Packet(self.sim._next_uid(), self.cfg.remote_ip, self.cfg.local_ip, PROTO_TCP, seg, self.env._now)
        self.host.receive(pkt, self.device)
        self._run_until_ns(self.env._now)

    def _next_captured(self, deadline_ns: int):
        while self.captured_pos >= len(self.device.captured):
            if not self._step(deadline_ns):
                return None
        item = self.device.captured[self.captured_pos]
        self.captured_pos += 1
        return item

    def _expect_packet(self, ev: Event, last_us: int | None) -> None:
        p = ev.packet
        check_tcp_line(ev)
        tol = self._tolerance_us(ev, last_us)
        end = ev.time_end_us if ev.time_type in ("absolute_range", "relative_range") else ev.time_us
        deadline_ns = (end + tol) * US if ev.time_type != "any" else self.env._now + 10_000_000_000
        # packetdrill would wait as long as the test's timeout; the simulated wait ends when
        # nothing else can happen or well past the expected time
        deadline_ns = max(deadline_ns, self.env._now) + 1_000_000_000
        first = self._next_captured(deadline_ns)
        if first is None:
            raise Mismatch(ev.line, f"expected outbound packet {p.text!r} but none was sent "
                                    f"(simulated until {self.env._now / 1e9:.6f} s)", self.env._now)
        group = [first]
        total = len(first[1].payload.payload)
        while total < p.length and not self.cfg.strict_segments:
            nxt = self._next_captured(deadline_ns)
            if nxt is None:
                break
            prev_seg, seg = group[-1][1].payload, nxt[1].payload
            err = fragment_mismatch(prev_seg, seg, len(seg.payload), total, p.length)
            if err:
                raise Mismatch(ev.line, f"live packet payload: expected {p.length} bytes vs actual {total} bytes "
                                        f"(the next packet, {self.flow.describe(nxt[1], seg)} at "
                                        f"{nxt[0] / 1e9:.6f} s, cannot be aggregated: {err})\n"
                                        f"    script packet: {p.text}", group[-1][0])
            group.append(nxt)
            total += len(seg.payload)
        t_ns, pkt = group[-1]
        seg = pkt.payload
        if len(group) > 1:
            seg = dataclasses.replace(seg, seq=group[0][1].payload.seq, payload=bytes(total))
        self.flow.learn(seg)
        actual_us = t_ns // US
        self.flow.match(ev, pkt, seg, actual_us)
        if ev.time_type != "any":
            self._verify_time(ev, actual_us, "outbound packet", last_us)

    # -- system calls
    def _syscall_event(self, ev: Event) -> None:
        sc = ev.syscall
        if self.blocking is not None:
            self._await_idle(ev)
        box = _Box()

        async def call(k, runner=self, sc=sc, box=box):
            try:
                box.value = await dispatch(runner, k, sc, box)
            except OSError as exc:
                if exc.errno is None:
                    box.exc = exc
                else:
                    box.err = exc.errno
            except Exception as exc:  # noqa: BLE001 - reported as the script's failure
                box.exc = exc
            box.done = True
            box.end_ns = runner.env._now
        self.host.spawn(call, name=f"line{ev.line}")
        start = self.env._now
        if sc.end_us is not None:
            self.blocking = _Blocking(ev, box)
            self._run_until_ns(start)
            return
        self._run_until_ns(start)
        if not box.done:
            # a call without an end time that blocks holds the script thread, as in packetdrill
            limit = start + _CALL_HOLD_NS
            while not box.done and self._step(limit):
                pass
            if not box.done:
                raise Mismatch(ev.line, f"{sc.name}() blocked for 10 s: a call that blocks needs an "
                                        f"end time (+t...END {sc.name}(...))", self.env._now)
        self._finish_syscall(ev, box, blocking=False)

    def _finish_syscall(self, ev: Event, box: _Box, blocking: bool) -> None:
        sc = ev.syscall
        if isinstance(box.exc, (Unsupported, Mismatch)):
            raise box.exc
        if box.exc is not None:
            raise Mismatch(ev.line, f"{sc.name}() raised {type(box.exc).__name__}: {box.exc}", box.end_ns)
        if blocking:
            self._verify_time(ev, box.end_ns // US, "system call return", ev.time_us,
                              start_us=sc.end_us, end_us=sc.end_us)
        exp = sc.result
        if box.err is not None:
            actual, actual_errno = -1, box.err
        else:
            actual, actual_errno = box.value, None
        if exp.kind == "ellipsis":
            return
        if exp.kind != "int":
            raise Unsupported(f"return value {expr_text(exp)} of {sc.name} (line {ev.line})")
        if actual != exp.value:
            detail = f" errno {actual_errno} ({E.errorcode.get(actual_errno, '?')})" if actual_errno else ""
            raise Mismatch(ev.line, f"{sc.name}() returned {actual}{detail}, expected {exp.value}"
                                    f"{' ' + sc.errno if sc.errno else ''}", box.end_ns)
        if exp.value == -1 or sc.errno:
            want = sc.errno
            if want is not None:
                code = getattr(E, want, None)
                if code is None:
                    raise Unsupported(f"errno {want} (line {ev.line})")
                if actual_errno != code:
                    raise Mismatch(ev.line, f"{sc.name}() failed with {E.errorcode.get(actual_errno, actual_errno)},"
                                            f" expected {want}", box.end_ns)
        if box.out:
            for check in box.out:
                check(ev, box.end_ns)

    # -- code blocks
    def _code_event(self, ev: Event) -> None:
        # tcp_info of the last TCP socket the script used, as packetdrill collects it
        cand = [o for o in self.fds.values() if isinstance(o, TcpSocket) and o.conn is not None]
        if not cand:
            raise Mismatch(ev.line, "code block: no connected socket to read tcp_info from", self.env._now)
        info = tcp_info(cand[-1].conn, self.env._now)
        info = {("tcpi_" + k if not k.startswith("tcpi_") else k): v for k, v in info.items()}
        err = evaluate(ev.code, info)
        if err:
            raise Mismatch(ev.line, f"assertion in code block failed: {err}", self.env._now)


def _describe(ev: Event) -> str:
    if ev.kind == "packet":
        return "inbound packet" if ev.packet.direction == "<" else "outbound packet"
    if ev.kind == "syscall":
        return "system call start"
    if ev.kind == "code":
        return "data collection for code"
    return "command"


def run_script(path: str, strict: bool = False, tolerance_usecs: int | None = None) -> Result:
    """Run one script file; returns its :class:`Result` (PASS, or the first mismatch)."""
    try:
        script = parse_file(path)
    except ScriptError as e:
        return Result(path, False, f"parse error: {e}", e.line)
    except OSError as e:
        return Result(path, False, f"cannot read the script: {e.strerror}")
    cfg = Config(strict=strict)
    runner = Runner(script, cfg)
    if tolerance_usecs is not None:
        script.options = dict(script.options)
        script.options["tolerance_usecs"] = str(tolerance_usecs)
    return runner.run()
