"""What a newcomer gets wrong, and what simsock says then.

Each test is a mistake found by using simsock as a new user would (the README, DESIGN.md's
examples, the ``simsock`` command): the mistake must either work as the user meant or fail
at once with a message that says what was wrong and what to write instead — never a deep
SimPy traceback, never a silently wrong result.
"""

from __future__ import annotations

import gc
import json
import select as _select
import socket as _socket
import subprocess
import sys as _sys
import types

import networkx as nx
import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM, DropTail
from simsock import experiment
from simsock.cli import main
from simsock.experiment import ExperimentError
from tests.worlds import run_alone


# --- DESIGN.md's world: a qdisc instance where a factory was expected ---------------------------


async def _echo_server(k):
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind(("0.0.0.0", 5959))
    ls.listen()
    while True:
        conn, addr = await ls.accept()
        k.spawn(_echo, conn)


async def _echo(k, conn):
    while data := await conn.recv(4096):
        await conn.sendall(data)
    conn.close()


async def _client(k, addr, got):
    s = k.socket(AF_INET, SOCK_STREAM)
    await s.connect(addr)
    await s.sendall(b"hello")
    got.append(await s.recv(100))
    s.close()


def test_design_world_with_a_qdisc_instance_gives_each_router_port_its_own_copy():
    """DESIGN.md writes ``add_router("r1", qdisc=simsock.DropTail(packets=64))``: the instance
    is a template, copied for every output port (each its own queue and counters); the
    template itself is never attached, and the echo exchange goes through."""
    template = simsock.DropTail(packets=64)
    sim = simsock.Simulation(seed=1, profile="linux")
    server = sim.add_host("server", cores=4)
    client = sim.add_host("client")
    sim.add_router("r1", qdisc=template)
    sim.add_link(client, "r1", rate="100Mbit", delay="2ms")
    sim.add_link("r1", server, rate="10Mbit", delay="10ms", loss=0.001)
    got = []
    server.spawn(_echo_server)
    client.spawn(_client, ("server", 5959), got)
    sim.run(until="10s")
    assert got == [b"hello"]
    ports = sim.routers["r1"].ports()
    qdiscs = [p.qdisc for p in ports]
    assert len(qdiscs) == 2 and qdiscs[0] is not qdiscs[1]
    assert all(type(q) is DropTail and q.limit_packets == 64 for q in qdiscs)
    assert template not in qdiscs and template.on_drop is None
    assert [p["qdisc"]["limit_packets"] for p in sim.stats()["routers"]["r1"]["ports"].values()] == [64, 64]


def test_a_link_qdisc_instance_is_copied_for_each_direction():
    sim = simsock.Simulation()
    red = simsock.RED(limit_packets=50, min_th=5, max_th=15)
    link = sim.add_link(sim.add_host("a"), sim.add_host("b"), qdisc=red)
    assert type(link.forward.qdisc) is simsock.RED and link.forward.qdisc is not link.backward.qdisc
    assert red not in (link.forward.qdisc, link.backward.qdisc)


def test_a_qdisc_already_on_a_port_is_refused():
    sim = simsock.Simulation()
    link = sim.add_link(sim.add_host("a"), sim.add_host("b"), qdisc=lambda: DropTail(packets=5))
    with pytest.raises(ValueError, match=r"add_router\(qdisc=\): DropTail.* is already in use on a port; give a new one"):
        sim.add_router("r", qdisc=link.forward.qdisc)


def test_a_factory_that_returns_one_shared_qdisc_is_refused():
    """Two ports sharing one queue would be a silently wrong network."""
    shared = DropTail(packets=5)
    sim = simsock.Simulation()
    sim.add_router("r", qdisc=lambda: shared)
    sim.add_link("r", sim.add_host("a"))
    with pytest.raises(ValueError, match=r"the qdisc for r->b is already in use on another port.*must return "
                                         r"a new one on each call"):
        sim.add_link("r", sim.add_host("b"))


def test_from_graph_accepts_a_qdisc_instance_on_a_router():
    G = nx.Graph()
    G.add_node("r", kind="router", qdisc=DropTail(packets=7))
    G.add_edge("a", "r")
    G.add_edge("r", "b")
    sim = simsock.topology.from_graph(G)
    assert [p.qdisc.limit_packets for p in sim.routers["r"].ports()] == [7, 7]


