"""Windows' numbers where they differ from Linux's, and Linux's where nobody measured.

This profile exists for the completion-port experiments (IOCP is Windows'); it changes
what a Windows host would do differently with the same program and keeps the Linux
value, explicitly, for every number that has not been established for Windows. Not
checked against a Windows machine by this project (the test machine runs Linux).

Changed, with where each comes from:

* ``rmem_default`` / ``wmem_default`` 65536 and TCP's default buffers
  (``tcp_rmem[1]``, ``tcp_wmem[1]``) 65536: ``getsockopt(SO_RCVBUF/SO_SNDBUF)`` on a new
  socket returns 64 KiB on Windows 10 and 11 (Winsock's AFD default; Microsoft's older
  documentation of SO_RCVBUF/SO_SNDBUF still says 8 KiB, the Windows NT value).
* ``sockopt_buf_doubles`` False: Winsock stores the SO_RCVBUF/SO_SNDBUF value it is given;
  the doubling is Linux's (net/core/sock.c).
* ``ip_local_port_range`` 49152-65535: Windows' default dynamic port range since Vista
  (``netsh int ipv4 show dynamicport tcp``; Microsoft KB 929851, the IANA range of RFC 6335).
* ``ip_default_ttl`` 128: Windows' DefaultTTL (Tcpip\\Parameters).

Kept from Linux because the Windows value is unknown here or not modelled differently:
the SO_*BUF minimums and maximums, TCP buffer minimum and maximum (Windows autotunes its
receive window differently; not modelled), the per-packet memory charge of UDP datagrams
(a Linux skb truesize rule; Windows' AFD buffering is not modelled), MTUs, txqueuelen,
ICMP rate limits, the reassembly timeout, the accept backlog limit (Windows' SOMAXCONN
means "a reasonable maximum"), and every CPU cost (syscall, copy, context switch, wake-up).
"""

import dataclasses

from .linux import LINUX

WINDOWS = dataclasses.replace(
    LINUX,
    name="windows",
    kernel="Windows 10/11 (defaults as documented; unverified here)",
    rmem_default=65536,
    wmem_default=65536,
    sockopt_buf_doubles=False,
    tcp_rmem=(LINUX.tcp_rmem[0], 65536, LINUX.tcp_rmem[2]),
    tcp_wmem=(LINUX.tcp_wmem[0], 65536, LINUX.tcp_wmem[2]),
    ip_local_port_range=(49152, 65535),
    ip_default_ttl=128,
)
