"""One measured run in this process, for benchmarks/compare.py (which runs it in a child).

    python benchmarks/_workloads.py WORKLOAD ARG...

prints one line of JSON: ``units`` (work done: datagrams, data segments, updates, packets),
``cpu_s`` (process CPU time of the run itself, world building excluded), ``events`` (SimPy
events) and ``rss_mib`` (peak RSS of the process). The simsock worlds use only the public
API, so that the same file runs against an older commit (PYTHONPATH names which simsock).
The ns.py worlds run under an interpreter that has ns.py 0.4.3.

Workloads: ``udp N TRACE``, ``tcp SECONDS TRACE``, ``c10k CLIENTS SECONDS``,
``flows N PACKETS CASE``, ``nspy-udp N``, ``nspy-tcp SECONDS``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from functools import partial


def _result(units, cpu, events, **extra):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"units": units, "cpu_s": cpu, "events": events, "rss_mib": rss, **extra}


# The worlds, shared with benchmarks/profile.py: build_*() -> (sim, until, units, unit), where
# units() counts the work done so far and unit names it.

def build_udp(n: int, trace: bool):
    """udp_blast: N datagrams of 1000 B, blocking sendto every 10 us -> 1 Gbit/s 1 ms -> blocking recv."""
    import simsock
    from simsock import AF_INET, SOCK_DGRAM
    sim = simsock.Simulation(seed=1, trace=trace)
    a = sim.add_host("a")
    b = sim.add_host("b")
    sim.add_link(a, b, rate="1Gbit", delay="1ms")
    got = [0]

    async def receiver(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 8 << 20)
        s.bind(("0.0.0.0", 9000))
        while got[0] < n:
            await s.recv(2048)
            got[0] += 1

    async def sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        data = bytes(1000)
        for _ in range(n):
            await s.sendto(data, ("b", 9000))
            await k.sleep(1e-5)

    b.spawn(receiver)
    a.spawn(sender)
    return sim, None, lambda: got[0], "datagram"


def build_tcp(seconds: float, trace: bool):
    """tcp_bulk: one cubic flow, 100 Mbit/s, 10 ms one way, BDP queue; units = data segments."""
    import simsock
    from simsock import AF_INET, IPPROTO_TCP, SOCK_STREAM, TCP_CONGESTION
    sim = simsock.Simulation(seed=1, trace=trace)
    a = sim.add_host("sender")
    b = sim.add_host("receiver")
    link = sim.add_link(a, b, rate="100Mbit", delay="10ms", queue=int(100e6 * 0.020 / 8 / 1500))

    async def receiver(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 5001))
        ls.listen()
        conn, _ = await ls.accept()
        while await conn.recv(1 << 20):
            pass

    async def sender(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        s.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        await s.connect(("receiver", 5001))
        block = bytes(1 << 20)
        while True:
            await s.sendall(block)

    b.spawn(receiver)
    a.spawn(sender)
    return sim, seconds, lambda: link.forward.tx_packets, "data segment"


def build_c10k(clients: int, seconds: float, trace: bool, record: dict | None = None):
    """benchmarks/c10k.py's world; units = updates sent by the clients (``record`` receives
    the clients' shared record, for the connected/received counts)."""
    import simsock
    from models.clients import game_client, new_record
    from models.servers_readiness import epoll_et_server, new_server_record
    sim = simsock.Simulation(seed=1, trace=trace)
    server = sim.add_host("server", cores=1)
    hosts = sim.add_host("clients", cores=8)
    sim.add_link(server, hosts, rate="10Gbit", delay="1ms")
    srec, crec = new_server_record(), new_record()
    if record is not None:
        record["clients"] = crec
    server.spawn(partial(epoll_et_server, record=srec, size=100, backlog=4096), 7200, name="epoll-et")
    for i in range(clients):
        hosts.spawn(partial(game_client, period=0.1, size=100, start_delay=0.01 + i / clients, record=crec),
                    ("server", 7200), name=f"c{i}")
    return sim, seconds, lambda: crec["sent"], "update"


def udp(n: str, trace: str) -> dict:
    sim, _, units, _ = build_udp(int(n), trace == "1")
    c0 = time.process_time()
    sim.run()
    cpu = time.process_time() - c0
    assert units() == int(n), f"received {units()} of {n}"
    return _result(units(), cpu, next(sim.env._eid))


