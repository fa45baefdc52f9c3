"""Pluggable TCP congestion control, selected by name as ``setsockopt(TCP_CONGESTION)`` does.

Linux keeps a list of registered ``tcp_congestion_ops`` (``tcp_register_congestion_control``
in ``net/ipv4/tcp_cong.c``); a socket picks one by name and gets its own private state.
Here the registry maps a name to a :class:`~simsock.tcp.cc.base.CongestionOps` subclass and
:func:`get` returns a fresh instance per connection.

Names are looked up as Linux's ``do_tcp_setsockopt`` does: the value may be ``bytes`` (what
CPython's ``setsockopt`` passes) or ``str``; at most 15 bytes are read and the name ends
at the first NUL, so ``b"cubic\\0..."`` selects ``cubic``; comparison is case-sensitive. An
empty value fails with EINVAL, an unknown name with ENOENT (both checked against a real
Linux 6.x socket). What Linux adds on top is the connection's business, not the
registry's: the EPERM for unprivileged users choosing an algorithm outside
``net.ipv4.tcp_allowed_congestion_control``, and module autoloading.

Registered here: ``reno``, ``cubic`` and ``bbr`` (v1, ``tcp_bbr.c``) as in Linux, and ``newreno`` (see
:class:`~simsock.tcp.cc.reno.NewReno` for why Linux has no such module).
"""

from __future__ import annotations

import errno

from simsock.errors import os_error
from simsock.tcp.cc.base import TCP_CA_NAME_MAX, CongestionOps
from simsock.tcp.cc.bbr import Bbr
from simsock.tcp.cc.cubic import Cubic
from simsock.tcp.cc.reno import NewReno, Reno

__all__ = ["CongestionOps", "available", "get", "register", "unregister"]

_registry: dict[str, type[CongestionOps]] = {}


def _setsockopt_name(name: str | bytes) -> str:
    """The name Linux would look up for this TCP_CONGESTION value."""
    raw = name.encode("ascii", "replace") if isinstance(name, str) else bytes(name)
    if not raw:
        raise os_error(errno.EINVAL, "empty TCP_CONGESTION name")
    # strncpy_from_sockptr(name, optval, min(TCP_CA_NAME_MAX - 1, optlen)): a C string.
    raw = raw[: TCP_CA_NAME_MAX - 1].split(b"\0", 1)[0]
    return raw.decode("ascii", "replace")


def get(name: str | bytes) -> CongestionOps:
    """A new instance of the algorithm registered as ``name`` (one per connection).

    Raises ``OSError(ENOENT)`` for an unknown name and ``OSError(EINVAL)`` for an empty one,
    as ``setsockopt(IPPROTO_TCP, TCP_CONGESTION, name)`` does on Linux.
    """
    key = _setsockopt_name(name)
    cls = _registry.get(key)
    if cls is None:
        raise os_error(errno.ENOENT, f"no congestion control algorithm named {key!r}")
    ops = cls()
    ops.name = key
    return ops


def available() -> list[str]:
    """The registered names, sorted (``net.ipv4.tcp_available_congestion_control``)."""
    return sorted(_registry)


def register(name: str | bytes, cls: type[CongestionOps], *, replace: bool = False) -> None:
    """Make ``cls`` selectable as ``name``, as ``tcp_register_congestion_control`` does.

    ``cls`` must subclass :class:`CongestionOps`, be constructible without arguments and
    implement ``ssthresh`` and ``cong_avoid`` or ``cong_control`` (Linux's ``tcp_validate_congestion_control``
    refuses a module without them: EINVAL). A name already taken gives EEXIST unless
    ``replace`` is true. Names are 1 to 15 ASCII characters without NUL.
    """
    key = name.decode("ascii") if isinstance(name, bytes) else name
    if not key or len(key) >= TCP_CA_NAME_MAX or not key.isascii() or "\0" in key:
        raise ValueError(f"congestion control names are 1-{TCP_CA_NAME_MAX - 1} ASCII characters, not {key!r}")
    if not (isinstance(cls, type) and issubclass(cls, CongestionOps)):
        raise TypeError(f"{cls!r} is not a CongestionOps subclass")
    if cls.ssthresh is CongestionOps.ssthresh:
        raise os_error(errno.EINVAL, f"{cls.__name__} does not implement ssthresh()")
    if cls.cong_avoid is CongestionOps.cong_avoid and cls.cong_control is None:
        raise os_error(errno.EINVAL, f"{cls.__name__} implements neither cong_avoid() nor cong_control()")
    if key in _registry and not replace:
        raise os_error(errno.EEXIST, f"congestion control {key!r} is already registered")
    _registry[key] = cls


def unregister(name: str | bytes) -> None:
    """Remove ``name`` (``tcp_unregister_congestion_control``); connections already using
    it keep their instance. Unknown names raise ``OSError(ENOENT)``."""
    key = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    if _registry.pop(key, None) is None:
        raise os_error(errno.ENOENT, f"no congestion control algorithm named {key!r}")


register("reno", Reno)
register("newreno", NewReno)
register("cubic", Cubic)
register("bbr", Bbr)
