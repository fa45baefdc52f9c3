"""Exceptions as CPython raises them on Linux.

``OSError(errno, strerror)`` already returns the matching subclass (``BlockingIOError`` for
EAGAIN, ``ConnectionResetError`` for ECONNRESET, ...), exactly as the interpreter does for a
failed system call, so simsock builds every failure through :func:`os_error`. The message
is Linux's ``strerror`` text, independent of the host OS running the simulation.
"""

from __future__ import annotations

import errno as _errno
import os as _os
import socket as _socket
import sys as _sys
import types as _types

# Linux strerror(3) texts, so messages do not depend on the OS running the simulator.
_STRERROR = {
    _errno.EPERM: "Operation not permitted",
    _errno.EACCES: "Permission denied",
    _errno.EBADF: "Bad file descriptor",
    _errno.EAGAIN: "Resource temporarily unavailable",
    _errno.EINVAL: "Invalid argument",
    _errno.EPIPE: "Broken pipe",
    _errno.EMSGSIZE: "Message too long",
    _errno.ENOTSOCK: "Socket operation on non-socket",
    _errno.EDESTADDRREQ: "Destination address required",
    _errno.EPROTONOSUPPORT: "Protocol not supported",
    _errno.EOPNOTSUPP: "Operation not supported",
    _errno.EAFNOSUPPORT: "Address family not supported by protocol",
    _errno.EADDRINUSE: "Address already in use",
    _errno.EADDRNOTAVAIL: "Cannot assign requested address",
    _errno.ENETUNREACH: "Network is unreachable",
    _errno.ECONNABORTED: "Software caused connection abort",
    _errno.ECONNRESET: "Connection reset by peer",
    _errno.ENOBUFS: "No buffer space available",
    _errno.EISCONN: "Transport endpoint is already connected",
    _errno.ENOTCONN: "Transport endpoint is not connected",
    _errno.ETIMEDOUT: "Connection timed out",
    _errno.ECONNREFUSED: "Connection refused",
    _errno.EHOSTUNREACH: "No route to host",
    _errno.EALREADY: "Operation already in progress",
    _errno.EINPROGRESS: "Operation now in progress",
    _errno.ENOPROTOOPT: "Protocol not available",
    _errno.EEXIST: "File exists",
    _errno.ENOENT: "No such file or directory",
    _errno.EMFILE: "Too many open files",
}


def os_error(code: int, detail: str | None = None) -> OSError:
    """The exception CPython raises for a system call failing with ``code``.

    ``detail`` is appended for simsock-specific explanations; the errno and class are
    exactly CPython's.
    """
    message = _STRERROR.get(code) or _errno.errorcode.get(code, f"errno {code}")
    if detail:
        message = f"{message} ({detail})"
    return OSError(code, message)


def timeout_error() -> TimeoutError:
    """What CPython raises when a socket timeout (``settimeout``) expires: ``TimeoutError('timed out')``."""
    return TimeoutError("timed out")


def gai_error(name: str) -> _socket.gaierror:
    """``socket.gaierror`` for a name that does not resolve (EAI_NONAME, as glibc gives)."""
    return _socket.gaierror(_socket.EAI_NONAME, f"Name or service not known: {name!r} is not a host in this simulation")


def errno_name(exc: BaseException) -> str | None:
    """The errno's symbolic name (``"EAGAIN"``) for traces, or the class name for non-OS errors."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, TimeoutError) and code is None:
        return "ETIMEDOUT_SOCKET"  # socket.timeout: CPython raises it without an errno
    if code is None:
        return type(exc).__name__
    return _errno.errorcode.get(code, str(code))


class SimulationError(RuntimeError):
    """A simulated thread failed: the message names the host and thread; ``__cause__`` is
    the original exception with its traceback."""


# -- what a failing program shows (issue 13, item 8) --------------------------------------------
# A program's exception reaches the user as a SimulationError whose __cause__ is the original
# exception. By default both tracebacks show only the user's own frames (the program, the
# script that built the world): simsock's and SimPy's frames are internals that say nothing
# about the program's mistake. SIMSOCK_DEBUG=1 (or ``simsock --debug``) shows everything.

_PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__)) + _os.sep


def debug_enabled() -> bool:
    return _os.environ.get("SIMSOCK_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _internal(filename: str) -> bool:
    path = _os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR) or f"{_os.sep}simpy{_os.sep}" in path


def user_traceback(tb):
    """``tb`` without simsock's and SimPy's frames (a new chain; ``tb`` is unchanged)."""
    kept = []
    while tb is not None:
        if not _internal(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    new = None
    for t in reversed(kept):
        new = _types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return new


def trim_failure(err: BaseException, cause: BaseException) -> BaseException:
    """Unless debugging: give ``cause`` (the program's exception) only the user's frames and
    drop the chain behind it (a hint's original, the exception it was raised from inside
    simsock). Returns ``cause``, to be raised ``from``."""
    if debug_enabled():
        return cause
    cause.__traceback__ = user_traceback(cause.__traceback__)
    inner = cause.__cause__ or cause.__context__
    if inner is not None and (inner.__traceback__ is None or all(
            _internal(f.tb_frame.f_code.co_filename) for f in _walk(inner.__traceback__))
            or str(inner) in str(cause)):
        cause.__cause__ = None
        cause.__suppress_context__ = True
    return cause


def _walk(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


_previous_hook = None


def _excepthook(tp, value, tb):
    if isinstance(value, SimulationError) and not debug_enabled():
        tb = user_traceback(tb)
        value.__traceback__ = tb         # the default hook shows the exception's own traceback
    (_previous_hook or _sys.__excepthook__)(tp, value, tb)


def install_excepthook() -> None:
    """An uncaught SimulationError shows the user's frames only (``sys.excepthook``; any
    other exception is shown by the hook that was there before)."""
    global _previous_hook
    if _sys.excepthook is not _excepthook:
        _previous_hook = _sys.excepthook
        _sys.excepthook = _excepthook
