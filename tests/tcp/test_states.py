"""TCP's state table (simsock/tcp/states.py): the documentation is generated from it, illegal
changes are internal errors, and every change the conformance scenarios make is in it."""

import importlib
import inspect
from pathlib import Path

import pytest

from simsock.tcp.states import (ABORT, CLOSE, CLOSE_CALL, CONNECT, ESTABLISHED, RCV_FIN, STATES,
                                SYN_SENT, TIME_WAIT, TRANSITIONS, TcpStateError, document,
                                transition)
from tests.conformance.harness import run_sim

DOC = Path(__file__).resolve().parents[2] / "docs" / "tcp-states.md"
#: The modules whose scenarios the simulator runs against recordings of Linux 6.18.
SCENARIO_MODULES = ("tests.conformance.test_tcp", "tests.conformance.test_notify",
                    "tests.conformance.test_blocking", "tests.conformance.test_socket_api")


def test_docs_are_the_generators_output():
    """docs/tcp-states.md is exactly what `python -m simsock.tcp.states` prints."""
    assert DOC.read_text() == document()


def test_every_transition_joins_known_states():
    """Both ends of every entry are states of tcp_states.h, and each (state, event) has one
    next state (the table is a function)."""
    for (old, _event), new in TRANSITIONS.items():
        assert old in STATES and new in STATES


def test_an_illegal_transition_is_an_internal_error():
    """A pair missing from the table raises TcpStateError; legal ones return the next state."""
    assert transition(CLOSE, CONNECT) == SYN_SENT
    assert transition(ESTABLISHED, RCV_FIN) == "CLOSE_WAIT"
    with pytest.raises(TcpStateError):
        transition(CLOSE, RCV_FIN)
    with pytest.raises(TcpStateError):
        transition(TIME_WAIT, CLOSE_CALL)
    assert transition(CLOSE, ABORT) == CLOSE


def _scenario_worlds(monkeypatch):
    """(name, world, until) of every scenario the conformance modules check, collected by
    running their tests with check_scenario replaced (no real sockets are opened)."""
    worlds = []

    def collect(world_fn, until=2.0, tolerant_calls=None, *, name=None):
        worlds.append((name or world_fn.__name__, world_fn, until))

    for modname in SCENARIO_MODULES:
        module = importlib.import_module(modname)
        monkeypatch.setattr(module, "check_scenario", collect)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or fn.__module__ != modname:
                continue
            marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
            if marks:
                for value in marks[0].args[1]:
                    fn(value)
            elif not inspect.signature(fn).parameters:
                fn()
    return worlds


def test_conformance_scenarios_make_only_table_transitions(monkeypatch):
    """Every state change the simulator makes in the conformance scenarios -- the runs whose
    system calls match Linux's recorded ones -- is a pair of the table, and together the
    scenarios walk the handshake and both ways of closing. (A passive open's CLOSE -> SYN_RECV
    happens before the kernel attaches the trace, so it is not in the records.)"""
    pairs = {(old, new) for (old, _), new in TRANSITIONS.items()}
    seen = set()
    for name, world, until in _scenario_worlds(monkeypatch):
        trace = run_sim(world, until)
        for r in trace.records("event"):
            if r["kind"] == "tcp_state":
                change = (r["fields"]["old"], r["fields"]["new"])
                assert change in pairs, (name, change)
                seen.add(change)
    assert {(CLOSE, SYN_SENT), (SYN_SENT, ESTABLISHED), ("SYN_RECV", ESTABLISHED), (ESTABLISHED, "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"),
            ("FIN_WAIT2", TIME_WAIT), (ESTABLISHED, "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
            ("LAST_ACK", CLOSE), (SYN_SENT, CLOSE)} <= seen
