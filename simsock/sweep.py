"""Sweeps: one experiment over a grid of parameters and seeds, on this machine or a Dask cluster.

``simsock sweep NAME --grid key=v1,v2 --seeds 3`` runs every (grid point, seed) of the
cartesian product. Where the runs happen:

- by default in local worker processes (``--jobs``, one per CPU);
- with ``--scheduler ADDRESS`` (or ``SIMSOCK_SCHEDULER``) on a `Dask distributed
  <https://distributed.dask.org>`_ cluster (``pip install 'simsock[cluster]'``; the
  workers need simsock and its experiments importable, e.g. the same install).

Either way a worker computes a run's ``result.json`` text (with
:func:`simsock.experiment.run_experiment`, in a scratch directory) and sends it back; this
process writes the files, so a sweep on a cluster writes byte for byte what a local one
writes, and workers need no shared filesystem.

What a sweep writes under ``out`` (default ``results/NAME/sweep/``):

- ``<key=value_...>/seed<k>/result.json`` per run;
- ``summary.csv``: one row per run (grid values, seed, passed, failures, result file, each
  top-level scalar of the result as ``result.<key>``), rewritten as each run finishes, so it
  can be watched, always in the sweep's order (first grid key slowest, seed fastest) — the
  final file does not depend on which run finished first;
- ``<metric>.png``: the metric (``--metric KEY``, a number in the result; default the first,
  alphabetically, of its numeric scalars that differ between runs) against the first grid parameter, the mean over seeds with error bars of
  one standard deviation, one line per value of the other grid parameters.

A sweep resumes: a run whose ``result.json`` is already there, for the same experiment,
parameters, seed and simsock version, is read back, not run again (``--fresh`` runs all).
When every point gives the same result with every seed, the sweep says so (the experiment's
randomness does not reach its result; more seeds add nothing).
"""

from __future__ import annotations

import concurrent.futures
import csv
import gc
import itertools
import json
import math
import multiprocessing
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsock import experiment, progress
from simsock.experiment import ExperimentError, ExperimentOutcome

SCHEDULER_ENV = "SIMSOCK_SCHEDULER"
Task = tuple[str, int, dict]   # (experiment, seed, parameters)


# -- where runs happen ---------------------------------------------------------------------
def compute(task: Task) -> str:
    """One run's ``result.json`` text (top level, so that workers can import it)."""
    name, seed, params = task
    try:
        with tempfile.TemporaryDirectory(prefix="simsock-sweep-") as scratch:
            outcome = experiment.run_experiment(name, seed, params, scratch, plots=False)
            return outcome.result_path.read_text(encoding="utf-8")
    finally:
        gc.collect()   # this run's simulations, before the worker's next run starts (see cli)


