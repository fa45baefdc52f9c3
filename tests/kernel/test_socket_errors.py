"""Wrong calls raise what CPython's socket module raises: each case runs on a real UDP
socket (loopback only; none of these calls sends anything) and on a simulated one, and the
outcomes are compared: exception class, errno, args and message.

For OSError the simulator may append a parenthesised explanation to Linux's strerror text
(simsock.errors.os_error's ``detail``); the class, errno and the strerror text itself must
be CPython's. For every other exception class the message must be identical.
"""

import inspect
import socket
import sys

import pytest

import simsock

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(sys.platform != "linux", reason="compares with CPython on Linux"),
]

LO = ("127.0.0.1", 9)       # discard port on loopback; nothing is ever sent by these cases


def bind_any(s):
    return s.bind(("127.0.0.1", 0))


def close(s):
    return s.close()


# (id, setup steps, the wrong call). Calls are written once; on the simulator a call that
# returns an awaitable is awaited.
CASES = [
    ("recv-str-size", [], lambda s: s.recv("x")),
    ("recv-float-size", [], lambda s: s.recv(1.5)),
    ("recv-negative", [], lambda s: s.recv(-1)),
    ("recv-str-flags", [], lambda s: s.recv(1, "x")),
    ("recvfrom-negative", [], lambda s: s.recvfrom(-1)),
    ("recv_into-bytes", [], lambda s: s.recv_into(b"abc")),
    ("recv_into-negative", [], lambda s: s.recv_into(bytearray(4), -1)),
    ("recv_into-too-big", [], lambda s: s.recv_into(bytearray(2), 5)),
    ("recvfrom_into-too-big", [], lambda s: s.recvfrom_into(bytearray(2), 5)),
    ("sendto-str-data", [], lambda s: s.sendto("x", LO)),
    ("sendto-str-address", [], lambda s: s.sendto(b"x", "127.0.0.1")),
    ("sendto-port-70000", [], lambda s: s.sendto(b"x", ("127.0.0.1", 70000))),
    ("sendto-port-negative", [], lambda s: s.sendto(b"x", ("127.0.0.1", -1))),
    ("sendto-one-tuple", [], lambda s: s.sendto(b"x", ("127.0.0.1",))),
    ("sendto-int-host", [], lambda s: s.sendto(b"x", (1, 2))),
    ("sendto-str-flags", [], lambda s: s.sendto(b"x", "x", LO)),
    ("send-unconnected", [], lambda s: s.send(b"x")),
    ("send-str", [], lambda s: s.send("x")),
    ("bind-twice", [bind_any], lambda s: s.bind(("127.0.0.1", 0))),
    ("bind-port-70000", [], lambda s: s.bind(("127.0.0.1", 70000))),
    ("bind-list", [], lambda s: s.bind(["127.0.0.1", 0])),
    ("connect-port-70000", [], lambda s: s.connect(("127.0.0.1", 70000))),
    ("getpeername-unconnected", [], lambda s: s.getpeername()),
    ("shutdown-bad-how", [], lambda s: s.shutdown(5)),
    ("listen-udp", [], lambda s: s.listen()),
    ("listen-udp-bound", [bind_any], lambda s: s.listen(5)),
    ("accept-udp", [bind_any], lambda s: s.accept()),
    ("settimeout-negative", [], lambda s: s.settimeout(-1)),
    ("settimeout-str", [], lambda s: s.settimeout("x")),
    ("settimeout-nan", [], lambda s: s.settimeout(float("nan"))),
    ("setblocking-str", [], lambda s: s.setblocking("x")),
    ("setsockopt-str", [], lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, "x")),
    ("setsockopt-short-bytes", [], lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, b"ab")),
    ("getsockopt-unknown", [], lambda s: s.getsockopt(socket.SOL_SOCKET, 9999)),
    ("getsockopt-buflen-0", [], lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)),
    ("getsockopt-buflen-2000", [], lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2000)),
    ("closed-recv", [close], lambda s: s.recv(1)),
    ("closed-recvfrom", [close], lambda s: s.recvfrom(1)),
    ("closed-sendto", [close], lambda s: s.sendto(b"x", LO)),
    ("closed-send", [close], lambda s: s.send(b"x")),
    ("closed-bind", [close], lambda s: s.bind(("127.0.0.1", 0))),
    ("closed-connect", [close], lambda s: s.connect(LO)),
    ("closed-getsockname", [close], lambda s: s.getsockname()),
    ("closed-getpeername", [close], lambda s: s.getpeername()),
    ("closed-setsockopt", [close], lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)),
    ("closed-getsockopt", [close], lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)),
    ("closed-setblocking", [close], lambda s: s.setblocking(False)),
    ("closed-settimeout", [close], lambda s: s.settimeout(1)),
    ("closed-listen", [close], lambda s: s.listen()),
    ("closed-fileno", [close], lambda s: s.fileno()),
    ("closed-close", [close], lambda s: s.close()),
    ("closed-getblocking", [close], lambda s: s.getblocking()),
    ("closed-gettimeout", [close], lambda s: s.gettimeout()),
]


