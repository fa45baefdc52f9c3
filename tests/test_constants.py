"""simsock's socket/select/errno constants have the values CPython exposes on Linux."""

import errno
import os
import select
import socket
import struct
import sys

import pytest

import simsock
from simsock import constants as C
from simsock.errors import _STRERROR, errno_name, os_error

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the values are Linux's")

NAMES = sorted(n for n in dir(C) if n.isupper() and not n.startswith("_"))
# Not exported by CPython (values are from the Linux headers), or deliberately different.
NOT_IN_CPYTHON = {"EPOLLWAKEUP": 1 << 29, "FD_SETSIZE": 1024,
                  # ioctl requests: termios has FIONREAD/TIOCOUTQ, the socket ones are from linux/sockios.h
                  "FIONREAD": 0x541B, "SIOCINQ": 0x541B, "TIOCOUTQ": 0x5411, "SIOCOUTQ": 0x5411,
                  "SIOCOUTQNSD": 0x894B,
                  # asm-generic/socket.h; CPython does not export them
                  "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33}


def test_every_constant_is_exported_at_top_level():
    """Programs import constants from simsock: each one is an attribute of the package."""
    missing = [n for n in NAMES if getattr(simsock, n, None) != getattr(C, n)]
    assert missing == []


@linux_only
@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_IN_CPYTHON and n != "INADDR_ANY"])
def test_constant_equals_socket_or_select_module(name):
    """Each constant equals the same-named constant of the real socket or select module."""
    if hasattr(socket, name):
        real = getattr(socket, name)
    elif hasattr(select, name):
        real = getattr(select, name)
    else:
        pytest.fail(f"{name} is neither in socket nor in select on this Python")
    assert getattr(C, name) == int(real), f"simsock.{name} = {getattr(C, name)}, CPython says {int(real)}"


@linux_only
def test_inaddr_any_is_the_dotted_form_of_cpythons():
    """INADDR_ANY is given as the string '0.0.0.0' (usable in bind()) — the dotted form of
    CPython's integer socket.INADDR_ANY."""
    assert C.INADDR_ANY == socket.inet_ntoa(struct.pack("!I", socket.INADDR_ANY)) == "0.0.0.0"


def test_constants_not_in_cpython_have_linux_values():
    """EPOLLWAKEUP and FD_SETSIZE, which CPython does not export, have Linux's values."""
    for name, value in NOT_IN_CPYTHON.items():
        assert getattr(C, name) == value


@pytest.mark.parametrize("name, value", [
    ("AF_INET", 2), ("SOCK_STREAM", 1), ("SOCK_DGRAM", 2), ("SOL_SOCKET", 1), ("SO_SNDBUF", 7), ("SO_RCVBUF", 8),
    ("MSG_PEEK", 2), ("MSG_TRUNC", 0x20), ("MSG_DONTWAIT", 0x40), ("EPOLLET", 1 << 31), ("EPOLLONESHOT", 1 << 30),
    ("EPOLLEXCLUSIVE", 1 << 28), ("EPOLLRDHUP", 0x2000), ("SOCK_NONBLOCK", 0o4000),
])
def test_pinned_linux_values(name, value):
    """Key constants pinned to their Linux numbers, independent of the host OS."""
    assert getattr(C, name) == value


@linux_only
@pytest.mark.parametrize("code", sorted(_STRERROR), ids=lambda c: errno.errorcode[c])
def test_strerror_texts_equal_linux(code):
    """The messages simsock uses for each errno are Linux's strerror texts."""
    assert _STRERROR[code] == os.strerror(code)


@pytest.mark.parametrize("code, cls", [
    (errno.EAGAIN, BlockingIOError), (errno.ECONNREFUSED, ConnectionRefusedError),
    (errno.ECONNRESET, ConnectionResetError), (errno.EPIPE, BrokenPipeError), (errno.EADDRINUSE, OSError),
    (errno.ETIMEDOUT, TimeoutError), (errno.EINPROGRESS, BlockingIOError),
])
def test_os_error_builds_cpythons_subclass(code, cls):
    """os_error(code) is the OSError subclass CPython raises for that errno, with errno,
    strerror and args (errno, strerror); a detail is appended in parentheses."""
    exc = os_error(code)
    assert type(exc) is cls
    assert exc.errno == code and exc.args == (code, _STRERROR[code])
    detailed = os_error(code, "why")
    assert detailed.strerror == f"{_STRERROR[code]} (why)" and type(detailed) is cls


def test_errno_name():
    """errno_name gives the symbolic name, or the class name for non-OS errors."""
    assert errno_name(os_error(errno.EAGAIN)) == "EAGAIN"
    assert errno_name(ValueError("x")) == "ValueError"
