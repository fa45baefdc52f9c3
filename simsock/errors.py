"""Exceptions as CPython raises them on Linux.

``OSError(errno, strerror)`` already returns the matching subclass (``BlockingIOError`` for
EAGAIN, ``ConnectionResetError`` for ECONNRESET, ...), exactly as the interpreter does for a
failed system call, so simsock builds every failure through :func:`os_error`. The message
is Linux's ``strerror`` text, independent of the host OS running the simulation.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket

# Linux strerror(3) texts, so messages do not depend on the OS running the simulator.
_STRERROR = {
    _errno.EPERM: "Operation not permitted",
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
