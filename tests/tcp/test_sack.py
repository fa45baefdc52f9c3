"""SACK (RFC 2018/2883), the sender's scoreboard, RACK and RFC 6675 loss marking, and PRR.

The receiver's blocks are checked against Linux's rules (tcp_sack_new_ofo_skb and friends);
the sender's recovery by its effect: N losses in one window cost one round trip with SACK,
N round trips without it, and never a retransmission timeout.
"""

from hypothesis import given, settings, strategies as st

from simsock.tcp.config import TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.cc.base import CA_OPEN, CA_RECOVERY
from simsock.tcp.recovery import R_LOST, R_RETRANS, R_SACKED
from simsock.tcp.sack import SackBlocks, max_sack_blocks
from simsock.tcp.segment import ACK, SYN, Segment, unwrap
from tests.tcp.fakelink import MS, make_pair

S = 1000 * MS


# ---------------------------------------------------------------- receiver blocks
def test_new_block_goes_first_and_oldest_falls_off():
    """RFC 2018 section 4: the block holding the newest segment first; four remembered."""
    sb = SackBlocks()
    for i in range(5):
        sb.new_ofo(100 * (2 * i + 1), 100 * (2 * i + 2))
    assert [tuple(b) for b in sb.blocks] == [(900, 1000), (700, 800), (500, 600), (300, 400)]
    assert sb.take(3) == ((900, 1000), (700, 800), (500, 600))


def test_extending_block_moves_to_front_and_coalesces():
    sb = SackBlocks()
    sb.new_ofo(100, 200)
    sb.new_ofo(300, 400)
    sb.new_ofo(500, 600)
    sb.new_ofo(200, 300)          # touches 100-200 and 300-400: one block, at the front
    assert [tuple(b) for b in sb.blocks] == [(100, 400), (500, 600)]
    sb.remove_below(400, ooo_empty=False)
    assert [tuple(b) for b in sb.blocks] == [(500, 600)]
    sb.remove_below(600, ooo_empty=True)
    assert not sb


def test_dsack_first_and_sent_once():
    sb = SackBlocks()
    sb.new_ofo(300, 400)
    sb.set_dsack(100, 200)
    assert sb.take(3) == ((100, 200), (300, 400))
    assert sb.take(3) == ((300, 400),)


def test_block_count_fits_option_space():
    """40 option bytes: 3 blocks beside timestamps, 4 without (tcp_established_options)."""
    assert max_sack_blocks(True) == 3 and max_sack_blocks(False) == 4
    seg = Segment(1, 2, 0, 0, ACK, 100, ts=(1, 2), sack=((1, 2),) * 3)
    assert seg.header_size == 60
    seg = Segment(1, 2, 0, 0, ACK, 100, sack=((1, 2),) * 4)
    assert seg.header_size == 56


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 5)), min_size=1, max_size=30))
def test_blocks_describe_received_data(arrivals):
    """Invariant: blocks are disjoint, not touching, inside received data, and the first holds
    the newest segment (the receiver never reports a byte it does not have)."""
    sb = SackBlocks()
    have = set()
    for start, n in arrivals:
        seq, end = start * 10, (start + n) * 10
        sb.new_ofo(seq, end)
        have.update(range(seq, end))
        blocks = sb.blocks
        assert 1 <= len(blocks) <= 4
        assert blocks[0][0] <= seq and end <= blocks[0][1]
        spans = sorted(tuple(b) for b in blocks)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
        assert all(set(range(a, b)) <= have for a, b in spans)


