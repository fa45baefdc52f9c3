"""Connection admission with full queues and SYN cookies (net.ipv4.tcp_syncookies=1), the
simulator against real Linux over loopback (simsock/tcp/listener.py).

On loopback a handshake normally completes inside connect() (the SYN-ACK and the final ACK
are processed before the call returns), so a client beyond ``backlog + 1`` simply has its
SYN dropped (tcp_backlog_overflow in test_tcp.py). To make SYNs pile up before their ACKs,
as they do across a real network, the clients turn TCP_QUICKACK off before connecting: the
final ACK then waits TCP_DELACK_MAX (200 ms). With listen(2) the SYN queue takes 3 request
socks; the other SYNs get cookie SYN-ACKs; every client is ESTABLISHED at once; when the
ACKs come 3 connections fill the accept queue and the cookie ACKs are dropped; the clients'
data later completes the dropped ones, with the cookie's MSS (1448, from msstab) instead of
the loopback MSS.
"""


import pytest

from simsock.constants import (AF_INET, IPPROTO_TCP, SOCK_STREAM, TCP_CONGESTION, TCP_INFO, TCP_MAXSEG,
                               TCP_QUICKACK, TCP_SYNCNT)
from tests.conformance.harness import attempt, attempt_async, check_scenario, needs_linux, one_host

pytestmark = [pytest.mark.real, needs_linux]

LO = "127.0.0.1"


async def _accept_all(k, ls, out):
    while True:
        got = await attempt_async(ls.accept)
        if isinstance(got, OSError):
            return
        conn = got[0]
        conn.getsockopt(IPPROTO_TCP, TCP_MAXSEG)
        out.append(conn)


def cookie_world(clients=6, backlog=2, send_before_accept=False):
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(backlog)
        ls.setblocking(False)
        cs = []
        for _ in range(clients):
            c = k.socket(AF_INET, SOCK_STREAM)
            c.setsockopt(IPPROTO_TCP, TCP_QUICKACK, 0)
            c.setblocking(False)
            await c.connect_ex(ls.getsockname())
            cs.append(c)
            await k.sleep(0.01)            # distinct jiffies: the delayed ACKs come in this order
        await k.sleep(0.4)
        for c in cs:
            await c.connect_ex(ls.getsockname())      # 0: connected, as far as the client knows
            c.getsockopt(IPPROTO_TCP, TCP_INFO, 1)     # tcpi_state: 1 ESTABLISHED
        ls.getsockopt(IPPROTO_TCP, TCP_INFO, 32)        # LISTEN, accept queue length, backlog
        accepted = []
        if send_before_accept:
            for c in cs:
                await c.send(b"hello")
            await k.sleep(0.1)
            await _accept_all(k, ls, accepted)          # backlog + 1; the cookie data was dropped
            await k.sleep(0.3)
            await _accept_all(k, ls, accepted)          # their data, resent after the RTO (~200 ms)
            await k.sleep(0.5)
            await _accept_all(k, ls, accepted)          # nothing more
        else:
            await _accept_all(k, ls, accepted)
            for c in cs:
                await c.send(b"hello")
            await k.sleep(0.1)
            await _accept_all(k, ls, accepted)
        ls.getsockopt(IPPROTO_TCP, TCP_INFO, 32)
        for conn in accepted:
            await attempt_async(conn.recv, 100)
        for x in accepted + cs + [ls]:
            x.close()
    return prog


def test_syn_cookies_when_the_syn_queue_overflows():
    """listen(2), six clients whose final ACK is delayed: all six ESTABLISHED; the first three
    fill the accept queue (32768 MSS), the three cookie connections are completed by their
    data once the queue was drained (1448 MSS), each receives its hello."""
    check_scenario(one_host(cookie_world()), until=3.0, name="tcp_syn_cookies")


def test_cookie_ack_dropped_while_the_accept_queue_is_full():
    """The same, but the clients send before anything is accepted: the cookie connections'
    data is dropped with their ACK (the listener has no room and keeps no state); the clients
    retransmit it after their RTO (~200 ms), and those retransmissions create the connections,
    accept() having made room meanwhile."""
    check_scenario(one_host(cookie_world(send_before_accept=True)), until=4.0,
                   name="tcp_syn_cookies_full_queue")


