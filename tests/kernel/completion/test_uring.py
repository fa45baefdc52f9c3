"""io_uring: submission, completion, overflow, errors — one rule per test."""

from __future__ import annotations

import errno

import pytest

from simsock.kernel.uring import IORING_SQ_CQ_OVERFLOW

from tests.kernel.completion.helpers import run_one
from tests.worlds import tcp_pair


def test_sizes_round_up_and_cq_is_twice_sq():
    async def prog(k, out):
        ring = k.io_uring(100)
        out["sizes"] = (ring.sq_entries, ring.cq_entries)
        for bad in (0, 40000):
            try:
                k.io_uring(bad)
            except OSError as exc:
                out.setdefault("errs", []).append(exc.errno)

    out, _ = run_one(prog)
    assert out["sizes"] == (128, 256)
    assert out["errs"] == [errno.EINVAL, errno.EINVAL]


def test_recv_send_roundtrip_and_submit_counts():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(8)
        ring.prep_recv(s, 100, "r1")
        ring.prep_send(c, b"ping", "s1")
        out["submitted"] = ring.submit()
        cqes = [await ring.wait_cqe(timeout=1), await ring.wait_cqe(timeout=1)]
        out["cqes"] = sorted((u, r, bytes(x) if x is not None else None) for u, r, x in cqes)

    out, _ = run_one(prog)
    assert out["submitted"] == 2
    assert out["cqes"] == [("r1", 4, b"ping"), ("s1", 4, None)]


def test_prepared_sqes_do_nothing_until_submit():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        await c.sendall(b"data")
        ring = k.io_uring(4)
        ring.prep_recv(s, 10, 1)
        out["before"] = ring.peek_cqe()
        ring.submit()
        out["after"] = ring.peek_cqe()[:2]

    out, _ = run_one(prog)
    assert out["before"] is None
    assert out["after"] == (1, 4)


def test_full_submission_queue_raises_ebusy():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(2)
        ring.prep_recv(s, 1, 1)
        ring.prep_recv(s, 1, 2)
        with pytest.raises(OSError, match="submission queue is full") as info:
            ring.prep_recv(s, 1, 3)
        out["errno"] = info.value.errno

    out, _ = run_one(prog)
    assert out["errno"] == errno.EBUSY


def test_errors_are_negative_res_not_exceptions():
    async def prog(k, out):
        ring = k.io_uring(4)
        s = k.socket()
        ring.prep_recv(s, 10, "recv-unconnected")
        ring.prep_connect(k.socket(), ("127.0.0.1", 9), "refused")
        ring.submit()
        for _ in range(2):
            u, res, _ = await ring.wait_cqe(timeout=5)
            out[u] = res

    out, _ = run_one(prog)
    assert out == {"recv-unconnected": -errno.ENOTCONN, "refused": -errno.ECONNREFUSED}


def test_eagain_never_appears_recv_waits_internally():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(4)
        ring.prep_recv(s, 10, "r")
        ring.submit()

        async def later(k):
            await k.sleep(0.05)
            await c.sendall(b"late")
        k.spawn(later)
        t0 = k.now
        out["cqe"] = (await ring.wait_cqe())[:2]
        out["waited"] = k.now - t0

    out, _ = run_one(prog)
    assert out["cqe"] == ("r", 4)
    assert out["waited"] == pytest.approx(0.05, abs=1e-4)


def test_cancel_completes_the_target_with_ecanceled():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        ring = k.io_uring(4)
        ring.prep_recv(s, 10, "victim")
        ring.submit()
        ring.prep_cancel("victim", "canceller")
        ring.prep_cancel("nobody", "miss")
        ring.submit()
        for _ in range(3):
            u, res, _ = await ring.wait_cqe(timeout=1)
            out[u] = res

    out, _ = run_one(prog)
    assert out == {"victim": -errno.ECANCELED, "canceller": 0, "miss": -errno.ENOENT}


def test_cq_overflow_keeps_every_cqe_and_sets_the_flag_until_flushed():
    """6.x (IORING_FEAT_NODROP): completions beyond the CQ go to the overflow list, in order."""
    async def prog(k, out):
        c, s = await tcp_pair(k)
        await c.sendall(b"x" * 10)
        ring = k.io_uring(4)                   # SQ 4, CQ 8
        for batch in range(3):
            for i in range(4):
                ring.prep_recv(s, 1, batch * 4 + i)
            ring.submit()
        out["flag"] = (ring.cq_overflow_flag, ring.sq_flags == IORING_SQ_CQ_OVERFLOW, ring.ready)
        got = []
        while (cqe := ring.peek_cqe()) is not None:
            got.append(cqe[0])
        out["got"] = got
        out["flag_after"] = ring.cq_overflow_flag
        out["stats"] = ring.stats()

    out, _ = run_one(prog)
    assert out["flag"] == (True, True, 8)
    assert out["got"] == list(range(10))       # 10 bytes -> 10 one-byte receives, in order
    assert out["flag_after"] is False
    assert out["stats"]["overflowed"] == 2 and out["stats"]["dropped"] == 0
    assert out["stats"]["pending"] == 2        # two receives still wait for data


def test_submit_and_wait_cost_one_syscall_each_not_per_op():
    async def prog(k, out):
        c, s = await tcp_pair(k)
        await c.sendall(b"y" * 64)
        ring = k.io_uring(64)
        for i in range(64):
            ring.prep_recv(s, 1, i)
        ring.submit()
        for _ in range(64):
            await ring.wait_cqe()
        out["enters"] = ring.stats()["enters"]

    out, _ = run_one(prog)
    assert out["enters"] == 1                  # CQEs already in the ring are read without a syscall


def test_real_backend_refuses_iocp_and_io_uring():
    from simsock.real.kernel import RealKernel
    k = RealKernel.__new__(RealKernel)
    for make in (k.iocp, k.io_uring):
        with pytest.raises(OSError) as info:
            make()
        assert info.value.errno == errno.EOPNOTSUPP
        assert "only in the simulator" in str(info.value)
