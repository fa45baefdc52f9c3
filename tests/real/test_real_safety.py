"""The real backend never reaches beyond loopback and the namespaces it made.

Each test runs its programs in a child process inside a network namespace of its own that has
nothing but ``lo``: even if the check had a bug, nothing could leave this machine.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from simsock.real import netns

pytestmark = pytest.mark.real

_NS_OK, _NS_REASON = netns.namespaces_available()
needs_ns = pytest.mark.skipif(not _NS_OK, reason=f"network namespaces unavailable: {_NS_REASON}")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_isolated(tmp_path, body: str) -> str:
    """Run ``body`` (Python) in a fresh namespace with only lo; returns its stdout."""
    ns = netns.namespace_name(0, f"isolated{abs(hash(body)) % 10**6}")
    netns.create_namespace(ns)
    try:
        links = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], "the namespace has an uplink"
        script = tmp_path / "prog.py"
        script.write_text(textwrap.dedent(body))
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(script)], capture_output=True,
                             text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout
    finally:
        netns.delete_namespace(ns)


PROGRAM = '''
import errno, socket
from simsock.constants import AF_INET, SOCK_DGRAM, SOCK_STREAM
from simsock.real import RealWorld

results = {}

async def prog(k):
    u = k.socket(AF_INET, SOCK_DGRAM)
    for dest in DESTS:
        try:
            await u.sendto(b"x", (dest, 9))
            results[dest] = "sent"
        except PermissionError as e:
            results[dest] = ("EPERM" if e.errno == errno.EPERM else e.errno, "refuses" in str(e))
        except OSError as e:
            results[dest] = errno.errorcode.get(e.errno, e.errno)
    t = k.socket(AF_INET, SOCK_STREAM)
    try:
        await t.connect(("192.0.2.1", 80))
    except PermissionError as e:
        results["connect"] = e.errno
    try:
        t.bind(("198.51.100.7", 0))
    except PermissionError as e:
        results["bind"] = e.errno
    v6 = k.socket(socket.AF_INET6, SOCK_DGRAM)
    for dest in ("2001:db8::1", "::1", "::ffff:10.1.2.3"):
        try:
            await v6.sendto(b"x", (dest, 9))
            results[dest] = "sent"
        except PermissionError as e:
            results[dest] = e.errno
        except OSError as e:
            results[dest] = errno.errorcode.get(e.errno, e.errno)
'''


@needs_ns
def test_without_namespaces_only_loopback_is_reachable(tmp_path):
    out = run_isolated(tmp_path, PROGRAM + '''
DESTS = ["10.0.0.2", "8.8.8.8", "<broadcast>", "255.255.255.255", "127.0.0.1", "127.5.6.7", "h", "localhost"]
w = RealWorld()
w.add_host("h").spawn(prog)
w.run(until=10)
print(repr(results))
print(repr([(r["call"], r["errno"]) for r in w.trace.syscalls() if r["errno"]]))
''')
    results, errors = (eval(line) for line in out.splitlines())
    for dest in ("10.0.0.2", "8.8.8.8", "<broadcast>", "255.255.255.255"):
        assert results[dest] == ("EPERM", True), (dest, results[dest])
    for dest in ("127.0.0.1", "127.5.6.7", "h", "localhost"):
        assert results[dest] == "sent", dest
    assert results["connect"] == results["bind"] == results["2001:db8::1"] == results["::ffff:10.1.2.3"] == 1
    assert results["::1"] == "sent"
    assert ("sendto", "EPERM") in errors and ("connect", "EPERM") in errors, "refusals are traced"


@needs_ns
def test_with_namespaces_only_the_worlds_own_addresses_are_reachable(tmp_path):
    out = run_isolated(tmp_path, PROGRAM + '''
w = RealWorld(namespaces=True)
a, b = w.add_host("a"), w.add_host("b")
w.add_link(a, b)
DESTS = ["b", b.address, "10.77.0.255", "255.255.255.255", "10.77.9.1", "10.0.0.2", "8.8.8.8", "127.0.0.1"]
a.spawn(prog)
w.run(until=10)
print(repr(results))
''')
    results = eval(out.splitlines()[0])
    for dest in ("b", "10.77.0.2", "127.0.0.1"):
        assert results[dest] == "sent", dest
    for dest in ("10.77.0.255", "255.255.255.255"):      # broadcast stays on the veth pair
        assert results[dest] != ("EPERM", True), dest
    for dest in ("10.77.9.1", "10.0.0.2", "8.8.8.8"):
        assert results[dest] == ("EPERM", True), dest
    assert results["connect"] == results["2001:db8::1"] == 1


def test_a_real_worlds_trace_can_stream_to_a_file(tmp_path):
    from simsock.constants import AF_INET, SOCK_DGRAM
    from simsock.real import RealWorld
    from simsock.trace import Trace, read_jsonl

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        await s.sendto(b"x", s.getsockname())
        await s.recv(10)

    w = RealWorld(trace=Trace(("syscall",), file=tmp_path / "real.jsonl"))
    w.add_host("h").spawn(prog)
    w.run(until=10)
    calls = [r["call"] for r in read_jsonl(tmp_path / "real.jsonl")]
    assert calls == ["socket", "bind", "getsockname", "sendto", "recv"]
    assert [r["call"] for r in w.trace.syscalls()] == calls
