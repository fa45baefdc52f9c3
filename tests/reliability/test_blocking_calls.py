"""Blocking calls wait, and a dying connection's error is reported once (issues 12 and 13.1).

The real-kernel side of these facts is in tests/conformance/test_blocking.py; here are the
cases that need simulated time (when a blocked call returns) or a world the real kernel
cannot make quickly (a connection that times out after tcp_retries2).
"""

import simsock
from simsock import AF_INET, SO_RCVBUF, SO_SNDBUF, SOCK_STREAM, SOL_SOCKET
from simsock.net.loss import LossModel


class Cut(LossModel):
    """Loses nothing until ``cut`` is set, then everything (a cable pulled out)."""

    def __init__(self):
        super().__init__()
        self.cut = False

    def lose(self, rng):
        self.packets += 1
        rng.random()
        if self.cut:
            self.lost += 1
        return self.cut


async def _pair(k, size):
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    c = k.socket(AF_INET, SOCK_STREAM)
    c.setsockopt(SOL_SOCKET, SO_SNDBUF, size)
    await c.connect(ls.getsockname())
    conn, _ = await ls.accept()
    conn.setsockopt(SOL_SOCKET, SO_RCVBUF, size)
    return ls, c, conn


def test_blocking_send_into_full_buffer_returns_once_the_reader_drained():
    """A blocking send(4096) on a full buffer returns 4096, and only after the reader began
    draining (not at once, and not with EAGAIN as before)."""
    out = {}

    async def prog(k):
        ls, c, conn = await _pair(k, 4096)
        c.setblocking(False)
        total = 0
        while True:
            try:
                total += await c.send(b"f" * 4096)
            except BlockingIOError:
                break
        got = [0]

        async def reader(k):
            await k.sleep(0.1)
            out["reader_started"] = k.now
            while got[0] < total + 4096:
                got[0] += len(await conn.recv(65536))

        r = k.spawn(reader)
        c.setblocking(True)
        t0 = k.now
        out["n"] = await c.send(b"y" * 4096)
        out["took"] = k.now - t0
        out["drained"] = got[0]
        out["total"] = total
        await r.join()

    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=5)
    assert out["n"] == 4096
    assert out["took"] >= 0.1
    assert out["drained"] > 0


def _timeout_world(call):
    """A bulk sender on a link that is cut after 0.2 s; returns (sim, outcomes)."""
    outcomes = []
    cut = Cut()

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 7000))
        ls.listen(4)
        conn, _ = await ls.accept()
        await k.sleep(10_000)

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        await s.connect(("server", 7000))

        async def cutter(k):
            await k.sleep(0.2)
            cut.cut = True
        k.spawn(cutter)
        for _ in range(3):
            try:
                outcomes.append(await getattr(s, call)(b"x" * (4 << 20)))
            except OSError as e:
                outcomes.append(e.errno)

    sim = simsock.Simulation(seed=1)
    sim.add_host("server").spawn(server)
    sim.add_host("client").spawn(client)
    sim.add_link("client", "server", rate="10Mbit", delay="5ms", loss=cut)
    return sim, outcomes


def test_timeout_during_blocking_send_is_reported_by_the_next_call():
    """A connection that times out (tcp_retries2) while send() is blocked: the send returns its
    partial count, the next send raises ETIMEDOUT, the one after EPIPE (the error was lost before)."""
    import errno
    sim, outcomes = _timeout_world("send")
    sim.run(until=2000)
    assert len(outcomes) == 3, outcomes
    assert isinstance(outcomes[0], int) and outcomes[0] > 0 and outcomes[0] < 4 << 20
    assert outcomes[1:] == [errno.ETIMEDOUT, errno.EPIPE]


def test_timeout_during_blocking_sendall_raises_it():
    """sendall blocked when the connection times out raises ETIMEDOUT itself; then EPIPE."""
    import errno
    sim, outcomes = _timeout_world("sendall")
    sim.run(until=2000)
    assert outcomes[:2] == [errno.ETIMEDOUT, errno.EPIPE]


def test_reset_with_overlapped_operations_pending_is_reported_once():
    """A RST while an overlapped send (blocked for space) and a receive are pending, on IOCP and on
    io_uring: exactly one completion carries ECONNRESET (the receive), the send completes with EPIPE
    keeping the bytes it moved (IOCP nbytes), and the next send raises EPIPE."""
    import errno
    import struct

    from simsock import SO_LINGER
    from tests.kernel.completion.helpers import run_one
    from tests.worlds import tcp_pair

    async def killer(k, s):
        await k.sleep(0.2)
        s.setsockopt(SOL_SOCKET, SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    async def prog(k, out):
        c, s = await tcp_pair(k)
        c.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        port = k.iocp()
        port.associate(c, 1)
        c.send_overlapped(b"x" * (1 << 20))
        c.recv_overlapped(100)
        k.spawn(killer, s)
        for _ in range(2):
            _, op, n, err = await port.get()
            out.setdefault("iocp", []).append((op.kind, n, getattr(err, "errno", None)))
        try:
            await c.send(b"y")
        except OSError as e:
            out["iocp_next"] = e.errno
        c2, s2 = await tcp_pair(k, 7001)
        c2.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
        s2.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096)
        ring = k.io_uring()
        ring.prep_send(c2, b"x" * (1 << 20), user_data="send")
        ring.prep_recv(c2, 100, user_data="recv")
        ring.submit()
        k.spawn(killer, s2)
        for _ in range(2):
            user_data, res, _ = await ring.wait_cqe()
            out.setdefault("uring", []).append((user_data, res))
        try:
            await c2.send(b"y")
        except OSError as e:
            out["uring_next"] = e.errno

    out, _ = run_one(prog, until=5)
    assert out["iocp"][0] == ("recv", 0, errno.ECONNRESET)
    kind, n, err = out["iocp"][1]
    assert kind == "send" and err == errno.EPIPE and n > 0
    assert sorted(out["uring"]) == [("recv", -errno.ECONNRESET), ("send", -errno.EPIPE)]
    assert out["iocp_next"] == out["uring_next"] == errno.EPIPE
