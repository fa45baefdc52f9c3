"""``getsockopt(IPPROTO_TCP, TCP_INFO)``: Linux's ``struct tcp_info``, field by field.

:func:`tcp_info` computes the fields of ``struct tcp_info`` (include/uapi/linux/tcp.h, as of
Linux 6.18: 280 bytes, ending with the Accurate-ECN counters) for a simulated connection, the
way tcp_get_info (net/ipv4/tcp.c) fills them: names without the ``tcpi_`` prefix, Linux's
units (microseconds for ``rto``, ``ato``, ``rtt``, ``rttvar``, ``min_rtt``, ``rcv_rtt`` and the
chrono times; milliseconds for the ``last_*`` ages; segments for ``snd_cwnd``, ``unacked``,
``sacked``, ``lost``, ``retrans``; bytes per second for the rates). :func:`pack_tcp_info`
turns that dict into the bytes the system call returns, which ``struct.unpack`` code written
for Linux reads unchanged; :func:`unpack_tcp_info` is its inverse (for tests and tools).

Conventions Linux has and this keeps (checked on Linux 6.18 loopback,
tests/conformance/test_tcp_info.py):

* a listening socket reports ``state`` 10, the accept queue's length in ``unacked`` and the
  backlog in ``sacked`` (the "aliased fields" of tcp_get_info), ``snd_cwnd`` 10,
  ``reordering`` 3, unlimited pacing rates, and zero elsewhere;
* a never-connected socket (CLOSE) reports ``rto`` 1 s, ``snd_mss`` 536, ``rttvar`` 250 ms
  (mdev initialised from TCP_TIMEOUT_INIT), ``snd_ssthresh`` 0x7fffffff and ``min_rtt``
  ~0U;
* ``snd_mss`` is ``mss_cache``, bounded to half the peer's largest window
  (tcp_bound_to_half_wnd via tcp_sync_mss): 32741 right after a loopback connect;
  ``advmss`` is the MSS this side advertised minus the timestamp option (65483 on lo);
* ``snd_wscale`` is the low nibble and ``rcv_wscale`` the high nibble of byte 6; bit 0 of
  byte 7 is ``delivery_rate_app_limited``.

Fields the model has no counterpart for (``fackets``, ``last_ack_sent``, ``rehash``, the
ECN counters, ``delivered_ce``) are 0, as on a Linux connection without ECN; ``rcv_rtt``,
``rcv_ooopack`` and ``sndbuf_limited`` are 0 too (not modelled). ``delivery_rate`` comes from
the last rate sample, which the model takes only for modules that ask for it (BBR), and
``delivered`` is derived from the data segments sent and still in flight.
"""

from __future__ import annotations

import struct

from simsock.tcp.states import (CLOSE, ESTABLISHED, LISTEN, STATES, SYN_RECV, SYN_SENT,
                                TIME_WAIT)

#: tcp_states.h numbering: ESTABLISHED is 1.
TCP_STATES = {state: number for number, state in enumerate(STATES, 1)}

_HANDSHAKE = (SYN_SENT, SYN_RECV)

TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE, TCPI_OPT_ECN = 1, 2, 4, 8

#: (name, struct code) in the order of struct tcp_info; the two bit-field bytes (6 and 7) are
#: packed by hand from snd_wscale/rcv_wscale and delivery_rate_app_limited/fastopen_client_fail.
_LAYOUT = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"),
    ("backoff", "B"), ("options", "B"), ("_wscale", "B"), ("_flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"),
    ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"),
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"),
    ("snd_wnd", "I"), ("rcv_wnd", "I"),
    ("rehash", "I"),
    ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"),
    ("received_ce", "I"), ("delivered_e1_bytes", "I"), ("delivered_e0_bytes", "I"),
    ("delivered_ce_bytes", "I"), ("received_e1_bytes", "I"), ("received_e0_bytes", "I"),
    ("received_ce_bytes", "I"), ("_ecn_bits", "I"),
)
_FORMAT = "<" + "".join(code for _, code in _LAYOUT)
#: sizeof(struct tcp_info) on Linux 6.18 (measured: getsockopt(TCP_INFO, 1024) returns 280 bytes).
TCP_INFO_SIZE = struct.calcsize(_FORMAT)
assert TCP_INFO_SIZE == 280

