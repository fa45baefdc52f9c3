"""Running a packetdrill script against one simulated Linux host.

The world is what packetdrill builds with its tun device: one host (``--local_ip``,
192.168.0.1 by default) whose route to the script's remote address (``--remote_ip``,
192.0.2.1) is a *device* with no queue and no delay. ``<`` packets are handed to the host
at their script times as if they arrived on that device; everything the host sends there is
captured, in order, with its time, and each ``>`` line takes the next captured packets and
matches them with packetdrill's rules (run_packet.c): addresses and ports of the script's
socket, flags, sequence numbers relative to the initial sequence numbers, ack, window (when
the script gives one), TCP options in order (``<...>`` skips them), and payload length —
consecutive captured packets of one flow are aggregated until they reach the expected
length, as packetdrill does for segmentation offload unless ``--strict_segments``.

Timing follows run.c: a ``+t`` event is relative to when the previous event finished
(consecutive inbound packets to the previous one's script time); an event is late or
early beyond ``--tolerance_usecs`` (default 4000) or ``--tolerance_percent`` (12.5 %) of the
gap since the previous event, and the strict mode makes both zero. A system call with an
end time (``+0...0.3 read(...)``) runs in a thread of its own while the script continues,
and must return by its end time; other calls run on the script's thread, so a call that
blocks holds the script as it holds packetdrill.

System calls take the socket API's shape: file descriptors are the script's numbers mapped to
the simulated objects, ``...`` buffers are zeros, ``...`` addresses are the script's
(bind to the local address and ``--bind_port`` 8080, connect to the remote address and
``--connect_port`` 8080), and results are compared as the C call would return them (``-1``
with an errno name when the call raises).
"""

from __future__ import annotations

import dataclasses
import errno as E
import os
from dataclasses import dataclass, field

import simpy

from simsock.net.packet import PROTO_TCP, Packet
from simsock.tcp.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, Segment

from . import setup as _setup
from .script import (
    Event,
    PacketSpec,
    Script,
    ScriptError,
    SyscallSpec,
    expr_text,
    parse_file,
)

US = 1000               # ns per microsecond
MASK = 0xFFFFFFFF


class Unsupported(Exception):
    """A construct of the language that the interpreter does not run (named)."""


class Mismatch(Exception):
    """The first difference between the script and the simulated host."""

    def __init__(self, line: int, message: str, now_ns: int):
        super().__init__(message)
        self.line, self.message, self.now_ns = line, message, now_ns


@dataclass
class Result:
    path: str
    passed: bool
    message: str = ""          # the first mismatch, with line and simulated time
    line: int | None = None
    sim_time: float | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return f"PASS {self.path}"
        return f"FAIL {self.path}\n  {self.message}"


@dataclass
class Config:
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    strict: bool = False            # zero timing tolerance
    strict_segments: bool = False   # no aggregation of captured packets
    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    bind_port: int = 8080
    connect_port: int = 8080
    tcp_ts_tick_usecs: int = 0
    mtu: int = 1500
    ip_version: str = "ipv4"


_KNOWN_OPTIONS = {"tolerance_usecs", "tolerance_percent", "local_ip", "remote_ip", "bind_port",
                  "connect_port", "tcp_ts_tick_usecs", "mtu", "ip_version", "strict_segments"}


def _apply_options(cfg: Config, options: dict) -> None:
    for name, value in options.items():
        if name not in _KNOWN_OPTIONS:
            raise Unsupported(f"option --{name}")
        if name == "ip_version":
            if value != "ipv4":
                raise Unsupported(f"--ip_version={value} (only ipv4 is modelled)")
            continue
        if name == "strict_segments":
            cfg.strict_segments = True
            continue
        if value is None:
            raise Unsupported(f"option --{name} without a value")
        if name in ("local_ip", "remote_ip"):
            setattr(cfg, name, value)
        elif name == "tolerance_percent":
            cfg.tolerance_percent = float(value)
        else:
            setattr(cfg, name, int(value, 0))


