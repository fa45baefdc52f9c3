"""Progress bars for work that takes more than a few seconds (tqdm, on stderr).

Long work says how far it is: the points of an experiment's grid (:func:`steps`), the
simulated time a run has reached (:func:`run`), the experiments of a report and the points
of a sweep (:func:`bar`). Bars are drawn by `tqdm <https://tqdm.github.io>`_ on stderr and
only there, so they never reach ``result.json``, ``summary.csv`` or anything on stdout.

When bars are shown:

- only when stderr is a terminal (a pipe, a file or CI's log gets none);
- never with ``simsock ... --quiet`` (:func:`set_quiet`);
- ``SIMSOCK_PROGRESS=0`` turns them off and ``SIMSOCK_PROGRESS=1`` on, whatever stderr is
  (tests use it; worker processes of a report or sweep get ``0``, since their parent shows
  one bar for all of them and bars from several processes would overwrite each other).

Results do not depend on whether bars are shown: :func:`run` with bars runs the simulation
to ``until`` in slices (``sim.run(until=t1)``, ``sim.run(until=t2)`` …), which processes
exactly the events, in exactly the order, of one ``sim.run(until=until)``.

An experiment uses it in a line or two::

    from simsock import progress

    for n in progress.steps(params["watched"], "watched sockets"):
        ...
        progress.run(sim, until=end, label=f"{n} sockets")
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator

from simsock.units import parse_time

ENV = "SIMSOCK_PROGRESS"
SLICES = 100            # a simulation with bars runs in this many slices of simulated time

_quiet = False
_scope: list[str] = []  # names of the experiments running now (labels of bars)


def set_quiet(quiet: bool = True) -> None:
    """``--quiet``: no bars in this process (and none in workers it starts)."""
    global _quiet
    _quiet = quiet


def silence() -> None:
    """No bars in this process: the initializer of worker processes."""
    os.environ[ENV] = "0"


def enabled() -> bool:
    """Whether bars are shown now (see the module docstring)."""
    if _quiet:
        return False
    forced = os.environ.get(ENV, "").strip()
    if forced == "0":
        return False
    if forced == "1":
        return True
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):   # closed or replaced stream
        return False


def _label(text: str) -> str:
    return ": ".join([*_scope, text]) if text else ": ".join(_scope)


def _screen() -> dict:
    """tqdm's output arguments: stderr, and 80 x 24 on a terminal that reports no size (a
    bare pseudo-terminal), where tqdm would otherwise draw nothing."""
    try:
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        sized = False
    if sized:
        return {"file": sys.stderr, "dynamic_ncols": True}
    return {"file": sys.stderr, "ncols": 80, "nrows": 24}


class _NoBar:
    """What :func:`bar` gives when bars are off: the same calls, doing nothing."""

    n = 0

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, flush=True)


class _StdoutBar:
    """A tqdm bar whose :meth:`write` prints a line to stdout without breaking the bar."""

    def __init__(self, bar):
        self._bar = bar

    def __getattr__(self, name):
        return getattr(self._bar, name)

    def write(self, text: str) -> None:
        self._bar.write(text, file=sys.stdout)
        sys.stdout.flush()


@contextlib.contextmanager
def bar(total: float | None, label: str, unit: str = "it", *, leave: bool = False,
        tick: bool = False):
    """A bar of ``total`` steps named ``label`` (prefixed by the running experiment's name);
    ``.update(n)`` advances it, ``.write(line)`` prints a result line to stdout above it.
    ``tick=True`` redraws it twice a second, so its elapsed time moves while steps are long
    (the experiments of a report, the runs of a sweep)."""
    if not enabled():
        yield _NoBar()
        return
    from tqdm import tqdm   # only when a bar is drawn (20 ms to import)
    with tqdm(total=total, desc=_label(label), unit=unit, leave=leave, mininterval=0.2,
              **_screen()) as t, _ticking(t if tick else None):
        yield _StdoutBar(t)
        t.refresh()    # the last count is drawn once, even when it came within mininterval


@contextlib.contextmanager
def _ticking(line):
    """Redraw ``line`` (a tqdm bar) every half second while the block runs."""
    if line is None:
        yield
        return
    stop = threading.Event()

    def tick():
        while not stop.wait(0.5):
            line.refresh()
    ticker = threading.Thread(target=tick, name="simsock-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


def steps(items: Iterable, label: str, unit: str = "point") -> Iterator:
    """``items`` one by one, with a bar counting them (a grid's points, an experiment's sub-runs)."""
    items = list(items)
    with bar(len(items), label, unit) as b:
        for item in items:
            yield item
            b.update(1)


def run(sim, until, label: str = "simulated time") -> None:
    """``sim.run(until=until)``, with a bar of the simulated seconds reached when bars are on."""
    if until is None or not enabled():
        sim.run(until=until)
        return
    start = sim.now_ns
    end = parse_time(until, what="until")
    if end <= start:
        sim.run(until=until)
        return
    total_s = (end - start) / 1e9
    with bar(round(total_s, 9), label, unit="s") as b:
        done = 0.0
        for i in range(1, SLICES):
            t_ns = start + (end - start) * i // SLICES
            if t_ns <= sim.now_ns:
                continue
            sim.run(until=f"{t_ns}ns")
            reached = (sim.now_ns - start) / 1e9
            b.update(reached - done)
            done = reached
        sim.run(until=until)
        b.update(total_s - done)


@contextlib.contextmanager
def activity(label: str):
    """A line ``label: running, 00:12 elapsed`` kept ticking (twice a second) while the block runs, for
    work that reports no steps of its own (an experiment without bars, drawing figures)."""
    if not enabled():
        yield
        return
    from tqdm import tqdm   # only when a line is drawn (see bar)
    with tqdm(total=None, desc=label, bar_format="{desc}: running, {elapsed} elapsed", leave=False,
              **_screen()) as line, _ticking(line):
        yield


@contextlib.contextmanager
def scope(name: str):
    """Bars opened inside are labelled ``name: …`` (the runner wraps each experiment)."""
    _scope.append(name)
    try:
        yield
    finally:
        _scope.pop()