#: Every field :func:`tcp_info` returns, in struct order (the bit fields by their own names).
FIELDS = tuple(n for n, _ in _LAYOUT[:6]) + (
    "snd_wscale", "rcv_wscale", "delivery_rate_app_limited", "fastopen_client_fail") + tuple(
    n for n, _ in _LAYOUT[8:-1]) + ("ecn_mode", "accecn_opt_seen", "accecn_fail_mode", "options2")

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_TCP_MSS_DEFAULT = 536
_TCP_TIMEOUT_INIT_US = 1_000_000


def _blank() -> dict:
    return dict.fromkeys(FIELDS, 0)


def _us(ns: int) -> int:
    return max(ns, 0) // 1000


def _ms_since(now: int, then: int) -> int:
    return (max(now - then, 0) // 1_000_000) & _U32


def listener_info(accept_queue: int, backlog: int) -> dict:
    """tcp_get_info for a socket in LISTEN (see the module docstring)."""
    d = _blank()
    d.update(state=TCP_STATES[LISTEN], unacked=accept_queue, sacked=backlog, snd_cwnd=10,
             reordering=3, pacing_rate=_U64, max_pacing_rate=_U64)
    return d


def unconnected_info(state: str = CLOSE) -> dict:
    """tcp_get_info for a socket with no connection yet (tcp_init_sock's values)."""
    d = _blank()
    d.update(state=TCP_STATES.get(state, 7), delivery_rate_app_limited=1,
             rto=_TCP_TIMEOUT_INIT_US, snd_mss=_TCP_MSS_DEFAULT, rttvar=_TCP_TIMEOUT_INIT_US // 4,
             snd_ssthresh=0x7FFFFFFF, snd_cwnd=10, reordering=3, pacing_rate=_U64,
             max_pacing_rate=_U64, min_rtt=_U32)
    return d


def tcp_info(conn, now: int) -> dict:
    """The fields of ``struct tcp_info`` for :class:`~simsock.tcp.connection.TcpConnection`
    ``conn`` at time ``now`` (ns), named as in Linux without ``tcpi_``, in Linux's units."""
    cfg = conn.config
    tp = conn.tp
    r = conn.rtt
    d = _blank()
    # a socket whose connection went to TIME_WAIT is CLOSE: tcp_time_wait() hands the
    # connection to a timewait sock and closes the socket the program holds
    state = CLOSE if conn.finished or conn.state == TIME_WAIT else conn.state
    d["state"] = TCP_STATES.get(state, 7)
    d["ca_state"] = tp.ca_state
    d["retransmits"] = min(conn.retransmits, 255)
    d["probes"] = min(conn.probes_out, 255)
    d["backoff"] = min(conn.backoff, 255)
    opts = 0
    if conn.ts_ok:
        opts |= TCPI_OPT_TIMESTAMPS
    if conn.sack_ok:
        opts |= TCPI_OPT_SACK
    if conn.wscale_ok:
        opts |= TCPI_OPT_WSCALE
        d["snd_wscale"] = conn.snd_wscale
        d["rcv_wscale"] = conn.rcv_wscale
    d["options"] = opts
    d["delivery_rate_app_limited"] = 0 if conn.stats_data_segs_out else 1   # tp->rate_app_limited
    d["rto"] = _us(min(r.rto << conn.backoff, cfg.rto_max))
    d["ato"] = _us(conn.rcv.ato) if conn.state == ESTABLISHED or conn.rcv.ato else 0
    d["snd_mss"] = conn.mss_cache
    d["rcv_mss"] = conn.rcv.rcv_mss
    # packets_out: the SYN (or SYN-ACK) counts while the handshake is in flight
    d["unacked"] = len(conn.scoreboard.records) or (1 if conn.state in _HANDSHAKE else 0)
    d["sacked"] = conn.scoreboard.sacked_out
    d["lost"] = conn.scoreboard.lost_out
    d["retrans"] = conn.scoreboard.retrans_out
    d["last_data_sent"] = _ms_since(now, tp.lsndtime_us * 1000)
    d["last_data_recv"] = _ms_since(now, conn.rcv.lrcvtime)
    d["last_ack_recv"] = _ms_since(now, conn.rcv_tstamp)
    d["pmtu"] = cfg.extra.get("pmtu", min(cfg.mss + 40, 65535))
    d["rcv_ssthresh"] = conn.rcv.rcv_ssthresh
    if r.has_sample:
        d["rtt"] = _us(r.srtt)
        d["rttvar"] = _us(r.rttvar)
    else:
        d["rttvar"] = _TCP_TIMEOUT_INIT_US // 4
    d["snd_ssthresh"] = tp.snd_ssthresh
    d["snd_cwnd"] = tp.snd_cwnd
    d["advmss"] = conn.advmss
    d["reordering"] = conn.scoreboard.reordering
    d["rcv_rtt"] = 0                    # receiver-side RTT estimate (tcp_rcv_rtt_measure): not modelled
    d["rcv_space"] = conn.rcv.rcvq_space
    d["total_retrans"] = conn.stats_retransmits
    d["pacing_rate"] = _pacing_rate(conn)
    d["max_pacing_rate"] = _U64
    _add_counters(d, conn, now)
    return d


def _add_counters(d: dict, conn, now: int) -> None:
    """tcp_get_info's byte and segment counters, chrono times and window sizes."""
    # tcp_snd_una_update counts the SYN of an active open; a passive child starts past its SYN-ACK
    d["bytes_acked"] = conn.stats_bytes_acked + (1 if conn.peer_syn is None and conn.snd_una > conn.iss else 0)
    d["bytes_received"] = conn.stats_bytes_received
    d["segs_out"] = (conn.stats_segments_sent - conn.stats_synacks_sent) & _U32
    d["segs_in"] = conn.stats_segs_in & _U32
    d["notsent_bytes"] = max(conn.sendq.end - conn.snd_nxt, 0) if conn.state != CLOSE else 0
    d["min_rtt"] = _us(conn.min_rtt) if conn.min_rtt < (1 << 62) else _U32
    d["data_segs_in"] = conn.stats_data_segs_in & _U32
    d["data_segs_out"] = conn.stats_data_segs_out & _U32
    d["delivery_rate"] = _delivery_rate(conn)
    limited = list(conn.limited_ns)
    if conn.limit_kind:
        limited[conn.limit_kind] += max(now - conn.limit_since, 0)
    # tcp_get_info_chrono_stats: busy_time is the total of the chrono types (busy, rwnd
    # limited, sndbuf limited); simsock's "cwnd limited" periods and application-limited
    # periods with data in flight are Linux's TCP_CHRONO_BUSY (the queues are not empty).
    d["busy_time"] = _us(limited[1] + limited[2] + limited[4])
    d["rwnd_limited"] = _us(limited[1])
    d["sndbuf_limited"] = 0
    d["delivered"] = getattr(conn, "delivered", None) or _delivered(conn)
    d["bytes_sent"] = conn.stats_bytes_sent
    d["bytes_retrans"] = conn.stats_bytes_retrans
    d["dsack_dups"] = conn.stats_dsacks_received
    d["reord_seen"] = conn.scoreboard.reord_seen
    d["rcv_ooopack"] = 0                # not counted by the model
    d["snd_wnd"] = conn.snd_wnd
    d["rcv_wnd"] = conn.rcv.rcv_wnd
    d["total_rto"] = min(conn.stats_rto_count, 0xFFFF)
    d["total_rto_recoveries"] = min(conn.stats_rto_recoveries, 0xFFFF)


def _delivered(conn) -> int:
    """tp->delivered: segments delivered (acknowledged, including spurious retransmissions a
    DSACK reported), counting the handshake's SYN or SYN-ACK as one."""
    if conn.state in _HANDSHAKE or (conn.state == CLOSE and not conn.rcv.irs):
        return 0
    return 1 + max(conn.stats_data_segs_out - len(conn.scoreboard.records), 0)


def _delivery_rate(conn) -> int:
    """tcp_compute_delivery_rate from the last valid rate sample, for connections whose
    module asks for rate sampling (tcp/rate.py: BBR); 0 otherwise (Linux samples always)."""
    rs = getattr(conn, "rs", None)
    if rs is None or rs.delivered <= 0 or rs.interval_us <= 0:
        return 0
    return rs.delivered * conn.mss_cache * 1_000_000 // rs.interval_us


def _pacing_rate(conn) -> int:
    """sk_pacing_rate: the congestion control's own (BBR sets it), else tcp_update_pacing_rate:
    mss * cwnd / srtt at 200 % in slow start, 120 % in congestion avoidance (net.ipv4.
    tcp_pacing_ss_ratio / tcp_pacing_ca_ratio); unlimited until there is an RTT sample."""
    own = getattr(conn.tp, "pacing_rate", 0)     # set when the module paces (tcp/rate.py)
    if isinstance(own, int) and own > 0:
        return min(own, _U64)
    tp = conn.tp
    srtt_us8 = conn.rtt.srtt * 8 // 1000 if conn.rtt.has_sample else 0
    if not srtt_us8:
        return _U64
    ratio = 200 if tp.snd_cwnd < tp.snd_ssthresh // 2 else 120
    rate = conn.mss_cache * ((1_000_000 // 100) << 3) * ratio * max(tp.snd_cwnd, len(conn.scoreboard.records))
    return min(rate // srtt_us8, _U64)


def pack_tcp_info(info: dict, buflen: int | None = None) -> bytes:
    """The bytes getsockopt(TCP_INFO) returns for ``info``: the whole struct, or its first
    ``buflen`` bytes (do_tcp_getsockopt copies min(len, sizeof(info)))."""
    vals = []
    for name, _ in _LAYOUT:
        if name == "_wscale":
            vals.append((info.get("snd_wscale", 0) & 0xF) | (info.get("rcv_wscale", 0) & 0xF) << 4)
        elif name == "_flags":
            vals.append((info.get("delivery_rate_app_limited", 0) & 1)
                        | (info.get("fastopen_client_fail", 0) & 3) << 1)
        elif name == "_ecn_bits":
            vals.append((info.get("ecn_mode", 0) & 3) | (info.get("accecn_opt_seen", 0) & 3) << 2
                        | (info.get("accecn_fail_mode", 0) & 0xF) << 4 | (info.get("options2", 0) & 0xFFFFFF) << 8)
        else:
            vals.append(info.get(name, 0))
    raw = struct.pack(_FORMAT, *vals)
    return raw if buflen is None else raw[:buflen]


def unpack_tcp_info(raw: bytes) -> dict:
    """The fields of a (possibly truncated) ``struct tcp_info``; fields past the end are absent."""
    raw = bytes(raw)
    full = raw.ljust(TCP_INFO_SIZE, b"\0")
    vals = struct.unpack(_FORMAT, full[:TCP_INFO_SIZE])
    out = {}
    offset = 0
    for (name, code), v in zip(_LAYOUT, vals):
        size = struct.calcsize("<" + code)
        if offset + size > len(raw):
            break
        offset += size
        if name == "_wscale":
            out["snd_wscale"], out["rcv_wscale"] = v & 0xF, v >> 4
        elif name == "_flags":
            out["delivery_rate_app_limited"], out["fastopen_client_fail"] = v & 1, (v >> 1) & 3
        elif name == "_ecn_bits":
            out.update(ecn_mode=v & 3, accecn_opt_seen=(v >> 2) & 3, accecn_fail_mode=(v >> 4) & 0xF,
                       options2=v >> 8)
        else:
            out[name] = v
    return out
