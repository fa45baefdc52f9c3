"""select/poll/epoll conformance: the simulator against real Linux (see docs/conformance.md).

The programs are the ones of ``tests/kernel/notify/scenarios.py`` (where each is also checked
against its table of expected reports); here their syscall traces — every call, its
arguments, its result or errno, with descriptors normalised — must agree call by call.
"""

import pytest

from tests.conformance.harness import check_scenario, needs_linux, one_host
from tests.kernel.notify.scenarios import ALL

pytestmark = [pytest.mark.real, needs_linux]


def _check(name, tolerant_calls=None):
    check_scenario(one_host(ALL[name][0], name=f"notify_{name}"), until=5.0, tolerant_calls=tolerant_calls)


def test_notify_fresh_tcp():
    """select/poll/epoll masks of a fresh unconnected TCP socket: POLLOUT|POLLHUP, select readable and writable."""
    _check("fresh_tcp")


def test_notify_listener():
    """A listener is readable exactly while a connection waits in its accept queue."""
    _check("listener")


def test_notify_peer_fin():
    """After the peer's FIN: EPOLLIN|EPOLLOUT|EPOLLRDHUP, no EPOLLHUP."""
    _check("peer_fin")


def test_notify_peer_reset():
    """After the peer's RST: EPOLLIN|OUT|ERR|HUP|RDHUP; select reports it readable and writable."""
    _check("peer_reset")


def test_notify_epollout_drain():
    """EPOLLOUT (ET) after a full send buffer comes only once the reader drained enough, not after a small read."""
    _check("epollout_drain", {"send": 0.5, "recv": 0.5})


def test_notify_lt_sequence():
    """Level-triggered epoll reports on every call while data is left."""
    _check("lt_sequence")


def test_notify_et_sequence():
    """Edge-triggered epoll reports once per arrival, again on each new arrival, not after a partial read."""
    _check("et_sequence")


def test_notify_et_in_out():
    """ET with EPOLLIN|EPOLLOUT reports EPOLLOUT again on every arrival of data."""
    _check("et_in_out")


def test_notify_oneshot():
    """EPOLLONESHOT reports once, then nothing until modify re-arms it."""
    _check("oneshot")


def test_notify_maxevents():
    """maxevents=2 over three ready LT entries reports them round-robin."""
    _check("maxevents")


def test_notify_nested():
    """An epoll inside another is readable while it has a ready entry."""
    _check("nested")


def test_notify_ctl_errors():
    """epoll_ctl errors: EEXIST, ENOENT, EINVAL (self, EXCLUSIVE misuse), ELOOP, EBADF; maxevents ValueError."""
    _check("ctl_errors")


def test_notify_closed_leaves():
    """Closing a registered socket removes it from the epoll interest list."""
    _check("closed_leaves")


def test_notify_select_errors():
    """select's FD_SETSIZE and argument errors; poll's POLLNVAL; poll.modify ENOENT, unregister KeyError."""
    _check("select_errors")


def test_notify_exclusive():
    """One datagram wakes four epoll instances, or one with EPOLLEXCLUSIVE."""
    _check("exclusive")


def test_notify_shared_epoll():
    """Four threads on one epoll: an LT entry wakes all four in a chain, an ET entry one."""
    _check("shared_epoll")


def test_notify_select_wakes():
    """A blocked select wakes on an arrival with only the ready socket; poll times out."""
    _check("select_wakes")


def test_notify_close_while_waiting():
    """A close() by another thread does not end select/poll (the file stays held); a later
    arrival or the timeout does, reporting the closed descriptor; epoll's entry just goes."""
    _check("close_while_waiting")
