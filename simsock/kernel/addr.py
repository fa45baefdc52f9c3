"""Address arguments checked and resolved the way CPython and Linux do.

CPython's ``getsockaddrarg`` decides the exception classes and messages for malformed
addresses (TypeError, OverflowError); name resolution failures are ``socket.gaierror``.
Names resolve through the simulation: host names, ``localhost``, dotted quads.
"""

from __future__ import annotations

from simsock.errors import gai_error

LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"
BROADCAST = "255.255.255.255"


def is_dotted_quad(text: str) -> bool:
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return False
    return True


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.")


def check_int(value, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__"):
            return value.__index__()
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    return value


def parse_inet_address(address, caller: str) -> tuple[str, int]:
    """(host, port) checked like CPython's getsockaddrarg for AF_INET; host not resolved."""
    if not isinstance(address, tuple):
        raise TypeError(f"{caller}(): AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    port = check_int(port)
    if not 0 <= port <= 65535:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    return host, port


def resolve(sim, host: str, *, for_bind: bool = False) -> str:
    """A host string -> dotted quad, through the simulation's names (gaierror if unknown)."""
    if host == "":
        return ANY
    if host == "<broadcast>":
        return BROADCAST            # CPython's name for INADDR_BROADCAST
    if is_dotted_quad(host):
        return host
    lower = host.lower()
    if lower == "localhost":
        return LOOPBACK
    ip = sim.resolve_name(lower)
    if ip is None:
        raise gai_error(host)
    return ip
