"""Queue disciplines: DropTail, RED (Floyd & Jacobson 1993) and CoDel (RFC 8289)."""

import math
import os
import random

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from simsock.net.packet import Datagram, Packet
from simsock.net.qdisc import RED, CoDel, DropTail, Qdisc

EXAMPLES = int(os.environ.get("SIMSOCK_HYPOTHESIS_EXAMPLES", "60"))
MS = 1_000_000


def make_packet(uid: int, payload: int = 972, now: int = 0) -> Packet:
    """A UDP packet of 20 + 8 + payload bytes (1000 by default)."""
    return Packet(uid, "a", "b", 17, Datagram(1, 2, b"\0" * payload), now)


class Recorder:
    """Collects on_drop calls as (uid, reason, now)."""

    def __init__(self, q: Qdisc):
        self.drops = []
        q.on_drop = lambda pkt, reason, now: self.drops.append((pkt.uid, reason, now))


def conserved(q: Qdisc) -> bool:
    s = q.stats()
    return (s["enqueued"] == s["dequeued"] + s["dropped"] + s["packets"]
            and s["dropped"] == sum(s["drops"].values()))


# -- DropTail ------------------------------------------------------------------------------

ops = st.lists(st.one_of(st.tuples(st.just("enq"), st.integers(0, 1472)),
                         st.tuples(st.just("deq"), st.just(0))), max_size=200)


@settings(max_examples=EXAMPLES, deadline=None)
@given(ops=ops, limit_packets=st.one_of(st.none(), st.integers(1, 20)),
       limit_bytes=st.one_of(st.none(), st.integers(1, 20_000)))
def test_droptail_drops_exactly_when_full_keeps_fifo_order_and_conserves(ops, limit_packets, limit_bytes):
    """For any interleaving of arrivals and departures: an arrival is refused exactly when it
    would exceed the packet or byte limit, departures come out in arrival order, every drop
    is reported to on_drop, and enqueued == dequeued + dropped + queued after every step."""
    q = DropTail(packets=limit_packets, bytes=limit_bytes)
    if limit_packets is None and limit_bytes is None:
        limit_packets = 1000
    rec = Recorder(q)
    model = []   # the queue as a list of (uid, size)
    for now, (op, payload) in enumerate(ops):
        if op == "enq":
            pkt = make_packet(now, payload)
            full = ((limit_packets is not None and len(model) >= limit_packets)
                    or (limit_bytes is not None and sum(s for _, s in model) + pkt.size > limit_bytes))
            assert q.enqueue(pkt, now) is (not full)
            if full:
                assert rec.drops[-1] == (pkt.uid, "queue_full", now)
            else:
                model.append((pkt.uid, pkt.size))
        else:
            pkt = q.dequeue(now)
            if model:
                assert (pkt.uid, pkt.size) == model.pop(0)
            else:
                assert pkt is None
        assert len(q) == q.packets == len(model)
        assert q.bytes == sum(s for _, s in model)
        assert q.peek_len() == (model[0][1] if model else 0)
        assert conserved(q)
    assert q.stats()["drops"]["queue_full"] == len(rec.drops)


def test_droptail_defaults_to_txqueuelen_and_is_eager():
    """With no limit a DropTail holds 1000 packets (txqueuelen) and says it is a plain FIFO."""
    q = DropTail()
    assert all(q.enqueue(make_packet(i), 0) for i in range(1000))
    assert not q.enqueue(make_packet(1000), 0)
    assert q.fifo_drop_tail and not RED(10, 2, 5).fifo_drop_tail and not CoDel().fifo_drop_tail


@pytest.mark.parametrize("kwargs, error", [
    ({"packets": 0}, ValueError), ({"packets": 1.5}, TypeError), ({"bytes": -1}, ValueError),
    ({"packets": "64"}, TypeError),
])
def test_droptail_rejects_bad_limits(kwargs, error):
    """Limits are positive ints; the message says what to pass."""
    with pytest.raises(error, match="DropTail"):
        DropTail(**kwargs)


# -- RED -----------------------------------------------------------------------------------

def attached(q: Qdisc, seed: int = 1, rate_bps: int = 8_000_000) -> Qdisc:
    q.attach(random.Random(seed), rate_bps)
    return q


def test_red_average_follows_the_ewma_while_busy():
    """While the queue is non-empty, each arrival sets avg = (1 - w_q) avg + w_q q, with q the
    packets queued before it (Floyd & Jacobson 1993, Fig. 2)."""
    q = attached(RED(limit_packets=1000, min_th=500, max_th=900, w_q=0.1))
    expected = 0.0
    for i in range(50):
        if q.packets:
            expected = 0.9 * expected + 0.1 * q.packets
        assert q.enqueue(make_packet(i), i)
        assert q.avg == pytest.approx(expected, rel=1e-12)
    assert q.avg > 0


