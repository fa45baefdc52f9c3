"""UDP datagrams above the MTU: IP fragmentation, reassembly, lost fragments, the reassembly
timeout (ipfrag_time), fragments in the trace."""

from simsock import AF_INET, SOCK_DGRAM
from tests.kernel.udp.helpers import collect
from tests.worlds import two_hosts


class LoseListed:
    """A loss model that loses exactly the listed packets (1-based, in transmit order)."""

    def __init__(self, which):
        self.which = set(which)
        self.n = 0

    def lose(self, rng):
        self.n += 1
        return self.n in self.which


class RecordingLoss:
    """Random loss with probability p, recording each decision."""

    def __init__(self, p):
        self.p = p
        self.decisions = []

    def lose(self, rng):
        lost = rng.random() < self.p
        self.decisions.append(lost)
        return lost


def test_large_datagram_fragmented_and_reassembled_timing():
    """3000 bytes over an MTU-1500 link go as IP fragments of 1500, 1500 and 68 bytes
    (1480-byte fragment payloads); the datagram is delivered whole when the last fragment
    arrives: 3068 bytes at 10 Mbit/s + 5 ms = 7_454_400 ns."""
    sim, a, b = two_hosts(rate="10Mbit", delay="5ms", mtu=1500)
    got = []
    b.spawn(collect, 9000, got)
    payload = bytes(i % 251 for i in range(3000))

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(payload, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert got == [(7_454_400, payload)]
    assert a.ip_mib["FragCreates"] == 3
    assert b.ip_mib["ReasmOKs"] == 1
    assert sim.stats()["links"]["a-b"]["a->b"]["tx_bytes"] == 1500 + 1500 + 68


def test_lost_fragment_loses_whole_datagram():
    """Losing one fragment loses the whole datagram; the next datagram is unaffected."""
    sim, a, b = two_hosts(rate="10Mbit", delay="1ms", mtu=1500, loss=LoseListed([2]))
    got = []
    b.spawn(collect, 9000, got)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.sendto(b"A" * 3000, ("b", 9000))
        await s.sendto(b"B" * 3000, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    assert [d for _, d in got] == [b"B" * 3000]
    assert sim.drops == {"loss": 1}


def test_random_fragment_loss_exact_accounting():
    """With random loss, exactly the datagrams all of whose fragments survived arrive, each
    intact and in order (200 datagrams of 3000 bytes = 3 fragments each, loss 0.3)."""
    loss = RecordingLoss(0.3)
    sim, a, b = two_hosts(seed=5, rate="100Mbit", delay="1ms", mtu=1500, loss=loss)
    got = []
    b.spawn(collect, 9000, got)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(200):
            await s.sendto(i.to_bytes(2, "big") * 1500, ("b", 9000))
            await k.sleep("1ms")

    a.spawn(send)
    sim.run(until="2s")
    d = loss.decisions
    assert len(d) == 600
    expected = [i for i in range(200) if not any(d[3 * i:3 * i + 3])]
    assert [data[:2] for _, data in got] == [i.to_bytes(2, "big") for i in expected]
    assert all(data == data[:2] * 1500 for _, data in got)
    assert 40 <= len(expected) <= 100          # about 0.7**3 = 34% of 200


def test_incomplete_reassembly_expires_after_ipfrag_time():
    """A datagram missing a fragment is given up after ipfrag_time (30 s): Linux's
    ip_expire counts ReasmFails and frees the queue, without waiting for another fragment
    with the same id."""
    sim, a, b = two_hosts(rate="10Mbit", delay="1ms", mtu=1500, loss=LoseListed([2]))

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"A" * 3000, ("b", 9000))

    a.spawn(send)
    sim.run(until="31s")
    assert b.ip_mib["ReasmFails"] == 1
    assert b.udp._reassembly == {}


def test_trace_records_fragments():
    """A trace with fragmented datagrams can be read back (records/packets/to_jsonl): each
    fragment's packet record has the right size."""
    sim, a, b = two_hosts(rate="10Mbit", delay="1ms", mtu=1500)
    b.spawn(collect, 9000, [])

    async def send(k):
        await k.socket(AF_INET, SOCK_DGRAM).sendto(b"A" * 3000, ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    enq = [r["size"] for r in sim.trace.packets("enqueue")]
    assert enq == [1500, 1500, 68]
