"""Comparing traces: normalisation removes run accidents, differences read as sentences."""

import argparse
import json
import socket

import pytest

from simsock import compare as cmp
from simsock.trace import Trace, read_jsonl


def sc(t, host, thread, call, fd, args, result=None, errno=None):
    return {"t": t, "type": "syscall", "host": host, "thread": thread, "call": call, "fd": fd,
            "args": args, "result": result, "errno": errno}


def host_event(name, *addresses):
    return {"t": 0, "type": "event", "where": name, "kind": "host", "fields": {"addresses": list(addresses)}}


def udp_client_trace(fd=5, port=40001, server_addr="127.0.1.1", reply_len=4, t0=0):
    """A client that sends a datagram, receives the reply and closes."""
    client_addr = "127.0.1.2" if server_addr.startswith("127.") else "10.0.0.2"
    return [
        host_event("server", server_addr),
        host_event("client", client_addr),
        sc(t0 + 1, "client", "main", "socket", fd, [2, 2, 0], {"fd": fd}),
        sc(t0 + 2, "client", "main", "sendto", fd, [{"len": 4, "crc32": 1}, ["server", 5959]], 4),
        sc(t0 + 3, "client", "main", "getsockname", fd, [], [client_addr, port]),
        sc(t0 + 4, "client", "main", "recvfrom", fd, [100], [{"len": reply_len, "crc32": 2}, [server_addr, 5959]]),
        sc(t0 + 5, "client", "main", "close", fd, []),
    ]


def test_normalise_drops_times_and_names_fds_ports_and_addresses():
    recs = udp_client_trace(fd=7, port=51234)
    n = cmp.normalise(recs)
    assert list(n) == [("client", "main")]
    calls = n[("client", "main")]
    assert [c["fd"] for c in calls] == ["fd1"] * 5
    assert calls[0]["result"] == {"fd": "fd1"}
    assert calls[2]["result"] == ["client", "eph1"]
    assert calls[3]["result"] == [{"len": 4, "crc32": 2}, ["server", 5959]]
    assert "t" not in calls[0]


def test_fds_are_fresh_for_each_new_socket_even_when_the_number_is_reused():
    recs = [
        sc(1, "a", "main", "socket", 3, [2, 1, 0], {"fd": 3}),
        sc(2, "a", "main", "close", 3, []),
        sc(3, "a", "main", "socket", 3, [2, 1, 0], {"fd": 3}),
        sc(4, "a", "main", "accept", 3, [], [{"fd": 4}, ["127.0.0.1", 40000]]),
        sc(5, "b", "main", "socket", 3, [2, 1, 0], {"fd": 3}),   # another host: its own numbering
    ]
    n = cmp.normalise(recs)
    assert [c["fd"] for c in n[("a", "main")]] == ["fd1", "fd1", "fd2", "fd2"]
    assert n[("a", "main")][3]["result"] == [{"fd": "fd3"}, ["127.0.0.1", "eph1"]]
    assert n[("b", "main")][0]["fd"] == "fd1"


def test_traces_that_differ_only_in_accidents_agree():
    """Other fd numbers, other ephemeral ports, other addresses for the same hosts, other times."""
    a = udp_client_trace(fd=5, port=40001, server_addr="127.0.1.1", t0=0)
    b = udp_client_trace(fd=9, port=55555, server_addr="10.0.0.1", t0=1000)
    assert cmp.compare(a, b) == []


def test_a_different_outcome_is_described_in_words():
    a = udp_client_trace()
    b = udp_client_trace()
    b[5] = sc(4, "client", "main", "recvfrom", 5, [100], None, "EAGAIN")
    assert cmp.compare(a, b) == [
        "thread main on host client: call 4 recvfrom(100) returned [<4 bytes>, (server, 5959)] in A "
        "but raised EAGAIN in B"]
    c = udp_client_trace(reply_len=1000)
    c[3:6] = [sc(4, "client", "main", "recv", 5, [4096], {"len": 1000, "crc32": 3})]
    d = [dict(r) for r in c]
    d[3] = sc(4, "client", "main", "recv", 5, [4096], None, "EAGAIN")
    assert cmp.compare(c, d, names=("sim", "real")) == [
        "thread main on host client: call 2 recv(4096) returned 1000 bytes in sim but raised EAGAIN in real"]


def test_a_different_call_different_data_and_a_missing_tail_are_described():
    a = udp_client_trace()
    b = udp_client_trace()
    b[4] = sc(3, "client", "main", "getpeername", 5, [], None, "ENOTCONN")
    assert cmp.compare(a, b) == ["thread main on host client: call 3 is getsockname() in A but getpeername() in B"]
    b = udp_client_trace()
    b[5]["result"] = [{"len": 4, "crc32": 99}, ["127.0.1.1", 5959]]
    assert cmp.compare(a, b) == ["thread main on host client: call 4 recvfrom(100) returned different data in A and B"]
    b = udp_client_trace()[:-1]
    assert cmp.compare(a, b) == ["thread main on host client: after 4 matching calls, A makes call 5 close() "
                                 "(returned None) but the thread in B makes no more calls"]


