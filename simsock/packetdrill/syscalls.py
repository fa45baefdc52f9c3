"""The system calls of a script, made on the simulated host's socket API.

Each call returns what the C call returns (an int) or raises the OSError the simulated
kernel raises (the runner turns it into ``-1`` and the errno name). Output arguments
(``getsockopt``'s value, ``epoll_wait``'s events, ``poll``'s revents, ``ioctl``'s count,
``recvmsg``'s flags) are compared after the call by checks appended to ``box.out``.

A NULL buffer with a non-zero length is EFAULT where Linux fails the copy: a send on a
socket that can send (tcp_sendmsg_locked's copy from user memory) and a receive when there
is data to copy (tcp_recvmsg_locked); otherwise the call behaves as with a buffer.
"""

from __future__ import annotations

import errno as E

from simsock.errors import os_error

from .script import Expr, SyscallSpec, expr_text
from .symbols import SYMBOLS

_NULL = object()


def _unsupported(what: str):
    from .runner import Unsupported
    return Unsupported(what)


def ival(e: Expr) -> int | None:
    """An integer argument: a number, a symbol, or symbols or-ed together; None for ``...``."""
    if e.kind == "ellipsis":
        return None
    if e.kind == "int":
        return e.value
    if e.kind == "word":
        v = SYMBOLS.get(e.value)
        if v is None:
            raise _unsupported(f"symbol {e.value}")
        return v
    if e.kind == "binor":
        out = 0
        for i in e.items:
            v = ival(i)
            out |= v or 0
        return out
    if e.kind == "list" and len(e.items) == 1:
        return ival(e.items[0])
    raise _unsupported(f"argument {expr_text(e)}")


def _buffer(e: Expr):
    if e.kind == "word" and e.value == "NULL":
        return _NULL
    if e.kind == "ellipsis":
        return None
    if e.kind == "string":
        return e.value.encode()
    raise _unsupported(f"buffer argument {expr_text(e)}")


def _nargs(sc: SyscallSpec, *counts: int) -> None:
    if len(sc.args) not in counts:
        raise _unsupported(f"{sc.name} with {len(sc.args)} arguments")


async def dispatch(runner, k, sc: SyscallSpec, box):
    fn = _CALLS.get(sc.name)
    if fn is None:
        raise _unsupported(f"system call {sc.name}()")
    return await fn(runner, k, sc, box)


def _obj(runner, e: Expr):
    fd = ival(e)
    obj = runner.fds.get(fd)
    if obj is None:
        raise os_error(E.EBADF)
    return obj


def _tcp(runner, e: Expr):
    from simsock.kernel.tcp_socket import TcpSocket
    obj = _obj(runner, e)
    if not isinstance(obj, TcpSocket):
        raise os_error(E.ENOTSOCK)
    return obj


def _expect_fd(runner, sc: SyscallSpec, obj) -> int:
    """The script names the new descriptor by the value it expects (packetdrill maps script
    fds to live ones the same way)."""
    exp = sc.result
    fd = exp.value if exp.kind == "int" and exp.value >= 0 else obj.fileno()
    runner.fds[fd] = obj
    return fd


# ---------------------------------------------------------------------------- sockets
async def _socket(runner, k, sc, box):
    _nargs(sc, 3)
    family = ival(sc.args[0])
    if family is None:
        family = SYMBOLS["AF_INET"]
    if family != SYMBOLS["AF_INET"]:
        raise _unsupported("IPv6 sockets (--ip_version=ipv4 only)")
    stype = ival(sc.args[1])
    proto = ival(sc.args[2]) or 0
    if stype is None:
        stype = SYMBOLS["SOCK_STREAM"]
    if stype & 0xF != SYMBOLS["SOCK_STREAM"]:
        raise _unsupported("non-TCP sockets")
    sock = k.socket(family, stype, proto)
    return _expect_fd(runner, sc, sock)


def _sockaddr(runner, e: Expr, local: bool) -> tuple[str, int]:
    if e.kind == "ellipsis":
        cfg = runner.cfg
        return (cfg.local_ip, cfg.bind_port) if local else (cfg.remote_ip, cfg.connect_port)
    raise _unsupported(f"explicit socket address {expr_text(e)}")