@pytest.mark.parametrize("bad", [3, "droptail", [DropTail()]])
def test_a_qdisc_that_is_neither_a_discipline_nor_a_factory_is_refused(bad):
    with pytest.raises(TypeError, match=r"add_router\(qdisc=\) must be a queue discipline such as "
                                        r"simsock.DropTail\(packets=64\), or a callable"):
        simsock.Simulation().add_router("r", qdisc=bad)


# --- await mistakes -----------------------------------------------------------------------------


def test_awaiting_a_plain_call_says_to_drop_the_await():
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        await s.bind(("0.0.0.0", 9000))

    with pytest.raises(simsock.SimulationError, match=r"thread 'prog' on host 'a' failed .*TypeError: .*"
                                                      r"awaited a call that never waits.*drop the 'await'"):
        run_alone(prog, until=1)


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_using_a_call_that_was_not_awaited_says_to_await_it():
    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9000))
        data, addr = s.recvfrom(100)

    with pytest.raises(simsock.SimulationError, match=r"TypeError: cannot unpack non-iterable coroutine object"
                                                      r" — .*returns a coroutine until it is awaited: "
                                                      r"write 'await'"):
        run_alone(prog, until=1)


def test_an_error_in_a_spawned_thread_names_its_host_and_thread():
    async def worker(k):
        await k.sleep(0.25)
        raise KeyError("boom")

    async def main_prog(k):
        await k.spawn(worker, name="w1").join()

    with pytest.raises(simsock.SimulationError) as info:
        run_alone(main_prog, until=1)
    assert str(info.value).startswith("thread 'w1' on host 'a' failed at t=0.25")
    assert str(info.value).endswith("s: KeyError: 'boom'")
    assert (info.value.host, info.value.thread) == ("a", "w1")
    assert isinstance(info.value.__cause__, KeyError)


# --- objects used where they do not belong ------------------------------------------------------


def test_a_socket_of_another_simulation_is_refused():
    """Without the check, the call would quietly send a packet in a world that is not running."""
    box = {}

    async def make(k):
        box["s"] = k.socket(AF_INET, SOCK_DGRAM)

    async def use(k):
        await box["s"].sendto(b"x", ("127.0.0.1", 9))

    sim1 = simsock.Simulation()
    sim1.add_host("a").spawn(make)
    sim1.run()
    sim2 = simsock.Simulation()
    sim2.add_host("a").spawn(use)
    with pytest.raises(simsock.SimulationError, match=r"RuntimeError: <simsock.UdpSocket fd=3 host='a'.*> belongs "
                                                      r"to host 'a'; it was used from a program of another "
                                                      r"Simulation"):
        sim2.run(until=1)
    assert sim1.stats()["hosts"]["a"]["udp"]["OutDatagrams"] == 0


def test_a_socket_of_another_host_is_refused():
    box = {}

    async def make(k):
        box["s"] = k.socket(AF_INET, SOCK_DGRAM)
        box["s"].bind(("0.0.0.0", 9))

    async def use(k):
        await k.sleep(0.1)
        box["s"].setblocking(False)

    sim = simsock.Simulation()
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b)
    a.spawn(make)
    b.spawn(use)
    with pytest.raises(simsock.SimulationError, match=r"thread 'use' on host 'b' failed .*belongs to host 'a'; "
                                                      r"it was used by thread 'use' on host 'b'; each host has "
                                                      r"its own sockets"):
        sim.run(until=1)


def test_a_socket_can_still_be_inspected_after_the_run():
    """Outside any program (between runs), plain calls inspect a socket as before."""
    box = {}

    async def make(k):
        box["s"] = k.socket(AF_INET, SOCK_DGRAM)
        box["s"].bind(("0.0.0.0", 9))

    sim = simsock.Simulation()
    sim.add_host("a").spawn(make)
    sim.run()
    assert box["s"].getsockname() == ("0.0.0.0", 9)


# --- world-building values ----------------------------------------------------------------------


