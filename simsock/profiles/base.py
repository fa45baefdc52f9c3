"""The :class:`Profile` record: the kernel's numbers, one field each."""

from __future__ import annotations

from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class Profile:
    name: str                        # the profile's name ("linux")
    kernel: str                      # the kernel version the numbers were checked against

    # --- socket buffers (net/core/sock.c sock_setsockopt, sysctl net.core.*) ---------------
    rmem_default: int                # net.core.rmem_default: SO_RCVBUF of a new UDP socket
    wmem_default: int                # net.core.wmem_default: SO_SNDBUF of a new UDP socket
    rmem_max: int                    # net.core.rmem_max: cap on SO_RCVBUF requests (before doubling)
    wmem_max: int                    # net.core.wmem_max
    sock_min_rcvbuf: int             # SOCK_MIN_RCVBUF: the smallest stored SO_RCVBUF
    sock_min_sndbuf: int             # SOCK_MIN_SNDBUF: the smallest stored SO_SNDBUF
    sockopt_buf_doubles: bool        # setsockopt stores twice the requested value
    tcp_rmem: tuple                  # net.ipv4.tcp_rmem (min, default, max)
    tcp_wmem: tuple                  # net.ipv4.tcp_wmem (min, default, max)

    # --- per-packet memory charge (skb truesize) -----------------------------------------
    # (payload below which, truesize) steps, then payload + udp_truesize_linear above the last.
    udp_truesize_steps: tuple
    udp_truesize_linear: int

    # --- UDP / IP -------------------------------------------------------------------------
    udp_max_payload: int             # 65535 - 20 (IP) - 8 (UDP)
    ip_local_port_range: tuple       # net.ipv4.ip_local_port_range
    loopback_mtu: int                # lo's MTU
    default_mtu: int                 # an Ethernet link's MTU
    txqueuelen: int                  # an interface's transmit queue in packets (pfifo_fast default)
    ip_default_ttl: int              # net.ipv4.ip_default_ttl: TTL of packets a host sends
    icmp_ratelimit_ns: int           # net.ipv4.icmp_ratelimit (not applied on loopback)
    icmp_ratelimit_burst: int        # XRLIM_BURST_FACTOR: tokens a peer may save up
    ipfrag_time_ns: int              # net.ipv4.ipfrag_time: reassembly timeout
    somaxconn: int                   # net.core.somaxconn

    # --- CPU and notification costs (used by simsock/kernel/cpu.py; sources in linux.py) ------
    syscall_ns: int = 500            # one socket call's fixed cost: entry/exit, fd lookup, socket lock
    copy_ps_per_byte: int = 50       # copying between user and kernel memory, picoseconds per byte
    context_switch_ns: int = 2000    # a core changing from one thread to another
    wakeup_ns: int = 5000            # from a wake-up to the woken thread running on an idle core
    sched_slice_ns: int = 750_000    # EEVDF base slice before scaling by 1 + log2(min(cores, 8))
    select_per_fd_ns: int = 55       # select/poll: scanning one watched descriptor
    epoll_per_event_ns: int = 100    # epoll_wait: reporting one ready entry
    thread_stack_bytes: int = 8 << 20    # virtual memory reserved per thread (ulimit -s 8192 KiB)

    # --- TCP loss recovery (sysctls; simsock/tcp/recovery.py) --------------------------------
    tcp_sack: bool = True            # net.ipv4.tcp_sack: offer and accept SACK (RFC 2018)
    tcp_dsack: bool = True           # net.ipv4.tcp_dsack: report duplicate segments (RFC 2883)
    tcp_recovery: int = 1            # net.ipv4.tcp_recovery: 1 RACK loss detection, 0 RFC 6675
    tcp_early_retrans: int = 3       # net.ipv4.tcp_early_retrans: 3/4 tail loss probes, 0-2 none
    #: net.ipv4.tcp_congestion_control: the algorithm a new TCP socket gets (TCP_CONGESTION)
    tcp_congestion_control: str = "cubic"
    #: net.core.default_qdisc: "fq" makes every TCP flow paced at sk_pacing_rate (fq pacing);
    #: anything else leaves pacing to congestion modules that ask for it (BBR)
    default_qdisc: str = "pfifo_fast"
    tcp_pacing_ss_ratio: int = 200   # net.ipv4.tcp_pacing_ss_ratio: % of cwnd/srtt paced in slow start
    tcp_pacing_ca_ratio: int = 120   # net.ipv4.tcp_pacing_ca_ratio: % after (tcp_update_pacing_rate)

    # --- kernel clock and connection admission ----------------------------------------------
    #: CONFIG_HZ: SO_RCVTIMEO/SO_SNDTIMEO are kept in jiffies, so a timeval is rounded up
    #: to 1/hz s (250 on this machine's kernel: 1 us is stored and read back as 4000 us).
    hz: int = 250
    #: net.ipv4.tcp_syncookies: 1 sends SYN cookies when the SYN or accept queue overflows.
    tcp_syncookies: int = 1
    #: net.ipv4.tcp_max_syn_backlog: the SYN queue's bound (with the listen backlog).
    tcp_max_syn_backlog: int = 2048
    #: net.ipv4.tcp_syn_linear_timeouts (Linux >= 6.5): SYN retransmissions 1 s apart before
    #: the exponential backoff starts (0 on older kernels).
    tcp_syn_linear_timeouts: int = 4

    # --- TCP keepalive and orphans (sysctls; simsock/tcp/connection.py, sender.py) ------------
    tcp_keepalive_time_ns: int = 7200 * 10**9    # net.ipv4.tcp_keepalive_time (idle before the first probe)
    tcp_keepalive_intvl_ns: int = 75 * 10**9     # net.ipv4.tcp_keepalive_intvl (between probes)
    tcp_keepalive_probes: int = 9                # net.ipv4.tcp_keepalive_probes (unanswered before ETIMEDOUT)
    tcp_orphan_retries: int = 0                  # net.ipv4.tcp_orphan_retries (0 means 8 while alive)

    def to_dict(self) -> dict:
        return asdict(self)

    # --- derived rules ---------------------------------------------------------------------
    def udp_truesize(self, payload: int) -> int:
        """Memory charged to a receive buffer for a UDP datagram of ``payload`` bytes."""
        for limit, size in self.udp_truesize_steps:
            if payload < limit:
                return size
        return payload + self.udp_truesize_linear

    def stored_rcvbuf(self, requested: int) -> int:
        """What ``getsockopt(SO_RCVBUF)`` returns after ``setsockopt(SO_RCVBUF, requested)``."""
        return self._stored(requested, self.rmem_max, self.sock_min_rcvbuf)

    def stored_sndbuf(self, requested: int) -> int:
        return self._stored(requested, self.wmem_max, self.sock_min_sndbuf)

    def _stored(self, requested: int, cap: int, minimum: int) -> int:
        # sock_setsockopt: val = min(val, cap); then max(val * 2, minimum), computed on
        # an unsigned int (negative values become huge and are capped).
        if requested < 0:
            requested = cap
        value = min(requested, cap)
        if self.sockopt_buf_doubles:
            value *= 2
        return max(value, minimum)