def outcome_of(exc=None, value=None):
    if exc is None:
        return ("returned", value)
    return ("raised", type(exc), getattr(exc, "errno", None), exc.args, str(exc))


def real_outcome(setup, call):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0)              # never wait on a real socket
    try:
        for step in setup:
            step(s)
        try:
            return outcome_of(value=call(s))
        except Exception as exc:
            return outcome_of(exc)
    finally:
        s.close()


def sim_outcome(setup, call):
    sim = simsock.Simulation()
    h = sim.add_host("h")
    out = []

    async def prog(k):
        s = k.socket(simsock.AF_INET, simsock.SOCK_DGRAM)
        s.settimeout(0)
        for step in setup:
            r = step(s)
            if inspect.isawaitable(r):
                await r
        try:
            r = call(s)
            if inspect.isawaitable(r):
                r = await r
            out.append(outcome_of(value=r))
        except Exception as exc:
            out.append(outcome_of(exc))

    h.spawn(prog)
    sim.run(until="1s")
    return out[0]


def same(real, simulated) -> bool:
    if real[0] != simulated[0]:
        return False
    if real[0] == "returned":
        return real[1] == simulated[1]
    _, rcls, rerrno, rargs, rstr = real
    _, scls, serrno, sargs, sstr = simulated
    if rcls is not scls or rerrno != serrno:
        return False
    if isinstance(rerrno, int) and len(rargs) == 2:
        strerror = sargs[1] if len(sargs) == 2 else None
        return isinstance(strerror, str) and (strerror == rargs[1] or strerror.startswith(rargs[1] + " ("))
    return rargs == sargs and rstr == sstr


@pytest.mark.parametrize("name, setup, call", CASES, ids=[c[0] for c in CASES])
def test_wrong_call_raises_like_cpython(name, setup, call):
    """The simulated socket raises the same exception class with the same errno and
    message (or returns the same value) as CPython's socket on Linux for this call."""
    real = real_outcome(setup, call)
    simulated = sim_outcome(setup, call)
    assert same(real, simulated), f"{name}: CPython {real!r}\n  simsock {simulated!r}"


def test_real_reference_values():
    """A few of the reference outcomes pinned, so the comparison cannot pass vacuously."""
    cases = dict((c[0], c) for c in CASES)
    expect = {
        "recv-negative": (ValueError, None, "negative buffersize in recv"),
        "sendto-str-data": (TypeError, None, "a bytes-like object is required, not 'str'"),
        "sendto-str-address": (TypeError, None, "sendto(): AF_INET address must be tuple, not str"),
        "sendto-port-70000": (OverflowError, None, "sendto(): port must be 0-65535."),
        "send-unconnected": (OSError, 89, "[Errno 89] Destination address required"),
        "bind-twice": (OSError, 22, "[Errno 22] Invalid argument"),
        "getpeername-unconnected": (OSError, 107, "[Errno 107] Transport endpoint is not connected"),
        "listen-udp": (OSError, 95, "[Errno 95] Operation not supported"),
        "settimeout-negative": (ValueError, None, "Timeout value out of range"),
        "getsockopt-unknown": (OSError, 92, "[Errno 92] Protocol not available"),
        "closed-recv": (OSError, 9, "[Errno 9] Bad file descriptor"),
    }
    for name, (cls, code, text) in expect.items():
        _, setup, call = cases[name]
        real = real_outcome(setup, call)
        assert real[1:3] == (cls, code) and real[4] == text, (name, real)
        simulated = sim_outcome(setup, call)
        assert simulated[1:3] == (cls, code), (name, simulated)
