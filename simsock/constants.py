"""Socket, select and errno constants with Linux's values.

simsock programs import these from :mod:`simsock` instead of :mod:`socket` so that a
program means the same thing on every host OS: the numbers are the ones CPython exposes on
Linux (checked by ``tests/test_constants.py`` against the running interpreter where it is
Linux).
"""

# Address families and socket types (socket module on Linux).
AF_INET = 2
AF_INET6 = 10
AF_UNIX = 1
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000

# Protocol levels and protocols.
SOL_SOCKET = 1
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# SOL_SOCKET options.
SO_REUSEADDR = 2
SO_TYPE = 3
SO_ERROR = 4
SO_BROADCAST = 6
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_KEEPALIVE = 9
SO_LINGER = 13
SO_REUSEPORT = 15
SO_RCVLOWAT = 18
SO_SNDLOWAT = 19
SO_RCVTIMEO = 20
SO_SNDTIMEO = 21
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

# IPPROTO_TCP options.
TCP_NODELAY = 1
TCP_MAXSEG = 2
TCP_CORK = 3
TCP_KEEPIDLE = 4
TCP_KEEPINTVL = 5
TCP_KEEPCNT = 6
TCP_SYNCNT = 7
TCP_INFO = 11
TCP_QUICKACK = 12
TCP_CONGESTION = 13

# send/recv flags.
MSG_OOB = 0x1
MSG_PEEK = 0x2
MSG_CTRUNC = 0x8
MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
MSG_EOR = 0x80
MSG_WAITALL = 0x100
MSG_CMSG_CLOEXEC = 0x40000000
MSG_NOSIGNAL = 0x4000

# ioctl requests (asm-generic/ioctls.h, linux/sockios.h); use them with k.ioctl(sock, request).
FIONREAD = 0x541B           # bytes readable: TCP's receive queue, UDP's next datagram
SIOCINQ = FIONREAD
TIOCOUTQ = 0x5411
SIOCOUTQ = TIOCOUTQ         # TCP: bytes not yet acknowledged (write_seq - snd_una); UDP: send-buffer memory
SIOCOUTQNSD = 0x894B        # TCP: bytes not yet sent (write_seq - snd_nxt)

# shutdown(how).
SHUT_RD = 0
SHUT_WR = 1
SHUT_RDWR = 2

SOMAXCONN = 4096
INADDR_ANY = "0.0.0.0"

# poll(2) / epoll(7) event bits (select module on Linux).
POLLIN = EPOLLIN = 0x001
POLLPRI = EPOLLPRI = 0x002
POLLOUT = EPOLLOUT = 0x004
POLLERR = EPOLLERR = 0x008
POLLHUP = EPOLLHUP = 0x010
POLLNVAL = 0x020
POLLRDNORM = EPOLLRDNORM = 0x040
POLLRDBAND = EPOLLRDBAND = 0x080
POLLWRNORM = EPOLLWRNORM = 0x100
POLLWRBAND = EPOLLWRBAND = 0x200
POLLMSG = EPOLLMSG = 0x400
POLLRDHUP = EPOLLRDHUP = 0x2000
EPOLLEXCLUSIVE = 1 << 28
EPOLLWAKEUP = 1 << 29
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31
FD_SETSIZE = 1024
