"""simsock/tcp/info.py: struct tcp_info packing, and invariants between TCP_INFO and the
ioctls over simulated transfers."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

import simsock
from simsock import (AF_INET, IPPROTO_TCP, SIOCINQ, SIOCOUTQ, SIOCOUTQNSD, SO_RCVBUF, SO_SNDBUF, SOCK_STREAM,
                     SOL_SOCKET, TCP_INFO)
from simsock.tcp.info import _LAYOUT, FIELDS, TCP_INFO_SIZE, pack_tcp_info, unpack_tcp_info

_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": 0xFFFFFFFFFFFFFFFF}
_BITS = {"snd_wscale": 0xF, "rcv_wscale": 0xF, "delivery_rate_app_limited": 1, "fastopen_client_fail": 3,
         "ecn_mode": 3, "accecn_opt_seen": 3, "accecn_fail_mode": 0xF, "options2": 0xFFFFFF}
_WIDTH = dict(_LAYOUT)


def _field(name):
    top = _BITS.get(name) or _MAX[_WIDTH[name]]
    return st.integers(0, top)


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({name: _field(name) for name in FIELDS}), st.integers(1, TCP_INFO_SIZE))
def test_pack_unpack_round_trip(info, buflen):
    """Every field survives pack -> unpack at its C width (bit fields included), and a buflen
    keeps exactly the fields that fit in it, as a truncated getsockopt does."""
    raw = pack_tcp_info(info)
    assert len(raw) == TCP_INFO_SIZE
    assert unpack_tcp_info(raw) == info
    cut = unpack_tcp_info(pack_tcp_info(info, buflen))
    assert all(cut[k] == info[k] for k in cut)
    assert len(pack_tcp_info(info, buflen)) == buflen


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 60_000), min_size=1, max_size=6), st.sampled_from([4096, 16384, 0]),
       st.sampled_from([0, 0.001, 0.02]))
def test_tcp_info_agrees_with_the_ioctls(writes, buf, pause):
    """During a transfer to a reader that does not read: TCP_INFO's notsent_bytes is SIOCOUTQNSD,
    unacked segments exist only while SIOCOUTQ > SIOCOUTQNSD, the reader's SIOCINQ is what it
    holds, and bytes_received on the reader equals bytes_acked on the writer once settled."""
    seen = []

    async def prog(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        if buf:
            ls.setsockopt(SOL_SOCKET, SO_RCVBUF, buf)
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = k.socket(AF_INET, SOCK_STREAM)
        if buf:
            c.setsockopt(SOL_SOCKET, SO_SNDBUF, buf)
        await c.connect(ls.getsockname())
        s, _ = await ls.accept()
        c.setblocking(False)
        for n in writes:
            try:
                await c.send(b"z" * n)
            except BlockingIOError:
                pass
            await k.sleep(pause)
            info = c.tcp_info()
            raw = struct.unpack_from("<B", c.getsockopt(IPPROTO_TCP, TCP_INFO, 1))[0]
            seen.append((info, k.ioctl(c, SIOCOUTQ), k.ioctl(c, SIOCOUTQNSD), raw))
        await k.settle()
        seen.append((c.tcp_info(), s.tcp_info(), k.ioctl(s, SIOCINQ), k.ioctl(c, SIOCOUTQ)))

    sim = simsock.Simulation(seed=1)
    sim.add_host("a").spawn(prog)
    sim.run(until=5)
    for info, outq, nsd, state in seen[:-1]:
        assert state == info["state"] == 1
        assert info["notsent_bytes"] == nsd <= outq
        assert (info["unacked"] > 0) == (outq > nsd)
    cinfo, sinfo, inq, outq = seen[-1]
    assert sinfo["bytes_received"] == inq                  # the reader read nothing
    if outq == 0:
        assert cinfo["bytes_acked"] - 1 == inq                 # the SYN counts in bytes_acked
