"""What crosses links: an IPv4 packet carrying a UDP datagram or a TCP segment.

One ``Packet`` per packet in flight, with ``__slots__``; its ``size`` is the IP packet's
length in bytes (IP header + transport header + payload), which is what links serialise
and what queues count. Link-layer framing is not charged (as in tc's default accounting of
``len``).
"""

from __future__ import annotations

from dataclasses import dataclass

IP_HEADER = 20
UDP_HEADER = 8
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP = 1


@dataclass(slots=True)
class Datagram:
    """A UDP datagram's header fields and payload."""
    sport: int
    dport: int
    data: bytes

    @property
    def wire_size(self) -> int:
        return UDP_HEADER + len(self.data)


@dataclass(slots=True)
class IcmpError:
    """An ICMP error (destination/port unreachable) quoting the packet that caused it."""
    type: int   # 3 = destination unreachable
    code: int   # 3 = port unreachable, 1 = host unreachable, 0 = net unreachable
    quoted: "Packet"

    @property
    def wire_size(self) -> int:
        # ICMP header + quoted IP header + first 8 bytes of the quoted payload (RFC 792).
        return 8 + IP_HEADER + 8


class Packet:
    __slots__ = ("uid", "src", "dst", "proto", "payload", "size", "created", "ttl", "enqueued_at", "truesize", "trace_hdr")

    def __init__(self, uid: int, src: str, dst: str, proto: int, payload, created: int, ttl: int = 64):
        self.uid = uid
        self.src = src
        self.dst = dst
        self.proto = proto
        self.payload = payload
        self.size = IP_HEADER + payload.wire_size
        self.created = created
        self.ttl = ttl
        self.enqueued_at = 0   # set by the queue that holds it (qdiscs use it for sojourn time)
        self.truesize = 0      # kernel memory charged for it at the receiver (set on delivery)
        self.trace_hdr = None  # its header fields as the trace keeps them (simsock.pcap.packet_header)

    @property
    def flow(self) -> tuple:
        """(src, sport, dst, dport, proto): the five-tuple naming the flow this packet belongs to."""
        p = self.payload
        return (self.src, getattr(p, "sport", 0), self.dst, getattr(p, "dport", 0), self.proto)

    def __repr__(self) -> str:
        return f"Packet(#{self.uid} {self.src}->{self.dst} proto={self.proto} size={self.size})"
