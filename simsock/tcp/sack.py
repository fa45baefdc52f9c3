"""The receiver's SACK blocks (RFC 2018) and D-SACK (RFC 2883), kept the way Linux keeps them.

Linux holds up to four blocks in ``tp->selective_acks`` (TCP_NUM_SACKS), most recently
changed first, and one pending duplicate-SACK range (``tp->duplicate_sack[0]``):

* an out-of-order segment either extends a block it overlaps or touches — that block moves
  to the front and swallows any other block it now reaches (tcp_sack_new_ofo_skb,
  tcp_sack_extend, tcp_sack_maybe_coalesce) — or starts a new block at the front, the
  oldest block falling off when all four are in use (RFC 2018 section 4: "the first SACK
  block MUST specify the contiguous block of data containing the segment which triggered
  this ACK", and the rest repeat the most recently reported blocks);
* when rcv_nxt advances, blocks it covers are removed; an empty out-of-order queue clears
  them all (tcp_sack_remove);
* a segment that was received before (below rcv_nxt, or inside queued out-of-order data)
  sets the D-SACK range (tcp_dsack_set); the next segment sent carries it as its first block,
  once (tcp_options_write clears ``rx_opt.dsack``).

How many blocks fit: 40 bytes of option space; with timestamps (12 bytes) three, without
four (tcp_established_options: ``(remaining - TCPOLEN_SACK_BASE_ALIGNED) /
TCPOLEN_SACK_PERBLOCK``). Sequence numbers here are unbounded ints, like the connection's.
"""

from __future__ import annotations

#: TCP_NUM_SACKS: blocks remembered by the receiver.
TCP_NUM_SACKS = 4
#: MAX_TCP_OPTION_SPACE, TCPOLEN_SACK_BASE_ALIGNED, TCPOLEN_SACK_PERBLOCK.
_OPTION_SPACE, _SACK_BASE, _SACK_PERBLOCK = 40, 4, 8


def max_sack_blocks(timestamps: bool) -> int:
    """Blocks that fit beside the other options of an established segment (3 or 4)."""
    used = 12 if timestamps else 0
    return (_OPTION_SPACE - used - _SACK_BASE) // _SACK_PERBLOCK


class SackBlocks:
    """``tp->selective_acks`` + ``tp->duplicate_sack``: what the next ACK reports."""

    __slots__ = ("blocks", "dsack")

    def __init__(self) -> None:
        self.blocks: list[list[int]] = []    # [start, end), most recent first
        self.dsack: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.blocks) or self.dsack is not None

    def new_ofo(self, seq: int, end: int) -> None:
        """tcp_sack_new_ofo_skb: an out-of-order segment [seq, end) was queued."""
        blocks = self.blocks
        for i, b in enumerate(blocks):
            if b[0] <= end and seq <= b[1]:          # tcp_sack_extend: overlap or touch
                if seq < b[0]:
                    b[0] = seq
                if end > b[1]:
                    b[1] = end
                if i:
                    del blocks[i]
                    blocks.insert(0, b)
                self._coalesce()
                return
        if len(blocks) >= TCP_NUM_SACKS:
            blocks.pop()
        blocks.insert(0, [seq, end])

    def _coalesce(self) -> None:
        """tcp_sack_maybe_coalesce: merge blocks the first one now overlaps or touches."""
        blocks = self.blocks
        first = blocks[0]
        i = 1
        while i < len(blocks):
            b = blocks[i]
            if b[0] <= first[1] and first[0] <= b[1]:
                first[0] = min(first[0], b[0])
                first[1] = max(first[1], b[1])
                del blocks[i]
            else:
                i += 1

    def remove_below(self, rcv_nxt: int, ooo_empty: bool) -> None:
        """tcp_sack_remove: forget blocks rcv_nxt reached (all of them if no data is out of order)."""
        if ooo_empty:
            self.blocks.clear()
            return
        self.blocks = [b for b in self.blocks if b[0] > rcv_nxt]

    def set_dsack(self, seq: int, end: int) -> None:
        """tcp_dsack_set: report [seq, end) as received twice in the next ACK."""
        if end > seq:
            self.dsack = (seq, end)

    def take(self, limit: int) -> tuple[tuple[int, int], ...]:
        """The blocks for one segment's option (D-SACK first, consumed), at most ``limit``."""
        out = []
        if self.dsack is not None:
            out.append(self.dsack)
            self.dsack = None
        for b in self.blocks:
            if len(out) >= limit:
                break
            out.append((b[0], b[1]))
        return tuple(out)

    def clear(self) -> None:
        self.blocks.clear()
        self.dsack = None
