"""Self-checking payloads: a sequence number and a pattern derived from it.

A receiver can tell from the bytes alone which message it got and whether it arrived
intact, which is what the experiments' "every received datagram intact" checks rely on.
"""

from __future__ import annotations

import struct
import zlib

_HEADER = struct.Struct("!QI")   # sequence number, crc32 of the body


def make(seq: int, size: int) -> bytes:
    """A message of exactly ``size`` bytes (at least 12) carrying ``seq``."""
    if size < _HEADER.size:
        raise ValueError(f"a self-checking payload needs at least {_HEADER.size} bytes, got {size}")
    body = bytes((seq + i) & 0xFF for i in range(min(size - _HEADER.size, 256)))
    body = (body * (1 + (size - _HEADER.size) // max(1, len(body))))[: size - _HEADER.size] if body else b""
    return _HEADER.pack(seq, zlib.crc32(body)) + body


def parse(data: bytes) -> tuple[int, bool]:
    """(sequence number, intact?) of a message made by :func:`make`."""
    if len(data) < _HEADER.size:
        return -1, False
    seq, crc = _HEADER.unpack_from(data)
    return seq, zlib.crc32(data[_HEADER.size:]) == crc
