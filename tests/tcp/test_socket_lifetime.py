"""TCP socket facts around a connection's life, the simulator held against real Linux.

Each real test measures the host's own loopback (skipped where the host is not Linux) and
pins the congestion control to CUBIC on both sides: the simulator's default, and what
decides tcp_sndbuf_expand's factor (this CI machine's default is BBR, whose
``sndbuf_expand`` hook makes the send buffer 3 cwnds of skbs instead of 2).

* SIOCOUTQ counts a queued FIN (write_seq - snd_una, tcp_ioctl): one more byte once
  shutdown(SHUT_WR) queued it, 0 in TIME_WAIT (the simulator said -1 there).
* SO_SNDBUF of a connected socket is sk_sndbuf as tcp_sndbuf_expand left it (2 x 10 x
  131328 = 2626560 on loopback, MSS 65483), not tcp_wmem[1]; it grows further with cwnd
  (tcp_new_space) when ACKs find cwnd not full. How far it grows during a loopback bulk
  transfer depends on thread timing on the real host (2626560 on an idle machine, up to
  tcp_wmem[2] = 4194304 under load), so only the value at connection time is compared.
* A loopback handshake completes before connect() returns (the softirq runs on the way out
  of the syscall), so a listener's accept queue holds the connection at once.
"""

import fcntl
import socket
import sys
import termios
import threading
import time

import pytest

import simsock
from simsock.constants import (AF_INET, IPPROTO_TCP, SHUT_WR, SO_ERROR, SO_RCVBUF, SO_SNDBUF, SOCK_STREAM,
                               SOL_SOCKET, TCP_CONGESTION)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the real side needs Linux sockets")
LO = "127.0.0.1"


def run_sim(prog, until=5.0, **links):
    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=until)
    return sim


def real_outq(s: socket.socket) -> int:
    buf = bytearray(4)
    fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, buf)   # SIOCOUTQ == TIOCOUTQ on Linux
    return int.from_bytes(buf, "little", signed=True)


def real_cubic_pair(sndbuf=None, rcvbuf=None):
    ls = socket.socket()
    ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    if rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ls.bind((LO, 0))
    ls.listen(1)
    c = socket.socket()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    if sndbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


# -- SIOCOUTQ and the FIN ------------------------------------------------------------------
def sim_outq_facts():
    """(outq before shutdown, after shutdown, in TIME_WAIT) of a sender whose peer does not read."""
    out = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        ls.bind((LO, 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        c.setblocking(False)
        try:
            while True:
                await c.send(b"y" * 100000)
        except BlockingIOError:
            pass
        await k.settle()
        out["before"] = c.stats()["outq"]
        c.shutdown(SHUT_WR)
        out["after_shutdown"] = c.stats()["outq"]
        while await s.recv(1 << 16):
            pass
        s.close()
        await k.settle()
        out["state"] = c.stats()["state"]
        out["time_wait"] = c.stats()["outq"]
    run_sim(prog)
    return out


def test_outq_counts_the_queued_fin_and_is_zero_in_time_wait():
    """SIOCOUTQ is write_seq - snd_una: a queued FIN adds one; nothing is left in TIME_WAIT."""
    f = sim_outq_facts()
    assert f["before"] > 0
    assert f["after_shutdown"] == f["before"] + 1
    assert f["state"] == "TIME_WAIT"
    assert f["time_wait"] == 0


@linux
def test_real_outq_counts_the_queued_fin_and_is_zero_in_time_wait():
    """The same facts on the host's loopback (SIOCOUTQ)."""
    c, s = real_cubic_pair(sndbuf=4096, rcvbuf=4096)
    try:
        c.setblocking(False)
        try:
            while True:
                c.send(b"y" * 100000)
        except BlockingIOError:
            pass
        time.sleep(0.05)
        before = real_outq(c)
        c.shutdown(socket.SHUT_WR)
        after = real_outq(c)
        while s.recv(1 << 16):
            pass
        s.close()
        time.sleep(0.05)
        # The connection is in TIME_WAIT; the socket the program holds reads TCP_CLOSE (7),
        # since tcp_time_wait() moves the connection to a separate timewait sock.
        info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        assert info[0] == 7
        assert before > 0 and after == before + 1
        assert real_outq(c) == 0
    finally:
        c.close()


# -- SO_SNDBUF after tcp_sndbuf_expand -------------------------------------------------------
def sim_sndbuf(bulk: int) -> tuple[int, int, int]:
    """SO_SNDBUF of an unconnected socket, of a fresh loopback connection, and after ``bulk`` bytes."""
    got = []

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        got.append(c.getsockopt(SOL_SOCKET, SO_SNDBUF))
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        got.append(c.getsockopt(SOL_SOCKET, SO_SNDBUF))

        async def reader(k):
            while await s.recv(1 << 16):
                pass
        h = k.spawn(reader)
        await c.sendall(b"x" * bulk)
        got.append(c.getsockopt(SOL_SOCKET, SO_SNDBUF))
        c.close()
        await h.join()
    run_sim(prog)
    return tuple(got)


def real_sndbuf(bulk: int) -> tuple[int, int, int]:
    fresh = socket.socket()
    unconnected = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    fresh.close()
    c, s = real_cubic_pair()
    try:
        connected = c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        t = threading.Thread(target=lambda: [None for _ in iter(lambda: s.recv(1 << 16), b"")])
        t.start()
        c.sendall(b"x" * bulk)
        after = c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        c.shutdown(socket.SHUT_WR)
        t.join(10)
        return unconnected, connected, after
    finally:
        c.close()
        s.close()


def test_sndbuf_reports_the_expanded_buffer_of_a_connection():
    """Unconnected: tcp_wmem[1]; connected on loopback: tcp_sndbuf_expand's 2 x 10 skbs of 131328."""
    unconnected, connected, _ = sim_sndbuf(1 << 16)
    assert unconnected == 16384
    assert connected == 2 * 10 * 131328


def test_sndbuf_follows_autotuning_over_a_link():
    """Over a 100 Mbit/s link the send buffer grows with cwnd and SO_SNDBUF reports it."""
    got = {}

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5000))
        ls.listen(1)
        conn, _ = await ls.accept()
        while await conn.recv(1 << 16):
            pass

    async def client(k):
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(("srv", 5000))
        got["fresh"] = c.getsockopt(SOL_SOCKET, SO_SNDBUF)
        await c.sendall(b"x" * (4 << 20))
        got["after"] = c.getsockopt(SOL_SOCKET, SO_SNDBUF)
        got["internal"] = c.stats()["sndbuf"]
        c.close()

    sim = simsock.Simulation(seed=1)
    sim.add_host("srv").spawn(server)
    sim.add_host("cli").spawn(client)
    sim.add_link("cli", "srv", rate="100Mbit", delay="5ms")
    sim.run(until=10)
    assert got["fresh"] > 16384
    assert got["after"] > got["fresh"]
    assert got["after"] == got["internal"]


