"""The script's TCP packets and the live ones, mapped as packetdrill maps them.

A script writes sequence numbers relative to each side's initial sequence number, acks and
SACK blocks relative to the other side's, and timestamps as numbers of its own; packetdrill
keeps the mapping per socket (``struct socket`` in socket.h, run_packet.c). :class:`Flow`
is that mapping for the script's one connection: the remote ISN is the script's SYN
sequence number, the local ISN and the ports are learnt from the host's SYN or SYN-ACK, and
each outbound TS val the script names is remembered, so that an inbound TS ecr naming it
carries the live value. ``<`` lines become :class:`Segment` objects (:meth:`Flow.inbound`);
``>`` lines are checked against captured segments (:meth:`Flow.match`) with run_packet.c's
rules and messages.
"""

from __future__ import annotations

from simsock.net.packet import Packet
from simsock.tcp.segment import ACK, CWR, ECE, FIN, MASK, PSH, RST, SYN, Segment

from .config import Config
from .result import Mismatch, Unsupported
from .script import Event, PacketSpec

US = 1000               # ns per microsecond

#: the port the script's remote end uses when the script opens the connection (packetdrill's
#: default remote port, 0xBEEF)
REMOTE_PORT = 48879

_FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "E": ECE, "W": CWR}


class Flow:
    """The script's connection: how its numbers map to the live ones."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.local_isn: int | None = None     # the host's ISN, from its SYN or SYN-ACK
        self.remote_isn = 0                   # the script's SYN sequence number
        self.local_port = cfg.bind_port
        self.remote_port = 0                  # 0 until a SYN names the connection
        self.ts_map: dict[int, int] = {}      # script TS val -> live TS val
        self.first_ts: tuple[int, int] | None = None   # the first (script, live) TS val pair

    # -- inbound
    def inbound(self, ev: Event, now_ns: int) -> Segment:
        """The segment a ``<`` line injects, in live numbers."""
        p = ev.packet
        _check_inbound_headers(ev)
        flags = 0
        for ch in p.flags:
            bit = _FLAG_BITS.get(ch)
            if bit is None:
                raise Unsupported(f"inbound TCP flag {ch!r} (URG is not modelled; line {ev.line})")
            flags |= bit
        if flags & (ECE | CWR) and not flags & SYN:
            raise Unsupported(f"ECE/CWR on an established connection (ECN congestion signals are not "
                              f"modelled; line {ev.line})")
        if p.urg is not None:
            raise Unsupported(f"urgent pointer (line {ev.line})")
        if flags & SYN and not flags & ACK and self.remote_port == 0:
            self.remote_port = REMOTE_PORT
        if self.remote_port == 0:
            raise Mismatch(ev.line, "inbound packet before the script's socket has a connection "
                                    "(no SYN sent or received yet)", now_ns)
        ack_off = self.local_isn or 0
        # later inbound sequence numbers (and outbound acks) are relative to the script's SYN
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
        self._inbound_options(ev, seg, now_ns)
        return seg

    def _inbound_options(self, ev: Event, seg: Segment, now_ns: int) -> None:
        ack_off = self.local_isn or 0
        for opt in ev.packet.options or ():
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
                seg.ts = self._inbound_ts(ev, seg.flags, val, ecr, now_ns)
            else:
                raise Unsupported(f"TCP option {k} (line {ev.line})")

    def _inbound_ts(self, ev: Event, flags: int, val: int, ecr: int, now_ns: int) -> tuple[int, int]:
        """The TS ecr the script names is an outbound TS val of its own (0: the first one)."""
        if flags & ACK and ecr:
            live = self.ts_map.get(ecr)
            if live is None:
                raise Mismatch(ev.line, f"unable to infer live TS ecr for script TS ecr {ecr}; "
                                        f"no matching or preceding outbound TS val", now_ns)
            ecr = live
        elif flags & ACK:
            live = self.ts_map.get(0)
            ecr = live if live is not None else 0
        return (val & MASK, ecr & MASK)

    # -- outbound
    def learn(self, seg: Segment) -> None:
        """The host's SYN or SYN-ACK gives its ISN; an active open's SYN names the ports."""
        if seg.flags & SYN:
            self.local_isn = seg.seq
            if not seg.flags & ACK:
                self.local_port = seg.sport
                self.remote_port = seg.dport

    def match(self, ev: Event, pkt: Packet, seg: Segment, actual_us: int) -> None:
        """Check a captured (possibly aggregated) segment against the ``>`` line, in
        run_packet.c's order; the first difference raises :class:`Mismatch`."""
        p = ev.packet
        actual_text = self.describe(pkt, seg)

        def fail(what: str):
            raise Mismatch(ev.line, f"{what}\n    script packet: {p.text}\n    actual packet: {actual_text}",
                           actual_us * US)
        if pkt.dst != self.cfg.remote_ip or seg.dport != self.remote_port and self.remote_port:
            fail(f"packet to {pkt.dst}:{seg.dport}, not to the script's remote end")
        want = flag_bits(p.flags)
        if want is None:
            raise Unsupported(f"outbound TCP flags {p.flags!r} with the URG bit (not modelled; "
                              f"line {ev.line})")
        have = seg.flags & (SYN | FIN | RST | PSH | ACK | ECE | CWR)
        if want != have:
            fail(f"bad outbound TCP flags: expected {flag_text(want)} actual {flag_text(have)}")
        if p.ecn is not None:
            have_ecn = {0: "noecn", 2: "ect0", 1: "ect1", 3: "ce"}[seg.ect]
            if have_ecn != p.ecn:
                fail(f"bad outbound IP ECN field: expected {p.ecn} actual {have_ecn}")
        rel_seq = (seg.seq - (self.local_isn or 0)) & MASK
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
        actual_opts = segment_options(seg)
        if seg.ts is not None:          # the TS val to script space (map_outbound_live_packet)
            sval = next((o.value[0] for o in (p.options or ()) if o.kind == "TS"), None)
            if sval is not None:
                self.ts_map[sval] = seg.ts[0]
                if self.first_ts is None:
                    self.first_ts = (sval, seg.ts[0])
        if not p.options_any:
            self._match_options(ev, p, actual_opts, fail)

    def _match_options(self, ev: Event, p: PacketSpec, actual_opts: list, fail) -> None:
        script_opts = p.options or []
        if [o[0] for o in actual_opts] != [o.kind for o in script_opts]:
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

    def describe(self, pkt: Packet, seg: Segment) -> str:
        """A captured segment as a script line would write it (for messages)."""
        isn = self.local_isn or 0
        rel = (seg.seq - isn) & MASK
        text = f"{flag_text(seg.flags)} {rel}:{(rel + len(seg.payload)) & MASK}({len(seg.payload)})"
        if seg.flags & ACK:
            text += f" ack {(seg.ack - self.remote_isn) & MASK}"
        text += f" win {seg.window}"
        opts = segment_options(seg)
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


