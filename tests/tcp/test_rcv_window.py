"""The receive window Linux advertises on loopback while data waits unread, against the
simulator (measured on Linux 6.18 x86_64; the real-kernel test is skipped off Linux).

A client (TCP_NODELAY) sends ``count`` segments of ``size`` bytes, one send at a time, each
acknowledged before the next; the server, whose SO_RCVBUF was set on the listener (0: not
set), never reads. After each send the sender's view of the window (``ss -ti`` snd_wnd,
i.e. the last advertised window, scaled) is recorded.

What makes these numbers (tcp_queue_rcv, __tcp_select_window, tcp_measure_rcv_mss):

* loopback's receiver queues clones of the sender's skbs, truesize = payload + 832
  (SKB_TX_OVERHEAD), so scaling_ratio = len * 256 / (len + 832);
* an in-order segment is coalesced into the tail skb (tcp_try_coalesce) and charged only its
  payload, once the sender has freed its original of that tail skb (skb_cloned) and while
  the two hold at most MAX_SKB_FRAGS (17) page fragments -- so sk_rmem_alloc grows by
  ``len``, not ``len + 832``, and free space stays larger: 2096 rather than 1096 bytes after
  three 1000-byte segments into SO_RCVBUF 4096 (the gap the differential tests found);
* the fragments are 32 KiB pages of the sender's page_frag, so a segment straddling a page
  boundary takes two and a new skb starts one segment sooner (every 16 or 17 segments of
  1000 bytes). The real sender runs in a fresh thread so its page_frag starts a new page,
  as the model assumes; a thread that sent before shifts those boundaries;
* with SO_RCVBUF set, the window scale is chosen for tcp_full_space (win_from_space of the
  stored rcvbuf), not for the stored rcvbuf: 65536 -> stored 131072 -> wscale 1, hence the
  odd windows in the 64 KiB rows.
"""

import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

import simsock
from simsock import AF_INET, SOCK_STREAM
from simsock.constants import IPPROTO_TCP, SO_RCVBUF, SOL_SOCKET, TCP_NODELAY
from simsock.tcp.buffers import MAX_SKB_FRAGS, ReceiveQueue

linux = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ss") is None,
                           reason="needs Linux and ss")

#: (SO_RCVBUF, segment size, segments) -> advertised window after each segment, Linux 6.18.
WINDOWS = {
    (4096, 1000, 8): [
        3096, 2096, 2096, 1096, 1096, 96, 96, 96,
    ],
    (4096, 100, 40): [
        3996, 3896, 3796, 3696, 3596, 3496, 3396, 3296, 3216, 3116, 3116, 3016, 3016, 2916,
        2916, 2816, 2816, 2716, 2616, 2516, 2416, 2316, 2216, 2116, 2016, 1916, 1816, 1816,
        1716, 1716, 1616, 1616, 1608, 1508, 1408, 1308, 1208, 1108, 1008, 908,
    ],
    (16384, 100, 60): [
        16284, 16184, 16084, 15984, 15884, 15784, 15684, 15584, 15484, 15384, 15384, 15284,
        15284, 15184, 15184, 15084, 15084, 14984, 14884, 14784, 14684, 14584, 14484, 14384,
        14284, 14184, 14184, 14084, 14084, 13984, 13984, 13936, 13836, 13836, 13736, 13636,
        13536, 13436, 13336, 13236, 13136, 13036, 12936, 12936, 12864, 12764, 12764, 12664,
        12664, 12564, 12564, 12464, 12364, 12264, 12164, 12064, 11964, 11864, 11764, 11664,
    ],
    (16384, 1000, 30): [
        16384, 16000, 15000, 15000, 14000, 14000, 13000, 12000, 12000, 11000, 11000, 10000,
        10000, 9000, 9000, 8000, 8000, 7000, 6000, 6000, 5000, 4000, 4000, 3000, 3000, 2000,
        2000, 1000, 1000, 0,
    ],
    (65536, 100, 40): [
        65384, 65284, 65184, 65084, 64984, 64884, 64784, 64720, 64670, 64620, 64570, 64520,
        64470, 64420, 64370, 64320, 64270, 64170, 64070, 63970, 63870, 63770, 63670, 63570,
        63470, 63404, 63354, 63304, 63254, 63204, 63154, 63104, 63054, 63004, 62904, 62804,
        62704, 62604, 62504, 62404,
    ],
    (65536, 1000, 70): [
        70174, 69630, 69088, 68544, 68002, 67458, 66916, 66372, 65830, 65286, 64744, 64200,
        63658, 63114, 62572, 62028, 61486, 60492, 59948, 59406, 58862, 58320, 57776, 57234,
        56690, 56148, 55604, 55062, 54518, 53976, 53432, 52890, 52346, 51352, 50808, 50266,
        49722, 49180, 48636, 48094, 47552, 47008, 46466, 45922, 45380, 44836, 44294, 43750,
        43208, 42664, 41670, 41126, 40584, 40040, 39498, 38954, 38412, 37868, 37326, 36782,
        36240, 35696, 35152, 34610, 34068, 33524, 32530, 31986, 31444, 30900,
    ],
    (0, 1000, 25): [
        70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656,
        70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656, 70656,
        70656,
    ],
}


