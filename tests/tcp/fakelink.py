"""A fake network for sans-IO TCP tests: two sides, a fixed one-way delay, no simpy.

Segments leave a connection when the net collects ``segments_to_send(now)``, arrive
``delay`` ns later on the other side, and are demultiplexed by (side, dport, sport) to a
connection, else to a listener on dport, else answered with ``reset_for``. Timers run from
``next_deadline()``. With ``rate`` (bits/s) each side serialises its segments like a
link (wire size + 40 bytes of IP/Ethernet-ish framing, FIFO, unlimited queue), so a burst
arrives spread out and draws one ACK per segment. ``drop(seg, side)`` / ``mangle`` hooks let tests lose, duplicate and
delay segments; every delivered segment is recorded in ``log`` as (time, from_side, seg).
"""

from __future__ import annotations

import heapq

from simsock.tcp.connection import TcpConnection
from simsock.tcp.listener import TcpListener, reset_for
from simsock.tcp.segment import ACK, RST, SYN

MS = 1_000_000
IP = {"A": "10.0.0.1", "B": "10.0.0.2"}
OTHER = {"A": "B", "B": "A"}


class Net:
    def __init__(self, delay: int = 1 * MS, rate: int | None = None) -> None:
        self.now = 0
        self.delay = delay
        self.rate = rate
        self.busy = {"A": 0, "B": 0}
        self.conns: dict[tuple[str, int, int], TcpConnection] = {}
        self.listeners: dict[tuple[str, int], TcpListener] = {}
        self.heap: list = []
        self._n = 0
        self.log: list = []
        self.drop = None      # callable(seg, from_side) -> bool
        self.extra_delay = None   # callable(seg, from_side) -> int ns added (reordering)
        self.duplicate = None     # callable(seg, from_side) -> bool

    def add(self, conn: TcpConnection, side: str) -> TcpConnection:
        self.conns[(side, conn.local[1], conn.remote[1])] = conn
        return conn

    def listen(self, listener: TcpListener, side: str) -> TcpListener:
        self.listeners[(side, listener.local[1])] = listener
        return listener

    def side_of(self, conn) -> str:
        for (side, _, _), c in self.conns.items():
            if c is conn:
                return side
        raise KeyError(conn)

    def _send(self, seg, side: str) -> None:
        if self.drop is not None and self.drop(seg, side):
            self.log.append((self.now, side, seg, "drop"))
            return
        copies = 2 if self.duplicate is not None and self.duplicate(seg, side) else 1
        if self.rate:
            start = max(self.now, self.busy[side])
            self.busy[side] = start + (seg.wire_size + 40) * 8 * 1_000_000_000 // self.rate
            serial = self.busy[side] - self.now
        else:
            serial = 0
        for _ in range(copies):
            extra = serial + (self.extra_delay(seg, side) if self.extra_delay is not None else 0)
            heapq.heappush(self.heap, (self.now + self.delay + extra, self._n, OTHER[side], seg, side))
            self._n += 1

    def flush(self) -> None:
        for (side, _, _), conn in list(self.conns.items()):
            for seg in conn.segments_to_send(self.now):
                self._send(seg, side)

    def _deliver(self, to: str, seg, from_side: str) -> None:
        self.log.append((self.now, from_side, seg, "deliver"))
        conn = self.conns.get((to, seg.dport, seg.sport))
        if conn is not None and not conn.finished:
            conn.receive_segment(seg, self.now)
            if not conn.finished or not conn.in_time_wait:
                return
        lst = self.listeners.get((to, seg.dport))
        if lst is not None and not lst.closed:
            new = lst.receive_segment(seg, (IP[from_side], seg.sport), self.now)
            replies = lst.take_output()          # SYN cookies' SYN-ACKs
            for reply in replies:
                self._send_raw(reply, to)
            if new is not None:
                self.add(new, to)
                return
            if replies or lst.dropped:
                return          # answered statelessly, or dropped by a full queue
            if seg.flags & SYN and not seg.flags & ACK:
                return          # SYN dropped by a full queue: no answer
        if conn is not None and conn.finished and conn.state == "CLOSE" and not seg.flags & RST:
            pass
        rst = reset_for(seg)
        if rst is not None and (lst is None or not (seg.flags & SYN)):
            self._send_raw(rst, to)

    def _send_raw(self, seg, side: str) -> None:
        heapq.heappush(self.heap, (self.now + self.delay, self._n, OTHER[side], seg, side))
        self._n += 1

    def next_event(self) -> int | None:
        best = self.heap[0][0] if self.heap else None
        for conn in self.conns.values():
            d = conn.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def step(self, until: int) -> bool:
        self.flush()
        t = self.next_event()
        if t is None or t > until:
            return False
        self.now = max(self.now, t)
        while self.heap and self.heap[0][0] <= self.now:
            _, _, to, seg, frm = heapq.heappop(self.heap)
            self._deliver(to, seg, frm)
        for conn in list(self.conns.values()):
            d = conn.next_deadline()
            if d is not None and d <= self.now:
                conn.handle_timer(self.now)
        self.flush()
        return True

    def run(self, duration: int | None = None, until: int | None = None, max_steps: int = 10_000_000) -> None:
        """Run events up to ``until`` (absolute) or ``now + duration``; stop when idle."""
        end = until if until is not None else (self.now + duration if duration is not None else 1 << 62)
        for _ in range(max_steps):
            if not self.step(end):
                break
        if end < (1 << 62):
            self.now = max(self.now, end)

    def run_until(self, pred, limit: int = 600_000 * MS) -> bool:
        end = self.now + limit
        self.flush()
        while not pred():
            if not self.step(end):
                return pred()
        return True


def make_pair(delay: int = 1 * MS, cfg_a=None, cfg_b=None, connect: bool = True,
              rate: int | None = None):
    """Client A and a listener on B; returns (net, client, server) once established."""
    from simsock.tcp.config import TcpConfig
    net = Net(delay, rate)
    cfg_b = cfg_b or TcpConfig(congestion="reno")
    lst = net.listen(TcpListener(("10.0.0.2", 80), 128, lambda src_addr: _copy(cfg_b)), "B")
    client = net.add(TcpConnection(("10.0.0.1", 40000), ("10.0.0.2", 80),
                                   cfg_a or TcpConfig(congestion="reno"), iss=1000), "A")
    if not connect:
        return net, client, lst
    client.connect(net.now)
    net.run_until(lambda: bool(lst.accept_queue) and client.state == "ESTABLISHED")
    server = lst.accept(net.now)
    return net, client, server


def _copy(cfg):
    import copy
    return copy.copy(cfg)
