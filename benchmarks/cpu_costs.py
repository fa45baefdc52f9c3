"""Calibration: order-of-magnitude checks of the CPU costs in the linux profile, on this machine.

Python cannot time a system call alone: every figure below includes the interpreter's own
overhead, which is estimated by timing an equivalent pure-Python call and subtracted. The
results are sanity checks for the profile's numbers (which come from kernel figures, see
``simsock/profiles/linux.py``), not replacements for them.

    python benchmarks/cpu_costs.py

Prints, per figure: the raw time per iteration, the Python overhead estimate, and the
difference attributed to the kernel.
"""

from __future__ import annotations

import os
import select
import socket
import time


def per_call(fn, n: int) -> float:
    """Best of 5 runs of ``n`` calls, ns per call."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def python_overhead_raise(n: int) -> None:
    """A C function that raises OSError without a system call (inet_aton's parse error)."""
    f = socket.inet_aton
    for _ in range(n):
        try:
            f("x")
        except OSError:
            pass


def eagain_recv(n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    recv = s.recv
    for _ in range(n):
        try:
            recv(100)
        except BlockingIOError:
            pass
    s.close()


def python_overhead_call(n: int) -> None:
    f = (lambda: None)
    for _ in range(n):
        f()


def getppid(n: int) -> None:
    g = os.getppid
    for _ in range(n):
        g()


def copy_bandwidth() -> float:
    """ps per byte of a large memory copy (memcpy through bytes(memoryview))."""
    size = 64 << 20
    src = bytearray(os.urandom(1 << 20)) * 64
    dst = bytearray(size)             # touched once first, so page faults are not timed
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        dst[:] = src
        best = min(best, (time.perf_counter_ns() - t0) / size)
    small = bytearray(64 << 10)       # 64 KiB: cache-resident, like a socket copy of one message
    ssrc = bytes(64 << 10)
    best_small = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(1000):
            small[:] = ssrc
        best_small = min(best_small, (time.perf_counter_ns() - t0) / (1000 * len(ssrc)))
    return best * 1000, best_small * 1000


def loopback_send_recv(size: int, n: int) -> float:
    """ns per send+recv pair of ``size`` bytes over a loopback UDP socket."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    data = bytes(size)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        a.send(data)
        b.recv(size)
    out = (time.perf_counter_ns() - t0) / n
    a.close()
    b.close()
    return out


def ping_pong(same_cpu: bool, n: int = 20000) -> float:
    """Round trip of one byte between two processes over pipes, ns (2 wake-ups, 2
    switches on one CPU; 2 cross-CPU wake-ups otherwise)."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    cpus = sorted(os.sched_getaffinity(0))
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {cpus[0]})
        for _ in range(n + 100):
            os.read(r1, 1)
            os.write(w2, b"x")
        os._exit(0)
    os.sched_setaffinity(0, {cpus[0] if same_cpu or len(cpus) == 1 else cpus[1]})
    for _ in range(100):
        os.write(w1, b"x")
        os.read(r2, 1)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        os.write(w1, b"x")
        os.read(r2, 1)
    out = (time.perf_counter_ns() - t0) / n
    os.waitpid(pid, 0)
    os.sched_setaffinity(0, set(cpus))
    for fd in (r1, w1, r2, w2):
        os.close(fd)
    return out


def poll_scan(nfds: int, n: int = 2000) -> float:
    """ns per poll() call with ``nfds`` idle sockets registered, timeout 0."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(nfds)]
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        p.poll(0)
    out = (time.perf_counter_ns() - t0) / n
    for s in socks:
        s.close()
    return out


def epoll_ready(nready: int, n: int = 2000) -> float:
    """ns per epoll.poll(0) call reporting ``nready`` ready (level-triggered) sockets."""
    ep = select.epoll()
    pairs = []
    for _ in range(nready):
        a, b = socket.socketpair()
        a.send(b"x")
        ep.register(b, select.EPOLLIN)
        pairs.append((a, b))
    t0 = time.perf_counter_ns()
    for _ in range(n):
        ep.poll(0, nready + 1)
    out = (time.perf_counter_ns() - t0) / n
    for a, b in pairs:
        a.close()
        b.close()
    ep.close()
    return out


def main() -> None:
    py_call = per_call(python_overhead_call, 1_000_000)
    py_raise = per_call(python_overhead_raise, 500_000)
    ppid = per_call(getppid, 1_000_000)
    eagain = per_call(eagain_recv, 500_000)
    print("CPU cost calibration (Python overhead subtracted; order of magnitude only)")
    print(f"  getppid():                    {ppid:7.0f} ns/call raw, ~{ppid - py_call:5.0f} ns kernel "
          f"(minimal syscall entry+exit)")
    print(f"  non-blocking recv -> EAGAIN:  {eagain:7.0f} ns/call raw, ~{eagain - py_raise:5.0f} ns kernel "
          f"(entry, fd lookup, socket lock, empty queue)")
    ps, ps_small = copy_bandwidth()
    print(f"  memcpy of 64 MiB:             {ps:7.1f} ps/byte ({1000 / ps:.1f} GB/s); of 64 KiB in cache: "
          f"{ps_small:.1f} ps/byte ({1000 / ps_small:.1f} GB/s)")
    small = loopback_send_recv(64, 100_000)
    big = loopback_send_recv(60000, 20_000)
    print(f"  loopback UDP send+recv:       {small:7.0f} ns (64 B), {big:7.0f} ns (60000 B): "
          f"{(big - small) / (60000 - 64) * 1000:.0f} ps per byte (two copies plus checksum-free loopback)")
    same = ping_pong(True)
    other = ping_pong(False)
    print(f"  pipe ping-pong, same CPU:     {same:7.0f} ns per round trip (2 context switches + 4 syscalls)")
    print(f"  pipe ping-pong, two CPUs:     {other:7.0f} ns per round trip (2 cross-CPU wake-ups + 4 syscalls)")
    p10, p1000 = poll_scan(10), poll_scan(1000)
    print(f"  poll(0), 10 vs 1000 fds:      {p10:7.0f} / {p1000:7.0f} ns: {(p1000 - p10) / 990:.0f} ns per watched fd")
    e1, e256 = epoll_ready(1), epoll_ready(256)
    print(f"  epoll_wait(0), 1 vs 256 ready:{e1:7.0f} / {e256:7.0f} ns: {(e256 - e1) / 255:.0f} ns per ready "
          f"event (incl. Python's tuple per event)")


if __name__ == "__main__":
    main()