@pytest.mark.parametrize("profile, message", [
    ("nonexistent", r"unknown profile 'nonexistent': use one of linux, windows"),
    ("/nowhere/mine.json", r"profile file '/nowhere/mine.json' does not exist; write one with 'simsock profile "
                           r"--from-host -o /nowhere/mine.json'"),
])
def test_an_unknown_profile_says_what_exists(profile, message):
    with pytest.raises(ValueError, match=message):
        simsock.Simulation(profile=profile)


def test_a_profile_file_that_is_not_json_is_named(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"profile file '.*p.json' is not valid JSON"):
        simsock.Simulation(profile=str(bad))
    bad.write_text(json.dumps({"base": "bsd"}))
    with pytest.raises(ValueError, match=r"unknown base 'bsd'; use one of linux, windows"):
        simsock.Simulation(profile=str(bad))


def test_run_until_that_is_not_a_time_names_the_argument():
    with pytest.raises(ValueError, match=r"^cannot read 'abc' as a run\(until=\) time; write a number with a "
                                         r"unit, e.g. '10ms'$"):
        simsock.Simulation().run(until="abc")


# --- the simsock command ------------------------------------------------------------------------


def _cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("argv, message", [
    (["run", "udp_overflow", "--set", "count=-5"],
     "bad value for count: -5; it must be a number >= 0 (see 'simsock list udp_overflow')"),
    (["run", "udp_overflow", "--set", "send_rate=inf"], "bad value for send_rate: 'inf' is not a finite number"),
    (["run", "udp_overflow", "--set", "link_rate=fast"],
     "bad value for link_rate: cannot read 'fast' as a link_rate; write a number with a unit, e.g. '100Mbit'"),
    (["run", "udp_overflow", "--set", "delay=soon"], "bad value for delay: cannot read 'soon' as a delay"),
    (["run", "udp_overflow", "--set", "count=0"],
     "udp_overflow cannot run with count=0: ValueError: count must be positive, got 0; change these values "
     "(defaults: 'simsock list udp_overflow')"),
    (["run", "udp_overflow", "--set", "size=70000"], "udp_overflow cannot run with size=70000: ValueError: size "
                                                     "must be between 12 bytes"),
    (["run", "select_scaling", "--set", "mechanisms=select,kqueue"],
     "select_scaling cannot run with mechanisms=select,kqueue: ValueError: unknown mechanisms ['kqueue']; "
     "choose from select, poll, epoll"),
    (["sweep", "udp_overflow", "--grid", "count=5,-1"], "bad value for count: -1; it must be a number >= 0"),
    (["compare", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"],
     "cannot open /nonexistent/a.jsonl: No such file or directory"),
    (["record", "/nonexistent/world.py"], "cannot open /nonexistent/world.py: No such file or directory"),
])
def test_cli_bad_input_is_one_clear_line_and_status_2(capsys, tmp_path, argv, message):
    status, out, err = _cli(capsys, *argv, *(["--out", str(tmp_path)] if argv[0] in ("run", "sweep") else []))
    assert status == 2
    assert err.startswith("simsock: error: " + message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_experiment_that_crashes_on_an_override_names_the_values_and_where():
    """Any failure of run() with non-default values is reported as the user's values, with the
    place it happened (a failure with the defaults is a bug and keeps its traceback)."""
    module = types.ModuleType("experiments.fake")
    module.PARAMS = {"n": 2}

    def run(params, seed):
        return {"x": [1, 2][params["n"]]}

    module.run = run
    with pytest.raises(ExperimentError, match=r"^fake cannot run with n=5: IndexError: list index out of range "
                                              r"\(at test_user_errors.py:\d+\); change these values"):
        experiment._run_checked(module, {"n": 5}, 1)
    with pytest.raises(IndexError):
        experiment._run_checked(module, {"n": 2}, 1)


def test_a_title_that_wraps_in_the_docstring_is_shown_whole():
    title = experiment.title(experiment.load("flow_control"))
    assert title == ("Flow control: a reader that stops reading closes TCP's window and stalls the sender, "
                     "without breaking the connection; afterwards the sender goes at the reader's pace.")


def test_every_experiment_documents_every_parameter():
    """``simsock list NAME`` explains each parameter."""
    for name, module in experiment.discover().items():
        helps = getattr(module, "PARAM_HELP", {})
        assert sorted(helps) == sorted(module.PARAMS), name


def test_the_thread_host_spawn_returns_reports_cpu_time_like_a_handle():
    """The README's ``handle.cpu_time`` works on what ``host.spawn`` returns too."""
    box = {}

    async def prog(k):
        await k.compute("3ms")
        box["handle"] = k.spawn(child)
        await box["handle"].join()

    async def child(k):
        await k.compute("1ms")

    sim = simsock.Simulation()
    thread = sim.add_host("a").spawn(prog)
    sim.run()
    assert 0.003 <= thread.cpu_time < 0.0031
    assert thread.context_switches == {"voluntary": 1, "involuntary": 0}
    assert 0.001 <= box["handle"].cpu_time < 0.0011


def test_compare_of_a_file_that_is_not_a_trace_is_one_clear_line(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1}\n{oops\n')
    status, out, err = _cli(capsys, "compare", str(bad), str(bad))
    assert status == 2
    assert err == (f"simsock: error: {bad}, line 2: not a trace record (Expecting property name enclosed in "
                   f"double quotes: line 1 column 2 (char 1)); traces are the JSON Lines that sim.trace.to_jsonl "
                   f"or 'simsock record' write\n")


def test_output_piped_into_a_reader_that_stops_early_is_not_a_traceback():
    """``simsock profile show | head -2``: the command stops quietly when the pipe closes."""
    proc = subprocess.Popen([_sys.executable, "-m", "simsock.cli", "profile", "show"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""


def test_a_thread_that_uses_another_threads_k_is_told_to_use_its_own():
    """A handler written as a closure over its parent's ``k`` would charge its CPU and
    calls to the parent (and, across hosts, act on the wrong machine)."""
    async def server(k):
        async def handler(k2):
            await k.sleep(0.01)         # the parent's k, not k2

        await k.spawn(handler, name="handler").join()

    with pytest.raises(simsock.SimulationError, match=r"thread 'handler' on host 'a' failed .*RuntimeError: "
                                                      r"thread 'handler' on host 'a' used the k of thread "
                                                      r"'server' on host 'a': each program must use the k it "
                                                      r"was given"):
        sim = simsock.Simulation()
        sim.add_host("a").spawn(server)
        sim.run(until=1)


def test_running_the_simulation_from_inside_a_program_is_refused():
    sim = simsock.Simulation()

    async def prog(k):
        sim.run(until=2)

    sim.add_host("a").spawn(prog)
    with pytest.raises(simsock.SimulationError, match=r"RuntimeError: sim.run\(\) was called from inside thread "
                                                      r"'prog': .* await k.sleep"):
        sim.run(until=1)


def test_a_graph_node_with_several_links_and_no_kind_is_refused():
    """Without the check a forgotten kind="router" builds a host that silently drops every
    packet between its neighbours (hosts do not forward)."""
    G = nx.Graph()
    G.add_edge("a", "r")
    G.add_edge("r", "b")
    with pytest.raises(ValueError, match=r"node 'r' has 2 links but no kind: hosts do not forward packets, so "
                                         r"say which it is: G.nodes\['r'\]\['kind'\] = 'router'"):
        simsock.topology.from_graph(G)
    G.nodes["r"]["kind"] = "host"               # a multi-homed host, said explicitly
    assert list(simsock.topology.from_graph(G).hosts) == ["a", "r", "b"]


# --- misuse of select/poll/epoll: the same exception as the select module --------------------------

def _closed_real_socket():
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    s.close()
    return s


def _closed_real_epoll():
    ep = _select.epoll()
    ep.close()
    return ep


async def _sim_closed_socket(k):
    s = k.socket(AF_INET, SOCK_DGRAM)
    s.close()
    return s


async def _sim_closed_epoll(k):
    ep = k.epoll()
    ep.close()
    return ep


# (name, the call on the real select module, the same call in a simulated program)
_NOTIFY_MISUSE = [
    ("epoll sizehint 0", lambda: _select.epoll(sizehint=0), lambda k: _nowait(k.epoll, sizehint=0)),
    ("select timeout str", lambda: _select.select([], [], [], "x"), lambda k: k.select([], [], [], "x")),
    ("epoll.poll timeout str", lambda: _select.epoll().poll("x"), lambda k: k.epoll().poll("x")),
    ("poll.poll timeout str", lambda: _select.poll().poll("x"), lambda k: k.poll().poll("x")),
    ("epoll.poll on a closed epoll", lambda: _closed_real_epoll().poll(0),
     lambda k: _then(_sim_closed_epoll(k), lambda ep: ep.poll(0))),
    ("register on a closed epoll", lambda: _closed_real_epoll().register(0, _select.EPOLLIN),
     lambda k: _then(_sim_closed_epoll(k), lambda ep: _nowait(ep.register, 0, 1))),
    ("register a closed socket", lambda: _select.epoll().register(_closed_real_socket(), _select.EPOLLIN),
     lambda k: _then(_sim_closed_socket(k), lambda s: _nowait(k.epoll().register, s, 1))),
    ("select a closed socket", lambda: _select.select([_closed_real_socket()], [], [], 0),
     lambda k: _then(_sim_closed_socket(k), lambda s: k.select([s], [], [], 0))),
]


async def _nowait(fn, *args, **kwargs):
    return fn(*args, **kwargs)


async def _then(first, then):
    return await then(await first)


def _outcome(fn):
    try:
        fn()
    except Exception as exc:       # what the call raised, compared by class and message
        return type(exc).__name__, str(exc)
    return None


@pytest.mark.real
@pytest.mark.skipif(_sys.platform != "linux", reason="compares with CPython's select module on Linux")
@pytest.mark.parametrize("name, real_call, sim_call", _NOTIFY_MISUSE, ids=[c[0] for c in _NOTIFY_MISUSE])
def test_notify_misuse_raises_what_the_select_module_raises(name, real_call, sim_call):
    expected = _outcome(real_call)
    assert expected is not None, f"{name}: the real call did not fail"
    got = {}

    async def prog(k):
        try:
            await sim_call(k)
        except Exception as exc:
            got["outcome"] = type(exc).__name__, str(exc)

    sim = simsock.Simulation()
    sim.add_host("a").spawn(prog)
    sim.run(until=1)
    assert got.get("outcome") == expected


def _foreign_world():
    sim = simsock.Simulation(seed=1)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Mbit", delay="1ms")
    return sim, a, b


@pytest.mark.parametrize("kind", ["poll", "epoll", "iocp", "io_uring"])
def test_notification_objects_refuse_threads_of_another_host(kind):
    """An epoll/poll/IOCP/io_uring object belongs to its host, like a socket: a thread of
    another host that reaches it (through a shared Python variable) gets a clear error."""
    sim, a, b = _foreign_world()
    shared = {}

    async def owner(k):
        shared["obj"] = {"poll": k.poll, "epoll": k.epoll, "iocp": k.iocp, "io_uring": k.io_uring}[kind]()

    async def intruder(k):
        await k.sleep(0.01)
        obj = shared["obj"]
        if kind in ("poll", "epoll"):
            await obj.poll(0)
        elif kind == "iocp":
            await obj.get(0)
        else:
            obj.submit()

    a.spawn(owner)
    b.spawn(intruder)
    with pytest.raises(simsock.SimulationError) as info:
        sim.run(until=1)
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert "belongs to host 'a'" in str(cause) and "'b'" in str(cause)


def test_a_discarded_programs_clean_up_is_not_a_foreign_use(monkeypatch):
    """A program left blocked when its simulation ended, collected by the garbage collector
    while another simulation runs: its ``finally: sock.close()`` closes its own socket; it
    is not refused as a call from another simulation ("Exception ignored ... belongs to
    host" on stderr, the socket never closed)."""
    unraisable = []
    monkeypatch.setattr(_sys, "unraisablehook", unraisable.append)
    closed = []

    async def blocked(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9))
        try:
            await s.recv(100)
        finally:
            s.close()
            closed.append(s._closed)

    def first():
        sim = simsock.Simulation(seed=1)
        sim.add_host("a").spawn(blocked)
        sim.run(until=1)

    async def collector(k):
        gc.collect()
        await k.sleep(0.1)

    gc.collect()
    first()
    other = simsock.Simulation(seed=1)
    other.add_host("b").spawn(collector)
    other.run()
    assert [u.exc_value for u in unraisable] == []
    assert closed == [True]