def local_unordered(func, items: Sequence, jobs: int | None = None) -> Iterator[tuple[int, Any]]:
    """``(index, func(item))`` for every item, as each finishes, on up to ``jobs`` spawned
    processes (in this process with one job). ``func`` must be a module-level function."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(items)))
    if jobs == 1:
        for index, item in enumerate(items):
            yield index, func(item)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                                initializer=progress.silence) as pool:
        futures = {pool.submit(func, item): index for index, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def dask_unordered(func, items: Sequence, scheduler) -> Iterator[tuple[int, Any]]:
    """As :func:`local_unordered`, on a Dask cluster: ``scheduler`` is an address
    (``tcp://host:8786``) or a ``distributed.Client``."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ExperimentError("--scheduler needs Dask distributed: pip install 'simsock[cluster]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="10s") if own else scheduler
    except (OSError, TimeoutError) as exc:
        raise ExperimentError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    try:
        futures = [client.submit(func, item, pure=False) for item in items]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        if own:
            client.close()


# -- the sweep -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: outcomes in the summary's order, and what was (not) rerun."""

    name: str
    grid: dict[str, list[Any]]
    seeds: list[int]
    outdir: Path
    summary_path: Path
    figure_path: Path | None
    metric: str | None
    outcomes: list[ExperimentOutcome]
    reused: int                 # runs read back from an earlier sweep
    seeds_matter: bool          # some point's result differs between seeds

    @property
    def failed(self) -> list[ExperimentOutcome]:
        return [o for o in self.outcomes if not o.passed]


def _tasks(name, grid, seeds, overrides):
    module = experiment.load(name)
    name = experiment._short_name(module)
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = experiment.parse_overrides(overrides, module.PARAMS)
    fixed = experiment._merge(module, overrides)
    if not isinstance(grid, Mapping):
        grid = experiment.parse_grid(grid, module.PARAMS)
    grid = {key: list(values) for key, values in grid.items()}
    for key, values in grid.items():
        if key not in module.PARAMS:
            raise experiment._unknown_key(key, module.PARAMS)
        if not values:
            raise ExperimentError(f"grid parameter {key!r} has no values")
        if overrides and key in overrides:
            raise ExperimentError(f"parameter {key!r} is both fixed (--set) and swept (--grid)")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ExperimentError(f"--seeds must be a positive integer, not {seeds!r}")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    for point in points:
        experiment._check_values(module, {**fixed, **point})
    dirs = [_point_dir(point) for point in points]
    if len(set(dirs)) != len(dirs):
        raise ExperimentError("two grid points map to the same directory name; "
                              "use values that differ in letters, digits, '.', '+' or '-'")
    return module, name, grid, fixed, points, dirs, list(range(1, seeds + 1))


def _dir_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "+".join(_dir_value(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text) or "-"


def _point_dir(point: Mapping[str, Any]) -> str:
    """The directory of a grid point's runs: ``key=value_key=value`` (``defaults`` if empty)."""
    if not point:
        return "defaults"
    return "_".join(f"{key}={_dir_value(value)}" for key, value in point.items())


def _cell(value: Any) -> str:
    """A value as summary.csv writes it: booleans lower case, floats exactly, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _reusable(path: Path, name: str, seed: int, params: dict) -> str | None:
    """The text of an earlier run's result.json if it is this very run, else None."""
    try:
        text = path.read_text(encoding="utf-8")
        saved = json.loads(text)
    except (OSError, ValueError):
        return None
    same = (saved.get("experiment") == name and saved.get("seed") == seed
            and saved.get("params") == json.loads(json.dumps(params))
            and saved.get("simsock_version") == experiment._version())
    return text if same else None


def run_sweep(name: str, grid, seeds: int = 1, *, overrides=None, jobs: int | None = None,
              outdir=None, scheduler=None, resume: bool = True, metric: str | None = None,
              figure: bool = True) -> SweepResult:
    """Run a sweep (see the module docstring); ``scheduler`` None runs locally."""
    module, name, grid, fixed, points, dirs, seed_list = _tasks(name, grid, seeds, overrides)
    out = Path(outdir if outdir is not None else Path("results") / name / "sweep").resolve()
    runs = [(point, directory, seed) for point, directory in zip(points, dirs) for seed in seed_list]
    paths = [out / directory / f"seed{seed}" / experiment.RESULT_FILE for _, directory, seed in runs]
    tasks: list[Task] = [(name, seed, {**fixed, **point}) for point, _, seed in runs]

    texts: dict[int, str] = {}
    if resume:
        for i, (task, path) in enumerate(zip(tasks, paths)):
            text = _reusable(path, *task)
            if text is not None:
                texts[i] = text
    reused = len(texts)
    todo = [i for i in range(len(tasks)) if i not in texts]
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / experiment.SUMMARY_FILE
    outcomes: dict[int, ExperimentOutcome] = {}

    def finish(i: int, text: str) -> None:
        path = paths[i]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        saved = json.loads(text)
        outcomes[i] = ExperimentOutcome(
            name=name, seed=tasks[i][1], params=saved["params"], claims=list(module.CLAIMS),
            outdir=path.parent, result_path=path, **_checked(module, saved["result"]))

    for i, text in texts.items():
        finish(i, text)
    _write_summary(summary_path, grid, runs, outcomes, out)
    where = (dask_unordered(compute, [tasks[i] for i in todo], scheduler) if scheduler
             else local_unordered(compute, [tasks[i] for i in todo], jobs))
    with progress.bar(len(todo), f"{name} sweep", unit="run", tick=True) as bar:
        for k, text in where:
            i = todo[k]
            texts[i] = text
            finish(i, text)
            _write_summary(summary_path, grid, runs, outcomes, out)
            bar.update(1)

    ordered = [outcomes[i] for i in range(len(tasks))]
    seeds_matter = _seeds_matter([texts[i] for i in range(len(tasks))], len(seed_list))
    figure_path = None
    rows = [json.loads(texts[i])["result"] for i in range(len(tasks))]
    chosen = _pick_metric(rows, metric)
    if figure and chosen is not None and grid:
        figure_path = _plot(out, module, grid, runs, rows, chosen, len(seed_list), seeds_matter)
    return SweepResult(name, grid, seed_list, out, summary_path, figure_path, chosen, ordered,
                       reused, seeds_matter)


def _checked(module, result) -> dict:
    """The check's verdict as ExperimentOutcome fields, the way run_experiment finds it."""
    checks = experiment._run_check(module, result)
    return {"failures": [str(c) for c in checks if c.status == "FAIL"], "checks": checks}


def _write_summary(path: Path, grid, runs, outcomes: dict[int, ExperimentOutcome], out: Path) -> None:
    """summary.csv with the runs finished so far, in the sweep's order (atomically replaced)."""
    rows = []
    scalar_keys: set[str] = set()
    for i in sorted(outcomes):
        outcome = outcomes[i]
        result = json.loads(outcome.result_path.read_text(encoding="utf-8"))["result"]
        scalars = {}
        if isinstance(result, dict):
            scalars = {k: v for k, v in result.items()
                       if isinstance(v, (bool, int, float, str)) or v is None}
        scalar_keys.update(scalars)
        rows.append((runs[i][0], outcome, scalars))
    columns = sorted(scalar_keys)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*grid, "seed", "passed", "failures", "result_file",
                         *(f"result.{k}" for k in columns)])
        for point, outcome, scalars in rows:
            writer.writerow([
                *(_cell(point[key]) for key in grid),
                outcome.seed,
                _cell(outcome.passed),
                " | ".join(outcome.failures),
                outcome.result_path.relative_to(out).as_posix(),
                *(_cell(scalars.get(k)) for k in columns),
            ])
    os.replace(partial, path)


