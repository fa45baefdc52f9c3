"""A TCP segment as data: the header fields TCP's state machine reads and writes.

Addresses are not here: the kernel demultiplexes by (local ip, local port, remote ip,
remote port) and hands each connection only its own segments. ``window`` is the raw 16-bit
header field (unscaled); the receiver applies the peer's window scale itself, as RFC 7323
says (never on SYN segments). ``seq`` and ``ack`` are the 32-bit wire values: connections count
in unbounded integers and take them modulo 2**32 (:data:`MASK`) on the way out, and
:func:`unwrap` on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
ECE = 0x40       # ECN-Echo (RFC 3168); on a SYN with CWR: "this end does ECN"
CWR = 0x80       # Congestion Window Reduced

TCP_HEADER = 20
#: Bytes of options on a segment carrying timestamps (10, padded to 12), as Linux sends.
TIMESTAMP_OPTION = 12

#: Sequence-number space: 32 bits on the wire (RFC 9293 section 3.4).
MASK = 0xFFFFFFFF


def unwrap(wire: int, ref: int) -> int:
    """The unbounded sequence number nearest ``ref`` whose low 32 bits are ``wire``."""
    return ref + ((wire - ref + 0x80000000) & MASK) - 0x80000000


@dataclass(slots=True)
class Segment:
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: bytes = b""
    # Options. None / empty means "not present".
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)
    #: TCP Fast Open option (RFC 7413, kind 34): None absent, b"" a cookie request, else the cookie
    fastopen: bytes | None = None
    #: The sending connection, set on loopback data segments only: the receiver queues a
    #: clone of the sender's skb and can coalesce into it once the sender freed the
    #: original (see simsock.tcp.buffers.ReceiveQueue). Not a header field.
    src: object = None
    #: The ECN codepoint of the IP header carrying the segment (RFC 3168): 0 not-ECT,
    #: 2 ECT(0). Not a TCP header field.
    ect: int = 0
    #: Set on a retransmission (not a header field): TSO bursts join new data only.
    rtx: bool = False

    @property
    def seq_len(self) -> int:
        """Sequence space the segment occupies: payload plus one for SYN and for FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @property
    def header_size(self) -> int:
        """TCP header plus options as Linux lays them out (tcp_options_write): MSS 4,
        SACK-permitted sharing a word with timestamps (else NOP NOP SACK-permitted), timestamps
        NOP NOP-aligned to 12, window scale NOP-aligned to 4, SACK blocks NOP NOP kind len to
        4 + 8 per block."""
        opt = 0
        if self.mss is not None:
            opt += 4
        if self.ts is not None:
            opt += 12
        elif self.sack_permitted:
            opt += 4
        if self.wscale is not None:
            opt += 4
        if self.sack:
            opt += 4 + 8 * len(self.sack)
        if self.fastopen is not None:
            opt += (2 + len(self.fastopen) + 3) & ~3     # kind, length, cookie, NOP-padded
        return TCP_HEADER + opt

    @property
    def wire_size(self) -> int:
        """TCP header, options and payload (what follows the IP header)."""
        return self.header_size + len(self.payload)

    def flag_names(self) -> str:
        names = [n for bit, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ECE, "E"), (CWR, "W"),
                                  (ACK, ".")) if self.flags & bit]
        return "".join(names) or "none"
