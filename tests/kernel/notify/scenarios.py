"""Notification scenarios: programs that run on either kernel and return what they saw.

Each scenario is ``(program, expected)``: the program (``async def prog(k)``) performs a
sequence of events on loopback sockets and returns a list of observations — what
select/poll/epoll reported after each step, with descriptors replaced by the names the
program gave them — and ``expected`` is that list written from Linux's rules (fs/select.c,
fs/eventpoll.c, tcp_poll, udp_poll). ``tests/kernel/notify/test_tables.py`` runs every program
on the simulator and on the real kernel and checks both against ``expected``;
``tests/conformance/test_notify.py`` runs the same programs through the trace-comparison
harness.

Ports: every program binds port 0 (an ephemeral port) so scenarios can run at the same
time as other tests.
"""

from __future__ import annotations

import struct

from simsock.constants import (AF_INET, EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLONESHOT,
                               EPOLLOUT, EPOLLRDHUP, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI,
                               POLLRDHUP, SHUT_WR, SO_LINGER, SO_RCVBUF, SO_SNDBUF, SOCK_DGRAM, SOCK_STREAM,
                               SOL_SOCKET)

LO = "127.0.0.1"


async def tcp_pair(k, sndbuf=None, rcvbuf=None):
    """(listener, client, server side) of one loopback connection."""
    ls = k.socket(AF_INET, SOCK_STREAM)
    if rcvbuf:
        ls.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)     # inherited by the accepted socket
    ls.bind((LO, 0))
    ls.listen(8)
    c = k.socket(AF_INET, SOCK_STREAM)
    if sndbuf:
        c.setsockopt(SOL_SOCKET, SO_SNDBUF, sndbuf)
    await c.connect(ls.getsockname())
    conn, _ = await ls.accept()
    return ls, c, conn


def udp_socks(k, n):
    socks = []
    for _ in range(n):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind((LO, 0))
        socks.append(s)
    return socks


def named(events, names):
    return [(names.get(fd, fd), ev) for fd, ev in events]


def _err(exc):
    import errno as E
    code = getattr(exc, "errno", None)
    return E.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__


def attempt(fn, *args):
    try:
        fn(*args)
        return "ok"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _err(exc)


# -- select and poll masks in special states --------------------------------------------------
async def fresh_tcp_masks(k):
    """A fresh, unconnected TCP socket: tcp_poll in state CLOSE gives POLLOUT|POLLHUP, so
    select calls it readable and writable."""
    s = k.socket(AF_INET, SOCK_STREAM)
    p = k.poll()
    p.register(s, POLLIN | POLLPRI | POLLOUT | POLLRDHUP)
    polled = (await p.poll(0))[0][1]
    r, w, x = await k.select([s], [s], [s], 0)
    ep = k.epoll()
    ep.register(s, EPOLLIN | EPOLLOUT | EPOLLRDHUP)
    epolled = (await ep.poll(0))[0][1]
    ep.close()
    s.close()
    return [polled, (len(r), len(w), len(x)), epolled]


FRESH_TCP = (fresh_tcp_masks, [POLLOUT | POLLHUP, (1, 1, 0), EPOLLOUT | EPOLLHUP])


async def listener_pending(k):
    """A listener is readable exactly while a connection waits in its accept queue."""
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind((LO, 0))
    ls.listen(8)
    p = k.poll()
    p.register(ls, POLLIN | POLLOUT)
    out = [await p.poll(0)]
    c = k.socket(AF_INET, SOCK_STREAM)
    await c.connect(ls.getsockname())
    await k.settle()
    out.append([ev for _, ev in await p.poll(0)])
    out.append(len((await k.select([ls], [], [], 0))[0]))
    conn, _ = await ls.accept()
    out.append(await p.poll(0))
    for s in (conn, c, ls):
        s.close()
    return out


LISTENER = (listener_pending, [[], [POLLIN], 1, []])


async def peer_fin(k):
    """After the peer's FIN: POLLIN|POLLRDHUP (and still POLLOUT); no POLLHUP."""
    ls, c, conn = await tcp_pair(k)
    ep = k.epoll()
    ep.register(conn, EPOLLIN | EPOLLOUT | EPOLLRDHUP)
    before = (await ep.poll(0))[0][1]
    c.shutdown(SHUT_WR)
    await k.settle()
    after = (await ep.poll(0))[0][1]
    p = k.poll()
    p.register(conn, POLLIN | POLLOUT | POLLRDHUP)
    polled = (await p.poll(0))[0][1]
    for s in (conn, c, ls):
        s.close()
    ep.close()
    return [before, after, polled]


