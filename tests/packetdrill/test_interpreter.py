"""The packetdrill interpreter itself: the project's own scripts (tests/packetdrill/scripts,
each checked with ../shared/packetdrill/real.sh against Linux 6.18, where all pass), and the
parser, setup lines and code blocks on small inputs.

The scripts pin behaviours the model gained for packetdrill (FIN acknowledged at once before
any data, SIOCINQ at a FIN, PSH on every packet of a write but not on a retransmitted first
part, MSG_EOR records, TCP_NOTSENT_LOWAT, MSG_MORE held until the probe timer, RST with
timestamps, application-limited slow start) and the interpreter's rules (errno results,
blocking calls over a range, epoll edges, getsockopt values, ranges of packet times).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simsock.packetdrill import parse, run_script
from simsock.packetdrill.code import evaluate
from simsock.packetdrill import Config, Runner
from simsock.packetdrill.script import ScriptError
from simsock.packetdrill.setup import SetupError, run_commands

SCRIPTS = Path(__file__).resolve().parent / "scripts"
OWN = sorted(p.name for p in SCRIPTS.glob("*.pkt"))


@pytest.mark.parametrize("name", OWN)
def test_own_script_passes(name):
    result = run_script(os.fspath(SCRIPTS / name))
    assert result.passed, result.message


@pytest.mark.parametrize("name", OWN)
def test_own_script_passes_strict(name):
    result = run_script(os.fspath(SCRIPTS / name), strict=True)
    assert result.passed, result.message


def _run_text(text: str, **cfg) -> object:
    script = parse(text, os.fspath(SCRIPTS / "inline.pkt"))
    return Runner(script, Config(**cfg)).run()


HANDSHAKE = """
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 65535 <mss 1000,nop,wscale 6>
   +0 > S. 0:0(0) ack 1 <...>
 +.01 < . 1:1(0) ack 1 win 1024
   +0 accept(3, ..., ...) = 4
"""


def test_a_wrong_packet_fails_with_line_expected_actual_and_time():
    result = _run_text(HANDSHAKE + "   +0 write(4, ..., 100) = 100\n   +0 > P. 1:201(200) ack 1\n")
    assert not result.passed
    assert result.line == 10
    assert "expected 200 bytes vs actual 100 bytes" in result.message
    assert "simulated time 0.010000 s" in result.message


def test_a_late_packet_fails_by_tolerance_and_strict_mode_has_none():
    text = HANDSHAKE + "   +0 write(4, ..., 100) = 100\n +.003 > P. 1:101(100) ack 1\n"
    assert _run_text(text).passed                       # 3 ms early is within 4 ms
    strict = _run_text(text, strict=True)
    assert not strict.passed and "timing error" in strict.message


def test_an_errno_mismatch_is_reported():
    result = _run_text(HANDSHAKE + "   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                       "   +0 read(4, ..., 10) = -1 EPIPE (Broken pipe)\n")
    assert not result.passed
    assert "failed with EAGAIN, expected EPIPE" in result.message


def test_a_blocking_call_that_returns_late_fails():
    text = HANDSHAKE + "   +0...0.010 read(4, ..., 100) = 100\n +.05 < P. 1:101(100) ack 1 win 1024\n"
    result = _run_text(text)
    assert not result.passed and "system call return" in result.message


def test_unsupported_constructs_fail_named():
    assert "udp packets" in _run_text(HANDSHAKE + "   +0 < udp (100)\n").message
    assert "system call splice()" in _run_text(HANDSHAKE + "   +0 splice(4, 5) = 0\n").message
    assert "--ip_version=ipv6" in _run_text("--ip_version=ipv6\n" + HANDSHAKE).message


def test_parse_errors_name_the_line():
    with pytest.raises(ScriptError) as e:
        parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0 win 100\n")
    assert e.value.line == 2
    with pytest.raises(ScriptError, match="inconsistent TCP sequence numbers"):
        parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < . 1:10(5) ack 1 win 100\n")
    with pytest.raises(ScriptError, match="window must be specified"):
        parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < . 1:1(0) ack 1\n")


def test_parser_reads_times_ranges_options_and_notes():
    s = parse("--tolerance_usecs=1000\n`x`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
              "+.1~+.2 > S. 0:0(0) ack 1 win 5 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>\n"
              "+0...0.300 read(3, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)\n"
              "+0 %{ assert tcpi_rtt > 0 }%\n")
    assert s.options == {"tolerance_usecs": "1000"} and s.init_command == "x"
    ev = s.events[1]
    assert (ev.time_type, ev.time_us, ev.time_end_us) == ("relative_range", 100_000, 200_000)
    assert [o.kind for o in ev.packet.options] == ["mss", "sackOK", "TS", "nop", "wscale"]
    sc = s.events[2].syscall
    assert (sc.end_us, sc.errno, sc.result.value) == (300_000, "EAGAIN", -1)
    assert s.events[3].code.strip() == "assert tcpi_rtt > 0"


def test_setup_reads_sysctls_and_names_unknown_ones(tmp_path):
    settings, notes = {}, []
    run_commands('sysctl -q net.ipv4.tcp_rmem="4096 $((2*1024)) 8192" net.ipv4.tcp_sack=0\n'
                 "/x/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0", str(tmp_path), settings, notes)
    assert settings == {"tcp_rmem": (4096, 2048, 8192), "tcp_sack": 0, "tcp_timestamps": 0}
    with pytest.raises(SetupError, match="tcp_no_such_thing"):
        run_commands("sysctl -q net.ipv4.tcp_no_such_thing=1", str(tmp_path), {}, [])
    with pytest.raises(SetupError, match="rm -rf"):
        run_commands("rm -rf /tmp/x", str(tmp_path), {}, [])
    with pytest.raises(SetupError, match="tcp_reordering=5"):
        run_commands("sysctl -q net.ipv4.tcp_reordering=5", str(tmp_path), {}, [])
    notes = []
    run_commands("sysctl -q net.ipv4.tcp_frto=2", str(tmp_path), {}, notes)
    assert notes and "F-RTO" in notes[0]          # recognised, reported as not modelled


def test_code_blocks_are_evaluated_without_eval():
    info = {"tcpi_snd_cwnd": 10, "tcpi_rtt": 5}
    assert evaluate("assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd", info) is None
    assert evaluate("assert 9 <= tcpi_snd_cwnd <= 11; assert tcpi_rtt * 2 == 10", info) is None
    assert "value 10" in evaluate("assert tcpi_snd_cwnd == 12, tcpi_snd_cwnd", info)
    assert "Call" in evaluate("assert __import__('os').system('true') == 0", info)
    assert "tcpi_nope" in evaluate("assert tcpi_nope == 1", info)


def test_cli_prints_each_verdict_and_the_summary(tmp_path, capsys):
    from simsock.cli import main
    bad = tmp_path / "bad.pkt"
    bad.write_text(HANDSHAKE.replace("<...>", "<mss 1>"))
    good = SCRIPTS / "fin-before-data.pkt"
    assert main(["packetdrill", str(good)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"
    assert main(["packetdrill", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"PASS {good}" in out and f"FAIL {bad}" in out and out.splitlines()[-1] == "1 passed, 1 failed"


def test_runs_are_deterministic():
    a = run_script(os.fspath(SCRIPTS / "notsent-lowat.pkt"))
    b = run_script(os.fspath(SCRIPTS / "notsent-lowat.pkt"))
    assert a == b and a.passed
