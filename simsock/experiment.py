"""The experiment runner: find experiments, parse their parameters, run, check and plot them.

An experiment is a module of the top-level ``experiments`` package (one module per study).
Its contract:

``__doc__``
    First line is the title; the rest says what the study sets up and why.
``CLAIMS``
    List of claim ids from ``seed/CLAIMS.md`` that the study demonstrates, e.g. ``["C5.4"]``.
``PARAMS``
    Dict of default parameters, name -> JSON-able default. The default's type is the type a
    command-line override is converted to (int, float, bool, str, or a list of one of them).
``PARAM_HELP`` (optional)
    Dict name -> one line of help, shown by ``simsock list NAME``.
``run(params, seed) -> dict``
    Pure and deterministic: the result depends only on ``params`` and ``seed``. It must be
    JSON-able (str keys; no NaN or infinity). Time series are lists.
``check(result) -> list[Check]``
    One :class:`simsock.claims.Check` per measured statement (build them with
    :class:`simsock.claims.Checks`): the claim it is about, PASS/FAIL/NOT MEASURED, a sentence
    with the numbers, the measured values and the threshold. A claim is PASS only when at
    least one check naming it ran and held and none failed or could not be made; a claim no
    check names is UNCHECKED. (A plain string is read as a failure, against the claims
    it names or, naming none, against all of them.)
``plot(result, outdir) -> list[pathlib.Path]``
    Draws figures into ``outdir`` (use :mod:`simsock.plot`) and returns their paths.

``check`` and ``plot`` receive the result as read back from ``result.json``, so whatever they
need is in the saved file and a stored result can be checked or drawn again later.

``result.json`` is a pure function of (experiment, parameters, seed, simsock version): keys
sorted, no timestamps, no paths, so that two runs can be compared byte for byte.

The package searched is ``experiments``; the environment variable ``SIMSOCK_EXPERIMENTS``
names another one (tests use it to bring their own toy experiments). Child processes of a
sweep inherit it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import json
import math
import os
import pkgutil
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from simsock import progress
from simsock.claims import FAIL, Check, as_checks, status_of, summarise
from simsock.units import parse_rate, parse_time

__all__ = [
    "ExperimentError",
    "ExperimentOutcome",
    "available",
    "claim_status",
    "discover",
    "evaluate",
    "load",
    "parse_grid",
    "parse_overrides",
    "run_experiment",
    "title",
    "write_atomic",
]

PACKAGE_ENV = "SIMSOCK_EXPERIMENTS"
DEFAULT_PACKAGE = "experiments"
RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"


class ExperimentError(Exception):
    """A mistake in what the user asked for: unknown experiment, bad parameter or value.

    The message is one sentence meant to be printed as is (the CLI prints it and exits 2).
    """


# ---------------------------------------------------------------------------------------------
# Finding experiments


def _package_name() -> str:
    return os.environ.get(PACKAGE_ENV) or DEFAULT_PACKAGE


def _package() -> ModuleType:
    name = _package_name()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ExperimentError(
            f"cannot import the experiments package {name!r}; run from the repository root "
            f"or install simsock with 'pip install -e .'"
        ) from None


def available() -> list[str]:
    """Names of all experiments, sorted, without importing them."""
    package = _package()
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def discover() -> dict[str, ModuleType]:
    """All experiments, name -> module, in sorted order (imports every one of them)."""
    return {name: load(name) for name in available()}


def load(name: str) -> ModuleType:
    """The experiment module called ``name``; a typo gets the closest names and the list."""
    names = available()
    wanted = name.replace("-", "_")
    if wanted not in names:
        close = difflib.get_close_matches(wanted, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        listing = ", ".join(names) if names else "(none)"
        raise ExperimentError(f"unknown experiment {name!r}{hint} Available: {listing}")
    module = importlib.import_module(f"{_package_name()}.{wanted}")
    _check_contract(wanted, module)
    return module


def _check_contract(name: str, module: ModuleType) -> None:
    missing = [attr for attr in ("CLAIMS", "PARAMS", "run", "check", "plot")
               if not hasattr(module, attr)]
    if not (module.__doc__ or "").strip():
        missing.append("module docstring (its first line is the title)")
    if missing:
        raise ExperimentError(
            f"experiment {name!r} does not follow the contract in simsock.experiment; "
            f"missing: {', '.join(missing)}"
        )
    if not isinstance(module.PARAMS, dict):
        raise ExperimentError(f"experiment {name!r}: PARAMS must be a dict")


def title(module: ModuleType) -> str:
    """An experiment's title: the first paragraph of its docstring, on one line (a title
    that wraps in the source is not cut in the middle of its sentence)."""
    paragraph = (module.__doc__ or "").strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def _short_name(module: ModuleType) -> str:
    return module.__name__.rpartition(".")[2]


# ---------------------------------------------------------------------------------------------
# Parameters

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _convert(text: str, default: Any, key: str) -> Any:
    """``text`` converted to the type of ``default``; ExperimentError when it does not fit."""
    text = text.strip()

    def bad(expected: str) -> ExperimentError:
        return ExperimentError(f"bad value for {key}: {text!r} is not {expected}")

    if isinstance(default, bool):  # before int: bool is a subclass of int
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad("a boolean (true/false, yes/no, 1/0)")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            pass
        try:  # "1e6" is a fine way to write a million
            number = float(text)
        except ValueError:
            raise bad("an integer") from None
        if number.is_integer():
            return int(number)
        raise bad("an integer")
    if isinstance(default, float):
        try:
            number = float(text)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if isinstance(default, list):
        if text == "":
            return []
        element = default[0] if default else ""
        return [_convert(item, element, key) for item in text.split(",")]
    if isinstance(default, str):
        return text
    # None, dict: a JSON literal
    try:
        return json.loads(text)
    except ValueError:
        if default is None:
            return text
        raise bad("JSON") from None


def _unknown_key(key: str, params: Mapping[str, Any]) -> ExperimentError:
    close = difflib.get_close_matches(key, list(params), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    valid = ", ".join(sorted(params)) or "(none)"
    return ExperimentError(f"unknown parameter {key!r}{hint} Valid parameters: {valid}")


def _split_assignment(item: str, what: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ExperimentError(f"{what} {item!r} is not of the form key=value")
    return key, value


def parse_overrides(items: Sequence[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}`` with each value of its default's type.

    Lists are comma separated (``sizes=64,1024``). A key given twice keeps the last value.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, value = _split_assignment(item, "override")
        if key not in params:
            raise _unknown_key(key, params)
        overrides[key] = _convert(value, params[key], key)
    return overrides


def parse_grid(items: Sequence[str], params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}``, in the order given.

    For a list-valued parameter the alternatives are separated by ``;`` and each one's elements
    by ``,`` (``sizes=64,128;1024``).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, text = _split_assignment(item, "grid entry")
        if key not in params:
            raise _unknown_key(key, params)
        if key in grid:
            raise ExperimentError(f"grid parameter {key!r} given twice; list all its values once")
        separator = ";" if isinstance(params[key], list) else ","
        values = [_convert(part, params[key], key) for part in text.split(separator)]
        if len(set(map(_canonical_json, values))) != len(values):
            raise ExperimentError(f"grid parameter {key!r} repeats a value: {text!r}")
        grid[key] = values
    return grid


def _unit_parser(default: Any) -> Callable[..., Any] | None:
    """The parser of a parameter whose default is a rate ("100Mbit") or a time ("10ms")."""
    if not isinstance(default, str):
        return None
    for parser in (parse_rate, parse_time):
        try:
            parser(default)
        except (TypeError, ValueError):
            continue
        return parser
    return None


def _check_values(module: ModuleType, params: Mapping[str, Any]) -> None:
    """Refuse values no experiment parameter can mean, before running: negative or infinite
    numbers (counts, sizes, durations, rates, factors), and strings that do not read as the
    rate or time the parameter's default is. What only the experiment can judge (a warmup
    longer than the run...) its ``run`` refuses with a ValueError (see :func:`run_experiment`)."""
    name = _short_name(module)
    for key, value in params.items():
        default = module.PARAMS.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and (
                    not math.isfinite(item) or item < 0):
                raise ExperimentError(f"bad value for {key}: {item!r}; it must be a number >= 0 "
                                      f"(see 'simsock list {name}')")
        parser = _unit_parser(default)
        if parser is not None and value != default and isinstance(value, str) and \
                re.fullmatch(r"\s*[-+]?[\d.]+(e[-+]?\d+)?\s*", value, re.IGNORECASE):
            example = "5ms, 200us or 1.5s" if parser.__name__ == "parse_time" else "100Mbit, 1Gbit or 500kbit"
            raise ExperimentError(f"bad value for {key}: {value!r} has no unit (the default is {default!r}); "
                                  f"write it with one, e.g. {example}")
        if parser is not None and value != default:
            try:
                parser(value, what=key)
            except (TypeError, ValueError) as exc:
                raise ExperimentError(f"bad value for {key}: {exc}") from None


def _merge(module: ModuleType, overrides: Mapping[str, Any] | Sequence[str] | None) -> dict:
    defaults = dict(module.PARAMS)
    if overrides is None:
        return defaults
    if isinstance(overrides, Mapping):
        for key in overrides:
            if key not in defaults:
                raise _unknown_key(key, defaults)
        merged = {**defaults, **overrides}
    else:
        merged = {**defaults, **parse_overrides(overrides, defaults)}
    _check_values(module, merged)
    return merged


def _run_checked(module: ModuleType, params: dict[str, Any], seed: int) -> Any:
    """``module.run(params, seed)``; if it fails with parameters other than the defaults,
    an ExperimentError that names them (experiments refuse values they cannot use with a
    ValueError saying why; any other failure is reported the same way, with where it
    happened, since the defaults run)."""
    try:
        return module.run(dict(params), seed)
    except Exception as exc:
        changed = {k: v for k, v in params.items() if module.PARAMS.get(k, object()) != v}
        if not changed:
            raise
        name = _short_name(module)
        values = ", ".join(f"{k}={_show_value(v)}" for k, v in changed.items())
        where = ""
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and not isinstance(exc, ValueError) and type(exc).__name__ != "SimulationError":
            where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
        raise ExperimentError(f"{name} cannot run with {values}: {type(exc).__name__}: {exc}{where}; "
                              f"change these values (defaults: 'simsock list {name}')") from exc


def _show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_show_value(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Running one experiment


def _canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that no reader ever sees a partial file — a full disk,
    a crash or a kill in the middle leaves the previous file (or none): write a temporary
    file in the same directory, flush it to disk, then rename it over ``path`` (os.replace
    is atomic on POSIX and Windows)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _version() -> str:
    try:
        return importlib.metadata.version("simsock")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def claim_status(claims: Sequence[str], failures: Sequence[str]) -> dict[str, list[str]]:
    """claim -> the failures held against it (an empty list does NOT mean the claim holds:
    see :meth:`ExperimentOutcome.statuses`, which also knows UNCHECKED and NOT MEASURED).

    A failure that names claim ids (as words, ``C5.4``) counts against those; one that names
    none of the experiment's claims counts against all of them.
    """
    status: dict[str, list[str]] = {claim: [] for claim in claims}
    for failure in failures:
        named = [c for c in claims if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w]|\.\d)", failure)]
        for claim in named or claims:
            status[claim].append(failure)
    return status


def _run_check(module: ModuleType, result: Any) -> list[Any]:
    """``module.check(result)`` as a list of Check; a crash in the check is a FAIL of every
    claim with the error, never a traceback instead of the verdict."""
    try:
        return as_checks(module.check(result), list(module.CLAIMS))
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        text = (f"the check crashed: {type(exc).__name__}: {exc} "
                f"(at {Path(where.filename).name}:{where.lineno})")
        return [Check(claim, FAIL, text) for claim in module.CLAIMS]


def _run_plot(module: ModuleType, result: Any, out: Path) -> tuple[list[Path], list[str]]:
    """The figures ``module.plot`` drew, and why some could not be drawn. An experiment may
    report figures it could not draw itself by returning ``(paths, errors)``."""
    try:
        drawn = module.plot(result, out)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return [], [f"plot failed: {type(exc).__name__}: {exc} "
                    f"(at {Path(where.filename).name}:{where.lineno})"]
    errors: list[str] = []
    if isinstance(drawn, tuple) and len(drawn) == 2:
        drawn, errors = drawn
    return [Path(p).resolve() for p in drawn], [str(e) for e in errors]


@dataclass(frozen=True)
class ExperimentOutcome:
    """What :func:`run_experiment` did: its inputs, the check, and the files it wrote."""

    name: str
    seed: int
    params: dict[str, Any]
    claims: list[str]
    failures: list[str]
    outdir: Path
    result_path: Path
    figures: list[Path] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)
    figure_errors: list[str] = field(default_factory=list)

    def statuses(self) -> dict[str, str]:
        """claim -> PASS, FAIL, NOT MEASURED or UNCHECKED."""
        return {claim: status_of([c for c in self.checks if c.claim == claim])
                for claim in self.claims}

    def checks_of(self, claim: str) -> list[Any]:
        return [c for c in self.checks if c.claim == claim]

    def count(self, status: str) -> int:
        return sum(1 for s in self.statuses().values() if s == status)

    @property
    def passed(self) -> bool:
        """Every claim PASS: checked, and held."""
        return not self.failures and all(s == "PASS" for s in self.statuses().values())

    @property
    def failed(self) -> bool:
        """Some claim FAIL (UNCHECKED and NOT MEASURED are not failures, nor passes)."""
        return bool(self.failures)

    @property
    def files(self) -> list[Path]:
        return [self.result_path, *self.figures]

    def claim_status(self) -> dict[str, list[str]]:
        return claim_status(self.claims, self.failures)


def run_experiment(
    name: str,
    seed: int = 1,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    outdir: str | os.PathLike[str] | None = None,
    *,
    plots: bool = True,
) -> ExperimentOutcome:
    """Run experiment ``name``, write ``result.json`` (and figures), check its claims.

    ``overrides`` is either typed values ``{key: value}`` or strings ``["key=value"]``.
    ``outdir`` defaults to ``results/<name>/`` under the current directory. With
    ``plots=False`` no figures are drawn (sweeps).
    """
    module = load(name)
    name = _short_name(module)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ExperimentError(f"seed must be an integer, not {seed!r}")
    params = _merge(module, overrides)
    out = Path(outdir if outdir is not None else Path("results") / name).resolve()

    with progress.scope(name):   # bars of this run say whose they are
        result = _run_checked(module, params, seed)
    document = {
        "experiment": name,
        "seed": seed,
        "params": params,
        "claims": list(module.CLAIMS),
        "simsock_version": _version(),
        "result": result,
    }
    try:
        text = _canonical_json(document)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"experiment {name!r}: run() returned data that is not JSON: {exc}") from exc

    out.mkdir(parents=True, exist_ok=True)
    result_path = out / RESULT_FILE
    write_atomic(result_path, text)

    saved = json.loads(text)
    checks = _run_check(module, saved["result"])
    failures = [str(c) for c in checks if c.status == "FAIL"]
    document["claim_status"] = summarise(list(module.CLAIMS), checks)
    result_path.write_text(_canonical_json(document), encoding="utf-8")
    figures, figure_errors = _run_plot(module, saved["result"], out) if plots else ([], [])
    return ExperimentOutcome(
        name=name,
        seed=seed,
        params=saved["params"],
        claims=list(module.CLAIMS),
        failures=failures,
        outdir=out,
        result_path=result_path,
        figures=figures,
        checks=checks,
        figure_errors=figure_errors,
    )


def evaluate(name: str, overrides: Mapping[str, Any] | Sequence[str] | None = None,
             seed: int = 1) -> tuple[dict[str, str], list[Any], Any]:
    """Run and check ``name`` in this process without writing anything: (claim -> status,
    the checks, the result as read back from JSON). For tests and quick looks."""
    module = load(name)
    params = _merge(module, overrides)
    result = json.loads(_canonical_json(_run_checked(module, params, seed)))
    checks = _run_check(module, result)
    statuses = {claim: status_of([c for c in checks if c.claim == claim])
                for claim in module.CLAIMS}
    return statuses, checks, result
