"""The C names packetdrill scripts use, with their Linux values (symbols_linux.c's table,
for the names a TCP script can meet). A name not here fails the script with the name."""

from __future__ import annotations

import errno as _errno

SYMBOLS: dict[str, int] = {
    # socket(2)
    "AF_INET": 2, "AF_INET6": 10, "PF_INET": 2, "PF_INET6": 10, "AF_UNSPEC": 0,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
    "IPPROTO_IP": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_ICMP": 1,
    # levels
    "SOL_SOCKET": 1, "SOL_TCP": 6, "SOL_IP": 0, "SOL_UDP": 17,
    # SOL_SOCKET options
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5, "SO_BROADCAST": 6,
    "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10, "SO_LINGER": 13,
    "SO_REUSEPORT": 15, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19, "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21,
    "SO_TIMESTAMP": 29, "SO_ACCEPTCONN": 30, "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33,
    "SO_PROTOCOL": 38, "SO_DOMAIN": 39, "SO_MAX_PACING_RATE": 47, "SO_ZEROCOPY": 60,
    # IPPROTO_TCP options
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9, "TCP_WINDOW_CLAMP": 10,
    "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13, "TCP_MD5SIG": 14,
    "TCP_THIN_LINEAR_TIMEOUTS": 16, "TCP_THIN_DUPACK": 17, "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19,
    "TCP_FASTOPEN": 23, "TCP_TIMESTAMP": 24, "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26,
    "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28, "TCP_FASTOPEN_CONNECT": 30, "TCP_ULP": 31,
    "TCP_FASTOPEN_KEY": 33, "TCP_FASTOPEN_NO_COOKIE": 34, "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36,
    "TCP_TX_DELAY": 37,
    # send/recv flags
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8, "MSG_TRUNC": 0x20,
    "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100, "MSG_ERRQUEUE": 0x2000,
    "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_FASTOPEN": 0x20000000, "MSG_ZEROCOPY": 0x4000000,
    # shutdown
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    # fcntl
    "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4, "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2,
    "O_NONBLOCK": 0o4000, "FD_CLOEXEC": 1,
    # ioctl
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411, "SIOCOUTQNSD": 0x894B,
    "FIONBIO": 0x5421,
    # poll / epoll
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10, "POLLNVAL": 0x20,
    "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100, "POLLWRBAND": 0x200, "POLLMSG": 0x400,
    "POLLRDHUP": 0x2000,
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
    "EPOLLMSG": 0x400, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28, "EPOLLWAKEUP": 1 << 29,
    "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
    "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    "NULL": 0,
}


def errno_code(name: str) -> int | None:
    return getattr(_errno, name, None) if name.startswith("E") else None
