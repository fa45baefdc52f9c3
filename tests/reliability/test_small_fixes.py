"""The smaller items of issue 13.7, each against what CPython on this machine's Linux does.

The real side uses the ``socket`` module directly (loopback only; the broadcast send fails
before anything leaves the host), so these run without the real backend.
"""

import errno
import json
import socket
import sys

import pytest

import simsock
from simsock import AF_INET, MSG_OOB, SO_BROADCAST, SO_RCVBUF, SOCK_DGRAM, SOL_SOCKET

linux = pytest.mark.skipif(sys.platform != "linux", reason="compared with Linux sockets")


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except BaseException as e:       # noqa: BLE001 - the outcome is what is compared
        return (type(e).__name__, getattr(e, "errno", None))


def _sim_outcomes(prog):
    out = []
    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog, out)
    sim.run(until=1)
    return out


async def _attempt(fn, *args):
    try:
        return ("ok", await fn(*args))
    except BaseException as e:      # noqa: BLE001
        return (type(e).__name__, getattr(e, "errno", None))


@linux
def test_broadcast_without_so_broadcast_is_eacces():
    """sendto 255.255.255.255 (or "<broadcast>") without SO_BROADCAST: PermissionError(EACCES), as Linux;
    connect() to it too. With SO_BROADCAST simsock says that broadcast delivery is not modelled."""
    real = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        real.append(_outcome(s.sendto, b"x", ("255.255.255.255", 9)))
        real.append(_outcome(s.sendto, b"x", ("<broadcast>", 9)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        real.append(_outcome(s.connect, ("255.255.255.255", 9)))

    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        out.append(await _attempt(s.sendto, b"x", ("255.255.255.255", 9)))
        out.append(await _attempt(s.sendto, b"x", ("<broadcast>", 9)))
        s2 = k.socket(AF_INET, SOCK_DGRAM)
        out.append(await _attempt(s2.connect, ("255.255.255.255", 9)))
        s.setsockopt(SOL_SOCKET, SO_BROADCAST, 1)
        out.append(await _attempt(s.sendto, b"x", ("255.255.255.255", 9)))
    sim = _sim_outcomes(prog)
    assert real == [("PermissionError", errno.EACCES)] * 3
    assert sim[:3] == real
    assert sim[3] == ("OSError", errno.EOPNOTSUPP)


@linux
def test_msg_oob_on_udp():
    """MSG_OOB: sendto on UDP raises EOPNOTSUPP; recv ignores it (udp_recvmsg), as Linux."""
    real = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        real.append(_outcome(s.sendto, b"x", socket.MSG_OOB, s.getsockname()))
        s.sendto(b"abc", s.getsockname())
        real.append(_outcome(s.recv, 10, socket.MSG_OOB))

    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        out.append(await _attempt(s.sendto, b"x", MSG_OOB, s.getsockname()))
        await s.sendto(b"abc", s.getsockname())
        out.append(await _attempt(s.recv, 10, MSG_OOB))
    assert _sim_outcomes(prog) == real == [("OSError", errno.EOPNOTSUPP), ("ok", b"abc")]


@linux
def test_int_socket_option_out_of_c_int_range():
    """setsockopt(SO_RCVBUF, v) with v outside a C int raises what CPython raises (TypeError from its
    bytes fallback); -2**31 and 2**31-1 are accepted (capped by rmem_max)."""
    values = [2**31, 2**32, 2**63, -2**31 - 1, 2**31 - 1, -2**31]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        real = [_outcome(s.setsockopt, socket.SOL_SOCKET, socket.SO_RCVBUF, v)[0] for v in values]

    async def prog(k, out):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for v in values:
            out.append(_outcome(s.setsockopt, SOL_SOCKET, SO_RCVBUF, v)[0])
    assert _sim_outcomes(prog) == real == ["TypeError"] * 4 + ["ok"] * 2


def test_host_spawn_returns_a_handle_with_join():
    """host.spawn() returns a thread another program can join() for its return value (and .alive)."""
    sim = simsock.Simulation(seed=1)
    h = sim.add_host("a")

    async def worker(k):
        await k.sleep(0.1)
        return 42

    w = h.spawn(worker)
    got = []

    async def waiter(k):
        got.append(w.alive)
        got.append(await w.join())
        got.append(w.alive)
    h.spawn(waiter)
    sim.run(until=1)
    assert got == [True, 42, False]


@pytest.mark.parametrize("name", ["10.0.0.9", "10.0.0.1", "127.0.0.1", "192.168.1.1"])
def test_host_named_like_an_ip_address_is_refused(name):
    """A node named like an IPv4 address would resolve to that address, not to the node: refused with a clear line."""
    sim = simsock.Simulation(seed=1)
    with pytest.raises(ValueError, match="reads as an IPv4 address"):
        sim.add_host(name)
    with pytest.raises(ValueError, match="reads as an IPv4 address"):
        sim.add_router(name)


def test_result_json_is_written_atomically(tmp_path, monkeypatch):
    """A write that fails midway (a full disk) leaves the previous result.json whole, and no temporary file."""
    from simsock import experiment
    path = tmp_path / "result.json"
    experiment.write_atomic(path, json.dumps({"old": True}))

    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda *a, **kw: FullDisk(real_open(*a, **kw)))
    with pytest.raises(OSError, match="No space"):
        experiment.write_atomic(path, json.dumps({"new": "x" * 10000}))
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
