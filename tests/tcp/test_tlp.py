"""Tail loss probes (RFC 8985 section 7; Linux tcp_schedule_loss_probe / tcp_send_loss_probe,
on with net.ipv4.tcp_early_retrans=3): a loss at the tail of a burst draws no duplicate ACKs,
so without a probe only the RTO (>= 200 ms + srtt) would repair it."""

from simsock.tcp.config import TcpConfig
from tests.tcp.fakelink import MS, make_pair

S = 1000 * MS


def _burst(drop_last: int, early_retrans: int = 3, delay: int = 10 * MS):
    """10 full segments after a warm-up exchange; the last ``drop_last`` are lost once."""
    cfg = TcpConfig(congestion="reno", early_retrans=early_retrans)
    net, c, s = make_pair(delay=delay, cfg_a=cfg)
    c.send(bytes(1000), net.now)                      # an RTT sample
    net.run(duration=200 * MS)
    s.recv(1 << 20, net.now)
    net.run(duration=200 * MS)
    mss = c.mss_cache
    start = c.snd_nxt
    last = {start + (9 - i) * mss for i in range(drop_last)}
    seen = set()

    def drop(seg, side):
        if side == "A" and seg.payload and seg.seq in {x & 0xFFFFFFFF for x in last} \
                and seg.seq not in seen:
            seen.add(seg.seq)
            return True
        return False
    net.drop = drop
    t0 = net.now
    c.send(bytes(10 * mss), net.now)
    done = None
    for _ in range(2000):
        net.run(duration=1 * MS)
        if c.snd_una == c.snd_nxt and done is None:
            done = net.now - t0
            break
    return c, s, done


def test_two_lost_tail_segments_recovered_by_a_probe_after_two_srtt():
    """The last two segments of a burst lost: after the ACKs for the first eight the probe
    timer (2*srtt + TCP_TIMEOUT_MIN, more than one segment in flight) retransmits the last
    one; its SACK lets RACK mark the other lost -- all repaired in ~3 RTT, no RTO."""
    c, s, done = _burst(2)
    srtt = c.rtt.srtt
    st = c.stats()
    assert st["loss_probes"] == 1 and st["rto_count"] == 0 and st["recoveries"] == 1
    # first ACKs after 1 RTT, the probe 2*srtt + 2 ms later, its repair 1-2 RTT after that
    assert done is not None and done < 20 * MS + 2 * srtt + 2 * MS + 2 * 20 * MS + 5 * MS
    assert done < c.rtt.rto                            # well before an RTO would have fired
    assert s.inq == 10 * c.mss_cache


def test_without_probes_the_same_loss_waits_for_the_rto():
    """tcp_early_retrans=0: the same two losses wait for the RTO (cwnd collapses to 1)."""
    c, s, done = _burst(2, early_retrans=0)
    st = c.stats()
    assert st["loss_probes"] == 0 and st["rto_count"] == 1
    assert done is not None and done > 200 * MS


def test_single_lost_tail_segment_probe_waits_for_a_delayed_ack_but_avoids_the_rto():
    """One segment left in flight: the probe waits 2*srtt + TCP_RTO_MIN (its ACK may be
    delayed), capped at the RTO -- so about when the RTO would fire -- but it is a probe:
    no Loss state, no cwnd collapse to 1 segment."""
    c, s, done = _burst(1)
    st = c.stats()
    assert st["loss_probes"] == 1 and st["rto_count"] == 0
    assert c.tp.snd_cwnd > 1 and c.tp.ca_state == 0
    assert s.inq == 10 * c.mss_cache
    assert 200 * MS < done < 20 * MS + c.rtt.rto + 25 * MS


def test_probe_of_new_data_when_the_window_allows():
    """With unsent data that fits the window, the probe sends one new segment (regardless
    of cwnd) instead of a retransmission: tcp_write_xmit(push_one=2)."""
    cfg = TcpConfig(congestion="reno")
    net, c, s = make_pair(delay=10 * MS, cfg_a=cfg)
    c.send(bytes(1000), net.now)
    net.run(duration=200 * MS)
    mss = c.mss_cache
    c.send(bytes(30 * mss), net.now)                 # more than the initial cwnd of 10
    net.drop = lambda seg, side: side == "B"         # every ACK lost: a pure tail stall
    out = c.segments_to_send(net.now)
    assert len(out) == 10 and c.rto_kind == "tlp"
    t = c.next_deadline()
    c.handle_timer(t)
    probe = [x for x in c.segments_to_send(t) if x.payload]
    assert len(probe) == 1 and (probe[0].seq - out[-1].seq) & 0xFFFFFFFF == mss   # new data
    assert c.stats()["loss_probes"] == 1 and c.scoreboard.tlp_high_seq == c.snd_nxt and not c.scoreboard.tlp_retrans
    assert c.rto_kind == "rto"
