"""I/O completion ports and overlapped operations: behaviour, one rule per test."""

from __future__ import annotations

import errno

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM
from simsock.kernel.completion import ERROR_OPERATION_ABORTED

from tests.kernel.completion.helpers import run_on_cpu, run_one, world
from tests.worlds import tcp_pair


def test_echo_through_overlapped_recv_and_send():
    """An IOCP echo server: accept, recv and send completions come through get()."""
    got = []

    async def server(k):
        ls = k.socket()
        ls.bind(("0.0.0.0", 5000))
        ls.listen()
        port = k.iocp()
        port.associate(ls, "listener")
        ls.accept_overlapped()
        while True:
            key, op, n, err = await port.get()
            assert err is None
            if key == "listener":
                conn, _ = op.result
                port.associate(conn, conn)
                conn.recv_overlapped(100)
            elif op.kind == "recv":
                if n == 0:
                    op.sock.close()
                    return
                op.sock.send_overlapped(bytes(op.result))
                op.sock.recv_overlapped(100)

    async def client(k):
        s = k.socket()
        await s.connect(("server", 5000))
        for i in range(3):
            await s.sendall(b"msg%d" % i)
            got.append(await s.recv(100))
        s.close()

    sim, server_host, client_host = world()
    server_host.spawn(server)
    client_host.spawn(client)
    sim.run(until=1)
    assert got == [b"msg0", b"msg1", b"msg2"]


def test_get_returns_at_once_when_a_completion_is_queued():
    """C9.4: data already there -> the recv completes when posted and get() does not wait."""
    async def prog(k, out):
        c, s = await tcp_pair(k)
        await c.sendall(b"hello")
        await k.sleep(0.001)
        port = k.iocp()
        port.associate(s, "s")
        op = s.recv_overlapped(10)
        out["done_at_post"] = op.done
        t0 = k.now
        key, op2, n, err = await port.get(timeout=5.0)
        out["waited"] = k.now - t0
        out["got"] = (key, op2 is op, n, err, bytes(op.result))

    out, _ = run_one(prog)
    assert out["done_at_post"] is True
    assert out["waited"] == 0
    assert out["got"] == ("s", True, 5, None, b"hello")


def test_get_wakes_at_the_completion_not_at_the_timeout():
    """C9.4: a get with a long timeout returns the moment the operation completes."""
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        s.recv_overlapped(10)

        async def later(k):
            await k.sleep(0.25)
            await c.sendall(b"x")
        k.spawn(later)
        t0 = k.now
        await port.get(timeout=10.0)
        out["waited"] = k.now - t0

    out, _ = run_one(prog)
    assert out["waited"] == pytest.approx(0.25, abs=1e-6)


def test_get_timeout_raises_timeouterror_wait_timeout():
    async def prog(k, out):
        port = k.iocp()
        t0 = k.now
        try:
            await port.get(timeout=0.5)
        except TimeoutError as exc:
            out["exc"] = exc
        out["waited"] = k.now - t0

    out, _ = run_one(prog)
    assert isinstance(out["exc"], TimeoutError)
    assert out["exc"].winerror == 258
    assert out["waited"] == pytest.approx(0.5)


def test_associating_twice_fails_with_einval_invalid_parameter():
    async def prog(k, out):
        s = k.socket()
        p1, p2 = k.iocp(), k.iocp()
        p1.associate(s, 1)
        for p in (p1, p2):
            try:
                p.associate(s, 2)
            except OSError as exc:
                out.setdefault("errs", []).append((exc.errno, exc.winerror, "already associated" in str(exc)))

    out, _ = run_one(prog)
    assert out["errs"] == [(errno.EINVAL, 87, True), (errno.EINVAL, 87, True)]


def test_cancel_completes_the_operation_once_with_operation_aborted():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        op = s.recv_overlapped(10)
        out["first"] = op.cancel()
        out["second"] = op.cancel()
        key, op2, n, err = await port.get(timeout=1)
        out["completion"] = (op2 is op, n, type(err), err.errno, err.winerror)
        try:
            await port.get(timeout=0.1)
        except TimeoutError:
            out["no_second_completion"] = True

    out, _ = run_one(prog)
    assert out["first"] is True and out["second"] is False
    assert out["completion"] == (True, 0, OSError, errno.ECANCELED, ERROR_OPERATION_ABORTED)
    assert out["no_second_completion"]


def test_closing_the_socket_aborts_its_pending_operations_in_posting_order():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        ops = [s.recv_overlapped(10) for _ in range(3)]
        s.close()
        for _ in range(3):
            _, op, _, err = await port.get(timeout=1)
            out.setdefault("order", []).append((ops.index(op), err.winerror))

    out, _ = run_one(prog)
    assert out["order"] == [(0, 995), (1, 995), (2, 995)]


