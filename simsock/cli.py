"""The ``simsock`` command: list, run, sweep and report experiments.

Each subcommand is a :class:`Subcommand` in :data:`SUBCOMMANDS`: a one-line help, a function
that adds its arguments to an ``argparse`` parser, and a handler that takes the parsed
arguments and returns the exit status. Adding a subcommand is writing those two functions and
one entry in the table.

Exit status: 0 success; 1 an experiment's check failed (the claim did not hold), or some claim
was UNCHECKED or NOT MEASURED (``run --allow-unchecked`` accepts those) or, for ``report``,
some experiment failed or crashed; 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simsock import experiment, progress, report
from simsock.claims import NOT_MEASURABLE, TEXT, format_number
from simsock.experiment import ExperimentError


class _UsageError(Exception):
    """argparse found a mistake on the command line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports a mistake as one line instead of usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Subcommand:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handle: Callable[[argparse.Namespace], int]


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes") from None
    if value < 1:
        raise argparse.ArgumentTypeError("needs at least 1 process")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


# --- list --------------------------------------------------------------------------------------


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show this experiment's parameters")
    parser.add_argument("--claims", action="store_true",
                        help="list every claim of the chapter with the experiments that check it")


def _cmd_list_claims() -> int:
    cited: dict[str, list[str]] = {}
    for name, module in experiment.discover().items():
        for claim in module.CLAIMS:
            cited.setdefault(claim, []).append(name)
    missing = 0
    for claim, text in TEXT.items():
        where = ", ".join(cited.get(claim, []))
        if not where:
            if claim in NOT_MEASURABLE:
                where = f"not measurable: {NOT_MEASURABLE[claim]}"
            else:
                where = "NOT CITED by any experiment"
                missing += 1
        print(f"{claim:<5} {text}")
        print(f"      -> {where}")
    return 1 if missing else 0


def _cmd_list(args: argparse.Namespace) -> int:
    if args.claims:
        return _cmd_list_claims()
    if args.name:
        module = experiment.load(args.name)
        print(f"{module.__name__.rpartition('.')[2]}: {experiment.title(module)}")
        print("claims:")
        for claim in module.CLAIMS:
            print(f"  {claim:<5} {TEXT.get(claim, '')}".rstrip())
        helps = getattr(module, "PARAM_HELP", {})
        print("parameters (override with --set key=value):")
        for key, default in module.PARAMS.items():
            note = f"  {helps[key]}" if key in helps else ""
            print(f"  {key} = {_show(default)}{note}")
        return 0
    modules = experiment.discover()
    width = max((len(n) for n in modules), default=0)
    claim_width = max((len(", ".join(m.CLAIMS)) for m in modules.values()), default=0)
    for name, module in modules.items():
        claims = ", ".join(module.CLAIMS)
        print(f"{name:<{width}}  {claims:<{claim_width}}  {experiment.title(module)}")
    if not modules:
        print("no experiments found")
    return 0


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    return str(value)


# --- run ---------------------------------------------------------------------------------------


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="experiment name (see 'simsock list')")
    parser.add_argument("--seed", type=_integer, default=1, help="random seed (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a parameter (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default results/NAME/)")
    parser.add_argument("--allow-unchecked", action="store_true",
                        help="exit 0 even if some claim is UNCHECKED or NOT MEASURED "
                             "(a FAIL still exits 1)")
    _add_quiet(parser)


def _cmd_run(args: argparse.Namespace) -> int:
    with progress.activity(args.name):
        outcome = experiment.run_experiment(args.name, args.seed, args.overrides, args.out)
    module = experiment.load(outcome.name)
    print(f"{outcome.name}: {experiment.title(module)} (seed {outcome.seed})")
    _print_status(outcome)
    print("wrote:")
    for path in outcome.files:
        print(f"  {path}")
    for error in outcome.figure_errors:
        print(f"  (figure not drawn: {error})")
    return _exit_status(outcome, args.allow_unchecked)


def _exit_status(outcome: experiment.ExperimentOutcome, allow_unchecked: bool) -> int:
    if outcome.failed:
        return 1
    if not allow_unchecked and not outcome.passed:
        return 1
    return 0


def _key_number(checks) -> str:
    """The first measured number of a claim's checks, as ``name = value``."""
    for check in checks:
        for key, value in check.measured.items():
            return f"{key} = {format_number(value)}"
    return ""


