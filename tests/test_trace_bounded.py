"""The trace's memory is bounded: headers not payloads, a cap, streaming to disk, per-host pcap."""

import gc
import shutil
import struct
import subprocess
import tracemalloc

import pytest

import simsock
from simsock import AF_INET, SOCK_DGRAM, SOCK_STREAM, pcap
from simsock.trace import read_jsonl


def world(**trace_kw):
    """A TCP transfer through a router with loss, UDP datagrams (fragmented), loopback."""
    sim = simsock.Simulation(seed=3, **trace_kw)
    a, b = sim.add_host("a"), sim.add_host("b")
    r = sim.add_router("r", queue=20)
    sim.add_link(a, r, rate="10Mbit", delay="1ms", loss=0.02)
    sim.add_link(r, b, rate="5Mbit", delay="3ms")

    async def server(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        ls.bind(("0.0.0.0", 80))
        ls.listen()
        c, _ = await ls.accept()
        while await c.recv(65536):
            pass
        c.close()

    async def client(k):
        s = k.socket(AF_INET, SOCK_STREAM)
        await s.connect(("b", 80))
        await s.sendall(b"x" * 200_000)
        s.close()
        u = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(3):
            await u.sendto(b"y" * 4000, ("b", 9))
        lo = k.socket(AF_INET, SOCK_DGRAM)
        lo.bind(("127.0.0.1", 7))
        await u.sendto(b"z", ("127.0.0.1", 7))

    b.spawn(server)
    a.spawn(client)
    sim.run(until="5s")
    return sim


@pytest.fixture(scope="module")
def full():
    return world()


def test_packet_records_keep_headers_not_payloads():
    """2000 datagrams of 8000 bytes: a traced run holds well under 1 KiB per record more than
    an untraced one (it kept every packet and its payload before: ~8 KiB per datagram)."""
    def held(trace):
        sim = simsock.Simulation(seed=1, trace=trace)
        a, b = sim.add_host("a"), sim.add_host("b")
        sim.add_link(a, b, rate="1Gbit", delay="1ms", mtu=9000)

        async def rx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            s.setsockopt(simsock.SOL_SOCKET, simsock.SO_RCVBUF, 64 << 20)
            s.bind(("0.0.0.0", 9))
            for _ in range(2000):
                await s.recv(8000)

        async def tx(k):
            s = k.socket(AF_INET, SOCK_DGRAM)
            for i in range(2000):
                await s.sendto(bytes([i & 255]) * 8000, ("b", 9))

        b.spawn(rx)
        a.spawn(tx)
        gc.collect()
        tracemalloc.start()
        sim.run()
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return size, len(sim.trace)

    off, _ = held(False)
    on, records = held(True)
    assert records >= 3 * 2000
    assert (on - off) / records < 1024, f"{(on - off) / records:.0f} bytes per trace record"


def test_ring_keeps_the_last_n_records_and_counts_the_rest(full, tmp_path):
    every = list(full.trace.records())
    capped = world(trace_limit=100)
    assert len(capped.trace) == 100
    assert capped.trace.dropped == len(every) - 100
    assert list(capped.trace.records()) == every[-100:]
    capped.trace.to_jsonl(tmp_path / "c.jsonl")
    lines = read_jsonl(tmp_path / "c.jsonl")
    assert lines[0]["kind"] == "trace_dropped"
    assert lines[0]["fields"] == {"dropped": len(every) - 100, "keep": "last", "limit": 100}
    assert lines[1:] == every[-100:]


def test_keep_first_keeps_the_first_n(full, tmp_path):
    every = list(full.trace.records())
    capped = world(trace_limit=50, trace_keep="first")
    assert list(capped.trace.records()) == every[:50]
    assert capped.trace.dropped == len(every) - 50
    capped.trace.to_jsonl(tmp_path / "f.jsonl")
    assert read_jsonl(tmp_path / "f.jsonl")[-1]["fields"]["keep"] == "first"


def test_streamed_jsonl_is_byte_identical_and_ram_holds_one_batch(full, tmp_path, monkeypatch):
    monkeypatch.setattr("simsock.trace.BATCH", 128)
    full.trace.to_jsonl(tmp_path / "ram.jsonl")
    streamed = world(trace_file=tmp_path / "run.jsonl")
    assert len(full.trace) > 8 * 128, "the world must be bigger than a few batches"
    assert len(streamed.trace._rows) < 128
    assert (tmp_path / "run.jsonl").read_bytes() == (tmp_path / "ram.jsonl").read_bytes()
    assert list(streamed.trace.records()) == read_jsonl(tmp_path / "ram.jsonl")
    assert len(streamed.trace) == len(full.trace)
    assert [r["uid"] for r in streamed.trace.packets("drop")] == [r["uid"] for r in full.trace.packets("drop")]
    with pytest.raises(ValueError, match="trace_pcap"):
        streamed.trace.to_pcap(tmp_path / "x.pcap")


@pytest.mark.parametrize("at", [None, "b", "a->r"])
def test_streamed_pcap_equals_the_exported_one(full, tmp_path, at, monkeypatch):
    monkeypatch.setattr("simsock.trace.BATCH", 64)
    full.trace.to_pcap(tmp_path / "ram.pcap", at=at)
    streamed = world(trace=False, trace_pcap=tmp_path / "run.pcap", trace_pcap_at=at)
    assert len(streamed.trace) == 0, "trace=False with a pcap keeps nothing in RAM"
    assert (tmp_path / "run.pcap").read_bytes() == (tmp_path / "ram.pcap").read_bytes()


def test_a_streamed_pcap_at_an_unknown_place_fails_when_the_run_starts(tmp_path):
    sim = simsock.Simulation(trace_pcap=tmp_path / "x.pcap", trace_pcap_at="nowhere")
    sim.add_host("a")
    with pytest.raises(ValueError, match="'nowhere'.*a:lo"):
        sim.run()


def test_pcap_without_payloads_is_truncated_like_tcpdump_s(full, tmp_path):
    """Captured length stops after the transport header; the original length is the frame's."""
    n = full.trace.to_pcap(tmp_path / "h.pcap", at="r->b")
    data = (tmp_path / "h.pcap").read_bytes()
    snaplen = struct.unpack_from("<I", data, 16)[0]
    assert snaplen == 14 + 20 + 60
    pos, sizes = 24, [r["size"] for r in full.trace.packets("arrive") if r["where"] == "r->b"]
    for size in sizes:
        _s, _ns, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert orig == 14 + size and incl <= min(orig, snaplen)
        frame = data[pos + 16:pos + 16 + incl]
        assert struct.unpack("!H", frame[16:18])[0] == size, "IP total length is the packet's"
        pos += 16 + incl
    assert pos == len(data) and n == len(sizes) > 100


def test_pcap_with_payloads_has_whole_frames(tmp_path):
    sim = world(trace_payloads=True)
    sim.trace.to_pcap(tmp_path / "p.pcap", at="r->b")
    _lt, frames = pcap.read_pcap(tmp_path / "p.pcap")
    sizes = [r["size"] for r in sim.trace.packets("arrive") if r["where"] == "r->b"]
    assert [len(f) for _, f in frames] == [14 + s for s in sizes]
    assert any(b"x" * 1000 in f for _, f in frames)


def test_per_host_pcap_captures_what_the_host_sends_and_receives(full, tmp_path):
    n = full.trace.to_pcap(tmp_path / "b.pcap", at="b")
    recs = full.trace.packets()
    sent = [r for r in recs if r["event"] == "enqueue" and r["where"] in ("b->r", "b:lo")]
    received = [r for r in recs if r["event"] == "arrive" and r["where"] == "r->b"]
    assert sent and received and n == len(sent) + len(received)
    _lt, frames = pcap.read_pcap(tmp_path / "b.pcap")
    b_ip = pcap.ip_bytes(full.hosts["b"].address)
    assert all(b_ip in (f[26:30], f[30:34]) for _, f in frames)
    # a's capture includes its loopback datagram
    full.trace.to_pcap(tmp_path / "a.pcap", at="a")
    _lt, frames = pcap.read_pcap(tmp_path / "a.pcap")
    assert any(f[26:30] == bytes((127, 0, 0, 1)) for _, f in frames)


def test_unknown_at_lists_the_valid_names(full, tmp_path):
    with pytest.raises(ValueError) as e:
        full.trace.to_pcap(tmp_path / "x.pcap", at="bb")
    msg = str(e.value)
    assert "'bb'" in msg and "a->r" in msg and "b:lo" in msg and ", r," in msg
    # another event at a node: the records made at the node itself (deliver, drop)
    drops = [r for r in full.trace.packets("drop") if r["where"] == "b"]
    assert full.trace.to_pcap(tmp_path / "d.pcap", at="b", event="drop") == len(drops) > 0


@pytest.mark.parametrize("kw, match", [
    ({"trace_limit": 0}, "trace_limit"), ({"trace_limit": "10"}, "trace_limit"),
    ({"trace_keep": "middle"}, "trace_keep"), ({"trace_payloads": "yes"}, "trace_payloads"),
    ({"trace_limit": 10, "trace_file": "x.jsonl"}, "trace_file"),
])
def test_bad_trace_options_are_refused(kw, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((TypeError, ValueError), match=match):
        simsock.Simulation(**kw)


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
@pytest.mark.parametrize("payloads", [False, True])
def test_tshark_reads_host_pcaps_with_and_without_payloads(tmp_path, payloads):
    sim = world(trace_payloads=payloads)
    path = tmp_path / "b.pcap"
    n = sim.trace.to_pcap(path, at="b")
    base = ["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE"]
    out = subprocess.run(base + ["-T", "fields", "-E", "occurrence=f", "-e", "ip.checksum.status", "-e", "ip.src", "-e", "ip.dst",
                                 "-e", "tcp.checksum.status", "-e", "_ws.malformed"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(rows) == n
    b = sim.hosts["b"].address
    assert all(r[0] == "1" and b in (r[1], r[2]) and r[4] == "" for r in rows)
    tcp_status = {r[3] for r in rows if r[3]}
    # with payloads every TCP checksum is good (1); without them a segment carrying data cannot
    # be verified (2, as in a tcpdump -s capture), a bare ACK still can: never bad (0)
    assert tcp_status == ({"1"} if payloads else {"1", "2"})


def test_a_routers_pcap_is_what_its_ports_send_and_receive(full, tmp_path):
    n = full.trace.to_pcap(tmp_path / "r.pcap", at="r")
    recs = full.trace.packets()
    assert n == sum(1 for r in recs if (r["event"] == "enqueue" and r["where"] in ("r->a", "r->b"))
                    or (r["event"] == "arrive" and r["where"] in ("a->r", "b->r"))) > 0


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.sampled_from(["first", "last"]), st.integers(0, 200))
def test_a_capped_trace_is_the_matching_slice_of_the_full_one(limit, keep, n):
    """Whatever the limit and the number of records, the kept records are the first/last
    ``limit`` of what an uncapped trace holds, and ``dropped`` counts exactly the others."""
    from simsock.trace import Trace
    full, capped = Trace(), Trace(limit=limit, keep=keep)
    for i in range(n):
        for tr in (full, capped):
            if i % 3:
                tr.event(i, "h", "tick", {"i": i})
            else:
                tr.syscall(i, "h", "t", "recv", 3, [i], i, None)
    every = list(full.records())
    expect = every[:limit] if keep == "first" else every[max(0, n - limit):]
    assert list(capped.records()) == expect
    assert len(capped) == len(expect) and capped.dropped == n - len(expect)


def test_a_trace_object_can_be_given_and_reports_what_it_holds(tmp_path):
    from simsock.trace import Trace
    tr = Trace(limit=10, keep="first")
    sim = simsock.Simulation(trace=tr)
    assert sim.trace is tr and tr.world is sim
    a, b = sim.add_host("a"), sim.add_host("b")
    sim.add_link(a, b)

    async def tx(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        for _ in range(20):
            await s.sendto(b"x", ("b", 9))

    a.spawn(tx)
    sim.run()
    stats = tr.stats()
    assert stats["kept"] == 10 and stats["dropped"] == tr.dropped > 20 and stats["keep"] == "first"
