"""What a failing program shows (issue 13.8): the SimulationError and the program's own frames;
simsock's internals only with SIMSOCK_DEBUG=1 / ``simsock --debug``. A call that must be awaited
and is not is reported as such, at once, naming the call and the line."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM

ROOT = Path(__file__).resolve().parents[2]

FAILING = textwrap.dedent('''
    import simsock
    from simsock import AF_INET, SOCK_STREAM

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("server", 9))

    sim = simsock.Simulation(seed=1)
    sim.add_host("server")
    sim.add_host("laptop").spawn(client)
    sim.add_link("laptop", "server")
    sim.run(until=1)
''')


def _run_script(tmp_path, source, debug=False):
    script = tmp_path / "prog.py"
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SIMSOCK_DEBUG", None)
    if debug:
        env["SIMSOCK_DEBUG"] = "1"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    return proc.stderr


def test_failing_program_shows_its_own_frames_only(tmp_path):
    """The traceback of a refused connect shows the program's lines and the SimulationError, no simsock frame."""
    err = _run_script(tmp_path, FAILING)
    assert "simsock/kernel" not in err and "simsock/sim.py" not in err and "simpy" not in err
    assert 'await s.connect(("server", 9))' in err and "sim.run(until=1)" in err
    assert err.strip().splitlines()[-1].startswith("simsock.errors.SimulationError: thread 'client' on host 'laptop'")
    assert len(err.strip().splitlines()) <= 12


def test_simsock_debug_shows_the_internals(tmp_path):
    """SIMSOCK_DEBUG=1 keeps the whole chained traceback through simsock."""
    err = _run_script(tmp_path, FAILING, debug=True)
    assert "simsock/kernel/thread.py" in err and "simsock/sim.py" in err


def test_cli_debug_flag_sets_simsock_debug():
    """``simsock --debug COMMAND`` is accepted and turns on SIMSOCK_DEBUG for the command."""
    from simsock import cli
    before = os.environ.pop("SIMSOCK_DEBUG", None)
    try:
        assert cli.main(["--debug", "list"]) == 0
        assert os.environ.get("SIMSOCK_DEBUG") == "1"
    finally:
        os.environ.pop("SIMSOCK_DEBUG", None)
        if before is not None:
            os.environ["SIMSOCK_DEBUG"] = before


def test_in_process_cause_has_only_user_frames():
    """Caught in the same process, the SimulationError's cause carries only the program's frames."""
    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("server", 9))
    sim = simsock.Simulation(seed=1)
    sim.add_host("server")
    sim.add_host("laptop").spawn(client)
    sim.add_link("laptop", "server")
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until=1)
    cause = info.value.__cause__
    assert isinstance(cause, ConnectionRefusedError)
    tb, files = cause.__traceback__, []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert files and all("/simsock/" not in f for f in files)


def _missing_await_world(prog):
    sim = simsock.Simulation(seed=1)
    sim.add_host("server")
    sim.add_host("laptop").spawn(prog)
    sim.add_link("laptop", "server")
    return sim


def test_missing_await_is_reported_at_once_naming_the_call_and_line():
    """``s.sendto(...)`` alone (no await) stops the thread at once with an error naming sendto and
    its line — not a recvfrom timeout a second later."""
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.settimeout(1.0)
        s.sendto(b"hello", ("server", 9000))     # the bug
        await s.recvfrom(100)
    sim = _missing_await_world(prog)
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until=5)
    msg = str(info.value)
    assert "UdpSocket.sendto() without 'await'" in msg and "test_error_output.py:" in msg
    assert "write 'await s.sendto(" in msg
    assert sim.now < 0.001             # at once, not after the 1 s timeout


def test_missing_await_on_the_last_line_of_a_program():
    """A discarded call as the program's last statement is reported too (the thread ends failed)."""
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.sendto(b"hello", ("server", 9000))
    with pytest.raises(simsock.SimulationError, match="sendto.. without 'await'"):
        _missing_await_world(prog).run(until=1)


def test_unawaited_helper_of_the_program_is_left_to_python():
    """An unawaited coroutine of the program's own (not a simsock call) is Python's warning, not an error."""
    async def helper():
        return 1

    async def prog(k):
        helper()
        await k.sleep(0.001)
    with pytest.warns(RuntimeWarning, match="never awaited"):
        _missing_await_world(prog).run(until=1)
