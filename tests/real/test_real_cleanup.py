"""Namespaces do not outlive a killed run: SIGTERM/SIGINT clean up and exit with one line;
after SIGKILL the next run or ``simsock real cleanup`` deletes them, never a live run's."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from simsock.real import netns

pytestmark = pytest.mark.real

_NS_OK, _NS_REASON = netns.namespaces_available()
needs_ns = pytest.mark.skipif(not _NS_OK, reason=f"network namespaces unavailable: {_NS_REASON}")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent('''
    import sys
    from simsock.real import RealWorld

    async def idle(k):
        print("ready", flush=True)
        await k.sleep(120)

    w = RealWorld(namespaces=True)
    a, b = w.add_host("a"), w.add_host("b")
    w.add_link(a, b)
    a.spawn(idle)
    w.run(until=120)
''')


def namespaces_of(pid: int) -> list[str]:
    return [name for name, _state in netns.list_namespaces() if name.startswith(f"{netns.PREFIX}{pid}-")]


def start_run():
    """A real run with two namespaces, waiting in a program; returns once the program runs."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline()      # blocks until the program prints (or the child dies)
    assert line == "ready\n", proc.stderr.read()
    assert len(namespaces_of(proc.pid)) == 2
    return proc


@needs_ns
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_clean_up_and_exit_with_one_line(sig):
    proc = start_run()
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0] == f"simsock: stopped by {signal.Signals(sig).name}; removing 2 network namespaces"
    assert namespaces_of(proc.pid) == []


@needs_ns
def test_after_sigkill_cleanup_removes_only_dead_runs_namespaces():
    dead = start_run()
    dead.kill()
    dead.wait(timeout=30)
    leftovers = namespaces_of(dead.pid)
    live = start_run()
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, "-m", "simsock.cli", "real", "cleanup"], capture_output=True,
                             text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert namespaces_of(dead.pid) == [], "a dead run's namespaces are deleted"
        deleted = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("deleted simsock-")]
        assert not any(n.startswith(f"{netns.PREFIX}{live.pid}-") for n in deleted)
        # (a run of another test may delete the leftovers first; when none did, the CLI did)
        assert set(leftovers) <= set(deleted) or not leftovers or len(deleted) < len(leftovers)
        assert len(namespaces_of(live.pid)) == 2, "a live run's namespaces are kept"
        assert live.poll() is None
    finally:
        live.send_signal(signal.SIGTERM)
        live.communicate(timeout=60)
    assert namespaces_of(live.pid) == []


@needs_ns
def test_a_reused_pid_does_not_keep_a_dead_runs_namespace():
    """Named with this process's PID but another start time: the owner is gone (PID reused)."""
    start = netns.process_start(os.getpid())
    name = f"{netns.PREFIX}{os.getpid()}-s{netns._base36(start + 1)}-1-h"
    ours = netns.namespace_name(99, "h")
    subprocess.run(["ip", "netns", "add", name], check=True)
    netns.create_namespace(ours)
    try:
        assert netns.owner_state(name) == "dead" and netns.owner_state(ours) == "live"
        removed = netns.cleanup_stale_namespaces()
        assert name in removed and ours not in removed
        assert [n for n, _ in netns.list_namespaces() if n in (name, ours)] == [ours]
    finally:
        netns.delete_namespace(ours)
        netns.delete_namespace(name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_without_namespaces_also_stops_with_one_line(sig):
    child = CHILD.replace("RealWorld(namespaces=True)", "RealWorld()").replace("w.add_link(a, b)\n", "")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert err.strip().splitlines() == [f"simsock: stopped by {signal.Signals(sig).name}"]
