"""pcap export: the bytes a wire would carry, with checksums a dissector accepts."""

import shutil
import struct
import subprocess

import pytest

from simsock import pcap
from simsock.net.packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Datagram, IcmpError, Packet
from simsock.tcp.segment import ACK, FIN, PSH, SYN, Segment

C, S = "10.0.0.1", "10.0.0.2"


def _tcp(uid, src, dst, **fields):
    return Packet(uid, src, dst, PROTO_TCP, Segment(**fields), created=0)


def handshake_rows():
    """A UDP exchange and a TCP connection: handshake, data, SACK, FIN, plus an ICMP error."""
    udp = Packet(1, C, S, PROTO_UDP, Datagram(40000, 5959, b"hello"), created=0)
    udp_reply = Packet(2, S, C, PROTO_UDP, Datagram(5959, 40000, b"HELLO" * 100), created=0)
    syn = _tcp(3, C, S, sport=40001, dport=80, seq=1000, ack=0, flags=SYN, window=64240,
               mss=1460, wscale=7, sack_permitted=True, ts=(111, 0))
    synack = _tcp(4, S, C, sport=80, dport=40001, seq=5000, ack=1001, flags=SYN | ACK, window=65160,
                  mss=1460, wscale=7, sack_permitted=True, ts=(222, 111))
    ack = _tcp(5, C, S, sport=40001, dport=80, seq=1001, ack=5001, flags=ACK, window=502, ts=(112, 222))
    data = _tcp(6, C, S, sport=40001, dport=80, seq=1001, ack=5001, flags=PSH | ACK, window=502,
                payload=b"x" * 1000, ts=(113, 222))
    sack = _tcp(7, S, C, sport=80, dport=40001, seq=5001, ack=2001, flags=ACK, window=509,
                ts=(223, 113), sack=((3001, 4001), (5001, 6001)))
    fin = _tcp(8, C, S, sport=40001, dport=80, seq=2001, ack=5001, flags=FIN | ACK, window=502, ts=(114, 223))
    nots = _tcp(9, S, C, sport=80, dport=40001, seq=5001, ack=2002, flags=FIN | ACK, window=509)
    unreachable = Packet(10, S, C, PROTO_ICMP, IcmpError(3, 3, udp), created=0)
    pkts = [udp, udp_reply, syn, synack, ack, data, sack, fin, nots, unreachable]
    return [(1_000_000 * i + 7, "link", "arrive", p) for i, p in enumerate(pkts)]


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_every_checksum_verifies_when_recomputed(tmp_path):
    """Summing a header or pseudo-header plus segment including its checksum gives 0xffff."""
    path = tmp_path / "t.pcap"
    rows = handshake_rows()
    assert pcap.write_pcap(path, rows) == len(rows)
    linktype, frames = pcap.read_pcap(path)
    assert linktype == pcap.LINKTYPE_ETHERNET
    assert [t for t, _ in frames] == [t for t, *_ in rows]
    for (_, frame), (_, _, _, pkt) in zip(frames, rows):
        assert frame[12:14] == b"\x08\x00"
        ip = frame[14:]
        assert len(ip) == pkt.size, "IP total length is the packet's size"
        assert struct.unpack("!H", ip[2:4])[0] == pkt.size
        assert struct.unpack("!H", ip[4:6])[0] == pkt.uid & 0xFFFF
        assert _sum16(ip[:20]) == 0xFFFF
        src, dst, proto, body = ip[12:16], ip[16:20], ip[9], ip[20:]
        assert frame[0:6] == b"\x02\x00" + dst and frame[6:12] == b"\x02\x00" + src
        if proto in (PROTO_TCP, PROTO_UDP):
            pseudo = src + dst + struct.pack("!BBH", 0, proto, len(body))
            assert _sum16(pseudo + body) == 0xFFFF
        else:
            assert _sum16(body) == 0xFFFF
            assert body[8:36] == pcap.ipv4_bytes(pkt.payload.quoted)[:28]


