"""Progress bars (simsock.progress): on a terminal only, never with --quiet, never in results.

A toy experiment runs a small simulation through ``progress.run`` and ``progress.steps``;
the command is run in a child process whose stderr is a pseudo-terminal (a "fake tty") or a
pipe, since whether stderr is a terminal is exactly what decides."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

import simsock
from simsock import progress
from simsock.constants import AF_INET, SOCK_DGRAM

ROOT = Path(__file__).resolve().parent.parent

TOY = '''
"""Toy blaster: a UDP sender and a reader, run with progress bars."""

import simsock
from simsock import progress
from simsock.constants import AF_INET, SOCK_DGRAM

CLAIMS = ["P1.1"]
PARAMS = {"rates": [1000, 2000], "duration": 2.0}


async def sender(k, rate):
    s = k.socket(AF_INET, SOCK_DGRAM)
    while True:
        await s.sendto(b"x" * 100, ("b", 9))
        await k.sleep(1 / rate)


async def reader(k, box):
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("0.0.0.0", 9))
    while True:
        await s.recv(2000)
        box[0] += 1


def run(params, seed):
    got = []
    for rate in progress.steps(params["rates"], "rates"):
        sim = simsock.Simulation(seed=seed)
        a, b = sim.add_host("a"), sim.add_host("b")
        sim.add_link(a, b, rate="10Mbit", delay="1ms")
        box = [0]
        b.spawn(reader, box)
        a.spawn(sender, rate)
        progress.run(sim, params["duration"], f"rate {rate}")
        got.append(box[0])
    return {"received": got}


def check(result):
    try:
        from simsock.claims import Checks
    except ImportError:          # a runner that reads failures as plain sentences
        return [] if all(result["received"]) else ["P1.1: nothing received"]
    c = Checks()
    c.at_least("P1.1", "fewest datagrams received", min(result["received"]), 1)
    return c.list


def plot(result, outdir):
    return []
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress_toy")
    (root / "progress_toy").mkdir()
    (root / "progress_toy" / "__init__.py").write_text('"""Toy experiments."""\n')
    (root / "progress_toy" / "blaster.py").write_text(TOY)
    return root


def _env(toy, **extra):
    env = {k: v for k, v in os.environ.items() if k != progress.ENV}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{toy}", SIMSOCK_EXPERIMENTS="progress_toy", **extra)
    return env


def _run_on_tty(argv, toy, cwd) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; (status, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "simsock.cli", *argv], cwd=cwd, env=_env(toy),
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:      # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), out, b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_bars_a_pipe_none_and_the_result_is_the_same(toy, tmp_path):
    status, out, terminal = _run_on_tty(["run", "blaster", "--out", "tty"], toy, tmp_path)
    assert status == 0, (out, terminal)
    assert "blaster: rates" in terminal and "blaster: rate 1000" in terminal, terminal
    assert "%|" in terminal   # tqdm draws its bar
    assert re.search(r"blaster: running, \d\d:\d\d", terminal), terminal   # the whole run ticks on one line
    assert "\r" not in out and "rate 1000" not in out                    # nothing on stdout

    piped = subprocess.run([sys.executable, "-m", "simsock.cli", "run", "blaster", "--out", "pipe"],
                           cwd=tmp_path, env=_env(toy), capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert (tmp_path / "tty" / "result.json").read_bytes() == (tmp_path / "pipe" / "result.json").read_bytes()
    assert "progress" not in (tmp_path / "tty" / "result.json").read_text()


def test_quiet_turns_bars_off_on_a_terminal(toy, tmp_path):
    status, out, terminal = _run_on_tty(["run", "blaster", "--quiet", "--out", "q"], toy, tmp_path)
    assert status == 0
    assert "rate 1000" not in terminal and "|" not in terminal, terminal


def _world(sim):
    async def sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(300):
            await s.sendto(b"y" * 500, ("b", 9))
            await k.sleep(0.0007)

    async def reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9))
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 4096)
        while True:
            await s.recv(2000)
            await k.sleep(0.003)

    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="5Mbit", delay="3ms", loss=0.05)
    b.spawn(reader)
    a.spawn(sender)


def test_a_run_in_slices_is_the_run_in_one_go(monkeypatch, tmp_path):
    """progress.run with bars on runs in slices of simulated time; the trace (every syscall,
    packet and event, with times) is byte-identical to one sim.run(until=...)."""
    traces = []
    for forced in ("0", "1"):
        monkeypatch.setenv(progress.ENV, forced)
        sim = simsock.Simulation(seed=7)
        _world(sim)
        progress.run(sim, "0.37s", "test")
        assert sim.now_ns == 370_000_000
        path = tmp_path / f"trace{forced}.jsonl"
        sim.trace.to_jsonl(path)
        traces.append(path.read_bytes())
    assert len(traces[0]) > 10_000
    assert traces[0] == traces[1]


def test_enabled_follows_the_environment_and_quiet(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.enabled()
    progress.set_quiet(True)
    try:
        assert not progress.enabled()
    finally:
        progress.set_quiet(False)
    monkeypatch.setenv(progress.ENV, "0")
    assert not progress.enabled()
    monkeypatch.delenv(progress.ENV)

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert progress.enabled()
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not progress.enabled()


def test_report_and_sweep_show_a_bar_and_print_results_on_stdout(toy, tmp_path):
    """The report's bar counts experiments while each result line goes to stdout as it comes;
    a sweep's bar counts runs; neither bar reaches stdout or the files."""
    status, out, terminal = _run_on_tty(["report", "--out", "rep", "--jobs", "1"], toy, tmp_path)
    assert status == 0, (out, terminal)
    assert "PASS blaster" in out and "%|" not in out
    assert "report:" in terminal and "1/1" in terminal
    status, out, terminal = _run_on_tty(["sweep", "blaster", "--grid", "duration=0.5,1", "--out", "sw",
                                         "--jobs", "1"], toy, tmp_path)
    assert status == 0, (out, terminal)
    assert "blaster sweep:" in terminal and "2/2" in terminal
    assert "%|" not in (tmp_path / "sw" / "summary.csv").read_text()