def test_several_recvs_complete_in_posting_order_and_data_is_not_reordered():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        ops = [s.recv_overlapped(4) for _ in range(3)]
        await c.sendall(b"aaaabbbbcccc")
        for _ in range(3):
            _, op, n, _ = await port.get(timeout=1)
            out.setdefault("got", []).append((ops.index(op), bytes(op.result)))

    out, _ = run_one(prog)
    assert out["got"] == [(0, b"aaaa"), (1, b"bbbb"), (2, b"cccc")]


def test_recv_completes_with_zero_bytes_at_end_of_stream():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        s.recv_overlapped(10)
        c.close()
        _, op, n, err = await port.get(timeout=1)
        out["r"] = (n, err, bytes(op.result))

    out, _ = run_one(prog)
    assert out["r"] == (0, None, b"")


def test_a_reset_completes_the_pending_recv_with_the_error():
    async def prog(k, out):
        import struct
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        s.recv_overlapped(10)
        c.setsockopt(simsock.SOL_SOCKET, simsock.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()                                  # linger 0: RST
        _, op, n, err = await port.get(timeout=1)
        out["err"] = err

    out, _ = run_one(prog)
    assert isinstance(out["err"], ConnectionResetError)


def test_send_overlapped_completes_only_when_every_byte_is_accepted():
    """No partial send to retry (C7.4): a 1 MB send completes once, with all its bytes."""
    got = bytearray()

    async def prog(k, out):
        c, s = await tcp_pair(k)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_SNDBUF, 8192)
        port = k.iocp()
        port.associate(s, "s")
        data = bytes(range(256)) * 4096
        op = s.send_overlapped(data)
        out["done_at_post"] = op.done

        async def reader(k):
            while len(got) < len(data):
                got.extend(await c.recv(65536))
        k.spawn(reader)
        _, op2, n, err = await port.get(timeout=5)
        out["r"] = (op2 is op, n, err)
        out["data"] = data

    out, _ = run_one(prog)
    assert out["done_at_post"] is False        # the send buffer cannot take 1 MB at once
    assert out["r"] == (True, 1024 * 1024, None)
    assert bytes(got) == out["data"]


def test_posting_errors_raise_from_the_posting_call_and_queue_nothing():
    async def prog(k, out):
        port = k.iocp()
        s = k.socket()
        port.associate(s, "s")
        for call in (lambda: s.recv_overlapped(10), lambda: s.accept_overlapped()):
            try:
                call()
            except OSError as exc:
                out.setdefault("errs", []).append(exc.errno)
        out["queued"] = port.queued

    out, _ = run_one(prog)
    assert out["errs"] == [errno.ENOTCONN, errno.EINVAL]
    assert out["queued"] == 0


def test_bad_arguments_say_what_is_wrong():
    async def prog(k, out):
        s = k.socket()
        with pytest.raises(ValueError, match="at least 1 byte"):
            s.recv_overlapped(0)
        with pytest.raises(TypeError, match="writable bytes-like"):
            s.recv_into_overlapped(b"read-only")
        with pytest.raises(TypeError, match="bytes-like"):
            s.send_overlapped("text")
        with pytest.raises(ValueError, match="concurrency"):
            k.iocp(-1)
        with pytest.raises(TypeError, match="simsock sockets"):
            k.iocp().associate(object(), 1)
        out["ok"] = True

    out, _ = run_one(prog)
    assert out["ok"]


def test_connect_overlapped_completes_with_refused():
    async def prog(k, out):
        port = k.iocp()
        s = k.socket()
        port.associate(s, "s")
        s.connect_overlapped(("127.0.0.1", 9))
        _, op, n, err = await port.get(timeout=5)
        out["err"] = err

    out, _ = run_one(prog)
    assert isinstance(out["err"], ConnectionRefusedError)


def test_connect_overlapped_then_send_and_recv():
    async def prog(k, out):
        ls = k.socket()
        ls.bind(("127.0.0.1", 7100))
        ls.listen()
        port = k.iocp()
        s = k.socket()
        port.associate(s, "s")
        s.connect_overlapped(("127.0.0.1", 7100))
        _, op, _, err = await port.get(timeout=5)
        out["connect"] = (op.kind, err)
        peer, _ = await ls.accept()
        buf = bytearray(16)
        s.recv_into_overlapped(buf, 8)
        await peer.sendall(b"0123456789")
        _, op, n, err = await port.get(timeout=5)
        out["recv"] = (n, bytes(buf))

    out, _ = run_one(prog)
    assert out["connect"] == ("connect", None)
    assert out["recv"] == (8, b"01234567" + bytes(8))