# ---------------------------------------------------------------- a pair over a real-ish link
def _bulk(net, c, s, nbytes):
    data = bytes(range(256)) * (nbytes // 256)
    sent = got = 0
    out = bytearray()
    while got < len(data):
        if sent < len(data):
            try:
                sent += c.send(data[sent:sent + 65536], net.now)
            except BlockingIOError:
                pass
        net.run(duration=1 * MS)
        try:
            chunk = s.recv(1 << 22, net.now)
            out += chunk
            got += len(chunk)
        except BlockingIOError:
            pass
        assert net.now < 60 * S
    assert bytes(out) == data
    return net.now


def _burst_loss(sack: bool, recovery: int = 1, nlost: int = 8, first: int = 30, redrop: bool = False):
    """3 MB over 100 Mbit/s, 10 ms one way; segments first..first+nlost-1 of the flow lost once
    (their first retransmission too if ``redrop``). Returns (retransmit times, client, elapsed)."""
    cfg = lambda: TcpConfig(congestion="reno", sack=sack, recovery=recovery, rcvbuf=4 << 20)
    net, c, s = make_pair(delay=10 * MS, cfg_a=cfg(), cfg_b=cfg(), rate=100_000_000)
    base = c.snd_nxt
    seen: dict[int, int] = {}
    mss = c.mss_cache

    def drop(seg, side):
        if side != "A" or not seg.payload:
            return False
        idx = (unwrap(seg.seq, c.snd_una) - base) // mss
        if first <= idx < first + nlost:
            seen[idx] = seen.get(idx, 0) + 1
            return seen[idx] <= (2 if redrop else 1)
        return False

    net.drop = drop
    rtx = []
    c.trace = lambda kind, now, f: rtx.append((now, f["seq"], f["reason"])) if kind == "retransmit" else None
    elapsed = _bulk(net, c, s, 3_000_000)
    return rtx, c, elapsed


def test_sack_repairs_a_burst_of_losses_in_one_round_trip():
    """8 losses in one window: with SACK every hole is resent within one RTT (20 ms) of the
    first fast retransmit, with no RTO; NewReno needs about one RTT per hole."""
    for recovery in (1, 0):
        rtx, c, _ = _burst_loss(sack=True, recovery=recovery)
        assert len(rtx) == 8 and all(r == "fast" for _, _, r in rtx)
        assert rtx[-1][0] - rtx[0][0] < 20 * MS
        st = c.stats()
        assert st["rto_count"] == 0 and st["recoveries"] == 1
        assert c.tp.ca_state == CA_OPEN
    rtx, c, _ = _burst_loss(sack=False)
    assert len(rtx) == 8 and c.stats()["rto_count"] == 0
    assert rtx[-1][0] - rtx[0][0] > 6 * 20 * MS          # one hole per round trip


def test_rack_finds_lost_retransmissions_without_rto():
    """Retransmissions lost again: RACK (Linux's default) sees later-sent segments SACKed and
    resends them at once; RFC 6675 marking cannot and waits for the RTO."""
    rtx, c, _ = _burst_loss(sack=True, recovery=1, nlost=4, redrop=True)
    assert c.stats()["rto_count"] == 0 and c.stats()["lost_retransmits"] == 4
    assert len(rtx) == 8
    rtx, c, _ = _burst_loss(sack=True, recovery=0, nlost=4, redrop=True)
    assert c.stats()["rto_count"] >= 1


def test_prr_paces_recovery_and_ends_at_ssthresh():
    """PRR (RFC 6937): during recovery no ACK releases more than newly delivered + 1 segments,
    and recovery ends with cwnd = ssthresh (tcp_end_cwnd_reduction)."""
    cfg = lambda: TcpConfig(congestion="reno", rcvbuf=4 << 20)
    net, c, s = make_pair(delay=10 * MS, cfg_a=cfg(), cfg_b=cfg(), rate=100_000_000)
    base, mss = c.snd_nxt, c.mss_cache
    lost = set()

    def drop(seg, side):
        idx = (unwrap(seg.seq, c.snd_una) - base) // mss
        if side == "A" and seg.payload and 40 <= idx < 44 and idx not in lost:
            lost.add(idx)
            return True
        return False

    net.drop = drop
    burst = []
    orig = c.receive_segment

    def watch(seg, now):
        in_rec = c.tp.ca_state == CA_RECOVERY
        sacked, acked = c.scoreboard.sacked_out, c.snd_una
        orig(seg, now)
        if in_rec and c.tp.ca_state == CA_RECOVERY:
            out = c.segments_to_send(now)
            delivered = (c.scoreboard.sacked_out - sacked) + (c.snd_una - acked + mss - 1) // mss
            burst.append((len([x for x in out if x.payload]), delivered))
            for x in out:
                net._send(x, "A")
        if c.tp.ca_state == CA_OPEN and c.tp.snd_ssthresh < 1 << 30 and not hasattr(c, "_ended"):
            c._ended = (c.tp.snd_cwnd, c.tp.snd_ssthresh)

    c.receive_segment = watch
    _bulk(net, c, s, 2_000_000)
    assert burst and all(n <= max(d, 0) + 2 for n, d in burst)
    cwnd, ssthresh = c._ended
    assert cwnd == ssthresh


def test_interop_with_sack_disabled_on_one_side():
    """SACK-permitted only from one side: neither uses SACK, recovery is NewReno, all data arrives."""
    for a, b in ((True, False), (False, True)):
        net, c, s = make_pair(cfg_a=TcpConfig(congestion="reno", sack=a),
                              cfg_b=TcpConfig(congestion="reno", sack=b))
        syns = [seg for _, _, seg, _ in net.log if seg.flags & SYN]
        assert syns[0].sack_permitted == a and syns[1].sack_permitted == (a and b)
        assert not c.sack_ok and not s.sack_ok
        k = [0]

        def drop(seg, side, k=k):
            k[0] += 1
            return side == "A" and bool(seg.payload) and k[0] % 7 == 0
        net.drop = drop
        _bulk(net, c, s, 300_000)
        assert not any(seg.sack for _, _, seg, _ in net.log)


# ---------------------------------------------------------------- scoreboard on one connection
def _established_sender(recovery=1, early_retrans=3):
    """A client driven by hand: SYN-ACK after 100 ms with MSS 1460 and SACK-permitted."""
    c = TcpConnection(("10.0.0.1", 40000), ("10.0.0.2", 80),
                      TcpConfig(congestion="reno", recovery=recovery, early_retrans=early_retrans),
                      iss=0)
    c.connect(0)
    c.segments_to_send(0)
    c.receive_segment(Segment(80, 40000, 0, 1, SYN | ACK, 32792, mss=1460, wscale=7,
                              sack_permitted=True), 100 * MS)
    c.segments_to_send(100 * MS)
    return c


def _ack(ack, sack=(), t=0):
    return Segment(80, 40000, 1, ack, ACK, 257, sack=sack)


def test_sacktag_marks_counts_and_ignores_dsack_and_bogus_blocks():
    c = _established_sender()
    c.send(bytes(8 * 1460), 100 * MS)
    out = c.segments_to_send(100 * MS)
    assert len(out) == 8 and c.sack_ok
    ends = [r[1] for r in c.scoreboard.records]
    c.receive_segment(_ack(1, ((ends[1], ends[3]),)), 150 * MS)     # SACK segments 3-4
    assert c.scoreboard.sacked_out == 2
    assert [bool(r[3] & R_SACKED) for r in c.scoreboard.records] == [False, False, True, True] + [False] * 4
    c.receive_segment(_ack(1, ((ends[6], ends[7] + 1000),)), 151 * MS)   # beyond snd_nxt: invalid
    assert c.scoreboard.sacked_out == 2
    c.receive_segment(_ack(1, ((ends[1], ends[2]), (ends[1], ends[3]))), 152 * MS)  # D-SACK
    assert c.scoreboard.sacked_out == 2 and c.stats()["dsacks_received"] == 1
    c.receive_segment(_ack(ends[3], ()), 153 * MS)                  # cumulative over the SACKed
    assert c.scoreboard.sacked_out == 0 and len(c.scoreboard.records) == 4


def test_reordering_raises_reordering_and_rack_window():
    """A SACK for a never-retransmitted segment below the highest SACK is reordering
    (tcp_check_sack_reordering): ``reordering`` grows to the distance in segments."""
    c = _established_sender()
    c.send(bytes(10 * 1460), 100 * MS)
    c.segments_to_send(100 * MS)
    ends = [r[1] for r in c.scoreboard.records]
    c.receive_segment(_ack(1, ((ends[8], ends[9]),)), 200 * MS)
    c.receive_segment(_ack(1, ((ends[0], ends[1]), (ends[8], ends[9]))), 200 * MS)
    assert c.scoreboard.reord_seen and c.scoreboard.reordering == 9       # (fack - start) / mss, rounded up
    assert c._rack_reo_wnd() == min(c.min_rtt // 4, c.rtt.srtt)


def test_rack_reordering_timer_like_linux_delayed_early_retransmit():
    """packetdrill (Linux tests, "delayed ER with 3 packets outstanding, receiver sending
    SACKs"): RTT 100 ms, 3 segments, SACKs for 2 and then 2-3 arrive 100 ms later. Too few
    SACKs for DupThresh, so RACK waits min_rtt/4 (+ TCP_TIMEOUT_MIN) and resends segment 1
    at about 0.325 s, without an RTO; RFC 6675 marking waits for the RTO instead (with tail
    loss probes off: with them, see test_rfc6675_without_dupthresh_gets_a_tail_loss_probe)."""
    for recovery, lo, hi in ((1, 325 * MS, 330 * MS), (0, 400 * MS, 2 * S)):
        c = _established_sender(recovery, early_retrans=3 if recovery else 0)
        c.send(bytes(4380), 200 * MS)
        out = c.segments_to_send(200 * MS)
        assert [len(x.payload) for x in out] == [1460] * 3
        c.receive_segment(_ack(1, ((1461, 2921),)), 300 * MS)
        assert not [x for x in c.segments_to_send(300 * MS) if x.payload]
        c.receive_segment(_ack(1, ((1461, 4381),)), 300 * MS)
        assert not [x for x in c.segments_to_send(300 * MS) if x.payload]
        t = c.next_deadline()
        assert lo <= t <= hi, t
        c.handle_timer(t)
        out = [x for x in c.segments_to_send(t) if x.payload]
        assert [(x.seq, len(x.payload)) for x in out] == [(1, 1460)]
        assert c.stats()["rto_count"] == (0 if recovery else 1)
        assert c.scoreboard.records[0][3] & R_RETRANS and c.scoreboard.records[0][3] & R_LOST


def test_rfc6675_without_dupthresh_gets_a_tail_loss_probe():
    """The same packetdrill flow with RFC 6675 marking and tcp_early_retrans=3 (Linux's
    default): the SACK-only ACKs do not rearm the timer, so the probe timeout armed when the
    three segments left fires at send + 2*srtt + TCP_TIMEOUT_MIN = 0.402 s and retransmits
    the last segment (tcp_send_loss_probe); the SACK for it then marks segment 1 lost."""
    c = _established_sender(0)
    c.send(bytes(4380), 200 * MS)
    c.segments_to_send(200 * MS)
    c.receive_segment(_ack(1, ((1461, 2921),)), 300 * MS)
    c.receive_segment(_ack(1, ((1461, 4381),)), 300 * MS)
    assert not [x for x in c.segments_to_send(300 * MS) if x.payload]
    t = c.next_deadline()
    assert t == 200 * MS + 2 * c.rtt.srtt + 2 * MS and c.rto_kind == "tlp"
    c.handle_timer(t)
    out = [x for x in c.segments_to_send(t) if x.payload]
    assert [(x.seq, len(x.payload)) for x in out] == [(2921, 1460)]
    assert c.stats()["loss_probes"] == 1 and c.stats()["rto_count"] == 0
    assert c.rto_kind == "rto" and c.rto_at == t + c.rtt.rto       # RTO restarts from the probe
