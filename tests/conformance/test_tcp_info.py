"""getsockopt(IPPROTO_TCP, TCP_INFO) and TCP_MAXSEG: the simulator's struct tcp_info against
the real kernel's, over loopback (simsock/tcp/info.py).

The bytes are not compared whole: round-trip times, jiffy-rounded timers and ages differ
between a simulated and a real loopback. The fields that follow from the protocol (state,
MSS values, cwnd, negotiated options, window scales, windows, byte counters, the listener's
aliased fields) must agree exactly.
"""

import struct

import pytest

from simsock.constants import AF_INET, IPPROTO_TCP, SHUT_WR, SOCK_STREAM, TCP_CONGESTION, TCP_INFO, TCP_MAXSEG
from simsock.tcp.info import TCP_INFO_SIZE, pack_tcp_info, unpack_tcp_info
from tests.conformance.harness import needs_linux

LO = "127.0.0.1"

#: Fields that must agree exactly between the simulator and Linux.
EXACT = ("state", "ca_state", "retransmits", "probes", "backoff", "options", "snd_wscale",
         "rcv_wscale", "snd_mss", "rcv_mss", "advmss", "snd_cwnd", "snd_ssthresh", "reordering",
         "pmtu", "rcv_ssthresh", "unacked", "sacked", "lost", "snd_wnd", "rcv_wnd", "bytes_acked",
         "bytes_received", "segs_out", "segs_in", "data_segs_in", "notsent_bytes",
         "delivery_rate_app_limited", "max_pacing_rate")


def run_on(kernel: str, prog, until=3.0):
    """Run ``prog(k, out)`` on one host of the simulator or of the real kernel; return ``out``."""
    out = {}

    async def main(k):
        await prog(k, out)

    if kernel == "sim":
        import simsock
        w = simsock.Simulation(seed=1)
        w.add_host("a").spawn(main)
        w.run(until=until)
    else:
        from simsock.real import RealWorld
        w = RealWorld(seed=1)
        w.add_host("a").spawn(main)
        w.run(until=until, unfinished="stop")
    return out


def info(sock, buflen=1024):
    return unpack_tcp_info(sock.getsockopt(IPPROTO_TCP, TCP_INFO, buflen))


async def loopback_transfer(k, out):
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind((LO, 0))
    ls.listen(8)
    out["listener"] = info(ls)
    fresh = k.socket(AF_INET, SOCK_STREAM)
    out["fresh"] = info(fresh)
    out["fresh_len"] = len(fresh.getsockopt(IPPROTO_TCP, TCP_INFO, 1024))
    out["fresh_int"] = fresh.getsockopt(IPPROTO_TCP, TCP_INFO)
    out["fresh_short"] = fresh.getsockopt(IPPROTO_TCP, TCP_INFO, 10)
    c = k.socket(AF_INET, SOCK_STREAM)
    # the same algorithm on both kernels, whatever this machine's default is
    c.setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    await c.connect(ls.getsockname())
    s, _ = await ls.accept()
    out["client"] = info(c)
    out["server"] = info(s)
    out["helper"] = c.tcp_info()["snd_mss"]             # sock.tcp_info(): the same dict, no system call
    out["maxseg"] = (c.getsockopt(IPPROTO_TCP, TCP_MAXSEG), s.getsockopt(IPPROTO_TCP, TCP_MAXSEG))
    await c.sendall(b"x" * 100_000)
    await k.sleep(0.05)
    got = 0
    while got < 100_000:
        got += len(await s.recv(200_000))
    await k.sleep(0.05)
    out["client_after"] = info(c)
    out["server_after"] = info(s)
    out["maxseg_after"] = c.getsockopt(IPPROTO_TCP, TCP_MAXSEG)
    c.shutdown(SHUT_WR)                    # c goes to TIME_WAIT: its socket is CLOSE (7)
    await k.sleep(0.05)
    s.close()
    await k.sleep(0.05)
    out["time_wait_state"] = c.getsockopt(IPPROTO_TCP, TCP_INFO, 1)
    for x in (c, ls, fresh):
        x.close()


def _differences(sim, real, fields):
    return {f: (sim.get(f), real.get(f)) for f in fields if sim.get(f) != real.get(f)}


def _phase_diffs(sim, real):
    diffs = {}
    for phase in ("listener", "fresh", "client", "server", "client_after", "server_after"):
        d = _differences(sim[phase], real[phase], EXACT)
        if d:
            diffs[phase] = d
    return diffs


def run_real_until_agrees(prog, sim, diff_fn, attempts=3, until=3.0):
    """The real run, repeated up to ``attempts`` times while it disagrees with ``sim`` (a
    loaded machine can delay a real ACK and change the counters; a wrong simulator
    disagrees every time)."""
    for _ in range(attempts):
        real = run_on("real", prog, until=until)
        if not diff_fn(sim, real):
            break
    return real


