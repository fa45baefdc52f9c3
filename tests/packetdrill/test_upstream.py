"""Linux's own packetdrill scripts (../shared/packetdrill/tcp, GPLv2 test data beside the
project, never copied into it) run against the simulated host.

``PASSING`` is the set of upstream scripts the simulator passes; it may only grow. Each
script must pass at its own tolerance, and ``STRICT_PASSING`` also with zero tolerance.
docs/conformance.md says, for every script, PASS or why it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simsock.packetdrill import run_script

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "packetdrill"
TCP = SHARED / "tcp"

pytestmark = pytest.mark.skipif(not TCP.is_dir(), reason=f"packetdrill scripts not found at {TCP}")

PASSING = sorted([
    "blocking/blocking-read.pkt",
    "close/close-on-syn-sent.pkt",
    "close/close-remote-fin-then-close.pkt",
    "ecn/ecn-uses-ect0.pkt",
    "eor/no-coalesce-retrans.pkt",
    "eor/no-coalesce-small.pkt",
    "eor/no-coalesce-subsequent.pkt",
    "epoll/epoll_in_edge.pkt",
    "fast_retransmit/fr-4pkt-sack.pkt",
    "fast_retransmit/fr-4pkt.pkt",
    "mss/mss-getsockopt-tcp_maxseg-server.pkt",
    "mss/mss-setsockopt-tcp_maxseg-server.pkt",
    "nagle/sendmsg_msg_more.pkt",
    "nagle/sockopt_cork_nodelay.pkt",
    "notsent_lowat/notsent-lowat-setsockopt.pkt",
    "notsent_lowat/notsent-lowat-sysctl.pkt",
    "shutdown/shutdown-rd-close.pkt",
    "shutdown/shutdown-rdwr-close.pkt",
    "shutdown/shutdown-wr-close.pkt",
    "slow_start/slow-start-app-limited.pkt",
    "syscall_bad_arg/fastopen-invalid-buf-ptr.pkt",
    "syscall_bad_arg/sendmsg-empty-iov.pkt",
    "syscall_bad_arg/syscall-invalid-buf-ptr.pkt",
    "tcp_info/tcp-info-last_data_recv.pkt",
    "tcp_info/tcp-info-rwnd-limited.pkt",
    "ts_recent/fin_tsval.pkt",
    "ts_recent/reset_tsval.pkt",
    "validate/validate-established-no-flags.pkt",
])

#: Those of PASSING that pass with zero timing tolerance too; docs/conformance.md explains
#: the others (the scripts' own times are approximate there, or a timer the model fires early).
STRICT_PASSING = sorted(set(PASSING) - {
    "eor/no-coalesce-retrans.pkt",
    "fast_retransmit/fr-4pkt-sack.pkt",
    "fast_retransmit/fr-4pkt.pkt",
})


def _all_scripts() -> list[str]:
    if not TCP.is_dir():
        return []
    return sorted(str(p.relative_to(TCP)) for p in TCP.rglob("*.pkt"))


def test_upstream_scripts_present():
    """The shared copy holds the 28 scripts this list is about."""
    assert len(_all_scripts()) == 28
    assert set(PASSING) <= set(_all_scripts())


@pytest.mark.parametrize("name", PASSING)
def test_upstream_script_passes(name):
    result = run_script(os.fspath(TCP / name))
    assert result.passed, result.message


@pytest.mark.parametrize("name", STRICT_PASSING)
def test_upstream_script_passes_strict(name):
    result = run_script(os.fspath(TCP / name), strict=True)
    assert result.passed, result.message


def test_every_upstream_script_is_documented():
    """docs/conformance.md names each upstream script with PASS or the reason it fails, and
    agrees with PASSING."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text(encoding="utf-8")
    section = doc.split("## packetdrill", 1)[1]
    for name in _all_scripts():
        row = next((line for line in section.splitlines() if f"`{name}`" in line), None)
        assert row is not None, f"{name} is not in docs/conformance.md"
        assert ("| PASS" in row) == (name in PASSING), row