def _print_status(outcome: experiment.ExperimentOutcome) -> None:
    statuses = outcome.statuses()
    width = max((len(s) for s in statuses.values()), default=4)
    for claim, status in statuses.items():
        checks = outcome.checks_of(claim)
        key = _key_number(checks)
        print(f"  {status:<{width}} {claim:<5} {TEXT.get(claim, '')}".rstrip())
        if status == "PASS":
            if key:
                print(f"  {'':<{width}}       measured: {key}")
            continue
        if status == "UNCHECKED":
            print(f"  {'':<{width}}       no check of this experiment names {claim}")
        for check in checks:
            if check.status != "PASS":
                print(f"  {'':<{width}}       {check.status}: {check.text}")
    counts = {s: list(statuses.values()).count(s)
              for s in ("PASS", "FAIL", "NOT MEASURED", "UNCHECKED")}
    print("  " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("PASS", "FAIL")))


# --- sweep -------------------------------------------------------------------------------------


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run an experiment on every combination of the --grid values, with seeds 1..N, in local "
        "processes or (--scheduler) on a Dask cluster. summary.csv is rewritten as runs finish; "
        "runs already in --out are not run again. Check failures are recorded in summary.csv "
        "and do not change the exit status."
    )
    parser.add_argument("name", help="experiment name (see 'simsock list')")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="values to sweep (repeatable; for list parameters separate "
                             "the alternatives with ';')")
    parser.add_argument("--seeds", type=_positive, default=1,
                        help="run seeds 1..N at every point (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="fix a parameter for the whole sweep")
    parser.add_argument("--jobs", type=_jobs, default=None,
                        help="local worker processes (default: number of CPUs)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on the Dask distributed scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786 "
                             "(default: $SIMSOCK_SCHEDULER, else local processes; "
                             "needs pip install 'simsock[cluster]')")
    parser.add_argument("--metric", default=None, metavar="KEY",
                        help="the result number to plot against the first grid parameter "
                             "(dotted for nested keys; default: the first of the result's numbers that differ between runs)")
    parser.add_argument("--fresh", action="store_true",
                        help="run every point again, even those already in --out")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default results/NAME/sweep/)")
    _add_quiet(parser)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from simsock import sweep   # process pools and Dask: imported when a command needs them
    scheduler = args.scheduler or os.environ.get(sweep.SCHEDULER_ENV) or None
    result = sweep.run_sweep(args.name, args.grid, args.seeds, overrides=args.overrides,
                             jobs=args.jobs, outdir=args.out, scheduler=scheduler,
                             resume=not args.fresh, metric=args.metric)
    total = len(result.outcomes)
    failed = len(result.failed)
    points = total // len(result.seeds)
    where = f"on the Dask cluster at {scheduler}" if scheduler else "in local processes"
    reused = f"{result.reused} already done, " if result.reused else ""
    print(f"{result.name}: {points} point(s) x {len(result.seeds)} seed(s) = {total} run(s) "
          f"({reused}{total - result.reused} run {where}); "
          f"checks passed in {total - failed}, failed in {failed}")
    if not result.seeds_matter:
        print(f"seeds make no difference: every point gave the same result with each of the "
              f"{len(result.seeds)} seeds; one seed is enough for this sweep")
    print("wrote:")
    print(f"  {result.summary_path}")
    if result.figure_path is not None:
        print(f"  {result.figure_path} ({result.metric} against {next(iter(result.grid))})")
    print(f"  {total} result.json file(s) under {result.outdir}")
    return 0


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars (they are shown only when stderr is a terminal)")


# --- report ------------------------------------------------------------------------------------


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="output directory (default results/)")
    parser.add_argument("--jobs", type=_jobs, default=None,
                        help="worker processes (default: number of CPUs)")
    _add_quiet(parser)


def _report_task(task):
    """One experiment of the report: (name, outcome, None) or (name, None, traceback)."""
    name, seed, overrides, outdir, plots = task
    try:
        return name, experiment.run_experiment(name, seed, overrides, outdir, plots=plots), None
    except Exception:  # the report shows the crash and goes on with the next experiment
        return name, None, traceback.format_exc()
    finally:
        # Collect this experiment's simulations now, while none runs: left to a later
        # collection, their unfinished programs would be closed during the next experiment's
        # run and their finally blocks (s.close()) would be refused as foreign use.
        gc.collect()