def _seeds_matter(texts: list[str], n_seeds: int) -> bool:
    if n_seeds < 2:
        return True          # nothing to compare: one seed cannot show it
    results = [json.dumps(json.loads(t)["result"], sort_keys=True) for t in texts]
    return any(len(set(results[i:i + n_seeds])) > 1 for i in range(0, len(results), n_seeds))


# -- the figure ----------------------------------------------------------------------------
def _lookup(result, key: str):
    value = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pick_metric(results: list, metric: str | None) -> str | None:
    if metric is not None:
        if not all(_number(_lookup(r, metric)) for r in results):
            raise ExperimentError(f"--metric {metric}: not a number in every result; use a numeric "
                                  f"key of result.json's 'result' (dotted for nested, e.g. phase1.jain)")
        return metric
    first = results[0] if results else None
    if not isinstance(first, dict):
        return None
    numeric = [key for key in sorted(first) if all(_number(_lookup(r, key)) for r in results)]
    # a number the sweep changes says more than one it leaves alone (a bin width, a constant)
    varying = [key for key in numeric if len({_lookup(r, key) for r in results}) > 1]
    return (varying or numeric or [None])[0]


_UNITS = (("_bps", "bit/s"), ("_pps", "packets/s"), ("_ns", "ns"), ("_us", "µs"), ("_ms", "ms"),
          ("_s", "s"), ("_bytes", "bytes"), ("_packets", "packets"), ("_pct", "%"),
          ("_percent", "%"), ("_fraction", "fraction"), ("_ratio", "ratio"), ("_share", "fraction"))


def axis_label(key: str, unknown: str = "as in result.json") -> str:
    """``delay_ms`` -> ``delay_ms (ms)``: a key with the unit its suffix names."""
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            return f"{key} ({unit})"
    return f"{key} ({unknown})"


def _plot(out: Path, module, grid, runs, results, metric: str, n_seeds: int, seeds_matter: bool) -> Path:
    from simsock import plot   # matplotlib, imported only when a sweep draws its figure

    name = experiment._short_name(module)
    keys = list(grid)
    x_key, others = keys[0], keys[1:]
    xs = grid[x_key]
    numeric_x = all(_number(v) for v in xs)
    if n_seeds == 1:
        spread = "one seed"
    elif seeds_matter:
        spread = f"mean ± 1 sd over {n_seeds} seeds"
    else:
        spread = f"the same with each of {n_seeds} seeds"
    helps = getattr(module, "PARAM_HELP", {})
    x_label = f"{x_key}: {helps[x_key]}" if x_key in helps else axis_label(x_key, "parameter, as set with --grid")
    fig, ax = plot.figure(f"{name}: {metric} against {x_key} ({spread})", x_label, axis_label(metric))
    lines: dict[tuple, dict[int, list[float]]] = {}
    for (point, _, _), result in zip(runs, results):
        line = tuple(point[k] for k in others)
        lines.setdefault(line, {}).setdefault(xs.index(point[x_key]), []).append(float(_lookup(result, metric)))
    for line, by_x in lines.items():
        positions = sorted(by_x)
        means = [sum(by_x[p]) / len(by_x[p]) for p in positions]
        sds = [_sd(by_x[p]) for p in positions]
        label = ", ".join(f"{k}={experiment._show_value(v)}" for k, v in zip(others, line)) or metric
        x_values = [xs[p] for p in positions] if numeric_x else positions
        ax.errorbar(x_values, means, yerr=sds, marker="o", capsize=4, label=label)
    if not numeric_x:
        ax.set_xticks(range(len(xs)), [experiment._show_value(v) for v in xs])
    ax.ticklabel_format(axis="y", useOffset=False)   # no "+3.2e3" offset: the numbers as they are
    path = out / f"{metric.replace('.', '_')}.png"
    return plot.save(fig, path)


def _sd(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