def test_red_average_decays_over_idle_time_at_link_rate():
    """An arrival to an empty queue decays avg by (1 - w_q)^m, m = packets of mean_pkt_size
    the link could have sent since the queue went empty."""
    q = attached(RED(limit_packets=100, min_th=50, max_th=90, w_q=0.2, mean_pkt_size=1000),
                 rate_bps=8_000_000)   # 1000 packets/s: one per ms
    for i in range(10):
        q.enqueue(make_packet(i), 0)
    avg_busy = q.avg
    for _ in range(10):
        q.dequeue(MS)
    q.enqueue(make_packet(99), 6 * MS)    # idle 5 ms -> m = 5
    assert q.avg == pytest.approx(avg_busy * 0.8 ** 5, rel=1e-12)


@settings(max_examples=EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**32), pattern=st.lists(st.booleans(), min_size=1, max_size=300))
def test_red_never_drops_early_below_min_th(seed, pattern):
    """While avg < min_th, RED admits every packet (only a full buffer may drop)."""
    q = attached(RED(limit_packets=1000, min_th=5, max_th=15, w_q=0.05), seed)
    rec = Recorder(q)
    for now, arrive in enumerate(pattern):
        if arrive:
            before = len(rec.drops)
            q.enqueue(make_packet(now), now)
            if q.avg < q.min_th:
                assert len(rec.drops) == before
        else:
            q.dequeue(now)
        assert conserved(q)


@pytest.mark.parametrize("gentle", [False, True])
def test_red_forced_drops_at_and_above_max_th(gentle):
    """With avg >= max_th (non-gentle) or >= 2 max_th (gentle) every arrival is dropped as
    "red_forced"; gentle RED between max_th and 2 max_th still drops only some."""
    q = attached(RED(limit_packets=1000, min_th=5, max_th=10, w_q=1.0, gentle=gentle))
    for i in range(25 if gentle else 12):   # w_q = 1: avg is the instantaneous length
        q._accept(make_packet(i), 0)          # fill without running RED
        q.enqueued += 1
    rec = Recorder(q)
    for i in range(200):
        assert not q.enqueue(make_packet(1000 + i), 1)
    assert {r for _, r, _ in rec.drops} == {"red_forced"}
    if gentle:
        q2 = attached(RED(limit_packets=1000, min_th=5, max_th=10, w_q=1.0, gentle=True))
        for i in range(11):                   # avg 11: p_b = 0.1 + 0.9 * 1/10 = 0.19
            q2._accept(make_packet(i), 0)
            q2.enqueued += 1
        outcomes = []
        for i in range(200):
            ok = q2.enqueue(make_packet(1000 + i), 1)
            outcomes.append(ok)
            if ok:
                q2.dequeue(1)
        assert 0 < outcomes.count(False) < 200
        assert set(q2.drops) == {"red_early", "red_forced", "queue_full"} and q2.drops["red_forced"] == 0


def test_red_queue_full_drops_when_physical_limit_reached():
    """An arrival RED admits is still dropped ("queue_full") when limit_packets are queued."""
    q = attached(RED(limit_packets=3, min_th=50, max_th=90))
    assert [q.enqueue(make_packet(i), 0) for i in range(5)] == [True, True, True, False, False]
    assert q.stats()["drops"] == {"red_early": 0, "red_forced": 0, "queue_full": 2}


def test_red_early_drop_probability_matches_p_b_over_one_minus_count_p_b():
    """Holding avg fixed between the thresholds, the empirical drop frequency of an arrival
    that finds count = c equals p_a = p_b / (1 - c p_b), so gaps between drops are uniform on
    1 .. 1/p_b - 1 (Floyd & Jacobson 1993, section 7). Seeded: the same numbers every run."""
    q = attached(RED(limit_packets=1000, min_th=5, max_th=15, max_p=0.1, w_q=1.0), seed=7)
    for i in range(10):                       # avg = 10 exactly -> p_b = 0.05
        q._accept(make_packet(i), 0)
        q.enqueued += 1
    p_b = 0.1 * (10 - 5) / (15 - 5)
    trials = {}   # count -> [arrivals, drops]
    gaps, since = [], 0
    for i in range(60_000):
        c = q.count + 1                        # the count this arrival is judged with
        dropped = not q.enqueue(make_packet(100 + i), 1)
        t = trials.setdefault(c, [0, 0])
        t[0] += 1
        since += 1
        if dropped:
            t[1] += 1
            gaps.append(since)
            since = 0
        else:
            q.dequeue(1)                       # keep the queue at 10 packets
        assert q.avg == 10.0
    gaps = gaps[1:]                            # the first gap started before the test
    assert max(gaps) <= round(1 / p_b) - 1 and min(gaps) >= 1
    assert sum(gaps) / len(gaps) == pytest.approx(1 / (2 * p_b), rel=0.03)
    for c in range(1, 15):
        n, d = trials[c]
        p_a = p_b / (1 - c * p_b)
        sigma = math.sqrt(p_a * (1 - p_a) / n)
        assert abs(d / n - p_a) < 4 * sigma + 1e-9, (c, n, d, p_a)
    assert trials[round(1 / p_b) - 1][1] == trials[round(1 / p_b) - 1][0]   # p_a = 1 there


