"""TCP in the simulator end to end: reliability under loss, link utilisation, determinism."""

import hashlib

import pytest

import simsock
from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, TCP_CONGESTION


def _bulk(loss=0.0, total=2_000_000, queue=None, congestion="cubic", seed=1, until=60.0):
    sim = simsock.Simulation(seed=seed, trace=False)
    a = sim.add_host("a")
    b = sim.add_host("b")
    link = sim.add_link(a, b, rate="100Mbit", delay="10ms", loss=loss, queue=queue)
    payload = bytes((i * 7) & 0xFF for i in range(total))
    got = bytearray()
    done = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5001))
        ls.listen()
        conn, _ = await ls.accept()
        while data := await conn.recv(1 << 16):
            got.extend(data)
        done["eof"] = k.now
        conn.close()

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, congestion.encode())
        await s.connect(("b", 5001))
        await s.sendall(payload)
        s.close()

    b.spawn(server)
    a.spawn(client)
    sim.run(until=until)
    return sim, link, payload, bytes(got), done


@pytest.mark.parametrize("congestion", ["cubic", "reno"])
def test_bulk_transfer_over_one_percent_loss_delivers_every_byte_in_order(congestion):
    """With 1% random loss each way, every byte arrives, in order, and EOF follows."""
    sim, link, payload, got, done = _bulk(loss=0.01, total=1_000_000, congestion=congestion)
    assert len(got) == len(payload)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert "eof" in done
    assert link.forward.drops_loss > 0


def test_clean_bulk_transfer_reaches_ninety_percent_of_the_link_rate():
    """No loss, a 1000-packet queue: goodput over the transfer is at least 90% of 100 Mbit/s
    once the connection is past its first second (slow start)."""
    sim, link, payload, got, done = _bulk(total=40_000_000, queue=1000, until=30.0)
    assert len(got) == len(payload)
    seconds = done["eof"]
    # payload bits over the transfer time, against the rate left after TCP/IP headers (1448 of 1500)
    goodput = len(payload) * 8 / seconds
    assert goodput >= 0.90 * 100e6 * 1448 / 1500, f"goodput {goodput / 1e6:.1f} Mbit/s in {seconds:.2f} s"


def test_tcp_run_is_deterministic():
    """The same world and seed give the same bytes, drops and end time."""
    r1 = _bulk(loss=0.02, total=300_000, seed=5)
    r2 = _bulk(loss=0.02, total=300_000, seed=5)
    assert r1[4] == r2[4]
    assert r1[1].forward.drops_loss == r2[1].forward.drops_loss
    assert r1[0].stats() == r2[0].stats()