def test_udp_overlapped_recv_takes_one_datagram():
    async def prog(k, out):
        port = k.iocp()
        r = k.socket(AF_INET, SOCK_DGRAM)
        r.bind(("127.0.0.1", 7200))
        port.associate(r, "r")
        _pending = [r.recv_overlapped(100) for _ in range(2)]   # two receives posted; the port reports them
        w = k.socket(AF_INET, SOCK_DGRAM)
        await w.connect(("127.0.0.1", 7200))
        port.associate(w, "w")
        w.send_overlapped(b"first")
        w.send_overlapped(b"second")
        for _ in range(4):
            key, op, n, err = await port.get(timeout=1)
            out.setdefault("seen", []).append((key, op.kind, n, bytes(op.result) if op.kind == "recv" else None))

    out, _ = run_one(prog)
    assert sorted(out["seen"]) == sorted([("w", "send", 5, None), ("w", "send", 6, None),
                                          ("r", "recv", 5, b"first"), ("r", "recv", 6, b"second")])


def test_post_queues_a_packet_by_hand():
    async def prog(k, out):
        port = k.iocp()
        port.post("quit", 7)
        out["c"] = tuple(await port.get(timeout=0))

    out, _ = run_one(prog)
    assert out["c"] == ("quit", None, 7, None)


def test_waiters_are_woken_last_in_first_out():
    """The thread that called get() last gets the next completion (Windows' LIFO)."""
    order = []

    async def waiter(k, port, name):
        key, _, _, _ = await port.get()
        order.append((name, key))

    async def prog(k, out):
        port = k.iocp(concurrency=8)
        for name in ("A", "B", "C"):
            k.spawn(waiter, port, name)
            await k.sleep(0.001)
        for key in (1, 2, 3):
            port.post(key)
            await k.sleep(0.001)

    run_one(prog, cores=8)
    assert order == [("C", 1), ("B", 2), ("A", 3)]


def test_concurrency_limit_holds_back_waiters_while_a_thread_runs():
    """concurrency=1: while the released thread runs (CPU work), a second completion waits;
    when it blocks elsewhere (sleep), the second waiter is released."""
    log = []

    async def worker(k, port, name):
        while True:
            key, _, _, _ = await port.get()
            log.append((round(k.now, 6), name, key, port.active))
            if key == "stop":
                return
            await run_on_cpu(k, 0.010)     # running: no other worker may be released
            await k.sleep(0.010)           # blocked: another worker may be released

    async def prog(k, out):
        port = k.iocp(concurrency=1)
        for name in ("A", "B"):
            k.spawn(worker, port, name)
        await k.sleep(0.001)
        port.post(1)
        port.post(2)
        await k.sleep(0.1)
        port.post("stop")
        port.post("stop")
        out["port"] = port.stats()

    out, _ = run_one(prog, cores=4)
    # B waited last so takes packet 1 at once; A gets packet 2 only when B blocks in sleep
    assert log[0][1:] == ("B", 1, 1) and log[0][0] == pytest.approx(0.001, abs=1e-4)
    assert log[1][1:] == ("A", 2, 1) and log[1][0] == pytest.approx(0.011, abs=1e-4)
    assert out["port"]["max_active_at_release"] == 1


def test_concurrency_zero_means_the_number_of_cores():
    async def prog(k, out):
        out["c"] = k.iocp(0).concurrency

    out, _ = run_one(prog, cores=6)
    assert out["c"] == 6


def test_trace_records_post_get_and_complete():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        port = k.iocp()
        port.associate(s, "s")
        s.recv_overlapped(10)
        await c.sendall(b"abc")
        await port.get(timeout=1)

    _, sim = run_one(prog)
    calls = [r["call"] for r in sim.trace.syscalls() if r["call"].startswith(("iocp", "recv_overlapped"))]
    assert calls == ["iocp", "iocp.associate", "recv_overlapped", "iocp.complete", "iocp.get"]
    done = [r for r in sim.trace.syscalls() if r["call"] == "iocp.complete"][0]
    assert done["thread"] == "-" and done["result"] == ["s", done["args"][1], 3, None]


def test_windows_profile_has_64k_buffers_and_no_doubling():
    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        out["rcv"] = s.getsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF)
        t = k.socket()
        out["tcp_snd"] = t.getsockopt(simsock.SOL_SOCKET, simsock.SO_SNDBUF)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 100000)
        out["set"] = s.getsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF)

    out, sim = run_one(prog, profile="windows")
    assert sim.profile.name == "windows"
    assert out == {"rcv": 65536, "tcp_snd": 65536, "set": 100000}