# ----------------------------------------------------------------------------- device
class Device:
    """The tun device: what the host sends to the remote address is captured here."""

    def __init__(self, env, mtu: int):
        self.env = env
        self.mtu = mtu
        self.name = "tun0"
        self.captured: list[tuple[int, Packet]] = []
        self.rate_bps = None
        self.delay_ns = 0
        self.tso = True         # segmentation offload: TCP hands it TSO bursts (simsock.tcp.gso)

    def send(self, pkt: Packet) -> int:
        self.captured.append((self.env._now, pkt))
        return self.env._now


# ----------------------------------------------------------------------------- the run
class _Box:
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
    event: Event
    box: _Box
    start_ns: int


class Runner:
    def __init__(self, script: Script, config: Config | None = None):
        self.script = script
        self.cfg = config or Config()
        self.notes: list[str] = []
        self.settings: dict = {}

    # -- world
    def _build(self) -> None:
        from simsock import Simulation
        from simsock.profiles import without_cpu_costs
        prof = without_cpu_costs("linux")
        st = self.settings
        repl = {}
        for name in ("tcp_rmem", "tcp_wmem"):
            if name in st:
                if len(st[name]) != 3:
                    raise _setup.SetupError(f"sysctl {name} needs three numbers")
                repl[name] = tuple(st[name])
        for name in ("tcp_sack", "tcp_dsack"):
            if name in st:
                repl[name] = bool(st[name])
        for name in ("tcp_recovery", "tcp_early_retrans"):
            if name in st:
                repl[name] = st[name]
        for name in ("tcp_syncookies", "tcp_congestion_control"):
            if name in st and hasattr(prof, name):
                repl[name] = st[name]
        prof = dataclasses.replace(prof, name="linux+packetdrill", **repl)
        sim = self.sim = Simulation(seed=1, profile=prof, trace=False)
        host = self.host = sim.add_host("local")
        sim._addresses.pop(host.address, None)
        host.address = self.cfg.local_ip
        sim._addresses[host.address] = host
        self.env = sim.env
        self.device = Device(sim.env, self.cfg.mtu)
        cache = host._route_cache
        real_route = host.route

        def route(dst, _real=real_route):
            if dst == self.cfg.remote_ip or not host.owns(dst):
                return (self.device, self.cfg.mtu, host.address)
            return _real(dst)
        host.route = route
        del cache
        stack = host.tcp
        if "tcp_congestion_control" in st:
            from simsock.tcp import cc as cc_registry
            try:
                cc_registry.get(st["tcp_congestion_control"])
            except OSError:
                raise _setup.SetupError(f"sysctl tcp_congestion_control={st['tcp_congestion_control']}: "
                                        f"no such congestion control in the model") from None
            stack.default_congestion = st["tcp_congestion_control"]
        if "tcp_fastopen" in st:
            stack.fastopen = st["tcp_fastopen"]
        orig = stack.config_for
        settings = st

        def config_for(sock, remote_ip, _orig=orig):
            cfg = _orig(sock, remote_ip)
            if "tcp_timestamps" in settings:
                cfg.timestamps = bool(settings["tcp_timestamps"])
            if "tcp_syn_retries" in settings:
                cfg.syn_retries = settings["tcp_syn_retries"]
            if "tcp_synack_retries" in settings:
                cfg.synack_retries = settings["tcp_synack_retries"]
            extra = getattr(cfg, "extra", None)
            if isinstance(extra, dict):
                extra["sysctls"] = settings
            for name, attr in (("tcp_notsent_lowat", "notsent_lowat"), ("tcp_ecn", "ecn"),
                               ("tcp_slow_start_after_idle", "slow_start_after_idle"),
                               ("tcp_min_tso_segs", "min_tso_segs"),
                               ("tcp_tso_win_divisor", "tso_win_divisor"),
                               ("tcp_syncookies", "syncookies"),
                               ("tcp_pacing_ss_ratio", "pacing_ss_ratio"),
                               ("tcp_pacing_ca_ratio", "pacing_ca_ratio")):
                if name in settings and hasattr(cfg, attr):
                    setattr(cfg, attr, settings[name])
            return cfg
        stack.config_for = config_for

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
            _apply_options(self.cfg, self.script.options)
            script_dir = os.path.dirname(os.path.abspath(path))
            if self.script.init_command:
                _setup.run_commands(self.script.init_command, script_dir, self.settings, self.notes)
            for ev in self.script.events:
                if ev.kind == "command":
                    _setup.run_commands(ev.command, script_dir, self.settings, self.notes)
            if self.script.cleanup_command:
                _setup.run_commands(self.script.cleanup_command, script_dir, self.settings, self.notes)
            self._build()
            self._execute()
        except Mismatch as m:
            return Result(path, False, f"line {m.line}: {m.message} (simulated time {m.now_ns / 1e9:.6f} s)",
                          m.line, m.now_ns / 1e9, self.notes)
        except Unsupported as u:
            return Result(path, False, f"unsupported: {u}", None, None, self.notes)
        except _setup.SetupError as s:
            return Result(path, False, f"setup: {s}", None, None, self.notes)
        return Result(path, True, "", None, getattr(self, "env", None) and self.env._now / 1e9, self.notes)

    def _execute(self) -> None:
        events = self.script.events
        if events[0].time_type not in ("absolute", "absolute_range") or events[0].time_us != 0:
            if not (events[0].time_type == "relative" and events[0].time_us == 0):
                raise Mismatch(events[0].line, "first event should be at time 0", 0)
        # socket state, script space
        self.fds: dict[int, object] = {}
        self.sock_state = None           # the script's TCP socket (see _Conn)
        self.blocking: _Blocking | None = None
        self.captured_pos = 0
        self.ts_map: dict[int, int] = {}
        self.first_ts: tuple[int, int] | None = None
        self.local_isn: int | None = None
        self.remote_isn = 0
        self.remote_port = 0
        self.local_port = self.cfg.bind_port
        self.closed: list = []
        self.epoll_data: dict = {}
        last: Event | None = None
        last_script_us: int | None = None
        for ev in events:
            self.event = ev
            # adjust_relative_event_times
            if ev.time_type in ("relative", "relative_range", "any"):
                if (last is not None and last.kind == "packet" and last.packet.direction == "<"
                        and ev.kind == "packet" and ev.packet.direction == "<"):
                    offset = last.time_us
                else:
                    offset = self._now_us()
                ev.offset_us = offset
                ev.time_us += offset
                if ev.time_type == "relative_range":
                    ev.time_end_us += offset
                if ev.time_type == "relative" and ev.kind == "syscall" and ev.syscall.end_us is not None:
                    ev.syscall.end_us += offset
            elif ev.kind == "syscall" and ev.syscall.end_us is not None:
                pass    # absolute end time
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
        # syscalls_free: a blocking call still running gets 1 s to finish
        if self.blocking is not None:
            self._await_idle(self.blocking.event, at_exit=True)

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
        limit = self.env._now + 1_000_000_000
        while self.blocking is not None and self._step(limit):
            pass
        if self.blocking is not None:
            what = ("exiting while a blocking system call is in progress" if at_exit else
                    "blocking system call while another blocking system call is already in progress")
            raise Mismatch(b.event.line if at_exit else ev.line, f"runtime error: {what}", self.env._now)

    # -- packets in
    def _inject(self, ev: Event) -> None:
        p = ev.packet
        if p.protocol != "tcp":
            raise Unsupported(f"{p.protocol} packets (line {ev.line})")
        if p.encap:
            raise Unsupported(f"{'/'.join(p.encap)} encapsulation (line {ev.line})")
        if p.ecn not in (None, "noecn") or p.ip_info:
            raise Unsupported(f"inbound IP header fields [{p.ecn or ''} {p.ip_info or ''}] (line {ev.line})")
        flags = 0
        for ch in p.flags:
            if ch == "S":
                flags |= SYN
            elif ch == "F":
                flags |= FIN
            elif ch == "R":
                flags |= RST
            elif ch == "P":
                flags |= PSH
            elif ch == ".":
                flags |= ACK
            elif ch == "E":
                flags |= ECE
            elif ch == "W":
                flags |= CWR
            else:
                raise Unsupported(f"inbound TCP flag {ch!r} (URG is not modelled; line {ev.line})")
        if flags & (ECE | CWR) and not flags & SYN:
            raise Unsupported(f"ECE/CWR on an established connection (ECN congestion signals are not "
                              f"modelled; line {ev.line})")
        if p.urg is not None:
            raise Unsupported(f"urgent pointer (line {ev.line})")
        if flags & SYN and not flags & ACK and self.remote_port == 0:
            self.remote_port = _REMOTE_PORT
        if self.remote_port == 0:
            raise Mismatch(ev.line, "inbound packet before the script's socket has a connection "
                                    "(no SYN sent or received yet)", self.env._now)
        ack_off = self.local_isn or 0
        # the remote ISN is the script's SYN sequence number; later inbound sequence numbers
        # (and outbound acks) are relative to it, as packetdrill maps them
        if flags & SYN:
            self.remote_isn = p.seq_start
            seq = p.seq_start
        else:
            seq = p.seq_start + self.remote_isn
        seg = Segment(sport=self.remote_port, dport=self.local_port, seq=seq & MASK,
                      ack=(p.ack + ack_off) & MASK if p.ack is not None else 0, flags=flags,
                      window=p.window if p.window is not None else 0, payload=bytes(p.length))
        if p.options_any:
            raise Unsupported(f"<...> options on an inbound packet (line {ev.line})")
        for opt in p.options or ():
            k = opt.kind
            if k in ("nop", "eol"):
                continue
            if k == "mss":
                seg.mss = opt.value
            elif k == "wscale":
                seg.wscale = opt.value
            elif k == "sackOK":
                seg.sack_permitted = True
            elif k == "sack":
                seg.sack = tuple(((a + ack_off) & MASK, (b + ack_off) & MASK) for a, b in opt.value)
            elif k == "FO":
                try:
                    seg.fastopen = bytes.fromhex(opt.value) if opt.value else b""
                except ValueError:
                    raise Unsupported(f"TCP Fast Open cookie {opt.value!r} (line {ev.line})") from None
            elif k == "TS":
                val, ecr = opt.value
                if flags & ACK and ecr:
                    live = self.ts_map.get(ecr)
                    if live is None:
                        raise Mismatch(ev.line, f"unable to infer live TS ecr for script TS ecr {ecr}; "
                                                f"no matching or preceding outbound TS val", self.env._now)
                    ecr = live
                elif flags & ACK:
                    live = self.ts_map.get(0)
                    ecr = live if live is not None else 0
                seg.ts = (val & MASK, ecr & MASK)
            else:
                raise Unsupported(f"TCP option {k} (line {ev.line})")
        pkt = Packet(self.sim._next_uid(), self.cfg.remote_ip, self.cfg.local_ip, PROTO_TCP, seg, self.env._now)
        self.host.receive(pkt, self.device)
        self._run_until_ns(self.env._now)

    # -- packets out
    def _next_captured(self, deadline_ns: int):
        while self.captured_pos >= len(self.device.captured):
            if not self._step(deadline_ns):
                return None
        item = self.device.captured[self.captured_pos]
        self.captured_pos += 1
        return item

    def _expect_packet(self, ev: Event, last_us: int | None) -> None:
        p = ev.packet
        if p.protocol != "tcp":
            raise Unsupported(f"{p.protocol} packets (line {ev.line})")
        if p.encap:
            raise Unsupported(f"{'/'.join(p.encap)} encapsulation (line {ev.line})")
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
            err = _fragment_mismatch(prev_seg, seg, len(seg.payload), total, p.length)
            if err:
                raise Mismatch(ev.line, f"live packet payload: expected {p.length} bytes vs actual {total} bytes "
                                        f"(the next packet, {self._describe_segment(nxt[1], seg)} at "
                                        f"{nxt[0] / 1e9:.6f} s, cannot be aggregated: {err})\n"
                                        f"    script packet: {p.text}", group[-1][0])
            group.append(nxt)
            total += len(seg.payload)
        t_ns, pkt = group[-1]
        seg0 = group[0][1].payload
        seg = pkt.payload
        if len(group) > 1:
            seg = dataclasses.replace(seg, seq=seg0.seq, payload=bytes(total))
        self._learn(ev, seg)
        actual_us = t_ns // US
        self._match(ev, p, pkt, seg, actual_us)
        if ev.time_type != "any":
            self._verify_time(ev, actual_us, "outbound packet", last_us)

    def _learn(self, ev: Event, seg: Segment) -> None:
        if seg.flags & SYN:
            self.local_isn = seg.seq
            if not seg.flags & ACK:
                # active open: the SYN names the ports
                self.local_port = seg.sport
                self.remote_port = seg.dport

    def _match(self, ev: Event, p: PacketSpec, pkt: Packet, seg: Segment, actual_us: int) -> None:
        actual_text = self._describe_segment(pkt, seg)

        def fail(what: str):
            raise Mismatch(ev.line, f"{what}\n    script packet: {p.text}\n    actual packet: {actual_text}",
                           actual_us * US)
        if pkt.dst != self.cfg.remote_ip or seg.dport != self.remote_port and self.remote_port:
            fail(f"packet to {pkt.dst}:{seg.dport}, not to the script's remote end")
        want = _flag_bits(p.flags)
        if want is None:
            raise Unsupported(f"outbound TCP flags {p.flags!r} with the URG bit (not modelled; "
                              f"line {ev.line})")
        have = seg.flags & (SYN | FIN | RST | PSH | ACK | ECE | CWR)
        if want != have:
            fail(f"bad outbound TCP flags: expected {_flag_text(want)} actual {_flag_text(have)}")
        if p.ecn is not None:
            have_ecn = {0: "noecn", 2: "ect0", 1: "ect1", 3: "ce"}[seg.ect]
            if have_ecn != p.ecn:
                fail(f"bad outbound IP ECN field: expected {p.ecn} actual {have_ecn}")
        isn = self.local_isn or 0
        rel_seq = (seg.seq - isn) & MASK
        if rel_seq != p.seq_start & MASK:
            fail(f"bad outbound TCP sequence number: expected {p.seq_start} actual {rel_seq}")
        if len(seg.payload) != p.length:
            fail(f"live packet payload: expected {p.length} bytes vs actual {len(seg.payload)} bytes")
        if p.ack is not None or want & ACK:
            exp_ack = p.ack if p.ack is not None else 0
            rel_ack = (seg.ack - self.remote_isn) & MASK
            if rel_ack != exp_ack & MASK:
                fail(f"bad outbound TCP ack: expected {exp_ack} actual {rel_ack}")
        if p.window is not None and seg.window != p.window:
            fail(f"bad outbound TCP window: expected {p.window} actual {seg.window}")
        actual_opts = _segment_options(seg)
        # TS val to script space (map_outbound_live_packet)
        if seg.ts is not None:
            sval = next((o.value[0] for o in (p.options or ()) if o.kind == "TS"), None)
            if sval is not None:
                self.ts_map[sval] = seg.ts[0]
                if self.first_ts is None:
                    self.first_ts = (sval, seg.ts[0])
        if p.options_any:
            return
        script_opts = p.options or []
        kinds_a = [o[0] for o in actual_opts]
        kinds_s = [o.kind for o in script_opts]
        if kinds_a != kinds_s:
            fail("bad outbound TCP options")
        for (k, v), so in zip(actual_opts, script_opts):
            if k == "TS":
                tick = self.cfg.tcp_ts_tick_usecs
                if tick and self.first_ts is not None:
                    script_val = self.first_ts[0] + ((v[0] - self.first_ts[1]) & MASK)
                    delta = ((script_val - so.value[0] + 0x80000000) & MASK) - 0x80000000
                    tol = self.cfg.tolerance_usecs if not self.cfg.strict else 0
                    if not self.cfg.strict:
                        tol = max(tol, int(self.cfg.tolerance_percent / 100.0 * ev.time_us))
                    if abs(delta) * tick > tol:
                        fail(f"bad outbound TCP timestamp value: expected {so.value[0]} actual "
                             f"{script_val}, tolerance {tol}")
            elif k == "sack":
                r = self.remote_isn
                if [tuple(b) for b in so.value] != [((a - r) & MASK, (b - r) & MASK) for a, b in v]:
                    fail(f"bad value in outbound TCP option (kind=sack): expected {so.value} actual {v}")
            elif k == "FO":
                want = bytes.fromhex(so.value) if so.value else b""
                if v != want:
                    fail(f"bad value in outbound TCP option (kind=FO): expected {want.hex() or '(request)'} "
                         f"actual {v.hex() or '(request)'}")
            elif k in ("mss", "wscale"):
                if v != so.value:
                    fail(f"bad value in outbound TCP option (kind={k}): expected {k} {so.value} actual {k} {v}")

    def _describe_segment(self, pkt: Packet, seg: Segment) -> str:
        isn = self.local_isn or 0
        rel = (seg.seq - isn) & MASK
        text = f"{_flag_text(seg.flags)} {rel}:{(rel + len(seg.payload)) & MASK}({len(seg.payload)})"
        if seg.flags & ACK:
            text += f" ack {(seg.ack - self.remote_isn) & MASK}"
        text += f" win {seg.window}"
        opts = _segment_options(seg)
        if opts:
            parts = []
            for k, v in opts:
                if k == "TS":
                    sval = v[0]
                    if self.first_ts is not None:
                        sval = (self.first_ts[0] + ((v[0] - self.first_ts[1]) & MASK)) & MASK
                    parts.append(f"TS val {sval} ecr {v[1]}")
                elif k == "sack":
                    parts.append("sack " + " ".join(f"{a}:{b}" for a, b in v))
                elif k == "FO":
                    parts.append(("FO " + v.hex()) if v else "FO")
                elif v is None:
                    parts.append(k)
                else:
                    parts.append(f"{k} {v}")
            text += " <" + ",".join(parts) + ">"
        return text

    # -- system calls
    def _syscall_event(self, ev: Event) -> None:
        sc = ev.syscall
        if self.blocking is not None:
            self._await_idle(ev)
        box = _Box()
        host = self.host

        async def call(k, runner=self, sc=sc, box=box):
            try:
                box.value = await runner._do_syscall(k, sc, box)
            except OSError as exc:
                if exc.errno is None:
                    box.exc = exc
                else:
                    box.err = exc.errno
            except (Unsupported, Mismatch) as exc:
                box.exc = exc
            except Exception as exc:  # noqa: BLE001 - reported as the script's failure
                box.exc = exc
            box.done = True
            box.end_ns = runner.env._now
        host.spawn(call, name=f"line{ev.line}")
        start = self.env._now
        if sc.end_us is not None:
            self.blocking = _Blocking(ev, box, start)
            self._run_until_ns(start)
            return
        self._run_until_ns(start)
        if not box.done:
            # a call without an end time that blocks holds the script thread, as in packetdrill
            limit = start + 10_000_000_000
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

    def _code_event(self, ev: Event) -> None:
        from .code import evaluate
        sock = self.sock_state_conn()
        info = self._tcp_info(sock)
        err = evaluate(ev.code, info)
        if err:
            raise Mismatch(ev.line, f"assertion in code block failed: {err}", self.env._now)

    def sock_state_conn(self):
        # the last TCP socket the script used (packetdrill collects tcp_info for its socket)
        from simsock.kernel.tcp_socket import TcpSocket
        cand = [o for o in self.fds.values() if isinstance(o, TcpSocket) and o.conn is not None]
        if not cand:
            raise Mismatch(self.event.line, "code block: no connected socket to read tcp_info from", self.env._now)
        return cand[-1]

    def _tcp_info(self, sock) -> dict:
        try:
            from simsock.tcp.info import tcp_info
        except ImportError:
            raise Unsupported("tcp_info for %{ }% blocks (simsock.tcp.info is not available)") from None
        info = tcp_info(sock.conn, self.env._now)
        return {("tcpi_" + k if not k.startswith("tcpi_") else k): v for k, v in info.items()}

    async def _do_syscall(self, k, sc: SyscallSpec, box: _Box):
        from .syscalls import dispatch
        return await dispatch(self, k, sc, box)