async def _bind(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    addr = _sockaddr(runner, sc.args[1], True)
    sock.bind(addr)
    runner.local_port = sock.local[1]
    return 0


async def _listen(runner, k, sc, box):
    _nargs(sc, 2)
    _tcp(runner, sc.args[0]).listen(ival(sc.args[1]))
    return 0


async def _accept(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    child, _addr = await sock.accept()
    return _expect_fd(runner, sc, child)


async def _connect(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    await sock.connect(_sockaddr(runner, sc.args[1], False))
    return 0


async def _close(runner, k, sc, box):
    _nargs(sc, 1)
    obj = _obj(runner, sc.args[0])
    obj.close()
    for fd, o in list(runner.fds.items()):
        if o is obj:
            del runner.fds[fd]
    runner.closed.append(obj)
    return 0


async def _shutdown(runner, k, sc, box):
    _nargs(sc, 2)
    _tcp(runner, sc.args[0]).shutdown(ival(sc.args[1]))
    return 0


async def _fcntl(runner, k, sc, box):
    _nargs(sc, 2, 3)
    obj = _obj(runner, sc.args[0])
    cmd = ival(sc.args[1])
    if cmd == SYMBOLS["F_GETFL"]:
        return SYMBOLS["O_RDWR"] | (SYMBOLS["O_NONBLOCK"] if obj.gettimeout() == 0 else 0)
    if cmd == SYMBOLS["F_SETFL"]:
        flags = ival(sc.args[2]) or 0
        obj.setblocking(not flags & SYMBOLS["O_NONBLOCK"])
        return 0
    raise _unsupported(f"fcntl command {expr_text(sc.args[1])}")


# ---------------------------------------------------------------------------- options
def _optval(e: Expr):
    if e.kind == "list" and len(e.items) == 1:
        return ival(e.items[0])
    if e.kind in ("int", "word"):
        return ival(e)
    if e.kind == "string":
        return e.value.encode()
    if e.kind == "brace":
        raise _unsupported(f"structured socket option value {expr_text(e)}")
    raise _unsupported(f"socket option value {expr_text(e)}")


async def _setsockopt(runner, k, sc, box):
    _nargs(sc, 5)
    sock = _tcp(runner, sc.args[0])
    level, opt = ival(sc.args[1]), ival(sc.args[2])
    value = _optval(sc.args[3])
    sock.setsockopt(level, opt, value)
    return 0


async def _getsockopt(runner, k, sc, box):
    _nargs(sc, 5)
    sock = _tcp(runner, sc.args[0])
    level, opt = ival(sc.args[1]), ival(sc.args[2])
    want = sc.args[3]
    value = sock.getsockopt(level, opt)
    if isinstance(value, bytes):
        value = int.from_bytes(value[:4], "little", signed=True)
    if want.kind != "ellipsis":
        expected = _optval(want)

        def check(ev, now, value=value, expected=expected):
            if value != expected:
                from .runner import Mismatch
                raise Mismatch(ev.line, f"getsockopt({expr_text(sc.args[2])}) value: expected {expected} "
                                        f"actual {value}", now)
        box.out = [check]
    return 0


async def _ioctl(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    req = ival(sc.args[1])
    if hasattr(sock, "ioctl"):
        value = sock.ioctl(req)
    else:
        value = _ioctl_fallback(sock, req)
    if isinstance(value, tuple):
        value = value[0]
    want = sc.args[2]
    if want.kind != "ellipsis":
        expected = _optval(want)

        def check(ev, now, value=value, expected=expected):
            if value != expected:
                from .runner import Mismatch
                raise Mismatch(ev.line, f"ioctl({expr_text(sc.args[1])}) value: expected {expected} "
                                        f"actual {value}", now)
        box.out = [check]
    return 0


def _ioctl_fallback(sock, req: int) -> int:
    """SIOCINQ/SIOCOUTQ/SIOCOUTQNSD as tcp_ioctl computes them."""
    conn = sock.conn
    if sock.listener is not None:
        raise os_error(E.EINVAL)
    if req == SYMBOLS["SIOCINQ"]:
        if conn is None or conn.state in ("SYN_SENT", "SYN_RECV"):
            raise os_error(E.EINVAL)
        answ = conn.rcv_nxt - conn.copied_seq
        if answ and conn.sock_done:
            answ -= 1     # tcp_inq: the FIN occupies a sequence number but is no data (SOCK_DONE)
        return max(answ, 0)
    if req == SYMBOLS["SIOCOUTQ"]:          # write_seq - snd_una (0 before a connection)
        return 0 if conn is None else max(conn.sendq.end - conn.snd_una, 0)
    if req == SYMBOLS["SIOCOUTQNSD"]:       # write_seq - snd_nxt: not yet sent
        return 0 if conn is None else max(conn.sendq.end - conn.snd_nxt, 0)
    raise _unsupported(f"ioctl request {req:#x}")


# ---------------------------------------------------------------------------- data
def _can_send(sock) -> bool:
    conn = sock.conn
    return conn is not None and sock.listener is None and conn.state in ("ESTABLISHED", "CLOSE_WAIT") \
        and not conn.sk_err and not conn.shutdown_flags & 2


#: send flags the simulated socket implements; any other fails the script, named
_SEND_FLAGS = {"MSG_EOR": 0x80, "MSG_MORE": 0x8000, "MSG_DONTWAIT": 0x40, "MSG_NOSIGNAL": 0x4000}


def _check_send_flags(flags: int, sock=None) -> int:
    """The flags to pass on; MSG_ZEROCOPY changes no data (Linux uses it only with
    SO_ZEROCOPY, and its completion notifications are not modelled), so it is dropped."""
    flags &= ~SYMBOLS["MSG_ZEROCOPY"]
    rest = flags
    for v in _SEND_FLAGS.values():
        rest &= ~v
    if rest:
        names = [n for n, v in SYMBOLS.items() if n.startswith("MSG_") and rest & v == v and v]
        raise _unsupported(f"send flag {'|'.join(names) or hex(rest)} (not modelled)")
    return flags


_RECV_FLAGS = SYMBOLS["MSG_PEEK"] | SYMBOLS["MSG_DONTWAIT"] | SYMBOLS["MSG_WAITALL"] | SYMBOLS["MSG_TRUNC"]


def _check_recv_flags(flags: int) -> int:
    if flags & ~_RECV_FLAGS:
        names = [n for n, v in SYMBOLS.items() if n.startswith("MSG_") and flags & ~_RECV_FLAGS & v == v and v]
        raise _unsupported(f"receive flag {'|'.join(names) or hex(flags)} (not modelled)")
    return flags


async def _send_common(runner, sock, buf, n: int, flags: int, address=None) -> int:
    fastopen = bool(flags & SYMBOLS["MSG_FASTOPEN"])
    flags = _check_send_flags(flags & ~SYMBOLS["MSG_FASTOPEN"])
    if fastopen or getattr(sock, "_deferred_connect", None) is not None:
        if buf is not _NULL or n == 0:
            raise _unsupported("TCP Fast Open data in the SYN (not modelled)")
        if not fastopen and sock._deferred_connect is None:
            raise os_error(E.EFAULT)
        sock.fastopen_connect_without_data(address)    # raises (EINPROGRESS when it starts)
    if buf is _NULL and n > 0:
        if _can_send(sock):
            raise os_error(E.EFAULT)
        buf = None
    data = bytes(n) if buf is None or buf is _NULL else buf[:n].ljust(n, b"\0")
    return await sock.send(data, flags)


async def _write(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    return await _send_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), 0)


async def _send(runner, k, sc, box):
    _nargs(sc, 4)
    sock = _tcp(runner, sc.args[0])
    return await _send_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), ival(sc.args[3]) or 0)


async def _sendto(runner, k, sc, box):
    _nargs(sc, 6)
    sock = _tcp(runner, sc.args[0])
    flags = ival(sc.args[3]) or 0
    return await _send_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), flags,
                              _sockaddr(runner, sc.args[4], False))


