"""``simsock record`` (real and ``--sim``) and ``simsock compare`` from the command line, as a
newcomer uses them: one world script, recorded on both kernels, compares equal."""

import fcntl
import json
import tempfile
from pathlib import Path

import pytest

from simsock import cli
from simsock.real import netns

WORLDS = Path(__file__).parent / "cli_worlds"


@pytest.fixture(autouse=True)
def _one_real_loopback_run_at_a_time():
    """The worlds bind fixed ports (9000-9002) on the machine's own loopback when recorded
    without namespaces: tests of this module on other pytest-xdist workers wait their turn
    instead of failing with EADDRINUSE."""
    with open(Path(tempfile.gettempdir()) / "simsock-test-record-compare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(tmp_path, script, *flags, until="2"):
    out = tmp_path / f"{script}{'-'.join(flags)}.jsonl"
    status = cli.main(["record", str(WORLDS / f"{script}.py"), "--until", until, "--out", str(out), *flags])
    return status, out


def _namespaces_or_skip():
    ok, reason = netns.namespaces_available()
    if not ok:
        pytest.skip(reason)


@pytest.mark.parametrize("namespaces", [False, True], ids=["loopback", "namespaces"])
@pytest.mark.parametrize("script", ["udp_echo", "tcp_transfer", "epoll_server"])
def test_a_world_recorded_real_and_simulated_compares_equal(tmp_path, capsys, script, namespaces):
    """The real side names endpoints by host (no 127.0.0.1 replies from a wildcard socket),
    the simulated side writes the host events that map 10.0.0.x to names, and the threads
    spawned first are ready before the next start: `compare` says the traces agree."""
    flags = ("--namespaces",) if namespaces else ()
    if namespaces:
        _namespaces_or_skip()
    status, real = _record(tmp_path, script, *flags)
    assert status == 0, capsys.readouterr()
    status, sim = _record(tmp_path, script, "--sim")
    assert status == 0, capsys.readouterr()
    capsys.readouterr()
    assert cli.main(["compare", str(real), str(sim)]) == 0, capsys.readouterr().out
    assert "traces agree" in capsys.readouterr().out


def test_a_simulated_recording_names_its_hosts_addresses(tmp_path, capsys):
    status, sim = _record(tmp_path, "udp_echo", "--sim")
    assert status == 0
    hosts = {r["where"]: r["fields"]["addresses"] for r in map(json.loads, sim.read_text().splitlines())
             if r.get("type") == "event" and r.get("kind") == "host"}
    assert hosts == {"server": ["10.0.0.1"], "laptop": ["10.0.0.2"]}


def test_a_rate_link_without_namespaces_says_use_namespaces_in_one_line(tmp_path, capsys):
    script = tmp_path / "rate.py"
    script.write_text((WORLDS / "udp_echo.py").read_text().replace(
        "w.add_link(laptop, server)", 'w.add_link(laptop, server, rate="10Mbit", delay="5ms")'))
    status = cli.main(["record", str(script), "--until", "1", "--out", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "use --namespaces" in err
    assert "Traceback" not in err


def test_a_world_without_a_link_is_unreachable_on_both_sides(tmp_path, capsys):
    """Hosts that share no link cannot talk: ENETUNREACH on both kernels (the real backend
    would otherwise deliver over the machine's loopback), and the two traces agree."""
    script = tmp_path / "nolink.py"
    script.write_text((WORLDS / "udp_echo.py").read_text().replace("w.add_link(laptop, server)", "pass"))
    outs = []
    for side in ((), ("--sim",)):
        out = tmp_path / f"t{len(outs)}.jsonl"
        status = cli.main(["record", str(script), "--until", "1", "--out", str(out), *side])
        assert status == 1 and "Network is unreachable" in capsys.readouterr().err
        outs.append(out)
    records = [json.loads(line) for line in outs[0].read_text().splitlines()]
    assert [r["errno"] for r in records if r.get("call") == "sendto"] == ["ENETUNREACH"]
    assert cli.main(["compare", *map(str, outs)]) == 0


def test_until_help_says_what_it_means_in_both_modes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["record", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "wall-clock seconds on the real kernel" in text
    assert "simulated seconds with --sim" in text


def test_a_bad_until_is_one_line(tmp_path, capsys):
    status = cli.main(["record", str(WORLDS / "udp_echo.py"), "--sim", "--until", "soon",
                       "--out", str(tmp_path / "t.jsonl")])
    assert status == 2
    assert "--until" in capsys.readouterr().err


def test_the_readme_walk_through_agrees_as_it_says(tmp_path, capsys):
    """The world script of the README's record -> compare section, recorded real and
    simulated with the README's commands, prints the line the README quotes."""
    import re
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("## Comparing with the real kernel", 1)[1]
    script = re.search(r"^```python\n(.*?)^```", section, re.M | re.S).group(1)
    commands = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S).group(1).splitlines()
    (tmp_path / "echo_world.py").write_text(script)
    quoted = next(line.lstrip("# ") for line in commands if line.startswith("# "))
    for line in commands:
        if line.startswith("simsock "):
            argv = line.split("#")[0].split()[1:]
            argv = [str(tmp_path / a) if a.endswith((".py", ".jsonl")) else a for a in argv]
            cli.main(argv)
    assert quoted in capsys.readouterr().out


def test_real_threads_start_in_spawn_order_each_once_the_previous_waits():
    """A server that does some work before it binds (no wait in between), spawned before a
    client that sends at once: on the real backend the client starts only when the server
    has reached its first call that may wait (recvfrom), as in the simulator, so the first
    datagram is not lost to an unbound port."""
    from simsock import AF_INET, SOCK_DGRAM
    from simsock.real import RealWorld

    got = {}

    async def server(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(3000):            # busy before the bind: a few ms of real calls
            s.getsockname()
        s.bind(("0.0.0.0", 9003))
        data, addr = await s.recvfrom(100)
        await s.sendto(data, addr)

    async def client(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.settimeout(2.0)
        await s.sendto(b"first", ("server", 9003))
        got["reply"] = (await s.recvfrom(100))[0]

    w = RealWorld()
    srv, cli_host = w.add_host("server"), w.add_host("client")
    w.add_link(cli_host, srv)
    srv.spawn(server)
    cli_host.spawn(client)
    w.run(until=5, unfinished="stop")
    assert got.get("reply") == b"first"