@linux
def test_real_sndbuf_of_unconnected_and_connected_loopback_sockets():
    """The host agrees: 16384 before connect, 2626560 once connected (CUBIC, loopback MSS)."""
    sim = sim_sndbuf(1 << 16)
    real = real_sndbuf(1 << 16)
    assert sim[:2] == real[:2]


# -- the loopback handshake ----------------------------------------------------------------
def test_loopback_handshake_completes_inside_connect():
    """A non-blocking connect_ex on loopback returns EINPROGRESS, but the handshake is done
    before it returns: accept succeeds at once, SO_ERROR is 0, no simulated time passes."""
    got = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(1)
        ls.setblocking(False)
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setblocking(False)
        got["connect"] = await c.connect_ex(ls.getsockname())
        conn, _ = await ls.accept()
        got["so_error"] = c.getsockopt(SOL_SOCKET, SO_ERROR)
        got["again"] = await c.connect_ex(ls.getsockname())
        got["now"] = k.now_ns
        conn.close(); c.close(); ls.close()
    run_sim(prog)
    assert got == {"connect": 115, "so_error": 0, "again": 0, "now": 0}


def test_settle_does_not_wait_for_a_dropped_syn():
    """A SYN dropped by a full accept queue is retransmitted after 1 s; settle does not wait for
    it (the real settle does not either), so the client is still connecting afterwards."""
    got = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(0)                   # the accept queue holds one connection
        clients = []
        for _ in range(2):
            c = k.socket(AF_INET, SOCK_STREAM)
            c.setblocking(False)
            await c.connect_ex(ls.getsockname())
            clients.append(c)
        await k.settle()
        got["settled_at"] = k.now_ns
        got["states"] = [c.stats()["state"] for c in clients]
        for c in clients:
            c.close()
        ls.close()
    run_sim(prog)
    assert got["settled_at"] < 1_000_000
    assert got["states"] == ["ESTABLISHED", "SYN_SENT"]


def test_blocking_sender_and_reader_on_loopback_do_not_lose_wakeups():
    """A blocking sendall of 4 MiB to a reader thread on the same host completes and every byte
    arrives, although the peer's ACKs now come back inside the sender's own call."""
    got = {}

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind((LO, 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()

        async def reader(k):
            n = 0
            while data := await s.recv(4096):
                n += len(data)
            return n
        h = k.spawn(reader)
        await c.sendall(b"z" * (4 << 20))
        c.close()
        got["received"] = await h.join()
    run_sim(prog, until=60)
    assert got["received"] == 4 << 20