def _iov_lengths(msg: Expr) -> list[int]:
    if msg.kind != "brace":
        raise _unsupported(f"msghdr {expr_text(msg)}")
    for item in msg.items:
        if item.kind == "call" and item.name == "msg_iov":
            arr = item.items[-1]
            if arr.kind != "list":
                raise _unsupported(f"msg_iov {expr_text(arr)}")
            lens = []
            for iov in arr.items:
                if iov.kind != "brace" or len(iov.items) != 2:
                    raise _unsupported(f"iovec {expr_text(iov)}")
                lens.append(ival(iov.items[1]))
            return lens
    raise _unsupported("msghdr without msg_iov")


def _msg_field(msg: Expr, name: str):
    for item in msg.items:
        if item.kind == "assign" and item.name == name:
            return item.items[0]
        if item.kind == "call" and item.name == name:
            return item.items[-1]
    return None


async def _sendmsg(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    msg = sc.args[1]
    lens = _iov_lengths(msg)
    ctl = _msg_field(msg, "msg_control")
    if ctl is not None and not (ctl.kind == "list" and not ctl.items):
        raise _unsupported("msg_control (ancillary data)")
    flags = _check_send_flags(ival(sc.args[2]) or 0)
    total = sum(lens)
    if hasattr(sock, "sendmsg"):
        return await sock.sendmsg([bytes(n) for n in lens], [], flags)
    return await sock.send(bytes(total), flags)


async def _recv_common(runner, sock, buf, n: int, flags: int) -> int:
    flags = _check_recv_flags(flags)
    if buf is _NULL and n > 0:
        conn = sock.conn
        if conn is not None and conn.rcv_nxt - conn.copied_seq > (1 if conn.sock_done else 0):
            raise os_error(E.EFAULT)
    data = await sock.recv(n, flags)
    return len(data)


async def _read(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    return await _recv_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), 0)