def test_tcp_options_use_linux_layout_and_fill_the_header():
    """A SYN's options are MSS, SACK-permitted+timestamps, NOP+window scale: 20 bytes."""
    syn = Segment(1, 2, 0, 0, SYN, 100, mss=1460, wscale=7, sack_permitted=True, ts=(1, 0))
    opts = pcap.tcp_options(syn)
    assert opts[:4] == bytes((2, 4, 0x05, 0xB4))
    assert opts[4:6] == bytes((4, 2)) and opts[6:8] == bytes((8, 10))
    assert opts[16:] == bytes((1, 3, 3, 7))
    sacked = Segment(1, 2, 0, 0, ACK, 100, ts=(1, 2), sack=((10, 20),))
    assert len(pcap.tcp_options(sacked)) == sacked.header_size - 20


def test_names_map_to_stable_private_addresses():
    assert pcap.ip_bytes("server") == pcap.ip_bytes("server")
    assert pcap.ip_bytes("server")[0] == 10
    assert pcap.ip_bytes("server", {"server": "192.0.2.1"}) == bytes((192, 0, 2, 1))


def test_sim_trace_to_pcap_filters_by_place_and_event(tmp_path):
    from simsock.trace import Trace

    tr = Trace()
    rows = handshake_rows()
    for t, _, _, p in rows:
        tr.packet(t, "l1", "arrive", p)
        tr.packet(t + 1, "l2", "transmit", p)
    assert pcap.sim_trace_to_pcap(tr, tmp_path / "a.pcap", at="l1") == len(rows)
    assert pcap.sim_trace_to_pcap(tr, tmp_path / "b.pcap", at="l1", event="transmit") == 0
    assert pcap.sim_trace_to_pcap(tr, tmp_path / "c.pcap", at=None, event=None) == 2 * len(rows)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_decodes_all_fields_and_accepts_every_checksum(tmp_path):
    path = tmp_path / "t.pcap"
    pcap.write_pcap(path, handshake_rows())
    fields = ["frame.number", "ip.checksum.status", "ip.flags.df", "ip.id", "udp.checksum.status",
              "tcp.checksum.status", "tcp.flags", "tcp.seq_raw", "tcp.len", "tcp.options.mss_val",
              "tcp.options.wscale.shift", "tcp.options.sack_perm", "tcp.options.timestamp.tsval",
              "tcp.options.sack_le", "udp.length", "icmp.type", "icmp.checksum.status", "_ws.expert.severity"]
    cmd = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
           "-o", "ip.check_checksum:TRUE", "-o", "tcp.relative_sequence_numbers:FALSE",
           "-o", "tcp.analyze_sequence_numbers:FALSE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = [dict(zip(fields, line.split("|"))) for line in out.stdout.splitlines()]
    assert len(rows) == 10
    good = "1"   # Wireshark's PROTO_CHECKSUM_E_GOOD (0 bad, 2 unverified)
    assert all(r["ip.checksum.status"] == good for r in rows)
    assert rows[0]["udp.checksum.status"] == good and rows[1]["udp.checksum.status"] == good
    assert rows[0]["udp.length"] == "13"
    tcp = rows[2:9]
    assert all(r["tcp.checksum.status"] == good for r in tcp)
    assert rows[2]["tcp.flags"] == "0x0002" and rows[3]["tcp.flags"] == "0x0012"
    assert rows[2]["tcp.seq_raw"] == "1000"
    assert rows[2]["tcp.options.mss_val"] == "1460" and rows[2]["tcp.options.wscale.shift"] == "7"
    assert rows[2]["tcp.options.sack_perm"] != "" and rows[2]["tcp.options.timestamp.tsval"] == "111"
    assert rows[5]["tcp.len"] == "1000"
    assert rows[6]["tcp.options.sack_le"] == "3001"
    assert rows[7]["tcp.flags"] == "0x0011"
    assert rows[9]["icmp.type"] == "3" and rows[9]["icmp.checksum.status"] == good
    assert all(r["ip.flags.df"] == "1" for r in rows[:9])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_finds_nothing_malformed_or_warning_worthy(tmp_path):
    path = tmp_path / "t.pcap"
    pcap.write_pcap(path, handshake_rows())
    out = subprocess.run(["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                          "-o", "ip.check_checksum:TRUE", "-Y", "_ws.malformed or _ws.expert.severity >= 0x600000"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
