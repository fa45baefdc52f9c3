"""Benchmark: CUBIC vs BBR on the ``router_congestion`` bottleneck, TCP alone.

The world of ``experiments/router_congestion.py`` without the flood: ``n`` bulk TCP flows
(default 4) from ``left{i}`` to ``right{i}`` through ``r1`` ==10 Mbit/s, 10 ms== ``r2``
(access links 100 Mbit/s, 1 ms), a 100-packet drop-tail queue at ``r1``. Each run names its
algorithm on every socket (``setsockopt(TCP_CONGESTION)``); the line printed per algorithm
gives aggregate goodput, bottleneck utilisation, the queueing delay at ``r1`` (queued bytes
/ link rate, sampled every 10 ms after ``warmup``: mean, 95th percentile, max), drops and
retransmissions, Jain's fairness index over the flows' goodputs, and wall time.

    python benchmarks/bbr_vs_cubic.py [seconds] [flows,flows...] [--plot FILE.png]

What to expect: both fill the link; CUBIC keeps the buffer nearly full (its sawtooth
between drops: ~100 ms of queueing delay). One BBR flow keeps only what its 2-BDP cwnd cap
leaves over the path's BDP (a few ms) and drops nothing after STARTUP. Several BBR flows
keep more: at 2.5 Mbit/s each, a flow's BDP is ~6 packets while its cwnd adds BBR v1's
fixed allowances (3 TSO bursts of 2 segments, ACK aggregation), so 4 flows queue ~3/4 of
what CUBIC does -- the known behaviour of BBR v1 at low per-flow BDP, without CUBIC's drops.
The figure (``--plot``) shows the queueing delay over time for the last flow count.
"""

from __future__ import annotations

import sys
import time

from models.topologies import dumbbell
from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, TCP_CONGESTION

RATE = 10_000_000
STEP = 0.01


def run(cc: str, seconds: float = 10.0, flows: int = 4, warmup: float = 2.0) -> dict:
    sim, left, right, _ = dumbbell(n_left=flows, n_right=flows, seed=1, queue=100, trace=False)
    got = [0] * flows
    socks = []

    def server(i):
        async def srv(k):
            ls = k.socket(AF_INET, SOCK_STREAM)
            ls.bind(("0.0.0.0", 5001))
            ls.listen()
            c, _ = await ls.accept()
            while d := await c.recv(1 << 16):
                got[i] += len(d)
        return srv

    def client(i):
        async def cli(k):
            s = k.socket(AF_INET, SOCK_STREAM)
            s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, cc.encode())
            socks.append(s)
            await s.connect((f"right{i + 1}", 5001))
            block = bytes(1 << 16)
            while True:
                await s.send(block)
        return cli

    for i in range(flows):
        right[i].spawn(server(i))
        left[i].spawn(client(i))
    port = next(c for ln in sim.links for c in (ln.forward, ln.backward) if c.name == "r1->r2")
    delays, times = [], []
    t0 = time.perf_counter()
    base = None
    busy0 = 0
    for i in range(int(round(seconds / STEP))):
        t = (i + 1) * STEP
        sim.run(until=t)
        if base is None and t >= warmup - 1e-9:
            base, busy0 = list(got), port.busy_ns
        times.append(t)
        delays.append(port.queued_bytes() * 8 / RATE * 1000)
    wall = time.perf_counter() - t0
    measured = [d for t, d in zip(times, delays) if t > warmup]
    rates = [(g - b) * 8 / (seconds - warmup) for g, b in zip(got, base)]
    srt = sorted(measured)
    return {
        "cc": cc, "flows": flows, "goodput_mbit": sum(rates) / 1e6,
        # busy_ns counts a queued packet's transmission when it is queued (the FIFO fast path): capped
        "utilisation": min((port.busy_ns - busy0) / ((seconds - warmup) * 1e9), 1.0),
        "delay_mean_ms": sum(measured) / len(measured), "delay_p95_ms": srt[int(0.95 * (len(srt) - 1))],
        "delay_max_ms": srt[-1], "drops": port.drops_queue,
        "retransmits": sum(s.conn.stats()["retransmits"] for s in socks),
        "jain": sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)),
        "wall_s": wall, "times": times, "delays": delays,
    }


def main() -> None:
    args = sys.argv[1:]
    plot = None
    if "--plot" in args:
        i = args.index("--plot")
        plot = args[i + 1]
        del args[i:i + 2]
    seconds = float(args[0]) if args else 10.0
    counts = [int(x) for x in args[1].split(",")] if len(args) > 1 else [1, 4]
    print(f"bbr_vs_cubic: bulk TCP flows through 10 Mbit/s, 10 ms (router_congestion's bottleneck, "
          f"100-packet drop-tail), {seconds:g} s simulated, measured after 2 s")
    for flows in counts:
        results = []
        for cc in ("cubic", "bbr"):
            r = run(cc, seconds, flows)
            results.append(r)
            print(f"  {flows} x {cc:5s}: goodput {r['goodput_mbit']:.2f} Mbit/s, "
                  f"utilisation {r['utilisation']:.1%}, queueing delay mean {r['delay_mean_ms']:.1f} ms / "
                  f"p95 {r['delay_p95_ms']:.1f} ms / max {r['delay_max_ms']:.1f} ms, {r['drops']} drops, "
                  f"{r['retransmits']} retransmissions, Jain {r['jain']:.3f}, wall {r['wall_s']:.1f} s")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for r in results:
            ax.plot(r["times"], r["delays"], label=f"{r['cc']} (mean {r['delay_mean_ms']:.1f} ms)", lw=1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("queueing delay at r1 (ms)")
        ax.set_title(f"{results[0]['flows']} TCP flow(s), 10 Mbit/s bottleneck, 100-packet buffer")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"  figure: {plot}")


if __name__ == "__main__":
    main()
