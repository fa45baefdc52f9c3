"""Property test: app calls interleaved with drops, duplicates, reordering and delay.

Invariants checked after every step:
* each side's received bytes are exactly a prefix of what the other side's send() accepted;
* no data segment ends beyond the sender's view of the peer's window (snd_una + snd_wnd);
  zero-window probes are zero-length at snd_una - 1;
* snd_una <= snd_nxt <= write_seq (+1 for FIN), and no ACK acknowledges unsent sequence space;
* the scoreboard's counters match its records' marks (sacked_out / lost_out / retrans_out,
  tcp_verify_left_out: sacked_out + lost_out <= packets_out), SACK blocks are never sent on a
  connection that did not negotiate SACK, and every SACK block lies above the ACK it rides on
  (a D-SACK first block excepted).
SACK is on or off on each side independently (interop), with RACK or RFC 6675 loss marking.
At the end, with faults off and timers run for 20 simulated minutes: both sides are in states
Linux can rest in, pending errors are ones Linux gives, and if nobody was reset every byte
sent before a FIN was delivered.
"""

import errno
import os
import random

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simsock.constants import SHUT_WR
from simsock.tcp.config import TcpConfig
from simsock.tcp.segment import unwrap
from simsock.tcp.recovery import R_LOST, R_RETRANS, R_SACKED
from simsock.tcp.segment import ACK, FIN, RST, SYN
from tests.tcp.fakelink import MS, make_pair

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "40"))
S = 1000 * MS