def tcp(seconds: str, trace: str) -> dict:
    sim, until, units, _ = build_tcp(float(seconds), trace == "1")
    c0 = time.process_time()
    sim.run(until=until)
    cpu = time.process_time() - c0
    return _result(units(), cpu, next(sim.env._eid))


def c10k(clients: str, seconds: str) -> dict:
    c0 = time.process_time()
    rec = {}
    sim, until, units, _ = build_c10k(int(clients), float(seconds), False, rec)
    c1 = time.process_time()
    sim.run(until=until)
    cpu = time.process_time() - c1
    crec = rec["clients"]
    return _result(units(), cpu, next(sim.env._eid), total_cpu_s=time.process_time() - c0,
                   connected=crec["connected"], received=crec["received"])


def flows(n: str, packets: str, case: str) -> dict:
    """benchmarks/many_flows.py, one flow count: steady-state CPU per forwarded packet."""
    import many_flows
    proto, max_hosts = many_flows.CASES[case]
    row = many_flows.measure(int(n), proto, int(packets), max_hosts, repeat=1)
    return _result(row["forwarded"], row["us_per_packet"] * 1e-6 * row["forwarded"], 0,
                   us_per_packet=row["us_per_packet"])




def nspy_udp(n: str) -> dict:
    """ns.py 0.4.3: DistPacketGenerator (1000 B every 10 us) -> Port(1 Gbit/s) -> Wire(1 ms) -> PacketSink."""
    import simpy
    from ns.packet.dist_generator import DistPacketGenerator
    from ns.packet.sink import PacketSink
    from ns.port.port import Port
    from ns.port.wire import Wire
    n = int(n)
    env = simpy.Environment()
    gen = DistPacketGenerator(env, "flow_1", lambda: 1e-5, lambda: 1000, flow_id=0, size=1000 * n)
    port = Port(env, rate=1e9)
    wire = Wire(env, lambda: 1e-3)
    sink = PacketSink(env)
    gen.out = port
    port.out = wire
    wire.out = sink
    c0 = time.process_time()
    env.run()
    cpu = time.process_time() - c0
    return _result(sink.packets_received[0], cpu, next(env._eid))


def nspy_tcp(seconds: str) -> dict:
    """ns.py 0.4.3's TCP: TCPPacketGenerator (cubic, MSS 1448, bulk) -> Port(100 Mbit/s, BDP queue)
    -> Wire(10 ms) -> TCPSink -> Wire(10 ms) -> back; units = data packets the port sent."""
    import simpy
    from ns.flow.cubic import TCPCubic
    from ns.flow.flow import Flow
    from ns.packet.tcp_generator import TCPPacketGenerator
    from ns.packet.tcp_sink import TCPSink
    from ns.port.port import Port
    from ns.port.wire import Wire
    seconds = float(seconds)
    env = simpy.Environment()
    mss = 1448
    flow = Flow(fid=0, src="a", dst="b", size=10 ** 12, start_time=0, finish_time=seconds)
    sender = TCPPacketGenerator(env, flow=flow, cc=TCPCubic(mss=mss, cwnd=10 * mss), element_id="a")
    sender.mss = mss
    port = Port(env, rate=100e6, qlimit=int(100e6 * 0.020 / 8 / 1500) * 1500, limit_bytes=True)
    down = Wire(env, lambda: 0.010)
    up = Wire(env, lambda: 0.010)
    sink = TCPSink(env, rec_arrivals=False, rec_waits=False, rec_flow_ids=False)
    sender.out = port
    port.out = down
    down.out = sink
    sink.out = up
    up.out = sender
    c0 = time.process_time()
    env.run(until=seconds)
    cpu = time.process_time() - c0
    return _result(port.packets_received, cpu, next(env._eid), acked_bytes=sender.last_ack)


WORKLOADS = {"udp": udp, "tcp": tcp, "c10k": c10k, "flows": flows, "nspy-udp": nspy_udp, "nspy-tcp": nspy_tcp}

if __name__ == "__main__":
    print(json.dumps(WORKLOADS[sys.argv[1]](*sys.argv[2:])))
