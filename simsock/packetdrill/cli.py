"""``simsock packetdrill SCRIPT...``: PASS/FAIL per script, then ``N passed, N failed``.

Exit status 0 only when every script passes; 1 when one fails; 2 for bad input (no script)."""

from __future__ import annotations

import argparse

from .runner import run_script


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT", help="packetdrill .pkt files")
    parser.add_argument("--strict", action="store_true",
                        help="zero timing tolerance (ignore --tolerance_usecs and --tolerance_percent)")
    parser.add_argument("--tolerance_usecs", type=int, default=None, metavar="N",
                        help="timing tolerance in microseconds (overrides the scripts' own)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print the setup notes")


def cmd(args: argparse.Namespace) -> int:
    passed = failed = 0
    for path in args.scripts:
        result = run_script(path, strict=args.strict, tolerance_usecs=args.tolerance_usecs)
        print(result.summary(), flush=True)
        if args.verbose:
            for note in dict.fromkeys(result.notes):
                print(f"  note: {note}")
        if result.passed:
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
