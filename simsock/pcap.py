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


# -- transport headers ---------------------------------------------------------------------
def tcp_options(seg: Segment) -> bytes:
    """The segment's options, padded to exactly ``seg.header_size - 20`` bytes."""
    room = seg.header_size - TCP_HEADER
    mss = struct.pack("!BBH", _OPT_MSS, 4, seg.mss & 0xFFFF) if seg.mss is not None else b""
    ws = struct.pack("!BBB", _OPT_WS, 3, seg.wscale) if seg.wscale is not None else b""
    sp = bytes((_OPT_SACK_PERM, 2)) if seg.sack_permitted else b""
    ts = (struct.pack("!BBII", _OPT_TS, 10, seg.ts[0] & 0xFFFFFFFF, seg.ts[1] & 0xFFFFFFFF)
          if seg.ts is not None else b"")
    sack = b""
    if seg.sack:
        sack = bytes((_OPT_SACK, 2 + 8 * len(seg.sack))) + b"".join(
            struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF) for left, right in seg.sack)
    nop = bytes((_OPT_NOP,))
    # Linux's layout (tcp_options_write): SACK-permitted shares a word with timestamps.
    aligned = mss
    if sp and ts:
        aligned += sp + ts
    else:
        aligned += (nop * 2 + ts if ts else b"") + (nop * 2 + sp if sp else b"")
    aligned += (nop + ws if ws else b"") + (nop * 2 + sack if sack else b"")
    compact = mss + sp + ts + ws + sack
    opts = aligned if len(aligned) <= room else compact
    if len(opts) > room:
        raise ValueError(f"TCP options need {len(opts)} bytes but the segment's header has room for {room}")
    return opts + bytes((_OPT_EOL,)) * (room - len(opts))


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def tcp_bytes(seg: Segment, src: bytes, dst: bytes) -> bytes:
    opts = tcp_options(seg)
    offset = (TCP_HEADER + len(opts)) // 4
    header = struct.pack("!HHIIBBHHH", seg.sport, seg.dport, seg.seq & 0xFFFFFFFF, seg.ack & 0xFFFFFFFF,
                         offset << 4, seg.flags & 0xFF, seg.window & 0xFFFF, 0, 0) + opts
    body = header + bytes(seg.payload)
    csum = checksum(_pseudo(src, dst, PROTO_TCP, len(body)) + body)
    return body[:16] + struct.pack("!H", csum) + body[18:]


def udp_bytes(dg: Datagram, src: bytes, dst: bytes) -> bytes:
    length = 8 + len(dg.data)
    body = struct.pack("!HHHH", dg.sport, dg.dport, length, 0) + bytes(dg.data)
    csum = checksum(_pseudo(src, dst, PROTO_UDP, length) + body) or 0xFFFF   # 0 means "none" (RFC 768)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def icmp_bytes(err: IcmpError, addresses=None) -> bytes:
    quoted = ipv4_bytes(err.quoted, addresses)[:28]   # IP header + first 8 bytes (RFC 792)
    body = struct.pack("!BBHI", err.type, err.code, 0, 0) + quoted
    csum = checksum(body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


def ipv4_bytes(pkt, addresses: dict[str, str] | None = None) -> bytes:
    """The packet as an IPv4 datagram: header with a valid checksum, then the transport."""
    src, dst = ip_bytes(pkt.src, addresses), ip_bytes(pkt.dst, addresses)
    p = pkt.payload
    if isinstance(p, Segment):
        transport, proto, flags = tcp_bytes(p, src, dst), PROTO_TCP, IP_DF
    elif isinstance(p, Datagram):
        transport, proto, flags = udp_bytes(p, src, dst), PROTO_UDP, IP_DF
    elif isinstance(p, IcmpError):
        transport, proto, flags = icmp_bytes(p, addresses), PROTO_ICMP, 0
    else:
        raise TypeError(f"cannot encode a packet carrying {type(p).__name__}")
    total = 20 + len(transport)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, pkt.uid & 0xFFFF, flags,
                         max(0, min(255, pkt.ttl)), proto, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + transport


def frame_bytes(pkt, linktype: int = LINKTYPE_ETHERNET, addresses=None) -> bytes:
    ip = ipv4_bytes(pkt, addresses)
    if linktype == LINKTYPE_RAW:
        return ip
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"linktype must be LINKTYPE_ETHERNET (1) or LINKTYPE_RAW (101), not {linktype}")
    return mac_for(ip[16:20]) + mac_for(ip[12:16]) + struct.pack("!H", ETHERTYPE_IPV4) + ip


# -- files ---------------------------------------------------------------------------------
def write_pcap(path, rows, linktype: int = LINKTYPE_ETHERNET, addresses: dict[str, str] | None = None) -> int:
    """Write ``(t_ns, where, event, Packet)`` rows (as :meth:`Trace.packet_rows` yields them)
    to ``path``; returns the number of packets written. Choosing rows is the caller's job."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, linktype))
        for t_ns, _where, _event, pkt in rows:
            frame = frame_bytes(pkt, linktype, addresses)
            sec, nsec = divmod(int(t_ns), 1_000_000_000)
            captured = frame[:SNAPLEN]
            f.write(struct.pack("<IIII", sec, nsec, len(captured), len(frame)))
            f.write(captured)
            n += 1
    return n


def sim_trace_to_pcap(trace, path, at: str | None = None, event: str = "arrive", **kwargs) -> int:
    """The packets of ``trace`` seen at ``at`` (a link, host or router name; None: anywhere)
    with event ``event`` (None: every event), as a pcap file; returns the packet count."""
    rows = ((t, where, ev, pkt) for t, where, ev, pkt in trace.packet_rows()
            if (at is None or where == at) and (event is None or ev == event))
    return write_pcap(path, rows, **kwargs)


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
