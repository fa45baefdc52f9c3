"""The public monitor API: flow keys, per-bin series with one set of bins per monitor,
units, and the tables as DataFrames or CSV."""

from __future__ import annotations

import importlib.util

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM


def _mixed_run():
    """A UDP flow that stops at 0.2 s and a TCP transfer that goes on to ~0.4 s, one link."""
    sim = simsock.Simulation(seed=3)
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b, rate="10Mbit", delay="2ms")
    mon = sim.monitor(bin="5ms")

    async def udp_sender(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        while k.now < 0.2:
            await s.sendto(bytes(1000), ("b", 9000))
            await k.sleep(0.002)

    async def udp_reader(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        s.bind(("0.0.0.0", 9000))
        while True:
            await s.recv(2000)

    async def tcp_reader(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 9001))
        ls.listen(1)
        conn, _ = await ls.accept()
        while await conn.recv(65536):
            pass

    async def tcp_sender(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("b", 9001))
        await s.sendall(bytes(300_000))
        s.close()

    b.spawn(udp_reader)
    b.spawn(tcp_reader)
    a.spawn(udp_sender)
    a.spawn(tcp_sender)
    sim.run(until=0.6)
    return sim, mon


def test_every_series_of_one_monitor_has_the_same_bins():
    """UDP and TCP flows of one run (the UDP one ends early), links and routers: one length,
    that of bin_times_s(), from time 0 to now (before: 41 and 80 bins for two flows)."""
    sim, mon = _mixed_run()
    udp = next(k for k in mon.flows if k.startswith("udp "))
    tcp = next(k for k in mon.flows if k.startswith("tcp 10.0.0.1"))
    times = mon.bin_times_s()
    assert len(times) == 120 and times[:2] == [0.0, 0.005] and mon.bin_s == 0.005
    lengths = {len(mon.flow(udp).throughput_bps()), len(mon.flow(tcp).throughput_bps()),
               len(mon.channel("a->b").utilisation()), len(mon.channel("a->b").drop_rate()),
               len(mon.utilisation("b->a")), len(mon.arrivals("b")), len(mon.drops_at("a"))}
    assert lengths == {len(times)}
    table = mon.series("flows")
    assert {len(v) for v in table.values()} == {len(times)} and table["time_s"] == times


def test_flow_keys_units_and_queue_series():
    sim, mon = _mixed_run()
    udp = next(k for k in mon.flows if k.startswith("udp "))
    assert udp.startswith("udp 10.0.0.1:") and udp.endswith("->10.0.0.2:9000")
    rates = mon.flow(udp).throughput_bps()
    assert 2e6 < sum(rates[4:36]) / 32 <= 4e6 and rates[-1] == 0.0   # at most 1000 B per 2 ms
    times_ns, packets = mon.channel("a->b").queue_packets.to_lists()
    assert all(isinstance(t, int) for t in times_ns) and max(packets) >= 1
    assert all(0.0 <= u <= 1.0 for u in mon.channel("a->b").utilisation())
    with pytest.raises(KeyError, match="flows are named like"):
        mon.flow("udp nowhere")


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed")
def test_to_dataframe_with_pandas():
    sim, mon = _mixed_run()
    df = mon.to_dataframe("links")
    assert df.index.name == "time_s" and len(df) == len(mon.bin_times_s())
    assert "a->b tx_bytes" in df.columns


@pytest.mark.skipif(importlib.util.find_spec("pandas") is not None, reason="pandas is installed")
def test_to_dataframe_without_pandas_points_at_csv(tmp_path):
    sim, mon = _mixed_run()
    with pytest.raises(ImportError, match=r"mon.to_csv\(directory\)"):
        mon.to_dataframe()
    paths = mon.to_csv(tmp_path)
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["drops.csv", "flows.csv", "links.csv", "queues.csv"]


def test_series_refuses_an_unknown_table():
    sim, mon = _mixed_run()
    with pytest.raises(ValueError, match="'links' or 'flows'"):
        mon.series("queues")