async def _recv(runner, k, sc, box):
    _nargs(sc, 4)
    sock = _tcp(runner, sc.args[0])
    return await _recv_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), ival(sc.args[3]) or 0)


async def _recvfrom(runner, k, sc, box):
    _nargs(sc, 6)
    sock = _tcp(runner, sc.args[0])
    return await _recv_common(runner, sock, _buffer(sc.args[1]), ival(sc.args[2]), ival(sc.args[3]) or 0)


async def _recvmsg(runner, k, sc, box):
    _nargs(sc, 3)
    sock = _tcp(runner, sc.args[0])
    msg = sc.args[1]
    lens = _iov_lengths(msg)
    flags = _check_recv_flags(ival(sc.args[2]) or 0)
    data = await sock.recv(sum(lens), flags)
    want = _msg_field(msg, "msg_flags")
    if want is not None and want.kind != "ellipsis":
        expected = ival(want)
        actual = 0

        def check(ev, now):
            if actual != expected:
                from .runner import Mismatch
                raise Mismatch(ev.line, f"recvmsg msg_flags: expected {expected:#x} actual {actual:#x}", now)
        box.out = [check]
    return len(data)


# ---------------------------------------------------------------------------- readiness
async def _epoll_create(runner, k, sc, box):
    _nargs(sc, 1)
    ep = k.epoll()
    return _expect_fd(runner, sc, ep)


def _epollev(e: Expr) -> tuple[int | None, str, int | None]:
    if e.kind != "brace":
        raise _unsupported(f"epoll_event {expr_text(e)}")
    events, key, data = None, "fd", None
    for item in e.items:
        if item.kind != "assign":
            raise _unsupported(f"epoll_event {expr_text(e)}")
        if item.name == "events":
            events = ival(item.items[0])
        elif item.name in ("fd", "ptr", "u32", "u64"):
            key, data = item.name, ival(item.items[0])
        else:
            raise _unsupported(f"epoll_event field {item.name}")
    return events, key, data