_REMOTE_PORT = 48879


def _describe(ev: Event) -> str:
    if ev.kind == "packet":
        return "inbound packet" if ev.packet.direction == "<" else "outbound packet"
    if ev.kind == "syscall":
        return "system call start"
    if ev.kind == "code":
        return "data collection for code"
    return "command"


def _flag_bits(flags: str) -> int | None:
    bits = 0
    for ch in flags:
        b = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "E": ECE, "W": CWR}.get(ch)
        if b is None:
            return None
        bits |= b
    return bits


def _flag_text(bits: int) -> str:
    out = "".join(ch for b, ch in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ECE, "E"), (CWR, "W"))
                  if bits & b)
    return out + "." if bits & ACK else (out or "-")


def _segment_options(seg: Segment) -> list[tuple[str, object]]:
    """The options of a segment in Linux's layout (tcp_options_write), as packetdrill lists
    them: MSS; SACK-permitted sharing a word with timestamps, else NOP NOP TS; NOP NOP
    SACK-permitted without timestamps; NOP window scale; NOP NOP SACK blocks."""
    out: list[tuple[str, object]] = []
    if seg.mss is not None:
        out.append(("mss", seg.mss))
    if seg.ts is not None:
        if seg.sack_permitted:
            out.append(("sackOK", None))
        else:
            out += [("nop", None), ("nop", None)]
        out.append(("TS", seg.ts))
    elif seg.sack_permitted:
        out += [("nop", None), ("nop", None), ("sackOK", None)]
    if seg.wscale is not None:
        out += [("nop", None), ("wscale", seg.wscale)]
    if seg.sack:
        out += [("nop", None), ("nop", None), ("sack", list(seg.sack))]
    if seg.fastopen is not None:
        out.append(("FO", seg.fastopen))
        out += [("nop", None)] * (-(2 + len(seg.fastopen)) % 4)
    return out


def _fragment_mismatch(prev: Segment, cur: Segment, cur_len: int, sniffed: int, expected: int) -> str | None:
    """verify_packet_fragments: a captured packet continues the previous one (same flags
    but FIN/PSH, next sequence number, same ack and window) and every fragment but the last
    has the previous one's size."""
    if (prev.flags & ~(FIN | PSH)) != (cur.flags & ~(FIN | PSH)):
        return "aggregate candidate: TCP flags differ"
    if (prev.seq + len(prev.payload)) & MASK != cur.seq & MASK:
        return "aggregate candidate: sequence numbers not contiguous"
    if prev.ack != cur.ack:
        return "aggregate candidate: ack differs"
    if prev.window != cur.window:
        return "aggregate candidate: window differs"
    if cur_len < expected - sniffed and cur_len != len(prev.payload):
        return (f"fragment payload: expected {len(prev.payload)} bytes vs actual {cur_len} bytes; total payload: "
                f"expected {expected} bytes vs actual {cur_len + sniffed} bytes")
    return None


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
