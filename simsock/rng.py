"""One seed per simulation, split into named, independent random streams.

Each component asks for its own stream by a stable name ("loss:link:a-b", "ports:host") so
adding a component never shifts another's draws. A stream's seed is derived from the
simulation seed and the name with SHA-256, never with Python's ``hash`` (which varies with
PYTHONHASHSEED).
"""

from __future__ import annotations

import hashlib
import random


class RandomStreams:
    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        """The stream called ``name`` (created on first use, the same object afterwards)."""
        rng = self._streams.get(name)
        if rng is None:
            digest = hashlib.sha256(f"{self.seed}\x00{name}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:16], "big"))
            self._streams[name] = rng
        return rng
