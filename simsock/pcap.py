"""Packets of a trace as a pcap file that Wireshark and tshark open.

The simulator's packets are objects (:class:`simsock.net.packet.Packet` carrying a
:class:`~simsock.net.packet.Datagram`, a :class:`~simsock.tcp.segment.Segment` or an
:class:`~simsock.net.packet.IcmpError`); this module renders each one as the bytes a wire
would carry, so that dissectors find nothing to complain about:

- the file is classic pcap with nanosecond timestamps (magic ``0xa1b23c4d``), time 0 being
  the start of the run;
- link layer: Ethernet II with made-up, stable, locally administered MAC addresses derived
  from the IPv4 addresses (``02:00:a:b:c:d``), or raw IPv4 (``linktype=LINKTYPE_RAW``);
- IPv4: 20-byte header, ``id`` = packet uid & 0xffff, the packet's TTL, DF set (Linux sets
  it on TCP and UDP because it does path-MTU discovery), valid header checksum;
- UDP and TCP with valid checksums over the pseudo-header; TCP options encoded as Linux
  lays them out (MSS, SACK-permitted, timestamps, NOP, window scale on a SYN; NOP NOP
  timestamps, NOP NOP SACK blocks otherwise), compacted when the segment's
  ``header_size`` leaves no room for alignment NOPs, so the IP length stays ``Packet.size``;
- ICMP destination-unreachable errors quoting the offending packet's IP header and first 8
  bytes, with a valid ICMP checksum.

Addresses that are not dotted IPv4 (a simulator may name hosts) are mapped to stable
addresses in 10.0.0.0/8 derived from the name, unless ``addresses`` says otherwise.

A trace keeps of each packet only what its frame is rebuilt from: :func:`packet_header`'s
flat tuple of header fields (and the payload bytes with ``payloads=True``), so this module
defines that tuple too; :class:`PcapStream` writes the frames of a run as it goes
(``Simulation(trace_pcap=...)``). Nothing here imports :mod:`simsock.trace`, which builds on
it.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib

from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Datagram, IcmpError
from simsock.tcp.segment import TCP_HEADER, Segment

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
SNAPLEN = 262144
#: Snap length of a pcap written without payloads: Ethernet + IP + the longest TCP header.
HEADERS_SNAPLEN = 14 + 20 + 60
ETHERTYPE_IPV4 = 0x0800
IP_DF = 0x4000

# TCP option kinds (RFC 9293, 7323, 2018).
_OPT_EOL, _OPT_NOP, _OPT_MSS, _OPT_WS, _OPT_SACK_PERM, _OPT_SACK, _OPT_TS = 0, 1, 2, 3, 4, 5, 8


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_bytes(address: str, addresses: dict[str, str] | None = None) -> bytes:
    """4 bytes for an IPv4 address, or a stable 10.x.y.z for a name."""
    if addresses and address in addresses:
        address = addresses[address]
    try:
        return ipaddress.IPv4Address(address).packed
    except ValueError:
        h = zlib.crc32(address.encode())
        return bytes((10, (h >> 16) & 0xFF, (h >> 8) & 0xFF, max(1, h & 0xFF)))


def mac_for(ip: bytes) -> bytes:
    """A locally administered unicast MAC derived from an IPv4 address: 02:00:a:b:c:d."""
    return b"\x02\x00" + ip


# -- what a trace keeps of a packet ------------------------------------------------------------------------
# A header is a flat tuple: (uid, src, dst, proto, size, kind, *transport fields), kind one of
#   "tcp":  sport, dport, seq, ack, flags, window, payload length, mss, wscale,
#           sack_permitted, sack, ts, payload bytes or None
#   "udp":  sport, dport, payload length, payload bytes or None
#   "frag": sport, dport, ident, index, count, length, offset, datagram length,
#           this fragment's IP payload bytes (payloads only) or None
#   "icmp": type, code, the quoted Packet (rare and rate-limited: kept whole)
#   "other": the payload's class name
TCP, UDP, FRAG, ICMP, OTHER = "tcp", "udp", "frag", "icmp", "other"


def _tcp_header(pkt, payloads):
    p = pkt.payload
    data = p.payload
    return (pkt.uid, pkt.src, pkt.dst, pkt.proto, pkt.size, TCP, p.sport, p.dport, p.seq, p.ack, p.flags,
            p.window, len(data), p.mss, p.wscale, p.sack_permitted, p.sack, p.ts,
            bytes(data) if payloads else None)


def _udp_header(pkt, payloads):
    p = pkt.payload
    data = p.data
    return (pkt.uid, pkt.src, pkt.dst, pkt.proto, pkt.size, UDP, p.sport, p.dport, len(data),
            bytes(data) if payloads else None)


def _frag_header(pkt, payloads):
    f = pkt.payload
    dg = f.datagram
    total = 8 + len(dg.data)
    # Linux cuts equal fragments (a multiple of 8 bytes) and a shorter last one.
    per = f.length if f.index < f.count - 1 else (total - f.length) // max(1, f.count - 1)
    offset = f.index * per
    chunk = None
    if payloads:
        chunk = udp_bytes(dg, ip_bytes(pkt.src), ip_bytes(pkt.dst))[offset:offset + f.length]
    return (pkt.uid, pkt.src, pkt.dst, pkt.proto, pkt.size, FRAG, dg.sport, dg.dport, f.ident, f.index, f.count,
            f.length, offset, total, chunk)


def _icmp_header(pkt, payloads):
    p = pkt.payload
    return (pkt.uid, pkt.src, pkt.dst, pkt.proto, pkt.size, ICMP, p.type, p.code, p.quoted)


def _other_header(pkt, payloads):
    return (pkt.uid, pkt.src, pkt.dst, pkt.proto, pkt.size, OTHER, type(pkt.payload).__name__)


_HEADER_OF: dict[type, object] = {}


def packet_header(pkt, payloads: bool = False) -> tuple:
    """The header tuple a trace keeps for ``pkt`` (see the comment above for its layout)."""
    kind = type(pkt.payload)
    fn = _HEADER_OF.get(kind)
    if fn is None:
        p = pkt.payload
        if hasattr(p, "seq") and hasattr(p, "flags"):
            fn = _tcp_header
        elif hasattr(p, "datagram") and hasattr(p, "index"):
            fn = _frag_header
        elif hasattr(p, "data") and hasattr(p, "sport"):
            fn = _udp_header
        elif hasattr(p, "quoted"):
            fn = _icmp_header
        else:
            fn = _other_header
        _HEADER_OF[kind] = fn
    return fn(pkt, payloads)


# -- transport headers ---------------------------------------------------------------------
def _options(mss, wscale, sack_permitted, ts, sack, room: int) -> bytes:
    mss = struct.pack("!BBH", _OPT_MSS, 4, mss & 0xFFFF) if mss is not None else b""
    ws = struct.pack("!BBB", _OPT_WS, 3, wscale) if wscale is not None else b""
    sp = bytes((_OPT_SACK_PERM, 2)) if sack_permitted else b""
    ts = (struct.pack("!BBII", _OPT_TS, 10, ts[0] & 0xFFFFFFFF, ts[1] & 0xFFFFFFFF)
          if ts is not None else b"")
    sack_opt = b""
    if sack:
        sack_opt = bytes((_OPT_SACK, 2 + 8 * len(sack))) + b"".join(
            struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF) for left, right in sack)
    nop = bytes((_OPT_NOP,))
    # Linux's layout (tcp_options_write): SACK-permitted shares a word with timestamps.
    aligned = mss
    if sp and ts:
        aligned += sp + ts
    else:
        aligned += (nop * 2 + ts if ts else b"") + (nop * 2 + sp if sp else b"")
    aligned += (nop + ws if ws else b"") + (nop * 2 + sack_opt if sack_opt else b"")
    compact = mss + sp + ts + ws + sack_opt
    opts = aligned if len(aligned) <= room else compact
    if len(opts) > room:
        raise ValueError(f"TCP options need {len(opts)} bytes but the segment's header has room for {room}")
    return opts + bytes((_OPT_EOL,)) * (room - len(opts))


def tcp_options(seg: Segment) -> bytes:
    """The segment's options, padded to exactly ``seg.header_size - 20`` bytes."""
    return _options(seg.mss, seg.wscale, seg.sack_permitted, seg.ts, seg.sack, seg.header_size - TCP_HEADER)


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def tcp_bytes(seg: Segment, src: bytes, dst: bytes) -> bytes:
    return _tcp_from_header(seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window, seg.mss, seg.wscale,
                            seg.sack_permitted, seg.ts, seg.sack, seg.header_size, bytes(seg.payload),
                            len(seg.payload), src, dst)