class TcpPair(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**32 - 1), small=st.booleans(),
                sack=st.sampled_from([(True, True), (True, False), (False, True), (False, False)]),
                recovery=st.sampled_from([1, 0]), rate=st.sampled_from([None, 10_000_000]))
    def setup(self, seed, small, sack, recovery, rate):
        cfg = lambda s: TcpConfig(congestion="reno", rcvbuf=8192 if small else 131072,
                                  rcvbuf_locked=small, sndbuf=16384, sndbuf_locked=small,
                                  sack=s, recovery=recovery)
        self.net, self.a, self.b = make_pair(delay=2 * MS, cfg_a=cfg(sack[0]), cfg_b=cfg(sack[1]),
                                             rate=rate)
        assert self.a.sack_ok == self.b.sack_ok == (sack[0] and sack[1])
        self.rng = random.Random(seed)
        self.drop_p = self.dup_p = self.reorder_p = 0.0
        self.net.drop = lambda seg, side: self.rng.random() < self.drop_p
        self.net.duplicate = lambda seg, side: self.rng.random() < self.dup_p
        self.net.extra_delay = lambda seg, side: (self.rng.randrange(10 * MS)
                                                  if self.rng.random() < self.reorder_p else 0)
        self.sent = {"A": bytearray(), "B": bytearray()}
        self.got = {"A": bytearray(), "B": bytearray()}
        self.closed = {"A": False, "B": False}
        self.shut = {"A": False, "B": False}
        self.side = {"A": self.a, "B": self.b}
        self.counter = 0
        self.orig_flush = self.net.flush
        self.net.flush = self.checked_flush

    def checked_flush(self):
        for (side, _, _), conn in list(self.net.conns.items()):
            for seg in conn.segments_to_send(self.net.now):
                if seg.payload:
                    seq = unwrap(seg.seq, conn.snd_una)
                    assert seq + len(seg.payload) <= conn.snd_una + conn.snd_wnd, "beyond window"
                elif not seg.flags & (FIN | SYN | RST):
                    seq = unwrap(seg.seq, conn.snd_una)
                    assert seq in (conn.snd_una - 1, conn.snd_una, conn.snd_nxt)
                if seg.flags & ACK and not seg.flags & RST:
                    peer = self.side["B" if side == "A" else "A"]
                    ack = unwrap(seg.ack, conn.rcv_nxt)
                    assert ack <= peer.snd_nxt, "ack beyond what was sent"
                if seg.sack:
                    assert conn.sack_ok, "SACK blocks without SACK-permitted"
                    assert len(seg.sack) <= (3 if conn.ts_ok else 4)
                    ack = unwrap(seg.ack, conn.rcv_nxt)
                    for i, (l, r) in enumerate(seg.sack):
                        l, r = unwrap(l, ack), unwrap(r, ack)
                        assert l < r
                        assert i == 0 or l > ack, "SACK block at or below the cumulative ACK"
                self.net._send(seg, side)

    def _data(self, n):
        self.counter += 1
        return bytes((self.counter + i) & 0xFF for i in range(0, n, 97)) * 97

    @rule(side=st.sampled_from("AB"), n=st.integers(1, 40000))
    def send(self, side, n):
        if self.closed[side]:
            return
        data = self._data(n)[:n]
        try:
            k = self.side[side].send(data, self.net.now)
        except OSError as e:
            assert e.errno in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET, errno.ETIMEDOUT)
            return
        self.sent[side] += data[:k]

    @rule(side=st.sampled_from("AB"), n=st.integers(1, 70000))
    def recv(self, side, n):
        if self.closed[side]:
            return
        try:
            self.got[side] += self.side[side].recv(n, self.net.now)
        except OSError as e:
            assert e.errno in (errno.EAGAIN, errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT)

    @rule(ms=st.integers(0, 3000))
    def advance(self, ms):
        self.net.run(duration=ms * MS)

    @rule(side=st.sampled_from("AB"))
    def shutdown_wr(self, side):
        if not self.closed[side] and not self.shut[side]:
            self.shut[side] = True
            try:
                self.side[side].shutdown(SHUT_WR, self.net.now)
            except OSError as e:
                assert e.errno == errno.ENOTCONN

    @rule(side=st.sampled_from("AB"))
    def close(self, side):
        if not self.closed[side]:
            self.closed[side] = True
            self.side[side].close(self.net.now)

    @rule(drop=st.sampled_from([0.0, 0.05, 0.3]), dup=st.sampled_from([0.0, 0.1]),
          reorder=st.sampled_from([0.0, 0.2]))
    def faults(self, drop, dup, reorder):
        self.drop_p, self.dup_p, self.reorder_p = drop, dup, reorder

    @invariant()
    def prefixes_and_sequence(self):
        for me, peer in (("A", "B"), ("B", "A")):
            got, sent = self.got[me], self.sent[peer]
            assert sent[:len(got)] == got
            c = self.side[me]
            assert c.snd_una <= c.snd_nxt <= c.sendq.end + 1
            recs = c.scoreboard.records
            assert c.scoreboard.sacked_out + c.scoreboard.lost_out <= len(recs)
            assert c.scoreboard.retrans_out >= 0 and c._in_flight() >= 0
            assert sum(1 for r in recs if r[3] & R_LOST) == c.scoreboard.lost_out
            assert sum(1 for r in recs if r[3] & R_RETRANS) == c.scoreboard.retrans_out
            if c.sack_ok:
                assert sum(1 for r in recs if r[3] & R_SACKED) == c.scoreboard.sacked_out
            assert all(a[1] <= b[0] for a, b in zip(recs, list(recs)[1:]))

    def teardown(self):
        if not hasattr(self, "net"):
            return
        self.drop_p = self.dup_p = self.reorder_p = 0.0
        for _ in range(8):        # readers drain, which reopens windows, until quiescent
            for side in "AB":
                if not self.closed[side]:
                    self.recv(side, 1 << 30)
            self.net.run(duration=150 * S)
        a, b = self.a, self.b
        reset = a.reset_seen or b.reset_seen
        for me, peer in (("A", "B"), ("B", "A")):
            c = self.side[me]
            assert c.state in ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2", "CLOSE"), c.state
            assert c.sk_err in (0, errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT)
            if self.closed[me]:
                assert c.finished or c.state == "FIN_WAIT2"
            if not reset and not self.closed[me] and not self.closed[peer] and self.shut[peer]:
                assert bytes(self.got[me]) == bytes(self.sent[peer])


TestTcpPair = TcpPair.TestCase
TestTcpPair.settings = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])
