"""Profile-driven budget: where simsock's time goes, per packet and per update.

Runs three worlds, each twice — once under cProfile, once under tracemalloc (a separate
pass, so neither distorts the other) — and prints per unit of work (a datagram, a data
segment, a c10k update):

- Python calls (functions written in Python, coroutine resumptions included) and C calls,
- SimPy events,
- memory: blocks and bytes allocated and still alive at the end of the steady state (the
  growth per unit; tracemalloc cannot count short-lived allocations, so the peak of the
  traced memory above the live set is printed beside it) and the top allocating lines,
- self time split into SimPy, kernel/socket layer, TCP, network, CPU model, trace,
  program (models and the benchmark's own coroutines) and C builtins (attributed to no
  layer), and the top functions by self time.

The worlds (trace off, as the benchmarks run them):

``udp``   udp_blast: N datagrams of 1000 B, blocking sendto -> 1 Gbit/s 1 ms link -> blocking recv
``tcp``   tcp_bulk: one cubic flow over 100 Mbit/s, 10 ms, BDP queue, S simulated seconds
``c10k``  c10k: 1000 game clients (100 B every 100 ms) -> one epoll-ET server, S seconds

    python benchmarks/profile.py [--only udp,tcp,c10k] [--udp N] [--tcp-seconds S]
                                 [--c10k-clients C] [--c10k-seconds S] [--top K] [--trace]

``--trace`` runs the same worlds with tracing on (all categories).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib's ``profile`` module, which cProfile imports: take the
# benchmarks directory off the path before importing it.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import argparse
import cProfile
import pstats
import time
import tracemalloc
from functools import partial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import importlib.util  # noqa: E402

# the benchmark worlds, as benchmarks/compare.py runs them (loaded by path: see above)
_spec = importlib.util.spec_from_file_location("_workloads", _here / "_workloads.py")
_workloads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_workloads)
build_udp, build_tcp, build_c10k = _workloads.build_udp, _workloads.build_tcp, _workloads.build_c10k

LAYERS = ("SimPy", "kernel/socket", "TCP", "network", "CPU model", "trace", "program", "C builtins", "other")


def layer_of(filename: str, name: str = "") -> str:
    f = filename.replace("\\", "/")
    if f == "~" or f.startswith("<built-in"):
        return "C builtins"
    if "/simpy/" in f or (name == "_run_events" and f.endswith("/simsock/sim.py")):   # SimPy's loop, inlined
        return "SimPy"
    if "/simsock/kernel/cpu.py" in f:
        return "CPU model"
    if "/simsock/trace.py" in f or "/simsock/pcap.py" in f:
        return "trace"
    if "/simsock/tcp/" in f or "/simsock/kernel/tcp_" in f:
        return "TCP"
    if "/simsock/net/" in f:
        return "network"
    if "/simsock/" in f:
        return "kernel/socket"
    if "/models/" in f or "/benchmarks/" in f:
        return "program"
    return "other"


# ---------------------------------------------------------------------------------------------
# The worlds (build_udp, build_tcp, build_c10k) come from benchmarks/_workloads.py


# ---------------------------------------------------------------------------------------------


def profile_pass(make, top: int) -> dict:
    sim, until, units, unit = make()
    # cProfile's default (wall) timer: a CPU-time timer is a system call per reading and
    # distorts more; on a loaded machine compare the shares, and CPU profiled per unit
    prof = cProfile.Profile()
    c0 = time.process_time()
    prof.enable()
    sim.run(until=until)
    prof.disable()
    cpu = time.process_time() - c0
    n = units()
    events = next(sim.env._eid)
    st = pstats.Stats(prof)
    py_calls = c_calls = 0
    by_layer = dict.fromkeys(LAYERS, 0.0)
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, callers) in st.stats.items():
        layer = layer_of(filename, name)
        by_layer[layer] += tt
        if layer == "C builtins":
            c_calls += nc
        else:
            py_calls += nc
        rows.append((tt, nc, layer, f"{Path(filename).name}:{line}({name})" if filename != "~" else name))
    rows.sort(reverse=True)
    total = sum(by_layer.values()) or 1.0
    return {"unit": unit, "n": n, "cpu_profiled_s": cpu, "events": events, "py_calls": py_calls,
            "c_calls": c_calls, "by_layer": by_layer, "total_tt": total, "top": rows[:top]}


def memory_pass(make, top: int) -> dict:
    sim, until, units, _ = make()
    end = until
    if until is None:                          # runs until done: how long, in simulated time?
        probe = make()[0]
        probe.run()
        end = probe.env.now / 1e9
        del probe
    tracemalloc.start()
    sim.run(until=end * 0.2)
    snap1 = tracemalloc.take_snapshot()
    n1 = units()
    tracemalloc.reset_peak()
    sim.run(until=end * 0.8)
    current, peak = tracemalloc.get_traced_memory()
    snap2 = tracemalloc.take_snapshot()
    n2 = units()
    sim.run(until=end)
    tracemalloc.stop()
    diff = snap2.compare_to(snap1, "lineno")
    blocks = sum(d.count_diff for d in diff)
    size = sum(d.size_diff for d in diff)
    tops = sorted(diff, key=lambda d: -d.size_diff)[:top]
    k = max(1, n2 - n1)
    return {"units": k, "blocks_per_unit": blocks / k, "bytes_per_unit": size / k,
            "transient_peak_kib": (peak - current) / 1024,
            "top": [(d.size_diff / k, d.count_diff / k, (f"{Path(d.traceback[0].filename).name}:"
                     f"{d.traceback[0].lineno}")) for d in tops if d.size_diff > 0]}


def report(title: str, p: dict, m: dict) -> None:
    n = max(1, p["n"])
    u = p["unit"]
    # cProfile's self times are wall time; scaled to the pass's CPU time, so that a loaded
    # machine (whose wall clock runs on while others work) shows CPU microseconds
    scale = p["cpu_profiled_s"] / p["total_tt"] * 1e6 / n
    print(f"\n== {title}: {p['n']:,} {u}s, {p['events'] / n:.2f} SimPy events per {u}")
    print(f"   per {u}: {p['py_calls'] / n:.1f} Python calls, {p['c_calls'] / n:.1f} C calls, "
          f"{p['cpu_profiled_s'] / n * 1e6:.1f} us CPU under cProfile (its overhead included)")
    print(f"   memory per {u} (steady state, tracemalloc pass): {m['blocks_per_unit']:+.2f} live blocks, "
          f"{m['bytes_per_unit']:+.1f} bytes kept; transient peak above the live set "
          f"{m['transient_peak_kib']:,.0f} KiB")
    shares = "  ".join(f"{k} {v / p['total_tt']:.0%}" for k, v in p["by_layer"].items() if v > 0)
    print(f"   self time by layer: {shares}")
    print(f"   self time by layer, CPU us per {u} under cProfile: "
          + "  ".join(f"{name} {v * scale:.2f}" for name, v in p["by_layer"].items() if v > 0))
    print(f"   top functions by self time (CPU us per {u} under cProfile, calls per {u}, layer):")
    for tt, nc, layer, name in p["top"]:
        print(f"     {tt * scale:7.2f} us {nc / n:7.2f}  {layer:<14} {name}")
    if m["top"]:
        print(f"   top lines by memory kept (bytes per {u}, blocks per {u}):")
        for size, count, where in m["top"][:5]:
            print(f"     {size:9.1f} B {count:7.2f}  {where}")


def main() -> None:
    ap = argparse.ArgumentParser(description="Profile udp_blast, tcp_bulk and c10k per packet / per update.")
    ap.add_argument("--only", default="udp,tcp,c10k", help="comma-separated subset of udp,tcp,c10k")
    ap.add_argument("--udp", type=int, default=50_000, help="datagrams (default 50000)")
    ap.add_argument("--tcp-seconds", type=float, default=2.0, help="tcp_bulk simulated seconds (default 2)")
    ap.add_argument("--c10k-clients", type=int, default=1000)
    ap.add_argument("--c10k-seconds", type=float, default=2.0)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--trace", action="store_true", help="tracing on (default off)")
    args = ap.parse_args()
    worlds = {
        "udp": (f"udp_blast, {args.udp} datagrams", partial(build_udp, args.udp, args.trace)),
        "tcp": (f"tcp_bulk cubic, {args.tcp_seconds:g} s", partial(build_tcp, args.tcp_seconds, args.trace)),
        "c10k": (f"c10k, {args.c10k_clients} clients x {args.c10k_seconds:g} s",
                 partial(build_c10k, args.c10k_clients, args.c10k_seconds, args.trace)),
    }
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    for w in only:
        if w not in worlds:
            sys.exit(f"--only: unknown world {w!r}; use udp, tcp, c10k")
    print(f"profile.py: trace {'on' if args.trace else 'off'}; CPython {sys.version.split()[0]}")
    for w in only:
        title, make = worlds[w]
        p = profile_pass(make, args.top)
        m = memory_pass(make, args.top)
        report(title, p, m)


if __name__ == "__main__":
    main()