def _tcp_from_header(sport, dport, seq, ack, flags, window, mss, wscale, sack_permitted, ts, sack, header_size,
                     payload, length, src, dst) -> bytes:
    """The TCP header (and ``payload``, None when it was not traced) with the checksum over
    the pseudo-header for ``length`` payload bytes; an untraced payload counts as zeros."""
    opts = _options(mss, wscale, sack_permitted, ts, sack, header_size - TCP_HEADER)
    offset = (TCP_HEADER + len(opts)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset << 4, flags & 0xFF, window & 0xFFFF, 0, 0) + opts
    body = header + payload if payload is not None else header
    csum = checksum(_pseudo(src, dst, PROTO_TCP, len(header) + length) + body)
    return body[:16] + struct.pack("!H", csum) + body[18:]


def _udp_from_header(sport, dport, data, length, src, dst) -> bytes:
    total = 8 + length
    body = struct.pack("!HHHH", sport, dport, total, 0) + (data if data is not None else b"")
    csum = checksum(_pseudo(src, dst, PROTO_UDP, total) + body) or 0xFFFF   # 0 means "none" (RFC 768)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def udp_bytes(dg: Datagram, src: bytes, dst: bytes) -> bytes:
    return _udp_from_header(dg.sport, dg.dport, bytes(dg.data), len(dg.data), src, dst)


