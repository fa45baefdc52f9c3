"""Determinism: a run is a pure function of (world, programs, seed) — in one process, across
processes, and whatever PYTHONHASHSEED is."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import simsock
from simsock import AF_INET, SOCK_DGRAM
from experiments import udp_overflow

ROOT = Path(__file__).resolve().parent.parent


def env_with_hashseed(seed: int) -> dict:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(seed)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_experiment_run_twice_in_process_identical():
    """udp_overflow.run(PARAMS, seed=3) twice in one process gives identical JSON."""
    one = json.dumps(udp_overflow.run(dict(udp_overflow.PARAMS), seed=3), sort_keys=True)
    two = json.dumps(udp_overflow.run(dict(udp_overflow.PARAMS), seed=3), sort_keys=True)
    assert one == two
    assert json.loads(one)["dropped_rcvbuf"] > 0        # the run did something worth comparing


def test_cli_result_json_identical_across_hash_seeds(tmp_path):
    """`simsock run udp_overflow --out DIR` in two processes with PYTHONHASHSEED=1 and =2
    writes byte-identical result.json files."""
    procs = []
    for seed in (1, 2):
        out = tmp_path / f"h{seed}"
        procs.append((out, subprocess.Popen(
            [sys.executable, "-m", "simsock.cli", "run", "udp_overflow", "--out", str(out)],
            env=env_with_hashseed(seed), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for out, p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, (stdout.decode(), stderr.decode())
    a = (procs[0][0] / "result.json").read_bytes()
    b = (procs[1][0] / "result.json").read_bytes()
    assert a == b
    assert json.loads(a)["seed"] == 1


TRACE_SCRIPT = textwrap.dedent("""
    import sys
    import simsock
    from simsock import AF_INET, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF

    sim = simsock.Simulation(seed=11)
    hosts = [sim.add_host(n) for n in ("alpha", "beta", "gamma", "delta")]
    sim.add_link("alpha", "beta", rate="5Mbit", delay="2ms", loss=0.2, queue=5)
    sim.add_link("alpha", "gamma", rate="50Mbit", delay="1ms")
    sim.add_link("delta", "beta", rate="1Mbit", delay="3ms", loss=0.1)

    async def server(k, port):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, 4000)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.05)
        while True:
            try:
                data, addr = await s.recvfrom(2000)
            except TimeoutError:
                continue
            await s.sendto(data[:10], addr)
            await k.sleep("3ms")

    async def client(k, dest, n):
        socks = [k.socket(AF_INET, SOCK_DGRAM) for _ in range(3)]
        for i in range(n):
            s = socks[i % 3]
            await s.sendto(bytes([i % 256]) * (100 + 37 * i % 1300), dest)
            if i % 5 == 0:
                await k.sleep("1ms")
        c = k.socket(AF_INET, SOCK_DGRAM)
        await c.connect(("gamma", 1))        # nobody there: ICMP port unreachable
        await c.send(b"x")
        await k.sleep("10ms")
        try:
            await c.recv(10)
        except ConnectionRefusedError:
            pass

    sim.host("beta").spawn(server, 7000)
    sim.host("gamma").spawn(server, 7001)
    sim.host("alpha").spawn(client, ("beta", 7000), 60)
    sim.host("alpha").spawn(client, ("gamma", 7001), 40)
    sim.host("delta").spawn(client, ("beta", 7000), 30)
    sim.host("beta").spawn(client, ("localhost", 7000), 10)
    sim.run(until="2s")
    sim.trace.to_jsonl(sys.argv[1])
""")


def test_trace_jsonl_identical_across_processes_and_hash_seeds(tmp_path):
    """A world with several hosts, lossy links, queue drops, ephemeral ports, timeouts and
    ICMP errors writes byte-identical trace JSON Lines in two processes with different
    PYTHONHASHSEED."""
    script = tmp_path / "world.py"
    script.write_text(TRACE_SCRIPT)
    procs = []
    for seed in (1, 2):
        out = tmp_path / f"trace{seed}.jsonl"
        procs.append((out, subprocess.Popen([sys.executable, str(script), str(out)], env=env_with_hashseed(seed),
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for out, p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr.decode()
    a = procs[0][0].read_bytes()
    b = procs[1][0].read_bytes()
    assert a == b
    records = [json.loads(line) for line in a.splitlines()]
    kinds = {(r["type"], r.get("event"), r.get("reason")) for r in records}
    assert ("packet", "drop", "loss") in kinds
    assert ("packet", "deliver", None) in kinds
    assert any(r["type"] == "syscall" and r["errno"] == "ECONNREFUSED" for r in records)


def _loss_pattern(seed: int) -> list[int]:
    sim = simsock.Simulation(seed=seed)
    a = sim.add_host("a")
    b = sim.add_host("b")
    sim.add_link(a, b, rate="100Mbit", delay="1ms", loss=0.3)

    async def send(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for i in range(200):
            await s.sendto(i.to_bytes(2, "big"), ("b", 9000))

    a.spawn(send)
    sim.run(until="1s")
    return [r["uid"] for r in sim.trace.packets("drop") if r["reason"] == "loss"]


def test_same_seed_same_drops_different_seed_different_drops():
    """With loss, the same seed drops the same packets; different seeds drop different
    ones (and about as many)."""
    p1 = _loss_pattern(1)
    assert p1 == _loss_pattern(1)
    p2 = _loss_pattern(2)
    p3 = _loss_pattern(3)
    assert p1 != p2 and p2 != p3 and p1 != p3
    for p in (p1, p2, p3):
        assert 30 <= len(p) <= 90


def test_adding_a_component_does_not_shift_other_streams():
    """Random streams are per component: adding a second lossy link elsewhere does not
    change which packets the first link loses."""
    def pattern(extra: bool):
        sim = simsock.Simulation(seed=4)
        a, b = sim.add_host("a"), sim.add_host("b")
        if extra:
            c, d = sim.add_host("c"), sim.add_host("d")
            sim.add_link(c, d, loss=0.5)
        sim.add_link(a, b, rate="100Mbit", loss=0.3)
        got = []

        async def rx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.bind(("", 9000))
            while True:
                got.append(int.from_bytes(await s.recv(10), "big"))

        async def tx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            for i in range(100):
                await s.sendto(i.to_bytes(2, "big"), ("b", 9000))

        b.spawn(rx)
        a.spawn(tx)
        sim.run(until="1s")
        return got

    assert pattern(False) == pattern(True)


def test_an_object_without_a_repr_is_traced_without_its_memory_address():
    """An IOCP completion key (any object) used to be traced as ``<... object at 0x...>``,
    so iocp_vs_epoll traces differed from process to process."""
    from simsock.trace import trace_value

    class Key:
        pass

    a, b = trace_value(Key()), trace_value(Key())
    assert a == b
    assert "0x" not in a and a.endswith("Key object>")
    assert trace_value([Key()]) == [a]
