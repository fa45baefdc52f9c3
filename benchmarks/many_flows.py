"""Benchmark: cost per forwarded packet through one router, for 1 to 1000 flows.

``N`` paced flows run from sender hosts through one router ``r1`` to receiver hosts (a star,
1 Gbit/s 1 ms links, no congestion): either spread over at most 10 + 10 hosts, or one sender
and one receiver host per flow (2000 hosts for 1000 flows). The *total* packet rate is the same for
every ``N`` (each flow sends ``RATE / N`` packets per second, flows start staggered), so the
router forwards the same number of packets; what changes is how many flows, sockets, hosts
and routing-table entries there are. Prints, per ``N``: wall time per forwarded packet (the
run only; building the world is reported apart) and SimPy events per forwarded packet, then
the ratio of 1000 flows to 1 flow. Target (issue #4): at most 1.3x. "Per packet" is measured
in the steady state (the middle 60 % of the run, every flow running); the cost including
each flow's start and end (thread, socket, first route lookups) is printed beside it.

UDP flows send 1000-byte datagrams; TCP flows (TCP_NODELAY) write 1000-byte messages at the
same pace, so the router also forwards their ACKs. Tracing is off. With ``--monitor`` a
network monitor (``sim.monitor(bin="10ms")``) records every channel and flow, to show what
monitoring costs per packet; ``--case udp-hosts`` (or ``udp``, ``tcp``, ``tcp-hosts``) runs
one of the four cases only (``-hosts``: one host pair per flow).

    python benchmarks/many_flows.py [PACKETS_PER_RUN] [--monitor] [--case CASE]
"""

from __future__ import annotations

import sys
import time

import simsock
from simsock import AF_INET, IPPROTO_TCP, SOCK_DGRAM, SOCK_STREAM, TCP_NODELAY

SIZE = 1000
RATE = 20_000            # packets per second, all flows together
FLOW_COUNTS = (1, 10, 100, 1000)


CASES = {"udp": ("udp", 10), "udp-hosts": ("udp", None), "tcp": ("tcp", 10), "tcp-hosts": ("tcp", None)}


def build(n: int, proto: str, packets: int, max_hosts: int | None = None, monitor: bool = False):
    """``n`` flows from ``h = min(n, max_hosts)`` sender hosts to ``h`` receiver hosts (flow i:
    sender i % h -> receiver i % h, port 9000 + i // h); ``monitor``: watch every channel and
    flow with a network monitor (10 ms bins)."""
    sim = simsock.Simulation(seed=1, trace=False)
    r1 = sim.add_router("r1")
    h = n if max_hosts is None else min(n, max_hosts)
    senders = [sim.add_host(f"s{i}") for i in range(h)]
    receivers = [sim.add_host(f"d{i}") for i in range(h)]
    for host in senders + receivers:
        sim.add_link(host, r1, rate="1Gbit", delay="1ms")
    if monitor:
        sim.monitor(bin="10ms")
    per_flow = packets // n
    interval = n / RATE
    done = [0]

    async def udp_rx(k, port):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        for _ in range(per_flow):
            await s.recv(2048)
        done[0] += 1

    async def udp_tx(k, dest, offset):
        s = k.socket(AF_INET, SOCK_DGRAM)
        data = bytes(SIZE)
        await k.sleep(offset)
        start = k.now
        for i in range(per_flow):
            await s.sendto(data, dest)
            due = start + (i + 1) * interval
            if due > k.now:
                await k.sleep(due - k.now)

    async def tcp_rx(k, port):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", port))
        ls.listen()
        conn, _ = await ls.accept()
        want = per_flow * SIZE
        while want:
            data = await conn.recv(65536)
            if not data:
                break
            want -= len(data)
        done[0] += 1

    async def tcp_tx(k, dest, offset):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        await k.sleep(offset)
        await s.connect(dest)
        data = bytes(SIZE)
        start = k.now
        for i in range(per_flow):
            await s.sendall(data)
            due = start + (i + 1) * interval
            if due > k.now:
                await k.sleep(due - k.now)

    rx, tx = (udp_rx, udp_tx) if proto == "udp" else (tcp_rx, tcp_tx)
    for i in range(n):
        port = 9000 + i // h
        receivers[i % h].spawn(rx, port)
        senders[i % h].spawn(tx, (receivers[i % h].name, port), i * interval / n)
    return sim, r1, done


