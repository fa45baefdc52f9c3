"""UDP programs: a paced sender and a slow reader, each recording what it saw.

Both take a ``log`` dict that they fill in, so that the experiment (or a test) can read
what happened from the programs' point of view: per send, how long the call took (a UDP
sender never waits for the receiver); per datagram read, its sequence number and whether
its bytes were intact.
"""

from __future__ import annotations

from simsock import AF_INET, SOCK_DGRAM, SO_RCVBUF, SO_SNDBUF, SOL_SOCKET

from . import payload


async def paced_sender(k, dest, count: int, size: int, interval: float, log: dict, sndbuf: int | None = None):
    """Send ``count`` datagrams of ``size`` bytes to ``dest``, one every ``interval`` s.

    Records per send: time, duration of the call (ns) and bytes returned.
    """
    s = k.socket(AF_INET, SOCK_DGRAM)
    if sndbuf is not None:
        s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    log.update(send_times=[], send_call_ns=[], send_returned=[])
    start = k.now
    for seq in range(count):
        due = start + seq * interval
        if due > k.now:
            await k.sleep(due - k.now)
        before = k.now_ns
        n = await s.sendto(payload.make(seq, size), dest)
        log["send_times"].append(k.now)
        log["send_call_ns"].append(k.now_ns - before)
        log["send_returned"].append(n)
    s.close()


async def slow_reader(k, port: int, per_datagram: float, duration: float, log: dict, rcvbuf: int | None = None,
                      ready=None):
    """Bind ``port``, then read one datagram every ``per_datagram`` seconds for ``duration``.

    Records per read: time, sequence number and whether the payload was intact; exposes
    the socket as ``log["socket"]`` so the experiment can sample its buffer.
    """
    s = k.socket(AF_INET, SOCK_DGRAM)
    if rcvbuf is not None:
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
    s.bind(("0.0.0.0", port))
    s.settimeout(per_datagram * 4 + 0.5)
    log.update(recv_times=[], recv_seqs=[], recv_intact=[], socket=s)
    end = k.now + duration
    while k.now < end:
        try:
            data = await s.recv(65535)
        except TimeoutError:
            continue
        seq, intact = payload.parse(data)
        log["recv_times"].append(k.now)
        log["recv_seqs"].append(seq)
        log["recv_intact"].append(intact)
        await k.sleep(per_datagram)


async def nonblocking_burst(k, dest, attempts: int, size: int, log: dict, sndbuf: int):
    """Try ``attempts`` non-blocking sends as fast as possible with a small send buffer;
    record each outcome: bytes returned, or the errno name."""
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    s.setblocking(False)
    log["outcomes"] = []
    for seq in range(attempts):
        try:
            n = await s.sendto(payload.make(seq, size), dest)
            log["outcomes"].append(n)
        except BlockingIOError:
            log["outcomes"].append("EAGAIN")
    s.close()