def _cmd_report(args: argparse.Namespace) -> int:
    from simsock import sweep   # see _cmd_sweep
    out = args.out.resolve()
    tasks = [(name, 1, {}, str(out / name), True) for name in experiment.available()]
    jobs = args.jobs or os.cpu_count() or 1
    print(f"running {len(tasks)} experiments on {min(jobs, len(tasks))} process(es); each line comes "
          f"when its experiment is done (the whole report takes minutes)", flush=True)
    done = {}
    status = 0
    with progress.bar(len(tasks), "report", unit="experiment", tick=True) as bar:
        for index, (name, outcome, error) in sweep.local_unordered(_report_task, tasks, jobs):
            done[index] = (name, outcome, error)
            if error is not None:
                label = "ERROR"
                bar.write(f"ERROR {name}: {error.strip().splitlines()[-1]}")
            else:
                label = "PASS" if outcome.passed else "FAIL" if outcome.failed else "UNCHECKED"
                bar.write(f"{label} {name}")
            bar.update(1)
            status = status or int(label != "PASS")
    sections = [done[i] for i in sorted(done)]
    page = report.write(sections, out)
    print("wrote:")
    print(f"  {page}")
    return status


# --- the command -------------------------------------------------------------------------------

SUBCOMMANDS: dict[str, Subcommand] = {
    "list": Subcommand("list experiments, or one experiment's parameters",
                       _configure_list, _cmd_list),
    "run": Subcommand("run one experiment and check its claims", _configure_run, _cmd_run),
    "sweep": Subcommand("run an experiment over a grid of parameters and seeds",
                        _configure_sweep, _cmd_sweep),
    "report": Subcommand("run every experiment and write one HTML page: summary, claims, figures",
                         _configure_report, _cmd_report),
    "record": Subcommand("run a world script on the real kernel and save its syscall trace",
                         lambda p: _compare().add_record_arguments(p), lambda a: _compare().cmd_record(a)),
    "compare": Subcommand("compare two traces call by call and print the first difference",
                          lambda p: _compare().add_compare_arguments(p), lambda a: _compare().cmd_compare(a)),
    "profile": Subcommand("measure this Linux host into a profile file (--from-host), or show a profile",
                          lambda p: _host_profile().add_profile_arguments(p),
                          lambda a: _host_profile().cmd_profile(a)),
    "packetdrill": Subcommand("run packetdrill scripts against a simulated Linux host",
                              lambda p: _packetdrill().add_arguments(p), lambda a: _packetdrill().cmd(a)),
    "real": Subcommand("real-backend housekeeping: 'simsock real cleanup' deletes network namespaces left "
                       "by killed runs", lambda p: _netns().add_real_arguments(p), lambda a: _netns().cmd_real(a)),
}


# The modules of these subcommands (packetdrill, the real backend, record/compare, host
# measurement) take 10-90 ms each to import: loaded when their command is parsed or runs.
def _packetdrill():
    from simsock.packetdrill import cli
    return cli


def _netns():
    from simsock.real import netns
    return netns


def _compare():
    from simsock import compare
    return compare


def _host_profile():
    from simsock.profiles import host
    return host


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simsock", description="Deterministic simulation of OS sockets.")
    parser.add_argument("--debug", action="store_true",
                        help="show simsock's internal frames in tracebacks (as SIMSOCK_DEBUG=1 does)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, sub in SUBCOMMANDS.items():
        sub.configure(commands.add_parser(name, help=sub.help, description=sub.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "debug", False):
            os.environ["SIMSOCK_DEBUG"] = "1"
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        progress.set_quiet(getattr(args, "quiet", False))
        try:
            return SUBCOMMANDS[args.command].handle(args)
        finally:
            progress.set_quiet(False)   # --quiet is this command's, not the process's
    except (_UsageError, ExperimentError) as exc:
        print(f"simsock: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # whoever read the output went away (simsock list | head): stop quietly, as Unix tools
        # do; stdout goes to /dev/null so that the interpreter's final flush does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        if exc.filename is None:        # not a file named on the command line
            raise
        print(f"simsock: error: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