def measure(n: int, proto: str, packets: int, max_hosts: int | None, repeat: int = 2,
            monitor: bool = False) -> dict:
    """Best of ``repeat`` runs (CPU time of this process, so other load on the machine
    counts less)."""
    duration = packets / RATE
    best = None
    for _ in range(repeat):
        t0 = time.process_time()
        sim, r1, done = build(n, proto, packets, max_hosts, monitor)
        t1 = time.process_time()
        # steady state: the middle 60 % of the run, after every flow has started and
        # before any has finished
        sim.run(until=0.2 * duration)
        e1, f1, t2 = next(sim.env._eid), r1.forwarded, time.process_time()
        sim.run(until=0.8 * duration)
        e2, f2, t3 = next(sim.env._eid), r1.forwarded, time.process_time()
        sim.run()
        t4 = time.process_time()
        assert done[0] == n, f"only {done[0]} of {n} receivers finished"
        assert sim.drops == {}, sim.drops
        row = {"n": n, "build_s": t1 - t0, "run_s": t4 - t1, "forwarded": r1.forwarded,
               "us_per_packet": (t3 - t2) / (f2 - f1) * 1e6, "events_per_packet": (e2 - e1) / (f2 - f1),
               "us_per_packet_all": (t4 - t1) / r1.forwarded * 1e6}
        if best is None or row["us_per_packet"] < best["us_per_packet"]:
            best = row
    return best


def main() -> None:
    args = sys.argv[1:]
    monitor = "--monitor" in args
    if monitor:
        args.remove("--monitor")
    cases = list(CASES)
    if "--case" in args:
        i = args.index("--case")
        if i + 1 >= len(args) or args[i + 1] not in CASES:
            sys.exit(f"--case needs one of {', '.join(CASES)}")
        cases = [args[i + 1]]
        del args[i:i + 2]
    if len(args) > 1 or (args and not args[0].isdigit()):
        sys.exit("usage: python benchmarks/many_flows.py [PACKETS_PER_RUN] [--monitor] [--case CASE]")
    packets = int(args[0]) if args else 20_000
    print(f"many_flows: {packets} packets of {SIZE} bytes through one router at {RATE} packets/s in total, "
          f"split over N flows (star, 1 Gbit/s 1 ms links, trace off, network monitor "
          f"{'on, 10 ms bins' if monitor else 'off'}); CPU time, best of 2")
    for case in cases:
        proto, max_hosts = CASES[case]
        rows = [measure(n, proto, packets, max_hosts, monitor=monitor) for n in FLOW_COUNTS]
        hosts = "one sender and one receiver host per flow" if max_hosts is None else \
            f"flows spread over at most {max_hosts} sender and {max_hosts} receiver hosts"
        from simsock.profiles import LINUX
        cc = f" ({LINUX.tcp_congestion_control}, the linux profile's default)" if proto == "tcp" else ""
        print(f"  {proto.upper()}{cc}, {hosts}")
        print(f"    {'flows':>6} {'forwarded':>10} {'us/packet':>10} {'events/packet':>14} "
              f"{'us/packet incl. flow setup':>27} {'build s':>8} {'run s':>7}")
        for r in rows:
            print(f"    {r['n']:>6} {r['forwarded']:>10} {r['us_per_packet']:>10.2f} {r['events_per_packet']:>14.2f} "
                  f"{r['us_per_packet_all']:>27.2f} {r['build_s']:>8.2f} {r['run_s']:>7.2f}")
        ratio = rows[-1]["us_per_packet"] / rows[0]["us_per_packet"]
        ratio_all = rows[-1]["us_per_packet_all"] / rows[0]["us_per_packet_all"]
        print(f"    {FLOW_COUNTS[-1]} flows / 1 flow: steady-state cost per packet {ratio:.2f}x (target <= 1.3x), "
              f"events per packet {rows[-1]['events_per_packet'] / rows[0]['events_per_packet']:.2f}x, "
              f"whole run incl. flow setup {ratio_all:.2f}x")


if __name__ == "__main__":
    main()
