"""The chapter's claims, in simsock's words, and the checks that hold experiments to them.

The study notes simsock reproduces (chapter 3, "socket programming", of a game-server
textbook) make 45 claims, each with an id such as ``C5.4``. :data:`TEXT` restates each one
in a line; ``docs/claims.md`` says the same at length, with the experiment that shows it.

An experiment's ``check(result)`` returns a list of :class:`Check`: one measured statement
about one claim, which either held (PASS), did not (FAIL), or could not be made with the
parameters given (NOT MEASURED, with the reason). Build them with :class:`Checks`::

    c = Checks()
    c.at_most("C5.4", "longest sendto call", r["send_call_ns_max"], 0, unit="ns")
    c.at_least("C5.4", "datagrams dropped at the receiver", r["dropped"], 1)
    if len(threads) < 2:
        c.not_measured("C9.6", "a race needs at least two threads; threads=1 was given")
    return c.list

A claim's status over all its checks is FAIL if any check failed; otherwise NOT MEASURED if
any could not be made; otherwise PASS if at least one held; and UNCHECKED when no check
named it at all (see :func:`status_of`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TEXT", "NOT_MEASURABLE", "Check", "Checks", "status_of", "summarise",
           "PASS", "FAIL", "NOT_MEASURED", "UNCHECKED", "format_number"]

PASS = "PASS"
FAIL = "FAIL"
NOT_MEASURED = "NOT MEASURED"
UNCHECKED = "UNCHECKED"

#: claim id -> the claim in one line (simsock's own wording of the chapter's notes).
TEXT: dict[str, str] = {
    "C0.1": "A server handles many sockets at once; over TCP that is one connected socket per client.",
    "C0.2": "Those sockets must be driven asynchronously: non-blocking calls with readiness "
            "(select/epoll) or overlapped calls with completions (IOCP).",
    "C1.1": "A call that has to wait for the network (connect, accept, recv) blocks the thread "
            "that made it.",
    "C1.2": "A blocked thread uses no CPU while it waits.",
    "C1.3": "A thread that calls recv waits, blocked, until there is data to receive.",
    "C2.1": "TCP is connection-oriented and one-to-one: a connected TCP socket talks to exactly "
            "one peer.",
    "C2.2": "Client sequence: socket, bind, connect (blocks until the handshake succeeds or "
            "fails), send (returns once the kernel has the data), close.",
    "C2.3": "A returned send means copied into the send buffer, not delivered: a naive program "
            "that exits after send can lose data it thinks it sent.",
    "C3.1": "Every socket has a send buffer and a receive buffer.",
    "C3.2": "The send buffer is a byte queue, first in first out.",
    "C3.3": "When the send buffer is full, send blocks; it unblocks once transmission frees space.",
    "C4.1": "Server sequence: socket, bind, listen (returns at once), accept (blocks until a "
            "connection arrives), getpeername, recv, close.",
    "C4.2": "recv blocks while the receive buffer is empty, until some data arrives.",
    "C4.3": "recv returning 0 bytes means the peer closed its side of the connection.",
    "C5.1": "If the application reads more slowly than the network delivers, the receive "
            "buffer fills up.",
    "C5.2": "Then the TCP sender's send blocks: flow control (the advertised window closes).",
    "C5.3": "The connection stays up and the sender is paced to the slow reader.",
    "C5.4": "A UDP sender is not blocked when the receiver's buffer is full: datagrams are "
            "dropped instead.",
    "C5.5": "Too much traffic converging on a router congests it: the other flows behind it "
            "see loss and queueing delay.",
    "C5.6": "TCP regulates a sender that offers more than the path can take, so it causes "
            "little contention at routers (with an AQM; drop-tail still holds a standing queue).",
    "C5.7": "UDP has no such control: a UDP flood hurts the other flows on the path.",
    "C6.1": "One thread per client means very many threads and a context-switch cost that a "
            "single-threaded event loop does not pay.",
    "C6.2": "send blocks when the send buffer has no free space.",
    "C6.3": "To avoid blocking, the OS offers non-blocking sockets.",
    "C6.4": "In non-blocking mode send/recv/accept/connect are called the same way but always "
            "return at once: success or EAGAIN (EINPROGRESS for connect).",
    "C6.5": "Because such calls return at once, a loop that retries them burns 100% of a CPU.",
    "C6.6": "select/poll fix that: they return at once if some socket is ready, otherwise they "
            "sleep up to a timeout.",
    "C6.7": "A non-blocking accept should likewise be driven by select: accept is then called "
            "only when a connection is waiting.",
    "C7.1": "A non-blocking TCP send larger than the free send-buffer space sends what fits: a "
            "partial success.",
    "C7.2": "A non-blocking UDP send that does not fit fails whole (EAGAIN): a datagram is all "
            "or nothing.",
    "C7.3": "send copies the data from the application's memory into the kernel: a copy cost.",
    "C7.4": "Overlapped I/O avoids C7.1-C7.3: the request owns the buffer until completion, "
            "with no partial results to retry (and no copy only when SO_SNDBUF is 0).",
    "C7.5": "Overlapped I/O has trade-offs (the book, p.173): buffers locked per outstanding "
            "operation, more bookkeeping, against fewer calls per message.",
    "C7.6": "With very many sockets, scanning them all (select/poll) costs too much; epoll and "
            "IOCP cost per ready socket instead.",
    "C8.1": "epoll detects when sockets become ready for I/O and tells the program.",
    "C8.2": "Edge-triggered epoll reports a change (new data arrived), not the state (data "
            "is waiting).",
    "C8.3": "So after an edge-triggered event the program must read until EAGAIN before "
            "waiting again, or it is not told again.",
    "C9.1": "IOCP is completion-based: the program is told when an overlapped operation has "
            "finished, not when one could start.",
    "C9.2": "IOCP delivers a notification as soon as an I/O completes.",
    "C9.3": "The program posts overlapped operations and handles only the sockets whose I/O "
            "completed.",
    "C9.4": "A wait on the completion port returns as soon as a completion arrives, however long "
            "the timeout it was given.",
    "C9.5": "After handling a completion the program posts the next overlapped operation.",
    "C9.6": "With one epoll shared by threads, two threads can be woken for the same ready "
            "socket and race on it: epoll reports readiness, not finished I/O.",
    "C9.7": "With IOCP several threads can serve one socket safely: each completion is a "
            "finished I/O delivered to one thread (order still needs care with several "
            "outstanding receives).",
    "C9.8": "To avoid C9.6, epoll servers often partition the sockets among threads "
            "(or use EPOLLONESHOT).",
}

#: claim id -> why no experiment can measure it (listed by ``simsock list --claims``).
NOT_MEASURABLE: dict[str, str] = {}


def format_number(value: Any) -> str:
    """A number as people read it: thousands separated by commas, at most 4 significant
    digits for fractions; anything else as str."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()
                                  and abs(value) < 1e15):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Check:
    """One measured statement about one claim.

    ``status`` is PASS, FAIL or NOT MEASURED; ``text`` says what was measured against what,
    with the numbers (or, when NOT MEASURED, why it could not be); ``measured`` maps each
    measured quantity to its value and ``threshold`` says what it was held to.
    """

    claim: str
    status: str
    text: str
    measured: dict[str, Any] = field(default_factory=dict)
    threshold: str = ""

    def __str__(self) -> str:
        return f"{self.claim}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "text": self.text, "measured": dict(self.measured),
                "threshold": self.threshold}


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


