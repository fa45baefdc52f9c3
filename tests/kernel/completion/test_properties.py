"""Property tests of completion-based I/O over random workloads and schedules.

Each example builds one host with TCP connections over loopback, writers that send random
chunks at random times, and a pool of workers that handle completions with random CPU
work and random blocking. The invariants are checked on what the workers saw and on the
kernel's own records.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsock

from tests.kernel.completion.helpers import run_on_cpu
from tests.worlds import tcp_pair

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

chunks = st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=6)
workload = st.fixed_dictionaries({
    "streams": st.lists(chunks, min_size=1, max_size=3),
    "gaps": st.lists(st.integers(0, 3), min_size=1, max_size=8),          # ms between writes
    "workers": st.integers(1, 4),
    "concurrency": st.integers(1, 3),
    "cpu_us": st.lists(st.integers(0, 400), min_size=1, max_size=8),       # work per completion
    "block_us": st.lists(st.integers(0, 300), min_size=1, max_size=8),     # blocking per completion
    "recv_sizes": st.lists(st.integers(1, 200), min_size=1, max_size=8),
    "outstanding": st.integers(1, 3),
    "cancel_every": st.integers(0, 5),                                     # 0: never cancel
})


async def writer(k, sock, data_chunks, gaps):
    for i, chunk in enumerate(data_chunks):
        await sock.sendall(chunk)
        await k.sleep(gaps[i % len(gaps)] / 1000)
    sock.close()


def run_iocp(w):
    sim = simsock.Simulation(seed=3)
    host = sim.add_host("h", cores=4)
    rec = {"posted": [], "delivered": [], "data": {}, "violations": [], "releases": []}

    async def main(k):
        port = k.iocp(concurrency=w["concurrency"])
        rec["port"] = port
        _instrument(port, rec, w["concurrency"], strict=not any(w["block_us"]))
        socks = []
        for i, data_chunks in enumerate(w["streams"]):
            c, s = await tcp_pair(k, 7000 + i)
            port.associate(s, i)
            socks.append(s)
            rec["data"][i] = {}
            k.spawn(writer, c, data_chunks, w["gaps"])
        state = {"posts": 0}
        eof = set()

        def post(s, i, may_cancel=True):
            state["posts"] += 1
            size = w["recv_sizes"][state["posts"] % len(w["recv_sizes"])]
            op = s.recv_overlapped(size)
            rec["posted"].append(op)
            if may_cancel and w["cancel_every"] and state["posts"] % w["cancel_every"] == 0 and not op.done:
                op.cancel()
                post(s, i, False)             # keep the stream going after a cancellation

        for i, s in enumerate(socks):
            for _ in range(w["outstanding"]):
                post(s, i)

        async def worker(k, n):
            step = 0
            while True:
                key, op, nbytes, err = await port.get()
                rec["delivered"].append((k.thread, key, op))
                if key == "stop":
                    return
                step += 1
                if err is None:
                    rec["data"][key][op.seq] = bytes(op.result)
                    if nbytes == 0:
                        eof.add(key)
                    elif key not in eof:
                        post(socks[key], key)
                if len(eof) == len(socks) and len(rec["delivered"]) == len(rec["posted"]):
                    for _ in range(w["workers"]):
                        port.post("stop")
                await run_on_cpu(k, w["cpu_us"][(n + step) % len(w["cpu_us"])] / 1e6)
                block = w["block_us"][(n + step) % len(w["block_us"])]
                if block:
                    await k.sleep(block / 1e6)

        for n in range(w["workers"]):
            k.spawn(worker, n, name=f"worker{n}")

    host.spawn(main)
    sim.run(until=5)
    return sim, rec


def _instrument(port, rec, concurrency, strict):
    """Check the port's bookkeeping at the moments it changes: LIFO release among waiting
    threads, the concurrency limit at every release (and at every resume when no thread
    ever blocks elsewhere)."""
    entered = []                     # threads waiting in get, in the order they started waiting
    enter, release, resuming = port._enter_get, port._release, port.thread_resuming

    def _enter_get(thread):
        enter(thread)
        entered.append(thread)

    def _release(thread):
        if entered and entered[-1] is not thread:
            rec["violations"].append(f"LIFO: released {thread.name} while {entered[-1].name} waited later")
        entered.remove(thread)
        packet = release(thread)
        if port.active > concurrency:
            rec["violations"].append(f"released a thread with {port.active} active > {concurrency}")
        return packet

    def _thread_resuming(thread):
        resuming(thread)
        if strict and port.active > concurrency:
            rec["violations"].append(f"{port.active} active > {concurrency} with no thread blocked elsewhere")

    port._enter_get, port._release, port.thread_resuming = _enter_get, _release, _thread_resuming


@SETTINGS
@given(workload)
def test_iocp_invariants(w):
    """Every posted op completes exactly once and is delivered to exactly one thread;
    per-socket completion order is posting order; the bytes received (in posting order)
    are exactly the bytes sent; waiters are released last-in-first-out; the concurrency
    limit holds at every release."""
    sim, rec = run_iocp(w)
    assert rec["violations"] == []
    ops = [d[2] for d in rec["delivered"] if d[1] != "stop"]
    assert len(ops) == len({id(op) for op in ops}), "a completion was delivered twice"
    posted = rec["posted"]
    assert all(op.done for op in posted), "a posted operation never completed"
    assert {id(op) for op in ops} == {id(op) for op in posted}, "delivered != posted"
    for i, data_chunks in enumerate(w["streams"]):
        got = b"".join(rec["data"][i][seq] for seq in sorted(rec["data"][i]))
        assert got == b"".join(data_chunks)
    # the kernel queued completions of each socket in posting order
    completed_seq = [r["args"][1] for r in sim.trace.syscalls() if r["call"] == "iocp.complete"]
    assert sorted(completed_seq) == sorted(op.seq for op in posted), "an op completed twice or never"
    sock_of = {op.seq: id(op.sock) for op in posted}
    cancelled = {op.seq for op in posted if op.error is not None and op.error.winerror == 995}
    last = {}
    for seq in completed_seq:
        if seq in cancelled:             # a cancellation completes its op at once, out of turn
            continue
        s = sock_of[seq]
        assert seq > last.get(s, 0), "completions of one socket out of posting order"
        last[s] = seq
    assert rec["port"].stats()["max_active_at_release"] <= w["concurrency"]


def run_uring(w):
    sim = simsock.Simulation(seed=3)
    host = sim.add_host("h", cores=2)
    rec = {"submitted": [], "cqes": [], "data": {}}

    async def main(k):
        ring = k.io_uring(4)
        rec["ring"] = ring
        socks = []
        for i, data_chunks in enumerate(w["streams"]):
            c, s = await tcp_pair(k, 7000 + i)
            socks.append(s)
            rec["data"][i] = {}
            k.spawn(writer, c, data_chunks, w["gaps"])
        n = 0
        eof = set()

        def prep(i):
            nonlocal n
            n += 1
            ud = (i, n)
            ring.prep_recv(socks[i], w["recv_sizes"][n % len(w["recv_sizes"])], ud)
            rec["submitted"].append(ud)

        for i in range(len(socks)):
            for _ in range(min(w["outstanding"], 2)):
                if ring.stats()["prepared"] == ring.sq_entries:
                    ring.submit()
                prep(i)
        ring.submit()
        step = 0
        while len(eof) < len(socks):
            ud, res, extra = await ring.wait_cqe(timeout=4)
            rec["cqes"].append((ud, res))
            step += 1
            assert res >= 0, res
            i = ud[0]
            rec["data"][i][ud[1]] = bytes(extra)
            if res == 0:
                eof.add(i)
                continue
            if i in eof:
                continue
            prep(i)
            ring.submit()
            await run_on_cpu(k, w["cpu_us"][step % len(w["cpu_us"])] / 1e6)

    host.spawn(main)
    sim.run(until=5)
    return sim, rec


@SETTINGS
@given(workload)
def test_io_uring_invariants(w):
    """Every submitted request yields exactly one CQE (reaped or still pending at the end
    only for receives posted after EOF was seen); per-socket CQEs come in submission order;
    the bytes received are the bytes sent; a small ring's CQ overflow loses nothing."""
    sim, rec = run_uring(w)
    uds = [c[0] for c in rec["cqes"]]
    assert len(uds) == len(set(uds)), "a CQE was reaped twice"
    ring = rec["ring"]
    # requests still pending are receives posted on a stream whose EOF arrived in another CQE
    assert len(uds) + ring.pending + ring.ready + ring.stats()["overflow_list"] == len(rec["submitted"])
    last = {}
    for i, n in uds:
        assert n > last.get(i, 0), "CQEs of one socket out of submission order"
        last[i] = n
    for i, data_chunks in enumerate(w["streams"]):
        got = b"".join(rec["data"][i][n] for n in sorted(rec["data"][i]))
        assert got == b"".join(data_chunks)
    assert ring.stats()["dropped"] == 0
