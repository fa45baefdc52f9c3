"""Linux's numbers (checked against kernel 6.18 on x86_64, Debian userland).

Where each comes from:

* ``rmem_default``/``wmem_default`` 212992 and ``rmem_max``/``wmem_max``: the sysctls
  ``net.core.{r,w}mem_{default,max}`` (defaults computed from SK_WMEM_MAX = 256 skbs of
  832 bytes). The ``*_max`` values are this distribution's (4 MiB); upstream's default is
  212992 — a user modelling another machine writes a profile JSON file with its sysctls.
* ``sock_min_rcvbuf`` 2304 and ``sock_min_sndbuf`` 4608: SOCK_MIN_RCVBUF and
  SOCK_MIN_SNDBUF in include/net/sock.h (2 x (2048 + sizeof(sk_buff)) and twice that);
  measured: ``setsockopt(SO_RCVBUF, 1)`` reads back 2304, ``SO_SNDBUF`` 4608.
* doubling: sock_setsockopt() stores ``max(val * 2, min)`` after capping at ``*_max``
  ("Don't error on this BSD doesn't and if you think about it this is right ..." in
  net/core/sock.c); measured: 10000 -> 20000, 10**7 -> 8388608.
* ``tcp_rmem``/``tcp_wmem``: the sysctls ``net.ipv4.tcp_{r,w}mem``.
* ``udp_truesize_steps``: skb->truesize of a received UDP datagram by payload size,
  measured on loopback from /proc/net/udp's rx_queue column (which is sk_rmem_alloc) one
  datagram at a time: 832 bytes up to 197 bytes of payload (skb_small_head_cache), then
  the kmalloc buckets 1024/2048/4096/8192/16384 plus 256 bytes of struct sk_buff, and from
  16005 bytes on payload + 832 (page fragments). This is what makes a 212992-byte receive
  buffer hold 256 small datagrams, not 212992 / payload.
* ``ip_local_port_range`` 32768-60999: net.ipv4.ip_local_port_range.
* ``loopback_mtu`` 65536: ``ip link show lo``. ``txqueuelen`` 1000: an Ethernet device's
  default (and pfifo_fast's limit).
* ``icmp_ratelimit_ns`` 1 s and burst 6: net.ipv4.icmp_ratelimit and XRLIM_BURST_FACTOR
  in net/ipv4/icmp.c (icmpv4_xrlim_allow); loopback is exempt.
* ``ipfrag_time_ns`` 30 s: net.ipv4.ipfrag_time. ``somaxconn`` 4096: net.core.somaxconn.
* ``tcp_sack`` 1, ``tcp_dsack`` 1, ``tcp_recovery`` 1 (RACK), ``tcp_early_retrans`` 3: the
  sysctls of the same names (read from /proc/sys/net/ipv4 on 6.18; the Profile's defaults).
  ``tcp_early_retrans`` 3 or 4 enables tail loss probes (tcp_schedule_loss_probe checks
  ``net.ipv4.tcp_early_retrans == 3 || == 4``); 0-2 disable them (Documentation/networking/
  ip-sysctl.rst: 0 disables TLP, 3 or 4 enables it, 3 is the default).
* ``tcp_congestion_control`` "cubic": the algorithm a new TCP socket gets. Upstream Linux
  builds with ``CONFIG_DEFAULT_TCP_CONG="cubic"`` (net/ipv4/Kconfig's default since 2.6.19),
  and so do the major distributions' kernels (Debian, Ubuntu, Fedora, RHEL); this profile
  keeps it, so that worlds and experiments written before BBR existed here run unchanged.
  The machine these numbers were checked on is an exception: its kernel is built with
  ``CONFIG_DEFAULT_BBR=y`` (``/proc/config.gz``; ``sysctl net.ipv4.tcp_congestion_control``
  says bbr), like several cloud images. ``simsock profile --from-host`` reads the sysctl, so
  a profile measured there uses bbr; ``dataclasses.replace(LINUX,
  tcp_congestion_control="bbr")`` is such a kernel by hand; ``setsockopt(IPPROTO_TCP,
  TCP_CONGESTION, b"bbr")`` picks it per socket, as on Linux.
* ``default_qdisc`` "pfifo_fast": ``net.core.default_qdisc`` (upstream's and this machine's).
  With "fq", Linux paces every TCP flow at ``sk_pacing_rate`` (sch_fq; for cubic/reno that is
  ``tcp_update_pacing_rate``: 200 % of cwnd x mss / srtt in slow start below ssthresh/2,
  120 % after, ``net.ipv4.tcp_pacing_ss_ratio``/``tcp_pacing_ca_ratio``); simsock then paces
  them as it paces BBR (fq's per-flow fair queueing itself is not modelled).

CPU costs (the CPU model, simsock/kernel/cpu.py). Python cannot time a system call by
itself; ``benchmarks/cpu_costs.py`` times real calls from Python on the test machine (a
2-vCPU Firecracker VM, kernel 6.18) and subtracts the interpreter's overhead, as a check of
order of magnitude. Its figures are quoted below.

* ``syscall_ns`` 500: the fixed part of one socket call. A minimal system call
  (getppid) measures ~185 ns here (entry/exit with this kernel's mitigations); a
  non-blocking ``recv`` that finds nothing measures 500-850 ns (fd lookup, socket lock,
  queue check, the EAGAIN return). Kernel work that depends on the size is in the copy
  cost; protocol work done in softirq context (TCP's ACK processing) is not charged.
* ``copy_ps_per_byte`` 50 (20 GB/s): copy_to_user/copy_from_user is a memcpy
  (rep movsb). Measured: 39 ps/byte for an in-cache 64 KiB memcpy, 75 ps/byte for 64 MiB,
  and 53 ps/byte for a loopback UDP send+recv of 60000 bytes minus one of 64 bytes (two
  copies per byte, so ~27 ps per copy while hot in cache).
* ``context_switch_ns`` 2000: a pipe ping-pong between two processes pinned to one CPU
  measures 5.7 us per round trip: two switches, each with its wake-up, plus four pipe
  calls (~0.3 us each from Python), so ~2.2 us per switch — in line with lmbench's
  lat_ctx on current x86 with page-table isolation (1.5-3 us).
* ``wakeup_ns`` 5000: try_to_wake_up to running on an idle core (IPI, idle exit,
  schedule). Bare-metal servers show 2-10 us (cyclictest / schbench wake-up latencies on
  an idle system). This VM measures ~20 us per cross-CPU wake-up (43.6 us per ping-pong
  round trip on two CPUs): a hypervisor's halt exit; a profile for such a machine sets it
  higher.
* ``sched_slice_ns`` 750000: EEVDF's sysctl_sched_base_slice (0.75 ms, kernel/sched/
  fair.c), which update_sysctl() scales by 1 + ilog2(min(ncpus, 8)) — so 1.5 ms on a 2-core
  host, 3 ms from 8 cores; the CPU model applies the same scaling to a host's cores.
* ``select_per_fd_ns`` 55: poll() with 1000 idle sockets registered costs 58 ns more per
  descriptor than with 10 (do_pollfd: fdget plus the socket's poll function).
* ``epoll_per_event_ns`` 100: epoll_wait reporting 256 ready sockets costs 154 ns per
  event more than reporting 1, of which ~50 ns is Python building its (fd, events) tuple
  (ep_send_events: re-poll the file, copy the event out).
* ``thread_stack_bytes`` 8 MiB: glibc's default thread stack is RLIMIT_STACK
  (``ulimit -s`` = 8192 KiB), reserved as virtual memory per thread (C6.1).
"""