class Checks:
    """Collects :class:`Check` items; ``list`` is what ``check(result)`` returns."""

    def __init__(self) -> None:
        self.list: list[Check] = []

    def _add(self, claim: str, ok: bool, text: str, measured: dict, threshold: str) -> Check:
        check = Check(claim, PASS if ok else FAIL, text, measured, threshold)
        self.list.append(check)
        return check

    def fact(self, claim: str, ok: bool, text: str, measured: dict | None = None,
             threshold: str = "") -> Check:
        """A statement that holds or not; ``text`` describes what was seen."""
        return self._add(claim, bool(ok), text, dict(measured or {}), threshold)

    def at_least(self, claim: str, what: str, value: float, bound: float, unit: str = "",
                 note: str = "") -> Check:
        ok = value is not None and value >= bound
        text = (f"{what} = {format_number(value)}{_unit(unit)}, expected >= "
                f"{format_number(bound)}{_unit(unit)}{'; ' + note if note else ''}")
        return self._add(claim, ok, text, {what: value}, f">= {bound}{_unit(unit)}")

    def at_most(self, claim: str, what: str, value: float, bound: float, unit: str = "",
                note: str = "") -> Check:
        ok = value is not None and value <= bound
        text = (f"{what} = {format_number(value)}{_unit(unit)}, expected <= "
                f"{format_number(bound)}{_unit(unit)}{'; ' + note if note else ''}")
        return self._add(claim, ok, text, {what: value}, f"<= {bound}{_unit(unit)}")

    def between(self, claim: str, what: str, value: float, low: float, high: float,
                unit: str = "", note: str = "") -> Check:
        ok = value is not None and low <= value <= high
        text = (f"{what} = {format_number(value)}{_unit(unit)}, expected between "
                f"{format_number(low)} and {format_number(high)}{_unit(unit)}"
                f"{'; ' + note if note else ''}")
        return self._add(claim, ok, text, {what: value}, f"[{low}, {high}]{_unit(unit)}")

    def equal(self, claim: str, what: str, value: Any, expected: Any, unit: str = "",
              note: str = "") -> Check:
        ok = value == expected
        text = (f"{what} = {format_number(value)}{_unit(unit)}, expected "
                f"{format_number(expected)}{_unit(unit)}{'; ' + note if note else ''}")
        return self._add(claim, ok, text, {what: value}, f"== {expected}{_unit(unit)}")

    def not_measured(self, claim: str, reason: str) -> Check:
        check = Check(claim, NOT_MEASURED, reason)
        self.list.append(check)
        return check


def as_checks(items: Iterable[Any], claims: Sequence[str]) -> list[Check]:
    """``check(result)``'s items as :class:`Check` objects. A plain string is a failure (the
    old contract): it counts against the claims it names, or against all of the experiment's
    claims when it names none."""
    out: list[Check] = []
    for item in items:
        if isinstance(item, Check):
            out.append(item)
            continue
        text = str(item)
        named = [c for c in claims if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w]|\.\d)", text)]
        for claim in named or claims:
            out.append(Check(claim, FAIL, text))
    return out


def status_of(checks: Sequence[Check]) -> str:
    """The status of one claim given the checks that named it."""
    statuses = {c.status for c in checks}
    if FAIL in statuses:
        return FAIL
    if NOT_MEASURED in statuses:
        return NOT_MEASURED
    if PASS in statuses:
        return PASS
    return UNCHECKED


def summarise(claims: Sequence[str], checks: Sequence[Check]) -> dict[str, dict[str, Any]]:
    """claim -> {status, claim text, checks: [...]} for ``result.json``. Checks that name a
    claim the experiment does not declare are kept under their own id."""
    order = list(claims) + sorted({c.claim for c in checks} - set(claims))
    summary: dict[str, dict[str, Any]] = {}
    for claim in order:
        mine = [c for c in checks if c.claim == claim]
        summary[claim] = {
            "status": status_of(mine),
            "text": TEXT.get(claim, ""),
            "checks": [c.to_json() for c in mine],
        }
    return summary