def test_red_is_deterministic_for_a_seed():
    """Same seed, same arrivals -> the same drops."""
    def run(seed):
        q = attached(RED(limit_packets=50, min_th=5, max_th=15, w_q=0.2), seed)
        rec = Recorder(q)
        for i in range(2000):
            q.enqueue(make_packet(i), i)
            if i % 3 == 0:
                q.dequeue(i)
        return rec.drops
    assert run(3) == run(3) and run(3) != run(4)


def test_red_needs_attach_and_checks_parameters():
    """RED must be attached before use; thresholds and probabilities are validated."""
    with pytest.raises(RuntimeError, match="attach"):
        RED(10, 2, 5).enqueue(make_packet(0), 0)
    with pytest.raises(ValueError, match="min_th < max_th"):
        RED(10, 5, 5)
    with pytest.raises(ValueError, match="max_p"):
        RED(10, 2, 5, max_p=10)
    with pytest.raises(ValueError, match="w_q"):
        RED(10, 2, 5, w_q=0)
    with pytest.raises(TypeError, match="random.Random"):
        RED(10, 2, 5).attach(1, 1000)
    with pytest.raises(ValueError, match="bits per second"):
        RED(10, 2, 5).attach(random.Random(1), -1)


def test_red_on_a_link_without_rate_limit_forgets_its_average_when_idle():
    """attach(rng, 0) means no rate limit: any idle time could have drained the average."""
    q = attached(RED(limit_packets=100, min_th=50, max_th=90, w_q=0.5), rate_bps=0)
    for i in range(4):
        q.enqueue(make_packet(i), 0)
    assert q.avg > 0
    while q.dequeue(1):
        pass
    q.enqueue(make_packet(9), 1)             # no time idle: avg unchanged
    assert q.avg > 0
    q.dequeue(1)
    q.enqueue(make_packet(10), 2)
    assert q.avg == 0.0


# -- CoDel ---------------------------------------------------------------------------------

def test_codel_standing_queue_drops_follow_the_control_law():
    """A standing queue above target for longer than interval starts drops one interval after
    it first exceeded target, and each next drop is scheduled at
    prev + interval / sqrt(count) (RFC 8289 control law, within 1 ns of the real-valued law);
    each drop happens at the first dequeue at or after its scheduled time."""
    tick = 100_000   # one arrival and one dequeue every 100 us
    q = CoDel(target="5ms", interval="100ms", limit=20_000)
    rec = Recorder(q)
    for i in range(300):                      # a backlog that has waited 30 ms when dequeues start
        q.enqueue(make_packet(i, 1472), 0)
    start = 30 * MS
    schedule = []                            # (drops so far, now, count, drop_next) per dropping dequeue
    uid = 1000
    for k in range(1, 10_001):                # 1 s
        now = start + k * tick
        q.enqueue(make_packet(uid, 1472), now)
        q.enqueue(make_packet(uid + 1, 1472), now)   # grow the queue so drops never drain it
        uid += 2
        n = len(rec.drops)
        q.dequeue(now)
        if len(rec.drops) > n:
            schedule.append((len(rec.drops), now, q.count, q.drop_next))
    drop_times = [t for _, _, t in rec.drops]
    first_above = start + tick + q.interval   # the first dequeue already saw sojourn > target
    assert drop_times[0] == first_above
    assert len(drop_times) > 10
    assert all(r == "codel" for _, r, _ in rec.drops)
    for (n0, t0, c0, next0), (n1, t1, c1, next1) in zip(schedule, schedule[1:]):
        assert n1 == n0 + 1 and c1 == c0 + 1            # one drop per scheduled time here
        assert next0 <= t1 < next0 + tick                # dropped at the first tick past it
        assert abs(next1 - (next0 + q.interval / math.sqrt(c1))) <= 1


