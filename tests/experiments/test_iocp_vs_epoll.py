"""The iocp_vs_epoll experiment runs with small parameters and its claims hold."""

from __future__ import annotations

import json

import pytest

import experiments.iocp_vs_epoll as m
from simsock.kernel.kernel import Kernel

SMALL = dict(m.PARAMS, threads="1,4", duration=0.2, clients=6)


def _run(archs: str) -> dict:
    params = dict(SMALL, architectures=archs)
    return json.loads(json.dumps(m.run(params, 1), allow_nan=False))


def _failures(result):
    return [c for c in m.check(result) if c.status == "FAIL"]


def test_completion_servers_never_race_and_copy_less():
    """IOCP and io_uring: 0 races, 0 out of order; IOCP with SO_SNDBUF = 0 copies half of
    what io_uring does (WSASend transmits from the pinned buffer); with the default SO_SNDBUF
    WSASend copies into AFD's buffer, as much as io_uring."""
    result = _run("iocp,io_uring")
    assert _failures(result) == []
    by = {(r["arch"], r["threads"]): r for r in result["runs"]}
    assert by[("iocp_sndbuf0", 4)]["copied_per_msg"] == pytest.approx(by[("io_uring", 4)]["copied_per_msg"] / 2)
    assert by[("iocp", 4)]["copied_per_msg"] == pytest.approx(by[("io_uring", 4)]["copied_per_msg"])
    assert by[("iocp", 4)]["iocp"]["max_active_at_release"] <= by[("iocp", 4)]["iocp"]["concurrency"]


def test_deterministic():
    assert _run("iocp") == _run("iocp")


@pytest.mark.skipif(not hasattr(Kernel, "epoll"), reason="k.epoll() (engineer N's notify.py) has not landed")
def test_all_architectures_claims_hold(tmp_path):
    result = _run(",".join(m.ARCHITECTURES))
    assert {c.claim: c.status for c in m.check(result) if c.status != "PASS"} == {}
    assert m.plot(result, tmp_path)