from .base import Profile

LINUX = Profile(
    name="linux",
    kernel="6.18",
    rmem_default=212992,
    wmem_default=212992,
    rmem_max=4194304,
    wmem_max=4194304,
    sock_min_rcvbuf=2304,
    sock_min_sndbuf=4608,
    sockopt_buf_doubles=True,
    tcp_rmem=(4096, 131072, 33554432),
    tcp_wmem=(4096, 16384, 4194304),
    udp_truesize_steps=((198, 832), (646, 1280), (1670, 2304), (3718, 4352), (7814, 8448), (16005, 16640)),
    udp_truesize_linear=832,
    udp_max_payload=65507,
    ip_local_port_range=(32768, 60999),
    loopback_mtu=65536,
    default_mtu=1500,
    txqueuelen=1000,
    ip_default_ttl=64,
    icmp_ratelimit_ns=1_000_000_000,
    icmp_ratelimit_burst=6,
    ipfrag_time_ns=30_000_000_000,
    somaxconn=4096,
    syscall_ns=500,
    copy_ps_per_byte=50,
    context_switch_ns=2000,
    wakeup_ns=5000,
    sched_slice_ns=750_000,
    select_per_fd_ns=55,
    epoll_per_event_ns=100,
    thread_stack_bytes=8 << 20,
    tcp_congestion_control="cubic",
    default_qdisc="pfifo_fast",
    tcp_pacing_ss_ratio=200,
    tcp_pacing_ca_ratio=120,
)