def test_codel_no_drops_while_sojourn_below_target():
    """Packets that wait less than target are never dropped, however long the queue."""
    q = CoDel(target="5ms", interval="100ms")
    rec = Recorder(q)
    for i in range(200):                      # 20 packets queued, each waits 4 ms
        for j in range(5):
            q.enqueue(make_packet(5 * i + j), i * MS)
        for _ in range(5 if i >= 4 else 0):
            q.dequeue(i * MS)
    assert rec.drops == [] and conserved(q)


def test_codel_no_drops_with_at_most_one_mtu_queued():
    """Even with sojourn far above target, CoDel does not drop while what remains queued is at
    most one MTU (RFC 8289: bytes() <= MAXPACKET): a lone slow packet is not a standing queue."""
    q = CoDel(target="5ms", interval="100ms", mtu=1500)
    rec = Recorder(q)
    for i in range(100):                      # one packet in, held 1 s, one out
        q.enqueue(make_packet(2 * i, 1472), i * 1000 * MS)
        q.enqueue(make_packet(2 * i + 1, 472), i * 1000 * MS)   # 500 B: leaves <= mtu queued
        q.dequeue((i + 1) * 1000 * MS - 1)
        q.dequeue((i + 1) * 1000 * MS - 1)
    assert rec.drops == []


@settings(max_examples=EXAMPLES, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from([0, MS, 3 * MS, 10 * MS])),
                      min_size=40, max_size=150))
def test_codel_drops_only_packets_that_waited_past_target_behind_a_standing_queue(steps):
    """For any arrival/departure pattern: every CoDel drop is of a packet whose sojourn is at
    least target while more than one MTU stays queued, and at least interval after the queue
    first went above target; counters are conserved and FIFO order holds for what leaves."""
    q = CoDel(target="5ms", interval="100ms", limit=50)
    seen, codel_drops = [], []

    def on_drop(pkt, reason, now):
        if reason == "codel":
            assert now - pkt.enqueued_at >= q.target
            assert q.bytes > q.mtu
            assert q.first_above_time != 0 and now >= q.first_above_time
            codel_drops.append(now)
            seen.append(pkt.uid)              # head drops; tail drops never entered the queue

    q.on_drop = on_drop
    now, uid = 0, 0
    for arrivals, departures, gap in steps:
        now += gap
        for _ in range(arrivals):
            q.enqueue(make_packet(uid, 1000), now)
            uid += 1
        for _ in range(departures):
            pkt = q.dequeue(now)
            if pkt is not None:
                seen.append(pkt.uid)
        assert conserved(q)
    assert seen == sorted(seen)               # drops and departures both leave from the head
    event("codel drops" if codel_drops else "no codel drops")


def test_codel_resumes_count_when_dropping_restarts_soon():
    """RFC 8289 / Linux: re-entering the dropping state within 16 intervals of the last
    scheduled drop restarts count at (count - lastcount) if that is > 1, else at 1."""
    q = CoDel(target="5ms", interval="100ms", limit=100_000)
    q.count, q.lastcount, q.drop_next = 10, 4, 0
    q.first_above_time = 1                    # pretend the queue has been above target
    for i in range(10):
        q.enqueue(make_packet(i, 1472), 0)
    q.dequeue(10 * MS)                        # sojourn 10 ms > target
    assert q.dropping and q.count == 6 and q.lastcount == 6
    assert q.drop_next == 10 * MS + math.isqrt(q.interval ** 2 // 6)
    q2 = CoDel(target="5ms", interval="100ms")
    q2.count, q2.lastcount, q2.drop_next, q2.first_above_time = 10, 4, 0, 1
    for i in range(10):
        q2.enqueue(make_packet(i, 1472), 0)
    q2.dequeue(17 * q2.interval)             # long after: count restarts at 1
    assert q2.count == 1


def test_codel_tail_drops_over_limit_and_parses_times():
    """Arrivals beyond limit are dropped as "queue_full"; times take ns or strings."""
    q = CoDel(target=5 * MS, interval="0.1s", limit=2)
    assert (q.target, q.interval) == (5 * MS, 100 * MS)
    assert [q.enqueue(make_packet(i), 0) for i in range(3)] == [True, True, False]
    assert q.stats()["drops"] == {"codel": 0, "queue_full": 1}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"target": 0.005}, TypeError, "nanoseconds or a string"),
    ({"interval": "0ms"}, ValueError, "positive"),
    ({"interval": "fast"}, ValueError, "10ms"),
    ({"limit": 0}, ValueError, "limit"),
    ({"target": -1}, ValueError, "negative"),
])
def test_codel_rejects_bad_parameters(kwargs, error, match):
    """Durations are int ns or strings ("5ms"); a float is refused as ambiguous."""
    with pytest.raises(error, match=match):
        CoDel(**kwargs)
