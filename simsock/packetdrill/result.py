"""What a script run ends with: PASS, the first :class:`Mismatch`, or a construct the
interpreter does not run (:class:`Unsupported`), reported as a :class:`Result`."""

from __future__ import annotations

from dataclasses import dataclass, field


class Unsupported(Exception):
    """A construct of the language that the interpreter does not run (named)."""


class Mismatch(Exception):
    """The first difference between the script and the simulated host."""

    def __init__(self, line: int, message: str, now_ns: int):
        super().__init__(message)
        self.line, self.message, self.now_ns = line, message, now_ns


@dataclass
class Result:
    path: str
    passed: bool
    message: str = ""          # the first mismatch, with line and simulated time
    line: int | None = None
    sim_time: float | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return f"PASS {self.path}"
        return f"FAIL {self.path}\n  {self.message}"
