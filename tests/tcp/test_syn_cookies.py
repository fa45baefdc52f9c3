"""SYN cookies across a link with delay (simulator only; the loopback cases are checked
against Linux in tests/conformance/test_syn_cookies.py)."""

import dataclasses

import pytest

import simsock
from simsock import AF_INET, SOCK_STREAM
from simsock.profiles import get_profile


def _world(syncookies: int, clients: int = 10, backlog: int = 2):
    profile = dataclasses.replace(get_profile("linux"), tcp_syncookies=syncookies)
    sim = simsock.Simulation(seed=1, profile=profile)
    server = sim.add_host("server")
    client = sim.add_host("client")
    sim.add_link(client, server, delay="10ms")
    out = {}

    async def serve(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("server", 80))
        ls.listen(backlog)
        out["listener"] = ls
        await k.sleep(100)

    async def connect(k):
        await k.sleep(0.01)
        cs = []
        for _ in range(clients):
            c = k.socket(AF_INET, SOCK_STREAM)
            c.setblocking(False)
            await c.connect_ex(("server", 80))
            cs.append(c)
        await k.sleep(2)
        out["connected"] = [await c.connect_ex(("server", 80)) for c in cs]

    server.spawn(serve)
    client.spawn(connect)
    sim.run(until=2.5)
    return out


def test_clients_beyond_the_backlog_believe_they_are_connected():
    """With cookies, all ten SYNs (which arrive before any ACK) are answered: three request
    socks (the SYN queue holds backlog + 1), seven cookies; every client is connected; the
    accept queue holds backlog + 1 and the cookie ACKs were dropped, with nothing left to
    retransmit on the server."""
    out = _world(1)
    assert out["connected"] == [0] * 10
    lst = out["listener"].listener
    assert len(lst.accept_queue) == 3 and not lst.syn_recv
    assert lst.cookies_sent == 7 and lst.cookie_ack_drops == 7


def test_without_cookies_the_syn_queue_overflow_drops_syns():
    """tcp_syncookies=0: SYNs beyond the SYN queue are dropped; those clients are still in
    SYN_SENT after 2 s (their retransmissions meet a full accept queue)."""
    out = _world(0)
    assert out["connected"].count(0) == 3
    assert out["connected"].count(114) == 7           # EALREADY: still connecting
    lst = out["listener"].listener
    assert lst.cookies_sent == 0 and lst.syn_drops >= 7


@pytest.mark.parametrize("syncookies", [0, 1, 2])
def test_deterministic(syncookies):
    """The same world gives the same admission, run after run."""
    assert _world(syncookies)["connected"] == _world(syncookies)["connected"]