PEER_FIN = (peer_fin, [EPOLLOUT, EPOLLIN | EPOLLOUT | EPOLLRDHUP, POLLIN | POLLOUT | POLLRDHUP])


async def peer_reset(k):
    """After the peer's RST: EPOLLIN|OUT|ERR|HUP|RDHUP; SO_ERROR is then ECONNRESET."""
    ls, c, conn = await tcp_pair(k)
    ep = k.epoll()
    ep.register(conn, EPOLLIN | EPOLLOUT | EPOLLRDHUP)
    c.setsockopt(SOL_SOCKET, SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    await k.settle()
    after = (await ep.poll(0))[0][1]
    r, w, x = await k.select([conn], [conn], [conn], 0)
    for s in (conn, ls):
        s.close()
    ep.close()
    return [after, (len(r), len(w), len(x))]


PEER_RESET = (peer_reset, [EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP, (1, 1, 0)])


async def epollout_after_drain(k):
    """A writer that filled its send buffer is told EPOLLOUT (edge-triggered) only after the
    reader drained enough: reading a little wakes nobody, draining everything does."""
    from simsock.constants import MSG_WAITALL
    ls, c, conn = await tcp_pair(k, sndbuf=4096, rcvbuf=4096)
    c.setblocking(False)
    big = bytes(1 << 20)
    sent = await c.send(big)            # fills the send buffer (partial count)
    await k.settle()                    # what the window let through frees space again...
    sent += await c.send(big)           # ...so fill it once more: now the window is closed too
    ep = k.epoll()
    ep.register(c, EPOLLOUT | EPOLLET)
    out = [await ep.poll(0)]
    await conn.recv(100)
    await k.settle()
    out.append(await ep.poll(0))
    await conn.recv(sent - 100, MSG_WAITALL)
    await k.settle()
    out.append([ev for _, ev in await ep.poll(1.0)])
    for s in (conn, c, ls):
        s.close()
    ep.close()
    return out


EPOLLOUT_DRAIN = (epollout_after_drain, [[], [], [EPOLLOUT]])


# -- epoll: level, edge, oneshot ---------------------------------------------------------------
async def lt_sequence(k):
    """Level-triggered: reported on every call while data is left."""
    ls, c, conn = await tcp_pair(k)
    ep = k.epoll()
    ep.register(conn, EPOLLIN)
    names = {conn.fileno(): "conn"}
    out = [named(await ep.poll(0), names)]
    await c.send(b"0123456789")
    await k.settle()
    out.append(named(await ep.poll(0), names))
    out.append(named(await ep.poll(0), names))
    await conn.recv(5)
    out.append(named(await ep.poll(0), names))
    await conn.recv(5)
    out.append(named(await ep.poll(0), names))
    for s in (conn, c, ls):
        s.close()
    ep.close()
    return out


LT_SEQUENCE = (lt_sequence, [[], [("conn", EPOLLIN)], [("conn", EPOLLIN)], [("conn", EPOLLIN)], []])


async def et_sequence(k):
    """Edge-triggered: one report per arrival; a new arrival reports again although the
    buffer was never empty; a partial read does not."""
    ls, c, conn = await tcp_pair(k)
    ep = k.epoll()
    ep.register(conn, EPOLLIN | EPOLLET)
    names = {conn.fileno(): "conn"}
    await c.send(b"0123456789")
    await k.settle()
    out = [named(await ep.poll(0), names), named(await ep.poll(0), names)]
    await c.send(b"abcdefghij")
    await k.settle()
    out.append(named(await ep.poll(0), names))
    await conn.recv(5)
    out.append(named(await ep.poll(0), names))
    await c.send(b"!")
    await k.settle()
    out.append(named(await ep.poll(0), names))
    for s in (conn, c, ls):
        s.close()
    ep.close()
    return out


ET_SEQUENCE = (et_sequence, [[("conn", EPOLLIN)], [], [("conn", EPOLLIN)], [], [("conn", EPOLLIN)]])


async def et_in_out(k):
    """Edge-triggered with EPOLLIN|EPOLLOUT: every arrival reports the whole current mask,
    so a writable socket is reported EPOLLOUT again on each arrival of data."""
    ls, c, conn = await tcp_pair(k)
    ep = k.epoll()
    ep.register(conn, EPOLLIN | EPOLLOUT | EPOLLET)
    out = [[ev for _, ev in await ep.poll(0)], await ep.poll(0)]
    await c.send(b"x")
    await k.settle()
    out.append([ev for _, ev in await ep.poll(0)])
    await conn.recv(10)
    await c.send(b"y")
    await k.settle()
    await conn.recv(10)
    out.append([ev for _, ev in await ep.poll(0)])
    for s in (conn, c, ls):
        s.close()
    ep.close()
    return out


ET_IN_OUT = (et_in_out, [[EPOLLOUT], [], [EPOLLIN | EPOLLOUT], [EPOLLOUT]])


async def oneshot_rearm(k):
    """EPOLLONESHOT: one report, then nothing (even with more data) until modify re-arms."""
    a, b = udp_socks(k, 2)
    ep = k.epoll()
    ep.register(a, EPOLLIN | EPOLLONESHOT)
    names = {a.fileno(): "a"}
    await b.sendto(b"1", a.getsockname())
    await k.settle()
    out = [named(await ep.poll(0), names), named(await ep.poll(0), names)]
    await b.sendto(b"2", a.getsockname())
    await k.settle()
    out.append(named(await ep.poll(0), names))
    ep.modify(a, EPOLLIN | EPOLLONESHOT)
    out.append(named(await ep.poll(0), names))
    out.append(named(await ep.poll(0), names))
    for s in (a, b):
        s.close()
    ep.close()
    return out


ONESHOT = (oneshot_rearm, [[("a", EPOLLIN)], [], [], [("a", EPOLLIN)], []])


async def maxevents_round_robin(k):
    """maxevents=2 over three ready level-triggered sockets: the one left out comes first
    next time, so each is reported in turn."""
    a, b, c, s = udp_socks(k, 4)
    for t in (a, b, c):
        await s.sendto(b"x", t.getsockname())
    await k.settle()
    ep = k.epoll()
    names = {}
    for name, t in (("a", a), ("b", b), ("c", c)):
        ep.register(t, EPOLLIN)
        names[t.fileno()] = name
    out = []
    for _ in range(4):
        out.append([names[fd] for fd, _ in await ep.poll(0, 2)])
    for t in (a, b, c, s):
        t.close()
    ep.close()
    return out


MAXEVENTS = (maxevents_round_robin, [["a", "b"], ["c", "a"], ["b", "c"], ["a", "b"]])


async def nested_epoll(k):
    """An epoll instance inside another: the outer reports the inner readable while the
    inner has a ready entry."""
    a, b = udp_socks(k, 2)
    inner = k.epoll()
    inner.register(a, EPOLLIN)
    outer = k.epoll()
    outer.register(inner, EPOLLIN)
    out = [await outer.poll(0)]
    await b.sendto(b"x", a.getsockname())
    await k.settle()
    out.append([("inner" if fd == inner.fileno() else fd, ev) for fd, ev in await outer.poll(0)])
    out.append([("a" if fd == a.fileno() else fd, ev) for fd, ev in await inner.poll(0)])
    await a.recv(10)
    out.append(await outer.poll(0))
    r, _, _ = await k.select([inner], [], [], 0)
    out.append(len(r))
    outer.close()
    inner.close()
    a.close()
    b.close()
    return out


NESTED = (nested_epoll, [[], [("inner", EPOLLIN)], [("a", EPOLLIN)], [], 0])


async def ctl_errors(k):
    """epoll_ctl's errors as CPython raises them."""
    a, b = udp_socks(k, 2)
    ep = k.epoll()
    ep2 = k.epoll()
    out = [attempt(ep.register, a, EPOLLIN), attempt(ep.register, a, EPOLLIN),
           attempt(ep.modify, b, EPOLLIN), attempt(ep.unregister, b),
           attempt(ep.register, ep, EPOLLIN),
           attempt(ep.register, b, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT),
           attempt(ep.register, b, EPOLLIN | EPOLLEXCLUSIVE | EPOLLRDHUP),
           attempt(ep.register, b, EPOLLIN | EPOLLEXCLUSIVE),
           attempt(ep.modify, b, EPOLLIN),
           attempt(ep.modify, a, EPOLLIN | EPOLLEXCLUSIVE),
           attempt(ep2.register, ep, EPOLLIN), attempt(ep.register, ep2, EPOLLIN),
           attempt(ep.register, 1000, EPOLLIN)]
    for mx in (0, -2):
        try:
            await ep.poll(0, mx)
            out.append("ok")
        except ValueError as exc:
            out.append(str(exc))
    ep.unregister(a)
    out.append(attempt(ep.unregister, a))
    ep2.close()
    ep.close()
    out.append(attempt(ep.register, a, EPOLLIN))
    a.close()
    b.close()
    return out


CTL_ERRORS = (ctl_errors, ["ok", "EEXIST", "ENOENT", "ENOENT", "EINVAL", "EINVAL", "EINVAL", "ok", "EINVAL",
                           "EINVAL", "ok", "ELOOP", "EBADF", "maxevents must be greater than 0, got 0",
                           "maxevents must be greater than 0, got -2", "ENOENT", "ValueError"])


async def closed_file_leaves_epoll(k):
    """Closing a registered socket removes it from the interest list: the number can be
    registered again for a new socket, and nothing is reported for the old one."""
    a, b = udp_socks(k, 2)
    ep = k.epoll()
    ep.register(a, EPOLLIN)
    await b.sendto(b"x", a.getsockname())
    await k.settle()
    fd = a.fileno()
    a.close()
    out = [await ep.poll(0)]
    c = k.socket(AF_INET, SOCK_DGRAM)
    out.append(c.fileno() == fd)
    out.append(attempt(ep.register, c, EPOLLIN | EPOLLOUT))
    out.append([ev for _, ev in await ep.poll(0)])
    c.close()
    b.close()
    ep.close()
    return out


CLOSED_LEAVES = (closed_file_leaves_epoll, [[], True, "ok", [EPOLLOUT]])


async def select_poll_errors(k):
    """select's FD_SETSIZE limit and argument errors; poll's POLLNVAL for a closed number;
    poll.modify/unregister of an unknown descriptor."""
    out = []
    for args in (([1024], [], []), ([-1], [], []), (["x"], [], []), (5, [], [])):
        try:
            await k.select(*args, 0)
            out.append("ok")
        except (ValueError, TypeError) as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    try:
        await k.select([], [], [], -1)
    except ValueError as exc:
        out.append(str(exc))
    s = k.socket(AF_INET, SOCK_DGRAM)
    fd = s.fileno()
    p = k.poll()
    p.register(fd, POLLIN)
    s.close()
    out.append([ev for _, ev in await p.poll(0)])
    out.append(attempt(p.modify, 999, POLLIN))
    out.append(attempt(p.unregister, 999))
    return out


SELECT_ERRORS = (select_poll_errors, [
    "ValueError: filedescriptor out of range in select()",
    "ValueError: file descriptor cannot be a negative integer (-1)",
    "TypeError: argument must be an int, or have a fileno() method.",
    "TypeError: arguments 1-3 must be sequences",
    "timeout must be non-negative", [POLLNVAL], "ENOENT", "KeyError"])


# -- wake-ups of several threads ------------------------------------------------------------------
async def _threads_woken(k, ep_for, a, b, n=4, timeout=0.6) -> int:
    """``n`` threads wait in ``ep_for(k, i).poll(timeout)``; 0.15 s later ``b`` sends one
    datagram to ``a``. Returns how many of the threads it woke (got events)."""
    got = []

    async def waiter(k2, i):
        ep = ep_for(k2, i)
        events = await ep.poll(timeout)
        got.append(len(events))
    handles = [k.spawn(waiter, i, name=f"w{i}") for i in range(n)]
    await k.sleep(0.15)
    await b.sendto(b"x", a.getsockname())
    for h in handles:
        await h.join()
    return sum(1 for count in got if count)


async def exclusive_wakeups(k):
    """Four threads, each with its own epoll instance watching one UDP socket: a datagram
    wakes all four; with EPOLLEXCLUSIVE it wakes one."""
    out = []
    for flags in (0, EPOLLEXCLUSIVE):
        a, b = udp_socks(k, 2)
        eps = []
        for _ in range(4):
            ep = k.epoll()
            ep.register(a, EPOLLIN | flags)
            eps.append(ep)
        out.append(await _threads_woken(k, lambda _k, i: eps[i], a, b))
        for ep in eps:
            ep.close()
        a.close()
        b.close()
    return out


EXCLUSIVE = (exclusive_wakeups, [4, 1])


async def shared_epoll_wakeups(k):
    """Four threads waiting on one shared epoll instance: with a level-triggered entry each
    woken thread leaves it on the ready list and wakes the next, so all four report it;
    with an edge-triggered one a single thread does."""
    out = []
    for flags in (0, EPOLLET):
        a, b = udp_socks(k, 2)
        ep = k.epoll()
        ep.register(a, EPOLLIN | flags)
        out.append(await _threads_woken(k, lambda _k, i: ep, a, b))
        ep.close()
        a.close()
        b.close()
    return out


SHARED = (shared_epoll_wakeups, [4, 1])


async def select_wakes_on_arrival(k):
    """A blocked select returns when data arrives on one of its sockets, with only that one."""
    a, b, c = udp_socks(k, 3)

    async def sender(k2):
        await k2.sleep(0.1)
        await c.sendto(b"x", b.getsockname())
    h = k.spawn(sender)
    r, w, x = await k.select([a, b], [], [], 2.0)
    await h.join()
    out = [[s is b for s in r], w, x]
    p = k.poll()
    p.register(a, POLLIN)
    out.append(await p.poll(50))           # times out: nothing for a
    for s in (a, b, c):
        s.close()
    return out


SELECT_WAKES = (select_wakes_on_arrival, [[True], [], [], []])


async def close_while_waiting(k):
    """Another thread closes a descriptor a select/poll is sleeping on (fs/select.c): the
    close does not wake it, since __pollwait holds a reference to the file, so the socket
    lives on; a datagram sent to it afterwards wakes the call, whose rescan finds the
    descriptor gone and reports it (Linux 6.x: in every set select watched it in; POLLNVAL
    for poll), otherwise the timeout ends the call with the same report. epoll holds no
    reference: the close releases the file, its entry goes, and nothing is reported."""
    out = []
    for mech, send in (("select", True), ("poll", False), ("epoll", True)):
        s, other, c = udp_socks(k, 3)
        addr, fd = s.getsockname(), s.fileno()

        async def closer(k2, s=s, c=c, addr=addr, send=send):
            await k2.sleep(0.1)
            s.close()
            if send:
                await k2.sleep(0.1)
                await c.sendto(b"x", addr)
        h = k.spawn(closer)
        t0 = k.now
        if mech == "select":
            r, w, x = await k.select([s, other], [], [s], 0.5)
            got = [[o is s for o in r], w, [o is s for o in x]]
        elif mech == "poll":
            p = k.poll()
            p.register(fd, POLLIN)
            got = named(await p.poll(400), {fd: "s"})
        else:
            ep = k.epoll()
            ep.register(fd, EPOLLIN)
            got = await ep.poll(0.4)
            ep.close()
        elapsed = k.now - t0
        await h.join()
        out.append([mech, got, "woken by the datagram" if elapsed < 0.3 else "timed out"])
        for o in (other, c):
            o.close()
    return out


CLOSE_WHILE_WAITING = (close_while_waiting, [
    ["select", [[True], [], [True]], "woken by the datagram"],
    ["poll", [("s", POLLNVAL)], "timed out"],
    ["epoll", [], "timed out"],
])


ALL = {
    "fresh_tcp": FRESH_TCP, "listener": LISTENER, "peer_fin": PEER_FIN, "peer_reset": PEER_RESET,
    "epollout_drain": EPOLLOUT_DRAIN, "lt_sequence": LT_SEQUENCE, "et_sequence": ET_SEQUENCE,
    "et_in_out": ET_IN_OUT, "oneshot": ONESHOT, "maxevents": MAXEVENTS, "nested": NESTED,
    "ctl_errors": CTL_ERRORS, "closed_leaves": CLOSED_LEAVES, "select_errors": SELECT_ERRORS,
    "exclusive": EXCLUSIVE, "shared_epoll": SHARED, "select_wakes": SELECT_WAKES,
    "close_while_waiting": CLOSE_WHILE_WAITING,
}