async def _epoll_ctl(runner, k, sc, box):
    _nargs(sc, 4)
    ep = _obj(runner, sc.args[0])
    op = ival(sc.args[1])
    target = _obj(runner, sc.args[2])
    events, key, data = _epollev(sc.args[3]) if sc.args[3].kind != "ellipsis" else (0, "fd", None)
    if key != "fd":
        raise _unsupported(f"epoll_event data {key}= (only fd= is modelled)")
    if op == SYMBOLS["EPOLL_CTL_ADD"]:
        ep.register(target.fileno(), events)
    elif op == SYMBOLS["EPOLL_CTL_MOD"]:
        ep.modify(target.fileno(), events)
    elif op == SYMBOLS["EPOLL_CTL_DEL"]:
        ep.unregister(target.fileno())
    else:
        raise os_error(E.EINVAL)
    runner.epoll_data[(id(ep), target.fileno())] = ival(sc.args[2]) if data is None else data
    return 0


async def _epoll_wait(runner, k, sc, box):
    _nargs(sc, 4)
    ep = _obj(runner, sc.args[0])
    maxevents = ival(sc.args[2])
    timeout = ival(sc.args[3])
    got = await ep.poll(None if timeout is None or timeout < 0 else timeout / 1000.0, maxevents)
    want = sc.args[1]
    if want.kind != "ellipsis":
        wants = want.items if want.kind == "list" else [want]
        expected = [_epollev(w) for w in wants]
        actual = [(ev, runner.epoll_data.get((id(ep), fd), fd)) for fd, ev in got]

        def check(evt, now):
            from .runner import Mismatch
            for i, (ev_mask, key, data) in enumerate(expected[:len(actual)]):
                a_mask, a_data = actual[i]
                if a_mask != ev_mask or (key == "fd" and data is not None and a_data != data):
                    raise Mismatch(evt.line, f"epoll_wait event {i}: expected events={_mask_text(ev_mask)} "
                                             f"{key}={data}, actual events={_mask_text(a_mask)} fd={a_data}", now)
        box.out = [check]
    return len(got)


_POLL_NAMES = [(0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"), (0x10, "POLLHUP"),
               (0x20, "POLLNVAL"), (0x40, "RDNORM"), (0x100, "WRNORM"), (0x2000, "RDHUP")]


def _mask_text(m: int | None) -> str:
    if m is None:
        return "?"
    if m == 0:
        return "0"
    return "|".join(n for b, n in _POLL_NAMES if m & b) or hex(m)


async def _poll(runner, k, sc, box):
    _nargs(sc, 3)
    arr = sc.args[0]
    if arr.kind != "list":
        raise _unsupported(f"pollfd array {expr_text(arr)}")
    entries = []
    for pfd in arr.items:
        if pfd.kind != "brace":
            raise _unsupported(f"pollfd {expr_text(pfd)}")
        fields = {i.name: i.items[0] for i in pfd.items if i.kind == "assign"}
        entries.append((ival(fields["fd"]), ival(fields.get("events", Expr("int", 0))),
                        ival(fields["revents"]) if "revents" in fields else None))
    timeout = ival(sc.args[2])
    p = k.poll()
    objs = []
    for fd, events, _ in entries:
        obj = runner.fds.get(fd)
        if obj is None:
            raise _unsupported("poll on a descriptor the script has not opened")
        p.register(obj.fileno(), events)
        objs.append(obj)
    got = dict(await p.poll(None if timeout is None or timeout < 0 else timeout))
    actual = [got.get(o.fileno(), 0) for o in objs]

    def check(ev, now):
        from .runner import Mismatch
        for (fd, events, want), a in zip(entries, actual):
            if want is not None and a != want:
                raise Mismatch(ev.line, f"poll fd {fd} revents: expected {_mask_text(want)} actual "
                                        f"{_mask_text(a)}", now)
    box.out = [check]
    return sum(1 for a in actual if a)


_CALLS = {
    "socket": _socket, "bind": _bind, "listen": _listen, "accept": _accept, "connect": _connect,
    "close": _close, "shutdown": _shutdown, "fcntl": _fcntl, "setsockopt": _setsockopt,
    "getsockopt": _getsockopt, "ioctl": _ioctl, "write": _write, "send": _send, "sendto": _sendto,
    "sendmsg": _sendmsg, "read": _read, "recv": _recv, "recvfrom": _recvfrom, "recvmsg": _recvmsg,
    "epoll_create": _epoll_create, "epoll_create1": _epoll_create, "epoll_ctl": _epoll_ctl,
    "epoll_wait": _epoll_wait, "poll": _poll,
}
