"""Side-by-side speed: simsock against ns.py 0.4.3 and against an older simsock commit.

Every measurement is one child process running benchmarks/_workloads.py (fresh interpreter,
CPU time of the run only, world building excluded); the contenders of one comparison run
alternately, round after round, so that load on a shared machine hits all of them alike,
and the median of the rounds is compared. Only ratios are printed as results: absolute
times vary with the machine's load.

Comparisons (``--only``, comma-separated; all by default):

``udp``    datagrams per CPU-second: simsock udp_blast (full socket API on both ends: blocking
           sendto and recv, trace off) vs ns.py DistPacketGenerator -> Port -> Wire -> PacketSink
           (target: >= 2x); also simsock trace on vs off (target: on costs <= 1.3x).
``tcp``    data segments per CPU-second of one bulk cubic flow (100 Mbit/s, 10 ms): simsock
           (target: >= 100k per CPU-second) vs ns.py's TCPPacketGenerator/TCPSink (cubic) over
           the same path — ns.py's TCP is much simpler (no handshake, SACK, delayed ACK or
           socket buffers), so this ratio is indicative only.
``c10k``   CPU per update of the c10k world (``--c10k-clients``, ``--c10k-seconds``).
           ``--c10k-full`` runs the target once: 10,000 clients x 5 s, <= 60 s CPU, <= 1 GiB.
``flows``  many_flows growth: steady-state CPU per forwarded packet at 1000 flows / 1 flow
           (``--flows-case``, default udp-hosts; target <= 1.3x).

With ``--rev REV`` every simsock measurement also runs against commit REV (checked out as a
git worktree under /tmp, reused across runs) and the ratio new / old is printed.

ns.py is run by another interpreter, so that its SimPy and ours stay apart. Make one with

    python3 -m venv /work/nspy-venv && /work/nspy-venv/bin/pip install ns.py==0.4.3

and pass ``--nspy /work/nspy-venv/bin/python`` (or set NSPY_PYTHON). Without it the ns.py
comparisons are skipped with a note.

    python benchmarks/compare.py [--rounds 5] [--only udp,tcp,c10k,flows] [--rev REV]
                                 [--nspy PYTHON] [--udp N] [--tcp-seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = HERE / "_workloads.py"


def run_child(python: str, root: Path | None, *args) -> dict:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    if root is not None:
        env["PYTHONPATH"] = str(root)
    else:
        env.pop("PYTHONPATH", None)
    out = subprocess.run([python, str(WORKLOADS), *map(str, args)], capture_output=True, text=True,
                         env=env, cwd=str(root or HERE), timeout=3600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed under {python} ({root}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worktree_of(rev: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = Path(f"/tmp/simsock-rev-{sha[:12]}")
    if not (path / "simsock").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def interleave(contenders: dict, rounds: int, verbose: bool) -> dict:
    """contenders: name -> zero-argument callable returning a result dict. Runs them in
    alternating order (the order flips every round), ``rounds`` times; returns name -> list."""
    out = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            res = contenders[name]()
            out[name].append(res)
            if verbose:
                print(f"    round {r + 1} {name}: {res['units']:,} units in {res['cpu_s']:.3f} s CPU "
                      f"({res['units'] / res['cpu_s']:,.0f}/s)", flush=True)
    return out


def rate(results: list) -> float:
    """Median of units per CPU-second."""
    return statistics.median(r["units"] / r["cpu_s"] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description="simsock vs ns.py and vs an older commit, interleaved; prints ratios")
    ap.add_argument("--only", default="udp,tcp,c10k,flows")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rev", help="also compare with this git revision (e.g. HEAD~1, main)")
    ap.add_argument("--tree", help="also compare with the simsock source tree at this path (e.g. a mypyc build)")
    ap.add_argument("--nspy", default=os.environ.get("NSPY_PYTHON"),
                    help="python that has ns.py 0.4.3 (default $NSPY_PYTHON)")
    ap.add_argument("--udp", type=int, default=50_000, help="datagrams per udp run")
    ap.add_argument("--tcp-seconds", type=float, default=3.0)
    ap.add_argument("--c10k-clients", type=int, default=1000)
    ap.add_argument("--c10k-seconds", type=float, default=2.0)
    ap.add_argument("--c10k-full", action="store_true", help="run 10,000 clients x 5 s once (about a minute or two)")
    ap.add_argument("--flows-packets", type=int, default=20_000)
    ap.add_argument("--flows-case", default="udp-hosts", help="udp, udp-hosts, tcp, tcp-hosts or all")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = ap.parse_args()
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    py = sys.executable
    old = worktree_of(args.rev) if args.rev else (Path(args.tree).resolve() if args.tree else None)
    if args.tree and not args.rev:
        args.rev = args.tree
    nspy = args.nspy
    if nspy and not Path(nspy).exists():
        sys.exit(f"--nspy {nspy}: no such interpreter; make one with: python3 -m venv /work/nspy-venv && "
                 f"/work/nspy-venv/bin/pip install ns.py==0.4.3")
    print(f"compare.py: {args.rounds} interleaved rounds, medians of CPU time; simsock at {ROOT}"
          + (f", old = {args.rev} at {old}" if old else ""))
    if not nspy and ("udp" in only or "tcp" in only):
        print("  (ns.py comparisons skipped: make an interpreter with ns.py, e.g. python3 -m venv /work/nspy-venv && "
              "/work/nspy-venv/bin/pip install ns.py==0.4.3, then pass --nspy /work/nspy-venv/bin/python "
              "or set NSPY_PYTHON)")
    verdicts = []

    def versus_old(contenders, key, *wl):
        if old is not None:
            contenders[f"old {key}"] = lambda: run_child(py, old, *wl)

    if "udp" in only:
        n = args.udp
        c = {"simsock": lambda: run_child(py, ROOT, "udp", n, 0),
             "simsock trace on": lambda: run_child(py, ROOT, "udp", n, 1)}
        if nspy:
            c["ns.py"] = lambda: run_child(nspy, None, "nspy-udp", n)
        versus_old(c, "simsock", "udp", n, 0)
        versus_old(c, "simsock trace on", "udp", n, 1)
        print(f"\nudp_blast, {n:,} datagrams of 1000 B (blocking sendto -> 1 Gbit/s 1 ms -> blocking recv)", flush=True)
        res = interleave(c, args.rounds, args.verbose)
        s = rate(res["simsock"])
        ev = statistics.median(r["events"] / r["units"] for r in res["simsock"])
        print(f"  simsock: {1e6 / s:.2f} us CPU per datagram, {ev:.2f} SimPy events per datagram")
        on = rate(res["simsock trace on"])
        print(f"  trace on / off cost per datagram: {s / on:.2f}x (target <= 1.3x)")
        verdicts.append(("trace on <= 1.3x off (udp)", s / on <= 1.3, f"{s / on:.2f}x"))
        if nspy:
            ns = rate(res["ns.py"])
            nev = statistics.median(r["events"] / r["units"] for r in res["ns.py"])
            print(f"  ns.py: {nev:.2f} SimPy events per packet")
            print(f"  simsock / ns.py datagrams per CPU-second: {s / ns:.2f}x (target >= 2x)")
            verdicts.append(("UDP >= 2x ns.py", s / ns >= 2, f"{s / ns:.2f}x"))
        if old:
            print(f"  new / old ({args.rev}) datagrams per CPU-second: trace off {s / rate(res['old simsock']):.2f}x, "
                  f"trace on {on / rate(res['old simsock trace on']):.2f}x")

    if "tcp" in only:
        secs = args.tcp_seconds
        c = {"simsock": lambda: run_child(py, ROOT, "tcp", secs, 0)}
        if nspy:
            c["ns.py"] = lambda: run_child(nspy, None, "nspy-tcp", secs)
        versus_old(c, "simsock", "tcp", secs, 0)
        print(f"\ntcp_bulk, one cubic flow, 100 Mbit/s 10 ms, {secs:g} s simulated", flush=True)
        res = interleave(c, args.rounds, args.verbose)
        s = rate(res["simsock"])
        print(f"  simsock: {s:,.0f} data segments per CPU-second ({1e6 / s:.2f} us per segment; target >= 100,000 "
              f"per CPU-second)")
        verdicts.append(("TCP >= 100k data segments per CPU-second", s >= 100_000, f"{s:,.0f}"))
        if nspy:
            ns = rate(res["ns.py"])
            print(f"  simsock / ns.py TCP data segments per CPU-second: {s / ns:.2f}x (ns.py's TCP sent "
                  f"{statistics.median(r['units'] for r in res['ns.py']):,.0f} segments vs simsock's "
                  f"{statistics.median(r['units'] for r in res['simsock']):,.0f}: not the same work, indicative)")
        if old:
            same = res["old simsock"][0]["units"] == res["simsock"][0]["units"]
            print(f"  new / old ({args.rev}): {s / rate(res['old simsock']):.2f}x "
                  f"({'same' if same else 'DIFFERENT'} number of data segments)")

    if "c10k" in only:
        cl, secs = args.c10k_clients, args.c10k_seconds
        c = {"simsock": lambda: run_child(py, ROOT, "c10k", cl, secs)}
        versus_old(c, "simsock", "c10k", cl, secs)
        rounds = max(1, min(args.rounds, 3))
        print(f"\nc10k, {cl:,} clients x {secs:g} s ({rounds} rounds)", flush=True)
        res = interleave(c, rounds, args.verbose)
        s = rate(res["simsock"])
        print(f"  simsock: {1e6 / s:.1f} us CPU per update, "
              f"{statistics.median(r['events'] / r['units'] for r in res['simsock']):.2f} SimPy events per update")
        if old:
            same = res["old simsock"][0]["units"] == res["simsock"][0]["units"]
            print(f"  new / old ({args.rev}) updates per CPU-second: {s / rate(res['old simsock']):.2f}x "
                  f"({'same' if same else 'DIFFERENT'} number of updates)")
    if args.c10k_full:
        print("\nc10k target run: 10,000 clients x 5 s, once", flush=True)
        r = run_child(py, ROOT, "c10k", 10_000, 5.0)
        print(f"  {r['total_cpu_s']:.1f} s CPU including building the world ({r['cpu_s']:.1f} s running), "
              f"peak RSS {r['rss_mib']:,.0f} MiB, {r['connected']:,} connected, {r['units']:,} updates")
        ok = r["total_cpu_s"] <= 60 and r["rss_mib"] <= 1024
        verdicts.append(("c10k 10k x 5 s <= 60 s CPU and <= 1 GiB", ok,
                         f"{r['total_cpu_s']:.1f} s, {r['rss_mib']:,.0f} MiB"))

    if "flows" in only:
        cases = ["udp", "udp-hosts", "tcp", "tcp-hosts"] if args.flows_case == "all" else [args.flows_case]
        for case in cases:
            c = {f"{n} flows": (lambda n=n, case=case: run_child(py, ROOT, "flows", n, args.flows_packets, case)) for n in (1, 1000)}
            if old:
                for n in (1, 1000):
                    c[f"old {n} flows"] = lambda n=n, case=case: run_child(py, old, "flows", n, args.flows_packets, case)
            rounds = max(1, min(args.rounds, 3))
            print(f"\nmany_flows {case}, {args.flows_packets:,} packets, 1 vs 1000 flows ({rounds} rounds)", flush=True)
            res = interleave(c, rounds, args.verbose)
            g = rate(res["1 flows"]) / rate(res["1000 flows"])
            print(f"  steady-state CPU per packet, 1000 flows / 1 flow: {g:.2f}x (target <= 1.3x)")
            verdicts.append((f"many_flows {case} growth <= 1.3x", g <= 1.3, f"{g:.2f}x"))
            if old:
                go = rate(res["old 1 flows"]) / rate(res["old 1000 flows"])
                print(f"  old ({args.rev}): {go:.2f}x; new / old per-packet speed at 1000 flows: "
                      f"{rate(res['1000 flows']) / rate(res['old 1000 flows']):.2f}x")

    if verdicts:
        print("\ntargets (issue 16):")
        for what, ok, value in verdicts:
            print(f"  {'MET    ' if ok else 'NOT MET'} {what}: {value}")


if __name__ == "__main__":
    main()
