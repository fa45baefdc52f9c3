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
)