def icmp_bytes(err: IcmpError, addresses=None) -> bytes:
    return _icmp_from_header(err.type, err.code, err.quoted, addresses)


def _icmp_from_header(type_, code, quoted, addresses) -> bytes:
    quoted = ipv4_bytes(quoted, addresses)[:28]   # IP header + first 8 bytes (RFC 792)
    body = struct.pack("!BBHI", type_, code, 0, 0) + quoted
    csum = checksum(body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


IP_MF = 0x2000


def ip_from_header(h: tuple, ttl: int, addresses: dict[str, str] | None = None) -> bytes:
    """The IPv4 datagram of a trace's packet header (:func:`packet_header`): the
    whole datagram when its payload was traced, else its headers only (IP, then TCP/UDP, or
    the ICMP error in full). The IP total length is always the packet's size."""
    src, dst = ip_bytes(h[1], addresses), ip_bytes(h[2], addresses)
    kind, size = h[5], h[4]
    ident, flags = h[0] & 0xFFFF, IP_DF
    if kind == "tcp":
        plen = h[12]
        transport = _tcp_from_header(h[6], h[7], h[8], h[9], h[10], h[11], h[13], h[14], h[15], h[17], h[16],
                                     size - 20 - plen, h[18], plen, src, dst)
        proto = PROTO_TCP
    elif kind == "udp":
        transport, proto = _udp_from_header(h[6], h[7], h[9], h[8], src, dst), PROTO_UDP
    elif kind == "frag":
        _sport, _dport, fid, index, count, length, offset, total, chunk = h[6:15]
        proto, ident = PROTO_UDP, fid
        flags = (IP_MF if index < count - 1 else 0) | (offset >> 3)
        if chunk is not None:
            transport = chunk
        elif index == 0:
            transport = _udp_from_header(h[6], h[7], None, total - 8, src, dst)
        else:
            transport = b""
    elif kind == "icmp":
        transport, proto, flags = _icmp_from_header(h[6], h[7], h[8], addresses), PROTO_ICMP, 0
    else:
        raise TypeError(f"cannot encode a packet carrying {h[6]}")
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, ident, flags,
                         max(0, min(255, ttl)), proto, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + transport


def ipv4_bytes(pkt, addresses: dict[str, str] | None = None) -> bytes:
    """The packet as an IPv4 datagram: header with a valid checksum, then the transport."""
    if not isinstance(pkt.payload, (Segment, Datagram, IcmpError)) and not hasattr(pkt.payload, "datagram"):
        raise TypeError(f"cannot encode a packet carrying {type(pkt.payload).__name__}")
    return ip_from_header(packet_header(pkt, payloads=True), pkt.ttl, addresses)


def _frame(ip: bytes, linktype: int) -> bytes:
    if linktype == LINKTYPE_RAW:
        return ip
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"linktype must be LINKTYPE_ETHERNET (1) or LINKTYPE_RAW (101), not {linktype}")
    return mac_for(ip[16:20]) + mac_for(ip[12:16]) + struct.pack("!H", ETHERTYPE_IPV4) + ip


def frame_bytes(pkt, linktype: int = LINKTYPE_ETHERNET, addresses=None) -> bytes:
    return _frame(ipv4_bytes(pkt, addresses), linktype)


# -- files ---------------------------------------------------------------------------------
def write_pcap_header(f, linktype: int = LINKTYPE_ETHERNET, snaplen: int | None = None) -> None:
    """The 24-byte pcap file header (nanosecond timestamps); ``snaplen`` None: no truncation."""
    f.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN if snaplen is None else snaplen, linktype))


