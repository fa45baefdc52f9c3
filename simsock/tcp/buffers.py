"""Send and receive queues with Linux's memory accounting.

**Send queue** (``sk_write_queue`` + retransmit queue). Bytes live in one ``bytearray``
indexed by sequence number; beside it, a list of *skbs* ``[start, end)`` exists only to
charge memory the way Linux does: every skb costs its payload plus a fixed overhead
(``sk_wmem_queued += truesize``, tcp_stream_alloc_skb). tcp_sendmsg_locked appends to the
tail skb while it is unsent and shorter than ``size_goal``; a *new* skb may only be started
while ``sk_wmem_queued < sk_sndbuf`` (sk_stream_memory_free), and then it takes up to
``size_goal`` bytes, so the queue overshoots sndbuf by at most one skb. When the window or
cwnd lets only part of an skb leave, tcp_write_xmit splits it (tso_fragment) and the new
skb is charged the overhead again. Before sending the head of the write queue,
tcp_write_xmit grows it (tcp_grow_skb, Linux 6.10+) with payload pulled from the one skb
after it, up to ``cwnd quota x mss`` bytes; an skb emptied that way is freed and its
overhead released, so unsent data waiting on a closed window ends up in one skb charged
the overhead once (:meth:`SendQueue.grow`). tcp_sendmsg_locked pushes in the middle of a
call (an skb filled and more than half the peer's largest window written since the last
push, or the filled skb is the send head) and before it gives up for lack of memory, so
that growth frees memory within one call (:meth:`SendQueue.append`'s ``push``). An ACK
frees whole skbs; a partial ACK trims the head skb by the acked payload (tcp_trim_head).

**Receive queue** (``sk_receive_queue`` + out-of-order queue). In-order data is a deque of
``[bytes, offset, truesize]`` chunks; ``rmem_alloc`` is the sum of truesizes and a chunk's
truesize is released only when the reader has consumed it entirely (skb freed in
tcp_recvmsg / sk_eat_skb). Out-of-order segments are kept sorted by sequence number
(tcp_data_queue_ofo) and charged the same way.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter
from collections import deque


#: skb flags in the send queue: TCPHDR_PSH set by tcp_mark_push, and the EOR mark (MSG_EOR).
SKB_PSH, SKB_EOR = 1, 2
#: An skb is [start, end, flags]; the live ones are in sequence order, so their ends are
#: sorted and the skb holding a sequence number is the first whose end lies above it.
_SKB_END = itemgetter(1)


class SendQueue:
    __slots__ = ("_buf", "_base", "end", "skbs", "_first", "wmem_queued", "overhead", "pushed_seq")

    def __init__(self, start_seq: int, overhead: int) -> None:
        self._buf = bytearray()
        self._base = start_seq          # sequence number of _buf[0]
        self.end = start_seq            # write_seq: one past the last queued byte
        self.skbs: list[list[int]] = []  # [start, end) per skb, acked ones removed lazily
        self._first = 0                 # index of the first live skb
        self.wmem_queued = 0
        self.overhead = overhead
        self.pushed_seq = start_seq     # tp->pushed_seq: write_seq at the last tcp_mark_push

    # -- application side --------------------------------------------------------------
    def append(self, data, size_goal: int, sndbuf: int, snd_nxt: int, push=None, push_gap: int = 0,
               eor: bool = False, mark_push: bool = True, lowat: int = 0xFFFFFFFF) -> int:
        """Copy as much of ``data`` as tcp_sendmsg_locked would; return the byte count.

        ``push`` (optional) transmits what the connection can (tcp_write_xmit, which grows
        the send head, see :meth:`grow`) and returns the new snd_nxt. tcp_sendmsg_locked
        calls it when an skb has filled up with data still to copy and either more than
        ``push_gap`` bytes (half the peer's largest window) were written since the last push
        (forced_push) or the full skb is the send head (tcp_push_one); and at
        wait_for_space, before giving up for lack of memory. The push at the end of the call
        is the caller's (the pushed sequence is marked here).

        Each skb carries flags (``SKB_PSH``, ``SKB_EOR``): PSH on every skb a call writes
        unless ``mark_push`` is False (MSG_MORE, which also clears the PSH of the tail skb it
        appends to), as Linux 6.18 shows on the wire (see the comment below); tcp_mark_push
        (forced_push, the push at the end of the call) sets it too; ``eor`` (MSG_EOR) marks
        the last skb of the call so that nothing is appended to it later
        (tcp_skb_can_collapse_to). A new skb also needs fewer than
        ``lowat`` unsent bytes (tcp_stream_memory_free: TCP_NOTSENT_LOWAT)."""
        n = len(data)
        copied = stored = 0                 # bytes accepted / already in _buf
        skbs = self.skbs
        while copied < n:
            tail = skbs[-1] if len(skbs) > self._first else None
            room = (size_goal - (tail[1] - tail[0]) if tail is not None and tail[0] >= snd_nxt
                    and not tail[2] & SKB_EOR else 0)
            if room > 0 and not copied and not mark_push:
                tail[2] &= ~SKB_PSH         # if (!copied) tcp_flags &= ~TCPHDR_PSH
            if room <= 0:
                if self.wmem_queued >= sndbuf or self.end - snd_nxt >= lowat:   # !sk_stream_memory_free
                    if push is not None and copied:
                        self._buf += data[stored:copied]
                        stored = copied
                        self.pushed_seq = self.end  # tcp_push(flags & ~MSG_MORE): tcp_mark_push
                        skbs[-1][2] |= SKB_PSH
                        push()
                    break
                # measured on 6.18 (packetdrill, real kernel): every TSO packet of data
                # written without MSG_MORE carries PSH, also from skbs that no tcp_mark_push
                # reached (the first 64 KB skb of a large write to a wide window)
                tail = [self.end, self.end, SKB_PSH if mark_push else 0]
                skbs.append(tail)
                self.wmem_queued += self.overhead
                room = size_goal
            take = min(room, n - copied)
            tail[1] += take
            self.end += take
            self.wmem_queued += take
            copied += take
            if push is not None and copied < n and tail[1] - tail[0] >= size_goal:
                if self.end > self.pushed_seq + push_gap:          # forced_push
                    self.pushed_seq = self.end
                    tail[2] |= SKB_PSH
                elif tail[0] != snd_nxt:                           # not the send head
                    continue
                self._buf += data[stored:copied]
                stored = copied
                snd_nxt = push()
        if copied:
            if stored < copied:
                self._buf += data if stored == 0 and copied == n else data[stored:copied]
            if mark_push:
                self.pushed_seq = self.end  # tcp_push at the end of the call: tcp_mark_push
                skbs[-1][2] |= SKB_PSH
            if eor:
                skbs[-1][2] |= SKB_EOR
        return copied

    def grow(self, seq: int, amount: int) -> None:
        """tcp_grow_skb: the unsent skb starting at ``seq`` (the send head) takes payload from
        the one skb after it until it holds ``amount`` bytes; that skb, if emptied, is freed
        and its overhead released (skb_shift moves truesize with the payload)."""
        skbs = self.skbs
        lo = bisect_right(skbs, seq, self._first, key=_SKB_END)
        if lo + 1 >= len(skbs):
            return                          # no skb there, or it is the last one
        head = skbs[lo]
        if head[0] != seq or head[2] & SKB_EOR:
            return                          # tcp_skb_can_collapse: not past an EOR mark
        missing = amount - (head[1] - head[0])
        if missing <= 0:
            return
        nxt = skbs[lo + 1]
        take = min(missing, nxt[1] - nxt[0])
        head[1] += take
        nxt[0] += take
        if nxt[0] == nxt[1]:
            head[2] |= nxt[2]               # the emptied skb's PSH and EOR move over
            del skbs[lo + 1]
            self.wmem_queued -= self.overhead

    # -- network side ------------------------------------------------------------------
    def data(self, start: int, end: int) -> bytes:
        i = start - self._base
        return bytes(self._buf[i:i + (end - start)])

    def skb_end(self, seq: int) -> int:
        """End of the skb holding ``seq`` (segments never span two skbs)."""
        skbs = self.skbs
        lo = bisect_right(skbs, seq, self._first, key=_SKB_END)
        return skbs[lo][1] if lo < len(skbs) else self.end

    def skb_flags(self, seq: int) -> int:
        """The flags (SKB_PSH, SKB_EOR) of the skb holding ``seq`` (0 past the queue)."""
        skbs = self.skbs
        lo = bisect_right(skbs, seq, self._first, key=_SKB_END)
        return skbs[lo][2] if lo < len(skbs) else 0

    def is_tail_skb(self, seq: int) -> bool:
        skbs = self.skbs
        return len(skbs) > self._first and skbs[-1][0] <= seq

    def split_at(self, seq: int) -> None:
        """tso_fragment: cut the skb holding ``seq`` so that ``seq`` starts a new skb."""
        skbs = self.skbs
        lo = bisect_right(skbs, seq, self._first, key=_SKB_END)
        if lo < len(skbs) and skbs[lo][0] < seq < skbs[lo][1]:
            skb = skbs[lo]
            # both parts keep PSH (measured on 6.18: every TSO packet cut from a pushed skb
            # carries it); the EOR mark goes with the second (tcp_skb_fragment_eor)
            skbs.insert(lo + 1, [seq, skb[1], skb[2]])
            skb[1] = seq
            skb[2] &= ~SKB_EOR
            self.wmem_queued += self.overhead

    def ack(self, upto: int) -> None:
        """Free everything before ``upto`` (tcp_clean_rtx_queue / tcp_trim_head)."""
        skbs = self.skbs
        i = self._first
        n = len(skbs)
        freed = 0
        while i < n and skbs[i][1] <= upto:
            freed += skbs[i][1] - skbs[i][0] + self.overhead
            i += 1
        if i < n and skbs[i][0] < upto:
            freed += upto - skbs[i][0]
            skbs[i][0] = upto
        self.wmem_queued -= freed
        if i > 64 and i * 2 > n:
            del skbs[:i]
            i = 0
        self._first = i
        drop = min(upto, self.end) - self._base
        if drop > 0:
            if drop > 65536 and drop * 2 > len(self._buf):
                del self._buf[:drop]
                self._base += drop
            elif drop == len(self._buf):
                self._buf.clear()
                self._base += drop

    def purge(self) -> None:
        """tcp_write_queue_purge: drop everything (on reset)."""
        self._buf.clear()
        self._base = self.end
        self.skbs.clear()
        self._first = 0
        self.wmem_queued = 0


#: MAX_SKB_FRAGS (CONFIG_MAX_SKB_FRAGS, default 17): page fragments one skb can hold.
MAX_SKB_FRAGS = 17
#: The sender's page fragment (sk_page_frag: 32 KiB, SKB_FRAG_PAGE_ORDER 3): a loopback
#: segment's payload takes one fragment per 32 KiB page it touches, pages counted from the
#: start of the stream (the sender's copy fills a page to its end before taking the next).
FRAG_PAGE = 32768


class ReceiveQueue:
    """In-order data (skbs as ``[payload, consumed offset, truesize, frags, src, seq]``)
    and the out-of-order queue, with sk_rmem_alloc.

    ``coalesce`` models tcp_try_coalesce in tcp_queue_rcv for loopback, where the receiver
    queues clones of the sender's skbs: a segment arriving in order is appended to the
    queue's tail skb and charged only its payload (skb_try_coalesce on an skb whose data is
    all in page fragments: the delta is truesize minus SKB_TRUESIZE(skb_end_offset)) when

    * the tail skb is no longer cloned: its sender (``src``, the peer connection) has
      processed an ACK beyond the tail's first byte ``seq``, which freed or uncloned its
      original (tcp_clean_rtx_queue / tcp_trim_head); and
    * the two together hold at most MAX_SKB_FRAGS fragments. A segment's fragments are the
      32 KiB pages its bytes span, counted from ``origin`` (the stream's first sequence
      number).

    Not modelled: the sender reusing a page from offset 0 once every skb using it was freed
    (skb_page_frag_refill), which shifts page boundaries after the reader drained the
    queue; a segment small enough for the tail skb's linear tailroom (copied, delta 0);
    coalescing inside the out-of-order queue (segments moved from it are never coalesced
    into). Without ``coalesce`` every segment is its own skb charged ``len + overhead``.
    """

    __slots__ = ("chunks", "size", "rmem_alloc", "ooo", "overhead", "coalesce", "origin")

    def __init__(self, overhead: int, coalesce: bool = False) -> None:
        self.chunks: deque[list] = deque()  # [payload, consumed offset, truesize, frags, src, seq]
        self.size = 0                       # readable bytes
        self.rmem_alloc = 0
        self.ooo: list[tuple[int, int, bytes]] = []  # sorted (seq, end, payload)
        self.overhead = overhead
        self.coalesce = coalesce
        self.origin = 0                     # sequence number of the stream's first byte

    def truesize(self, n: int) -> int:
        return n + self.overhead

    def push(self, payload: bytes, seq: int = 0, src=None) -> None:
        """Queue in-order ``payload`` starting at sequence number ``seq``, sent by ``src``
        (the peer connection on loopback, else None)."""
        n = len(payload)
        if self.coalesce:
            off = (seq - self.origin) & (FRAG_PAGE - 1)
            frags = (off + n + FRAG_PAGE - 1) // FRAG_PAGE
            chunks = self.chunks
            if chunks:
                tail = chunks[-1]
                to_src = tail[4]
                if (to_src is not None and to_src.snd_una > tail[5]       # skb_cloned(to)
                        and tail[3] + frags <= MAX_SKB_FRAGS):          # tcp_try_coalesce
                    tail[0] += payload
                    tail[2] += n
                    tail[3] += frags
                    self.size += n
                    self.rmem_alloc += n
                    return
        else:
            frags = MAX_SKB_FRAGS
        ts = n + self.overhead
        self.chunks.append([payload, 0, ts, frags, src, seq])
        self.size += n
        self.rmem_alloc += ts

    def read(self, n: int, peek: bool) -> bytes:
        if n >= self.size and not peek and len(self.chunks) == 1:
            payload, off, ts = self.chunks.popleft()[:3]
            self.size = 0
            self.rmem_alloc -= ts
            return payload[off:] if off else payload
        parts = []
        want = n
        if peek:
            for payload, off, *_ in self.chunks:
                if want <= 0:
                    break
                piece = payload[off:off + want]
                parts.append(piece)
                want -= len(piece)
            return b"".join(parts)
        chunks = self.chunks
        while want > 0 and chunks:
            c = chunks[0]
            payload, off = c[0], c[1]
            avail = len(payload) - off
            if avail <= want:
                parts.append(payload[off:] if off else payload)
                want -= avail
                chunks.popleft()
                self.rmem_alloc -= c[2]
            else:
                parts.append(payload[off:off + want])
                c[1] = off + want
                want = 0
        out = b"".join(parts)
        self.size -= len(out)
        return out

    # -- out of order ------------------------------------------------------------------
    def add_ooo(self, seq: int, payload: bytes) -> bool:
        """Queue an out-of-order segment; False if it was entirely a duplicate."""
        end = seq + len(payload)
        ooo = self.ooo
        i = bisect_left(ooo, (seq,))
        if i > 0 and ooo[i - 1][1] >= end:
            return False
        if i < len(ooo) and ooo[i][0] == seq and ooo[i][1] >= end:
            return False
        ooo.insert(i, (seq, end, payload))
        self.rmem_alloc += len(payload) + self.overhead
        return True

    def pop_in_order(self, rcv_nxt: int) -> int:
        """Move now-contiguous out-of-order data into the queue; return the new rcv_nxt."""
        ooo = self.ooo
        while ooo and ooo[0][0] <= rcv_nxt:
            seq, end, payload = ooo.pop(0)
            self.rmem_alloc -= len(payload) + self.overhead
            if end > rcv_nxt:
                self.push(payload[rcv_nxt - seq:], rcv_nxt)
                rcv_nxt = end
        return rcv_nxt

    def purge(self) -> int:
        """Discard everything (close()); return the unread byte count."""
        n = self.size
        self.chunks.clear()
        self.ooo.clear()
        self.size = 0
        self.rmem_alloc = 0
        return n
