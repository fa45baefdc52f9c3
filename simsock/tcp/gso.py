"""TSO/GSO as a segmentation-offloading device sees it: super-segments.

Linux hands a device that offloads segmentation (packetdrill's tun, loopback) one packet per
TSO/GSO burst instead of one per MSS: tcp_write_xmit cuts each skb into bursts of
``tcp_tso_segs`` segments, which is tcp_tso_autosize: about 1 ms of ``sk_pacing_rate`` (the
rate tcp_update_pacing_rate keeps for every connection: 200 % of cwnd x mss / srtt in slow
start, tcp_pacing_ss_ratio, else tcp_pacing_ca_ratio), plus ``gso_max_size >> (min_rtt_us >>
tcp_tso_rtt_log)``, at most gso_max_size, at least tcp_min_tso_segs (2). A burst never spans
two skbs. Measured on Linux 6.18 with packetdrill (srtt 10 ms, cwnd 10, mss 1000: 2000-byte
packets).

The model keeps one segment per MSS everywhere (its scoreboard, its links: a real NIC would
segment the burst again); :func:`merge_for_device` joins consecutive new-data segments of one
skb into such bursts for a channel that declares ``tso = True``, so only that device's view
changes. On loopback the MSS is already close to gso_max_size, so the bursts are single
segments there.
"""

from __future__ import annotations

from dataclasses import replace

from simsock.tcp.segment import FIN, PSH

_PACING_SHIFT = 10          # sk_pacing_shift: ~1 ms of the rate per burst
_TSO_RTT_LOG = 9            # net.ipv4.tcp_tso_rtt_log
_MIN_TSO_SEGS = 2           # net.ipv4.tcp_min_tso_segs
_MASK = 0xFFFFFFFF


def tso_segs(conn) -> int:
    """tcp_tso_segs: segments per TSO/GSO burst for ``conn`` now."""
    tp = conn.tp
    cfg = conn.config
    mss = max(conn.mss_cache, 1)
    gso = cfg.gso_max_size
    srtt_us = conn.rtt.srtt // 1000
    if srtt_us:
        ratio = cfg.pacing_ss_ratio if tp.snd_cwnd < tp.snd_ssthresh // 2 else cfg.pacing_ca_ratio
        rate = mss * 10_000 * ratio * max(tp.snd_cwnd, len(conn.scoreboard.records)) // srtt_us
        nbytes = rate >> _PACING_SHIFT
    else:
        nbytes = gso                # no RTT sample yet: sk_pacing_rate is still ~0U
    if conn.min_rtt < (1 << 62):
        r = (conn.min_rtt // 1000) >> _TSO_RTT_LOG
        if r < 32:
            nbytes += gso >> r
    nbytes = min(nbytes, gso)
    return max(nbytes // mss, _MIN_TSO_SEGS)


def merge_for_device(conn, segs: list) -> list:
    """``segs`` (what one transmission produced) as a TSO device receives them: runs of new
    data (not retransmissions) from one skb joined into bursts of at most :func:`tso_segs`
    segments."""
    limit = tso_segs(conn)
    base = conn.snd_una
    sq = conn.sendq
    out: list = []
    run = None          # [first segment, start seq, end seq, count, skb end, payload parts, last]
    for seg in segs:
        n = len(seg.payload)
        start = base + ((seg.seq - base) & _MASK) if n else None
        new = n and not seg.rtx
        if run is not None:
            first, rs, re_, count, skb_end, parts, last = run
            if (new and start == re_ and count < limit and sq.skb_end(start) == skb_end
                    and not last.flags & FIN and (seg.flags | PSH) == (last.flags | PSH)
                    and seg.ack == last.ack and seg.window == last.window and seg.sack == last.sack
                    and len(last.payload) == conn.mss_cache):
                parts.append(seg.payload)
                run[2] = start + n
                run[3] += 1
                run[6] = seg
                continue
            out.append(_joined(run))
            run = None
        if new:
            run = [seg, start, start + n, 1, sq.skb_end(start), [seg.payload], seg]
        else:
            out.append(seg)
    if run is not None:
        out.append(_joined(run))
    return out


def _joined(run) -> object:
    first, _, _, count, _, parts, last = run
    if count == 1:
        return first
    return replace(first, flags=last.flags, payload=b"".join(parts))