def write_pcap_rows(f, rows, linktype: int = LINKTYPE_ETHERNET, addresses: dict[str, str] | None = None,
                    snaplen: int | None = None) -> int:
    """Append records to an open pcap file: ``(t_ns, where, event, header, ttl)`` rows (as
    :meth:`Trace.packet_rows` yields them) or ``(t_ns, where, event, Packet)`` rows (the
    whole packet, payload included). A header without its payload is written truncated as
    ``tcpdump -s`` does: the record's original length is the frame's, its captured length
    stops after the headers. Returns the number of packets written."""
    n = 0
    limit = SNAPLEN if snaplen is None else snaplen
    eth = 0 if linktype == LINKTYPE_RAW else 14
    out = []
    for row in rows:
        if len(row) == 4:
            t_ns, _where, _event, pkt = row
            h, ttl = packet_header(pkt, payloads=True), pkt.ttl
        else:
            t_ns, _where, _event, h, ttl = row
        frame = _frame(ip_from_header(h, ttl, addresses), linktype)
        sec, nsec = divmod(int(t_ns), 1_000_000_000)
        captured = frame[:limit]
        out.append(struct.pack("<IIII", sec, nsec, len(captured), eth + h[4]))
        out.append(captured)
        n += 1
    f.write(b"".join(out))
    return n


def write_pcap(path, rows, linktype: int = LINKTYPE_ETHERNET, addresses: dict[str, str] | None = None,
               snaplen: int | None = None) -> int:
    """Write rows (see :func:`write_pcap_rows`) to ``path``; returns the number of packets
    written. Choosing rows is the caller's job."""
    with open(path, "wb") as f:
        write_pcap_header(f, linktype, snaplen)
        return write_pcap_rows(f, rows, linktype, addresses, snaplen)


class PcapStream:
    """Packets chosen by (at, event), written to a pcap file in batches of ``batch`` rows as
    the run goes: ``Trace(pcap=...)`` offers it every packet record (``trace.selector``
    chooses, see :meth:`simsock.trace.Trace.to_pcap`)."""

    def __init__(self, trace, path: str, at, event, batch: int):
        self.trace = trace
        self.batch = batch
        self.path = path
        self.at = at
        self.event = event
        self.select = None   # (where, event) -> bool, from trace.selector(at, event)
        self._rows: list[tuple] = []
        self.written = 0
        self.snaplen = None if trace.payloads else HEADERS_SNAPLEN
        with open(path, "wb") as f:
            write_pcap_header(f, snaplen=self.snaplen)

    def offer(self, row: tuple) -> None:
        select = self.select
        if select is None:
            select = self.select = self.trace.selector(self.at, self.event)
        if select(row[2], row[3]):
            self._rows.append((row[0], row[2], row[3], row[4], row[5]))
            if len(self._rows) >= self.batch:
                self.flush()

    def flush(self) -> None:
        if self._rows:
            with open(self.path, "ab") as f:
                self.written += write_pcap_rows(f, self._rows, snaplen=self.snaplen)
            self._rows.clear()


def sim_trace_to_pcap(trace, path, at: str | None = None, event: str | None = "arrive", **kwargs) -> int:
    """The packets of ``trace`` seen at ``at`` (a link direction, host or router name; None:
    anywhere) with event ``event`` (None: every event), as a pcap file; returns the packet
    count (see :meth:`simsock.trace.Trace.to_pcap`)."""
    if kwargs:
        select = trace.selector(at, event)
        rows = (r for r in trace.packet_rows() if select(r[1], r[2]))
        return write_pcap(path, rows, snaplen=None if trace.payloads else HEADERS_SNAPLEN, **kwargs)
    return trace.to_pcap(path, at=at, event=event)


def read_pcap(path) -> tuple[int, list[tuple[int, bytes]]]:
    """(linktype, [(t_ns, frame bytes)]) of a file written by :func:`write_pcap` (for tests)."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _major, _minor, _zone, _sig, _snap, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != PCAP_MAGIC_NS:
        raise ValueError(f"not a nanosecond pcap file (magic {magic:#x})")
    pos, out = 24, []
    while pos < len(data):
        sec, nsec, incl, _orig = struct.unpack_from("<IIII", data, pos)
        pos += 16
        out.append((sec * 1_000_000_000 + nsec, data[pos:pos + incl]))
        pos += incl
    return linktype, out