@pytest.mark.real
@needs_linux
def test_tcp_info_loopback_matches_linux():
    """TCP_INFO of a listener, a fresh socket, both ends right after a loopback connect and
    after a 100 KB transfer: the protocol fields agree with the real kernel's (snd_mss is
    mss_cache bounded to half the peer's max window: 32741 / 32768 after connect, 47616 once
    the window has grown), the struct is 280 bytes, a short buflen truncates it and no
    buflen gives the first int, as on Linux."""
    sim = run_on("sim", loopback_transfer)
    real = run_real_until_agrees(loopback_transfer, sim, _phase_diffs)
    assert real["fresh_len"] == TCP_INFO_SIZE == sim["fresh_len"]
    assert sim["fresh_int"] == real["fresh_int"] == 7        # TCP_CLOSE in the low byte
    assert sim["fresh_short"] == real["fresh_short"]
    assert sim["maxseg"] == real["maxseg"] == (32741, 32768)
    assert sim["helper"] == real["helper"] == 32741
    assert sim["maxseg_after"] == real["maxseg_after"]
    assert sim["time_wait_state"] == real["time_wait_state"] == b"\x07"
    diffs = _phase_diffs(sim, real)
    assert not diffs, f"simulated TCP_INFO differs from Linux's (field: (sim, real)): {diffs}"
    for phase in ("client", "server", "client_after", "server_after"):
        # rto: srtt + max(4 rttvar, 200 ms), which the real kernel keeps in jiffies
        assert 200_000 <= sim[phase]["rto"] <= 210_000 and 200_000 <= real[phase]["rto"] < 1_000_000
        assert sim[phase]["min_rtt"] <= sim[phase]["rtt"] < 10_000
    assert sim["fresh"]["rto"] == real["fresh"]["rto"] == 1_000_000
    # the initial receive space: the active side chose its window for the full advmss (65495)
    assert [sim[p]["rcv_space"] for p in ("client", "server")] == [real[p]["rcv_space"] for p in ("client", "server")]
    assert sim["client_after"]["bytes_sent"] >= 100_000


async def maxseg_set(k, out):
    c = k.socket(AF_INET, SOCK_STREAM)
    seen = []
    for v in (0, 87, 88, 1000, 32767, 32768):
        try:
            c.setsockopt(IPPROTO_TCP, TCP_MAXSEG, v)
            seen.append((v, "ok", c.getsockopt(IPPROTO_TCP, TCP_MAXSEG)))
        except OSError as e:
            seen.append((v, e.errno, c.getsockopt(IPPROTO_TCP, TCP_MAXSEG)))
    c.setsockopt(IPPROTO_TCP, TCP_MAXSEG, 1000)
    ls = k.socket(AF_INET, SOCK_STREAM)
    ls.bind((LO, 0))
    ls.listen(8)
    await c.connect(ls.getsockname())
    s, _ = await ls.accept()
    out["seen"] = seen
    out["after"] = (c.getsockopt(IPPROTO_TCP, TCP_MAXSEG), s.getsockopt(IPPROTO_TCP, TCP_MAXSEG),
                    info(c)["snd_mss"], info(s)["snd_mss"], info(c)["advmss"])
    c.setsockopt(IPPROTO_TCP, TCP_MAXSEG, 500)       # an established connection keeps its MSS
    out["established"] = c.getsockopt(IPPROTO_TCP, TCP_MAXSEG)
    try:
        c.setsockopt(IPPROTO_TCP, TCP_MAXSEG, 20)
        out["tiny"] = "ok"
    except OSError as e:
        out["tiny"] = e.errno
    # segment sizes follow the clamped MSS: a 5000-byte write needs ceil(5000/988) segments
    await c.sendall(b"y" * 5000)
    await k.sleep(0.05)
    got = 0
    while got < 5000:
        got += len(await s.recv(10_000))
    out["data_segs"] = info(s)["data_segs_in"]
    for x in (c, s, ls):
        x.close()


@pytest.mark.real
@needs_linux
def test_tcp_maxseg_setsockopt_matches_linux():
    """setsockopt(TCP_MAXSEG): 0 or 88..32767 (EINVAL otherwise); before connect getsockopt
    returns it; the connection's MSS on both sides is then user_mss less the 12-byte
    timestamp option (1000 -> 988), and data goes in segments of that size."""
    sim = run_on("sim", maxseg_set)
    real = run_real_until_agrees(maxseg_set, sim, lambda a, b: a != b)
    assert sim == real
    assert real["after"][:4] == (988, 988, 988, 988)
    assert real["data_segs"] == 6


def test_pack_unpack_round_trip_and_truncation():
    """pack_tcp_info lays the fields out as struct tcp_info (bit fields in bytes 6 and 7) and
    truncates to buflen; unpack_tcp_info reads back what fits."""
    d = {"state": 1, "snd_wscale": 7, "rcv_wscale": 10, "delivery_rate_app_limited": 1,
         "rto": 201000, "snd_mss": 1448, "bytes_acked": 1 << 40, "total_rto_time": 5}
    raw = pack_tcp_info(d)
    assert len(raw) == 280
    assert raw[6] == 7 | 10 << 4 and raw[7] == 1
    assert struct.unpack_from("<I", raw, 8)[0] == 201000 and struct.unpack_from("<I", raw, 16)[0] == 1448
    back = unpack_tcp_info(raw)
    assert {k: back[k] for k in d} == d
    short = unpack_tcp_info(pack_tcp_info(d, 20))
    assert short["snd_mss"] == 1448 and "rcv_mss" not in short