def check_tcp_line(ev: Event) -> None:
    """A packet line the interpreter runs is TCP without encapsulation."""
    p = ev.packet
    if p.protocol != "tcp":
        raise Unsupported(f"{p.protocol} packets (line {ev.line})")
    if p.encap:
        raise Unsupported(f"{'/'.join(p.encap)} encapsulation (line {ev.line})")


def _check_inbound_headers(ev: Event) -> None:
    check_tcp_line(ev)
    p = ev.packet
    if p.ecn not in (None, "noecn") or p.ip_info:
        raise Unsupported(f"inbound IP header fields [{p.ecn or ''} {p.ip_info or ''}] (line {ev.line})")


def flag_bits(flags: str) -> int | None:
    """The flag letters of a script line as bits; None if one is not modelled (URG)."""
    bits = 0
    for ch in flags:
        b = _FLAG_BITS.get(ch)
        if b is None:
            return None
        bits |= b
    return bits


def flag_text(bits: int) -> str:
    out = "".join(ch for b, ch in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ECE, "E"), (CWR, "W"))
                  if bits & b)
    return out + "." if bits & ACK else (out or "-")


def segment_options(seg: Segment) -> list[tuple[str, object]]:
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


def fragment_mismatch(prev: Segment, cur: Segment, cur_len: int, sniffed: int, expected: int) -> str | None:
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