def test_synack_retransmission_completes_a_dropped_handshake():
    """One connection already waits in the accept queue of listen(2); three clients with a
    delayed final ACK get request socks; two ACKs fill the queue, the third is dropped (the
    client is ESTABLISHED, the server's side stays SYN_RECV). After accept() made room, the
    server's SYN-ACK retransmission 1 s after the first (TCP_TIMEOUT_INIT) draws a duplicate
    ACK from the client, which completes the connection: not accepted at 0.9 s, at 1.3 s."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(2)
        ls.setblocking(False)
        first = k.socket(AF_INET, SOCK_STREAM)
        await first.connect(ls.getsockname())
        cs = []
        for _ in range(3):
            c = k.socket(AF_INET, SOCK_STREAM)
            c.setsockopt(IPPROTO_TCP, TCP_QUICKACK, 0)
            c.setblocking(False)
            await c.connect_ex(ls.getsockname())
            cs.append(c)
            await k.sleep(0.01)
        await k.sleep(0.4)
        for c in cs:
            await c.connect_ex(ls.getsockname())
        accepted = []
        await _accept_all(k, ls, accepted)
        await k.sleep(0.9 - k.now)
        await _accept_all(k, ls, accepted)
        await k.sleep(1.3 - k.now)
        await _accept_all(k, ls, accepted)
        for x in accepted + cs + [first, ls]:
            x.close()
    check_scenario(one_host(prog), until=2.0, name="tcp_synack_retransmit_completes")


def test_syn_retries_until_etimedout_with_a_full_accept_queue():
    """A full accept queue drops SYNs, cookies or not: a client with TCP_SYNCNT 1 retransmits
    its SYN once (after 1 s) and connect() fails with ETIMEDOUT after 1 + 2 s; the queued
    connection is still there to accept."""
    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(0)
        ls.setblocking(False)
        first = k.socket(AF_INET, SOCK_STREAM)
        await first.connect(ls.getsockname())
        c = k.socket(AF_INET, SOCK_STREAM)
        attempt(c.setsockopt, IPPROTO_TCP, TCP_SYNCNT, 0)
        c.setsockopt(IPPROTO_TCP, TCP_SYNCNT, 1)
        c.getsockopt(IPPROTO_TCP, TCP_SYNCNT)
        t0 = k.now
        await attempt_async(c.connect, ls.getsockname())
        waited = k.now - t0
        assert 2.9 <= waited <= 3.5, waited
        accepted = []
        await _accept_all(k, ls, accepted)
        for x in accepted + [c, first, ls]:
            x.close()
    check_scenario(one_host(prog), until=5.0, name="tcp_syn_retries_full_queue")


async def syn_timeline(k, out):
    from simsock.tcp.info import unpack_tcp_info
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind((LO, 0))
    ls.listen(0)
    ls.setblocking(False)
    first = k.socket(AF_INET, SOCK_STREAM)
    await first.connect(ls.getsockname())          # fills the accept queue (backlog 0: one)
    b = k.socket(AF_INET, SOCK_STREAM)
    b.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    b.setblocking(False)
    await b.connect_ex(ls.getsockname())
    await k.sleep(0.1)       # Linux's timer wheel groups 1 s timers in 32 ms buckets: stay apart
    a = k.socket(AF_INET, SOCK_STREAM)
    a.setsockopt(IPPROTO_TCP, TCP_SYNCNT, 7)
    a.setblocking(False)
    await a.connect_ex(ls.getsockname())
    t0 = k.now
    keys = ("state", "ca_state", "retransmits", "backoff", "rto", "snd_cwnd", "snd_mss", "rcv_mss",
            "advmss", "unacked", "total_retrans")
    out["a"] = []
    for at in (0.6, 1.6, 2.6, 3.6, 4.6, 5.6):
        await k.sleep(t0 + at - k.now)
        info = unpack_tcp_info(a.getsockopt(IPPROTO_TCP, TCP_INFO, 280))
        out["a"].append({x: info[x] for x in keys})
        if at == 2.6:
            got = await attempt_async(ls.accept)     # room: b's SYN at 3 s gets in, a's (3.1 s) does not
            out["accepted"] = not isinstance(got, OSError)
        if at == 3.6:
            info = unpack_tcp_info(b.getsockopt(IPPROTO_TCP, TCP_INFO, 280))
            out["b"] = {x: info[x] for x in ("state", "ca_state", "snd_cwnd", "total_retrans", "retransmits")}
            out["b_rto_ok"] = 200_000 <= info["rto"] < 400_000      # an RTT sample from the timestamp echo
    for x in (a, b, first, ls):
        x.close()


def test_syn_retransmissions_are_linear_then_exponential():
    """TCP_INFO of a client whose SYNs meet a full accept queue: Linux 6.18 retransmits the
    SYN 1 s apart four times (tcp_syn_linear_timeouts, rto stays 1 s, backoff 0), then backs
    off (the fifth waits 2 s); the socket is in CA_Loss with cwnd 1, snd_mss 524 (the
    default MSS less timestamps) and the SYN unacked. A client whose third SYN retransmission
    gets in starts with cwnd 1 (RFC 5681: more than one SYN retransmitted) and an RTT sample
    from the timestamp echo."""
    from tests.conformance.test_tcp_info import run_on, run_real_until_agrees
    sim = run_on("sim", syn_timeline, until=7.0)
    real = run_real_until_agrees(syn_timeline, sim, lambda x, y: x != y, until=7.0)
    assert sim == real
    assert [d["total_retrans"] for d in real["a"]] == [0, 1, 2, 3, 4, 5]
    assert real["a"][-1]["backoff"] == 1 and real["a"][-1]["rto"] == 2_000_000
    assert real["b"]["snd_cwnd"] == 1 and real["b_rto_ok"]
