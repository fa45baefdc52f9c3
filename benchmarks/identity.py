"""Check that a speed change kept results and traces byte-identical.

Runs udp_overflow, partial_send and flow_control (``result.json`` through the experiment
runner, as ``simsock run`` writes it), the same three again with every simulation's trace
forced on (all categories) and written as JSON Lines, and a 2 s ``tcp_bulk`` run and a
200-client, 1 s ``c10k`` run with tracing on (their statistics too). Every file goes to ``OUT``; ``--against REF`` then compares ``OUT`` with a directory
written the same way by an older commit and prints the first differing line of each file.

    python benchmarks/identity.py OUT                     # write the files
    python benchmarks/identity.py OUT --against REF       # write, then compare with REF
    python benchmarks/identity.py OUT --all               # every experiment, not only three

Typical use: write REF once from a worktree of the commit before the change
(``git worktree add /tmp/base HEAD``, ``cd /tmp/base && PYTHONPATH=. python
benchmarks/identity.py /tmp/ref``), then run this after every change.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import simsock
from simsock import experiment

EXPERIMENTS = ("udp_overflow", "partial_send", "flow_control")


def _capture_sims():
    """Patch Simulation so that every instance traces everything and is remembered."""
    made = []
    original = simsock.Simulation.__init__

    def init(self, *args, **kwargs):
        kwargs["trace"] = True
        original(self, *args, **kwargs)
        made.append(self)

    simsock.Simulation.__init__ = init
    return made, lambda: setattr(simsock.Simulation, "__init__", original)


def write(out: Path, names=EXPERIMENTS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in names:
        outcome = experiment.run_experiment(name, seed=1, outdir=out / name, plots=False)
        files.append(outcome.result_path)
    for name in names:
        made, restore = _capture_sims()
        try:
            experiment.run_experiment(name, seed=1, outdir=out / f"{name}-traced", plots=False)
        finally:
            restore()
        for i, sim in enumerate(made):
            path = out / f"{name}-traced" / f"trace{i}.jsonl"
            sim.trace.to_jsonl(path)
            files.append(path)
    sys.path.insert(0, str(Path(__file__).parent))
    import tcp_bulk
    made, restore = _capture_sims()
    try:
        r = tcp_bulk.run(2.0, "cubic")
    finally:
        restore()
    path = out / "tcp_bulk-trace.jsonl"
    made[0].trace.to_jsonl(path)
    files.append(path)
    stats = out / "tcp_bulk-stats.txt"
    stats.write_text("".join(f"{k} {v}\n" for k, v in sorted(r.items()) if "wall" not in k), encoding="utf-8")
    files.append(stats)
    import c10k
    made, restore = _capture_sims()
    try:
        r = c10k.run(200, 1.0)
    finally:
        restore()
    path = out / "c10k-trace.jsonl"
    made[0].trace.to_jsonl(path)
    stats = out / "c10k-stats.txt"
    keep = ("connected", "sent", "received", "server_updates", "server_util", "rtt_mean_ms", "rtt_max_ms", "events")
    stats.write_text("".join(f"{k} {r[k]}\n" for k in keep), encoding="utf-8")
    files += [path, stats]
    return files


def compare(out: Path, ref: Path) -> int:
    bad = 0
    names = sorted({p.relative_to(out) for p in out.rglob("*") if p.is_file()} |
                   {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()})
    for rel in names:
        a, b = out / rel, ref / rel
        if not a.exists() or not b.exists():
            print(f"  MISSING {rel} ({'new' if not a.exists() else 'reference'} side)")
            bad += 1
            continue
        da, db = a.read_bytes(), b.read_bytes()
        if da == db:
            print(f"  same    {rel} ({len(da):,} bytes, sha256 {hashlib.sha256(da).hexdigest()[:12]})")
            continue
        bad += 1
        la, lb = da.splitlines(), db.splitlines()
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                print(f"  DIFFERS {rel} line {i + 1}:\n    new: {x[:300]!r}\n    ref: {y[:300]!r}")
                break
        else:
            print(f"  DIFFERS {rel}: {len(la)} lines vs {len(lb)} in the reference")
    print("identical" if not bad else f"{bad} file(s) differ")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--against", type=Path, help="directory written by this script from an older commit")
    ap.add_argument("--all", action="store_true", help="check every experiment (default: %s)" % ", ".join(EXPERIMENTS))
    args = ap.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    write(args.out, experiment.available() if args.all else EXPERIMENTS)
    if args.against:
        sys.exit(compare(args.out, args.against))


if __name__ == "__main__":
    main()