def test_threads_present_on_one_side_only_are_reported():
    a = udp_client_trace()
    b = udp_client_trace() + [sc(9, "server", "main", "socket", 3, [2, 2, 0], {"fd": 3})]
    assert cmp.compare(a, b) == ["thread main on host server made 1 calls in B but does not exist in A"]


def test_tolerant_calls_compare_byte_counts_within_a_fraction():
    def fill(n):
        return [sc(1, "a", "main", "socket", 3, [2, 1, 0], {"fd": 3}),
                sc(2, "a", "main", "send", 3, [{"len": 100000, "crc32": 5}], n)]
    assert cmp.compare(fill(100000), fill(95000)) != []
    assert cmp.compare(fill(100000), fill(95000), tolerant_calls={"send": 0.1}) == []
    assert cmp.compare(fill(100000), fill(85000), tolerant_calls={"send": 0.1}) != []
    err = fill(0)
    err[1]["result"], err[1]["errno"] = None, "EAGAIN"
    assert cmp.compare(fill(100000), err, tolerant_calls={"send": 0.1}) != []   # errors stay exact


def test_normalise_accepts_a_trace_object():
    tr = Trace()
    tr.syscall(5, "h", "main", "socket", 3, [2, 1, 0], {"fd": 3}, None)
    assert cmp.normalise(tr)[("h", "main")][0]["result"] == {"fd": "fd1"}


def _write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_cmd_compare_exit_codes_and_messages(tmp_path, capsys):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    _write(a, udp_client_trace())
    _write(b, udp_client_trace(fd=8, port=50000))
    broken = udp_client_trace()
    broken[5] = sc(4, "client", "main", "recvfrom", 5, [100], None, "ECONNREFUSED")
    _write(c, broken)
    assert cmp.cmd_compare(argparse.Namespace(a=str(a), b=str(b))) == 0
    assert capsys.readouterr().out.strip() == "traces agree: 5 calls on 1 threads"
    assert cmp.cmd_compare(argparse.Namespace(a=str(a), b=str(c))) == 1
    assert "raised ECONNREFUSED in B" in capsys.readouterr().out


def test_subcommand_arguments_parse():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    cmp.add_record_arguments(sub.add_parser("record"))
    cmp.add_compare_arguments(sub.add_parser("compare"))
    args = p.parse_args(["record", "s.py", "--out", "x.jsonl", "--until", "2"])
    assert args.func is cmp.cmd_record and args.out == "x.jsonl" and args.until == "2"
    args = p.parse_args(["compare", "a", "b", "--tolerate", "send=0.1"])
    assert args.func is cmp.cmd_compare and cmp._parse_tolerances(args.tolerate) == {"send": 0.1}


SCRIPT = '''
from simsock.constants import AF_INET, SOCK_DGRAM
PORT = {port}

async def server(k):
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.bind(("server", PORT))
    data, addr = await s.recvfrom(100)
    await s.sendto(data.upper(), addr)
    s.close()

async def client(k):
    await k.sleep(0.05)
    s = k.socket(AF_INET, SOCK_DGRAM)
    await s.sendto(b"ping", ("server", PORT))
    await s.recvfrom(100)
    s.getsockname()
    s.close()

def world(w):
    w.add_host("server").spawn(server)
    w.add_host("client").spawn(client)
    w.add_link("client", "server")
'''


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.real
def test_two_real_recordings_of_one_script_agree(tmp_path, capsys):
    script = tmp_path / "echo.py"
    script.write_text(SCRIPT.format(port=_free_udp_port()))
    outs = [tmp_path / "1.jsonl", tmp_path / "2.jsonl"]
    for out in outs:
        assert cmp.cmd_record(argparse.Namespace(script=str(script), out=str(out), until="3")) == 0
    assert "recorded 10 calls on 2 threads" in capsys.readouterr().out
    assert len(read_jsonl(outs[0])) >= 10
    assert cmp.cmd_compare(argparse.Namespace(a=str(outs[0]), b=str(outs[1]))) == 0


@pytest.mark.real
def test_run_both_runs_one_world_on_both_kernels(monkeypatch):
    """Stand-in for the simulator: a second real world, so the harness itself is tested."""
    import simsock
    from simsock.real import RealWorld

    monkeypatch.setattr(simsock, "Simulation", RealWorld, raising=False)
    ns = {}
    exec(SCRIPT.format(port=_free_udp_port()), ns)
    sim_trace, real_trace = cmp.run_both(ns["world"], until=3)
    assert len(sim_trace.syscalls()) == 10 and len(real_trace.syscalls()) == 10
    assert cmp.compare(sim_trace, real_trace, names=("sim", "real")) == []


@pytest.mark.real
def test_the_simulator_and_the_real_kernel_agree_on_a_udp_echo():
    """The conformance harness end to end: sim and real traces normalise to the same calls."""
    import simsock

    if not hasattr(simsock, "Simulation"):
        pytest.skip("simsock.Simulation is not available yet")
    ns = {}
    exec(SCRIPT.format(port=_free_udp_port()), ns)
    sim_trace, real_trace = cmp.run_both(ns["world"], until=3)
    assert cmp.compare(sim_trace, real_trace, names=("sim", "real")) == []
