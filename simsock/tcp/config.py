"""Every number a TCP connection uses, with Linux 6.x defaults and where each comes from.

Times are integer nanoseconds. Buffer sizes are what the kernel stores (``sk_sndbuf`` /
``sk_rcvbuf``): setsockopt(SO_SNDBUF, v) stores ``2*v`` (sock_setsockopt), and the driver
passes that doubled value here with ``sndbuf_locked=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MS = 1_000_000
S = 1_000_000_000

#: sizeof(struct sk_buff)+sizeof(skb_shared_info)+head for a TCP write skb, as charged to
#: sk_wmem_queued per skb by tcp_stream_alloc_skb (SKB_TRUESIZE(skb_end_offset)). Measured
#: on Linux 6.18 x86_64: one corked 1-byte send gives ``ss -m`` w833 (tests/tcp/test_linux_facts.py).
SKB_TX_OVERHEAD = 832


@dataclass(slots=True)
class TcpConfig:
    # --- buffers (bytes as stored by the kernel) -------------------------------------
    sndbuf: int = 16384              # net.ipv4.tcp_wmem[1] (tcp_init_sock)
    rcvbuf: int = 131072             # net.ipv4.tcp_rmem[1]
    sndbuf_locked: bool = False      # SOCK_SNDBUF_LOCK: user set SO_SNDBUF -> no tcp_sndbuf_expand
    rcvbuf_locked: bool = False      # SOCK_RCVBUF_LOCK: user set SO_RCVBUF -> no tcp_rcv_space_adjust
    tcp_wmem: tuple[int, int, int] = (4096, 16384, 4194304)      # net.ipv4.tcp_wmem
    tcp_rmem: tuple[int, int, int] = (4096, 131072, 33554432)    # net.ipv4.tcp_rmem
    rmem_max: int = 212992           # net.core.rmem_max (tcp_select_initial_window uses it)
    skb_tx_overhead: int = SKB_TX_OVERHEAD  # per write-queue skb, see above
    #: receive-side truesize minus payload per segment. Linux derives its window from the
    #: observed len/truesize ratio (tp->scaling_ratio, tcp_measure_rcv_mss); a NIC driver
    #: typically gives ~2.3 KB truesize for a 1448-byte segment.
    skb_rx_overhead: int = 768
    #: tcp_try_coalesce: in-order segments are appended to the receive queue's tail skb
    #: (up to MAX_SKB_FRAGS page fragments) and charged only their payload. Set for
    #: loopback, whose skbs are the sender's (all payload in page fragments, truesize =
    #: payload + SKB_TX_OVERHEAD; measured: tests/tcp/test_rcv_window.py). Off for other
    #: paths, whose driver skbs this model does not describe fragment by fragment.
    rx_coalesce: bool = False
    #: TCP_DEFAULT_SCALING_RATIO (include/net/tcp.h): 50 % until data shows the real ratio.
    default_scaling_ratio: int = 128
    # --- segment size ------------------------------------------------------------------
    #: MSS option advertised in SYN = path MTU - 40 (1460 at MTU 1500, 65496 on lo).
    #: The payload per segment is min(own, peer's) - 12 when timestamps are on (1448).
    mss: int = 1460
    gso_max_size: int = 65536        # sk_gso_max_size (GSO_LEGACY_MAX_SIZE): size_goal cap
    # --- socket options --------------------------------------------------------------
    nodelay: bool = False            # TCP_NODELAY
    cork: bool = False               # TCP_CORK
    linger: float | None = None      # SO_LINGER seconds; 0 -> close() sends RST
    congestion: str = "cubic"        # net.ipv4.tcp_congestion_control (kernel default cubic)
    timestamps: bool = True          # net.ipv4.tcp_timestamps=1
    #: net.ipv4.tcp_ecn: 1 request ECN on active opens and accept it, 2 (default) accept it
    #: when the peer asks, 0 never. Negotiation and ECT(0) marking of new data only: the
    #: congestion signals (CE -> ECE -> CWR) are not modelled (no simulated queue marks CE).
    ecn: int = 2
    #: net.ipv4.tcp_notsent_lowat (UINT_MAX: no limit): the default of TCP_NOTSENT_LOWAT
    notsent_lowat: int = 0xFFFFFFFF
    sack: bool = True                # net.ipv4.tcp_sack=1: offer/accept SACK-permitted (RFC 2018)
    dsack: bool = True               # net.ipv4.tcp_dsack=1: report duplicates (RFC 2883)
    #: net.ipv4.tcp_recovery: bit 0x1 = RACK loss detection (RFC 8985, Linux's default);
    #: 0 = RFC 6675 DupThresh marking. Only matters with SACK (NewReno without it).
    recovery: int = 1
    #: net.ipv4.tcp_early_retrans: 3 (default) or 4 enable tail loss probes (RFC 8985 TLP,
    #: tcp_schedule_loss_probe); 0-2 disable them.
    early_retrans: int = 3
    window_scaling: bool = True      # net.ipv4.tcp_window_scaling=1
    #: the interface's qdisc is fq (net.core.default_qdisc=fq): every flow is paced at
    #: sk_pacing_rate, not only those whose congestion module asks (SK_PACING_FQ)
    fq_pacing: bool = False
    pacing_ss_ratio: int = 200       # net.ipv4.tcp_pacing_ss_ratio (tcp_update_pacing_rate)
    pacing_ca_ratio: int = 120       # net.ipv4.tcp_pacing_ca_ratio
    # --- congestion / timers -----------------------------------------------------------
    init_cwnd: int = 10              # TCP_INIT_CWND (RFC 6928)
    rto_init: int = 1 * S            # TCP_TIMEOUT_INIT (RFC 6298 2.1)
    rto_min: int = 200 * MS          # TCP_RTO_MIN
    rto_max: int = 120 * S           # TCP_RTO_MAX
    delack_min: int = 40 * MS        # TCP_DELACK_MIN == TCP_ATO_MIN (HZ/25)
    delack_max: int = 200 * MS       # TCP_DELACK_MAX (HZ/5)
    timeout_min: int = 2 * MS        # TCP_TIMEOUT_MIN: 2 jiffies (HZ=1000), RACK's timer slack
    syn_retries: int = 6             # net.ipv4.tcp_syn_retries
    syn_linear_timeouts: int = 4     # net.ipv4.tcp_syn_linear_timeouts (Linux >= 6.5): SYN RTOs not backed off
    synack_retries: int = 5          # net.ipv4.tcp_synack_retries
    retries2: int = 15               # net.ipv4.tcp_retries2
    time_wait: int = 60 * S          # TCP_TIMEWAIT_LEN
    fin_timeout: int = 60 * S        # net.ipv4.tcp_fin_timeout (orphaned FIN_WAIT2)
    max_quickacks: int = 16          # TCP_MAX_QUICKACKS
    keepalive: bool = False          # SO_KEEPALIVE (SOCK_KEEPOPEN)
    keepalive_time: int = 7200 * S   # TCP_KEEPIDLE, else net.ipv4.tcp_keepalive_time
    keepalive_intvl: int = 75 * S    # TCP_KEEPINTVL, else net.ipv4.tcp_keepalive_intvl
    keepalive_probes: int = 9        # TCP_KEEPCNT, else net.ipv4.tcp_keepalive_probes
    orphan_retries: int = 0          # net.ipv4.tcp_orphan_retries (0: 8 while the RTO is below TCP_RTO_MAX)
    extra: dict = field(default_factory=dict)  # room for the driver's bookkeeping

    @classmethod
    def for_mtu(cls, mtu: int, **kw) -> "TcpConfig":
        """Config for a path MTU: MSS option = MTU - 40 (IPv4 + TCP headers), the MTU capped
        at 65535, the largest IPv4 packet (ipv4_default_advmss: lo's 65536 gives 65495)."""
        return cls(mss=min(mtu, 65535) - 40, **kw)