def real_windows(rcvbuf: int, size: int, count: int) -> list[int]:
    """Run the scenario on the real kernel over loopback (sender in a fresh thread)."""
    out: list = []

    def run():
        try:
            out.append(_real_windows(rcvbuf, size, count))
        except BaseException as e:      # pragma: no cover - reported by the caller
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _real_windows(rcvbuf, size, count):
    ls = socket.socket()
    if rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.socket()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    port = c.getsockname()[1]
    got = []
    try:
        for _ in range(count):
            c.send(b"x" * size)
            deadline = time.monotonic() + 5
            while True:     # until the segment is acknowledged (or the window is closed)
                info = subprocess.run(["ss", "-tinH", "src", f"127.0.0.1:{port}"],
                                      capture_output=True, text=True, check=True).stdout
                if "unacked" not in info or time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            m = re.search(r"snd_wnd:(\d+)", info)
            got.append(int(m.group(1)) if m else 0)
    finally:
        c.close()
        s.close()
    return got


def sim_windows(rcvbuf: int, size: int, count: int) -> list[int]:
    sim = simsock.Simulation(seed=1, trace=False)
    h = sim.add_host("h")
    got = []

    async def main(k):
        ls = k.socket(AF_INET, SOCK_STREAM)
        if rcvbuf:
            ls.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
        ls.bind(("127.0.0.1", 5000))
        ls.listen()
        c = k.socket(AF_INET, SOCK_STREAM)
        c.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        await c.connect(("127.0.0.1", 5000))
        await ls.accept()
        for _ in range(count):
            await c.send(b"x" * size)
            await k.sleep(0.1)
            got.append(c.conn.snd_wnd)

    h.spawn(main)
    sim.run(until=100)
    return got


@linux
@pytest.mark.parametrize("case", list(WINDOWS), ids=lambda c: "rcvbuf%d-seg%d-x%d" % c)
def test_real_kernel_advertises_the_tabled_windows(case):
    assert real_windows(*case) == WINDOWS[case]


@pytest.mark.parametrize("case", list(WINDOWS), ids=lambda c: "rcvbuf%d-seg%d-x%d" % c)
def test_simulator_advertises_linux_windows(case):
    assert sim_windows(*case) == WINDOWS[case]


def test_three_small_segments_into_4096_leave_2096():
    """The differential tests' case: the third 1000-byte segment is coalesced, free space
    keeps the 2096-byte window (1096 if every segment were charged 1832 bytes)."""
    assert sim_windows(4096, 1000, 3) == [3096, 2096, 2096]


class _Src:
    def __init__(self, snd_una):
        self.snd_una = snd_una


def test_receive_queue_coalesces_only_uncloned_tails_up_to_max_frags():
    q = ReceiveQueue(832, coalesce=True)
    q.origin = 1
    acked = _Src(1)                     # sender has not processed an ACK past seq 1
    q.push(b"a" * 100, 1, acked)
    q.push(b"b" * 100, 101, acked)      # tail still cloned: a new skb
    assert [c[2] for c in q.chunks] == [932, 932] and q.rmem_alloc == 1864
    acked.snd_una = 201                 # sender freed both originals
    q.push(b"c" * 100, 201, acked)      # coalesced into the tail: +100 only
    assert len(q.chunks) == 2 and q.rmem_alloc == 1964
    q.push(b"d" * 32768, 301, acked)    # spans two pages: tail (b, c) 2 + 2 = 4 frags
    assert q.chunks[-1][3] == 4
    seq = 301 + 32768
    while q.chunks[-1][3] < MAX_SKB_FRAGS:
        before = len(q.chunks)
        q.push(b"e" * 10, seq, acked)
        seq += 10
        assert len(q.chunks) == before
    q.push(b"f" * 10, seq, acked)       # 18 frags would not fit: a new skb
    assert len(q.chunks) == 3 and q.chunks[-1][2] == 842
    data = q.read(1 << 20, False)
    assert data[:100] == b"a" * 100 and data.endswith(b"f" * 10) and q.rmem_alloc == 0


def test_receive_queue_without_coalesce_charges_every_segment():
    q = ReceiveQueue(768)
    src = _Src(10**6)
    for i in range(5):
        q.push(b"x" * 100, 1 + 100 * i, src)
    assert len(q.chunks) == 5 and q.rmem_alloc == 5 * 868
