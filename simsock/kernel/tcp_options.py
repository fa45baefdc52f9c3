"""TCP's socket options: setsockopt/getsockopt at level IPPROTO_TCP (do_tcp_setsockopt,
do_tcp_getsockopt).

An option set before there is a connection is kept on the socket and goes into the
connection's :class:`~simsock.tcp.config.TcpConfig` when it is made
(:meth:`simsock.kernel.tcp_stack.TcpStack.config_for`); one set on a connected socket also
changes the connection at once, and the socket then pumps it (its output may change).
Each option is one setter (taking the option's int value) and one getter, in two tables.
"""

from __future__ import annotations

import errno

from simsock import constants as C
from simsock.errors import os_error
from simsock.tcp import cc as cc_registry
from simsock.tcp.config import TcpConfig
from simsock.tcp.info import pack_tcp_info

from .socket import _int_option

TCP_NOTSENT_LOWAT = 25      # linux/tcp.h
TCP_FASTOPEN_CONNECT = 30
TCP_USER_TIMEOUT = 18


def set_tcp_option(sock, optname: int, value) -> None:
    """setsockopt(IPPROTO_TCP, optname, value) on the TcpSocket ``sock``."""
    if optname == C.TCP_CONGESTION:
        _set_congestion(sock, value)
        return
    v = _int_option(value)
    setter = _SETTERS.get(optname)
    if setter is None:
        raise os_error(errno.ENOPROTOOPT, f"TCP option {optname} is not modelled")
    setter(sock, optname, v)


def get_tcp_option(sock, optname: int):
    """getsockopt(IPPROTO_TCP, optname) on the TcpSocket ``sock``: an int, or bytes."""
    getter = _GETTERS.get(optname)
    if getter is None:
        raise os_error(errno.ENOPROTOOPT, f"TCP option {optname} is not modelled")
    return getter(sock)


# -- setters -------------------------------------------------------------------------------
def _set_congestion(sock, value) -> None:
    if isinstance(value, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    name = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else value
    cc_registry.get(name)            # raises ENOENT for an unknown algorithm
    name = name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name)
    sock._congestion = name
    if sock.conn is not None:
        sock.conn.config.congestion = name
        sock.conn.set_congestion(name, sock._env.now)


def _set_nodelay(sock, _optname: int, v: int) -> None:
    sock._nodelay = bool(v)
    conn = sock.conn
    if conn is not None:
        conn.config.nodelay = bool(v)
        if v:
            conn.push_now = True   # TCP_NAGLE_PUSH: this push ignores a cork
        sock._pump()


def _set_cork(sock, _optname: int, v: int) -> None:
    sock._cork = bool(v)
    if sock.conn is not None:
        sock.conn.config.cork = bool(v)
        sock._pump()


def _set_maxseg(sock, _optname: int, v: int) -> None:
    # do_tcp_setsockopt: 0 clears it, else TCP_MIN_MSS (88) .. MAX_TCP_WINDOW (32767);
    # it becomes rx_opt.user_mss, which caps the MSS this side advertises in its SYN
    # (or SYN-ACK: a listener's children inherit it) and clamps the peer's, so the
    # connection's mss_cache is user_mss less the timestamp option (1000 -> 988).
    # An established connection keeps its MSS.
    if v and not 88 <= v <= 32767:
        raise os_error(errno.EINVAL, "TCP_MAXSEG must be 0 or 88..32767")
    sock._user_mss = v


def _set_fastopen_connect(sock, _optname: int, v: int) -> None:
    # do_tcp_setsockopt: 0 or 1, client TFO enabled, before connect()
    if v not in (0, 1):
        raise os_error(errno.EINVAL)
    if not sock.stack.fastopen & 1:
        raise os_error(errno.EOPNOTSUPP)
    if sock.conn is not None or sock._deferred_connect is not None:
        raise os_error(errno.EINVAL)
    sock._fastopen_connect = bool(v)


def _set_syncnt(sock, _optname: int, v: int) -> None:
    # icsk_syn_retries: SYN retransmissions before connect() fails with ETIMEDOUT
    if not 1 <= v <= 127:                      # MAX_TCP_SYNCNT
        raise os_error(errno.EINVAL, "TCP_SYNCNT must be 1..127")
    sock._syncnt = v


def _set_user_timeout(sock, _optname: int, v: int) -> None:
    if v < 0:
        raise os_error(errno.EINVAL)
    sock._user_timeout = v                  # milliseconds (icsk_user_timeout)
    if sock.conn is not None:
        sock.conn.user_timeout = v * 1_000_000


def _set_notsent_lowat(sock, _optname: int, v: int) -> None:
    if v < 0:
        raise os_error(errno.EINVAL)
    sock._notsent_lowat = v
    conn = sock.conn
    if conn is not None:
        conn.notsent_lowat = v
        conn.nospace = True          # sk->sk_write_space(sk)
        conn.check_space(sock._env.now)
        sock._pump()


def _set_quickack(sock, _optname: int, v: int) -> None:
    # __tcp_sock_set_quickack: 0 enters pingpong (delayed-ACK) mode, which also makes
    # a connecting socket delay the handshake's final ACK (tcp_rcv_synsent_state_process)
    conn = sock.conn
    if not v:
        sock._pingpong = True
        if conn is not None:
            conn.pingpong = max(conn.pingpong, 1)
    elif conn is not None:
        sock._pingpong = False
        conn.quick = max(conn.quick, conn.config.max_quickacks)
        conn.pingpong = 0
    else:
        sock._pingpong = False


def _set_keepalive_option(sock, optname: int, v: int) -> None:
    """TCP_KEEPIDLE / TCP_KEEPINTVL (1..32767 s) and TCP_KEEPCNT (1..127), else EINVAL
    (do_tcp_setsockopt; checked on Linux 6.18)."""
    limit = 127 if optname == C.TCP_KEEPCNT else 32767
    if not 1 <= v <= limit:
        raise os_error(errno.EINVAL)
    conn = sock.conn
    if optname == C.TCP_KEEPIDLE:
        sock._ka_time = v * 1_000_000_000
        if conn is not None:
            conn.config.keepalive_time = sock._ka_time
            conn.keepalive_idle_changed(sock._env.now)
            sock._pump()
    elif optname == C.TCP_KEEPINTVL:
        sock._ka_intvl = v * 1_000_000_000
        if conn is not None:
            conn.config.keepalive_intvl = sock._ka_intvl
    else:
        sock._ka_probes = v
        if conn is not None:
            conn.config.keepalive_probes = v


_SETTERS = {
    C.TCP_NODELAY: _set_nodelay,
    C.TCP_CORK: _set_cork,
    C.TCP_MAXSEG: _set_maxseg,
    TCP_FASTOPEN_CONNECT: _set_fastopen_connect,
    C.TCP_SYNCNT: _set_syncnt,
    TCP_USER_TIMEOUT: _set_user_timeout,
    TCP_NOTSENT_LOWAT: _set_notsent_lowat,
    C.TCP_QUICKACK: _set_quickack,
    C.TCP_KEEPIDLE: _set_keepalive_option,
    C.TCP_KEEPINTVL: _set_keepalive_option,
    C.TCP_KEEPCNT: _set_keepalive_option,
}


# -- getters -------------------------------------------------------------------------------
def _get_maxseg(sock) -> int:
    conn = sock.conn
    if sock._user_mss and (conn is None or sock.listener is not None or conn.state == "CLOSE"):
        return sock._user_mss       # user_mss in CLOSE and LISTEN
    if conn is None:
        return 536                  # TCP_MSS_DEFAULT (tcp_init_sock)
    # tp->mss_cache as tcp_sync_mss leaves it: bounded to half the peer's largest
    # window (tcp_bound_to_half_wnd), so 32741 right after a loopback connect.
    return conn.mss_cache


_GETTERS = {
    C.TCP_NODELAY: lambda sock: int(sock._nodelay),
    C.TCP_CORK: lambda sock: int(sock._cork),
    C.TCP_CONGESTION: lambda sock: sock._congestion.encode().ljust(16, b"\0"),
    C.TCP_KEEPIDLE: lambda sock: sock._ka_time // 1_000_000_000,
    C.TCP_KEEPINTVL: lambda sock: sock._ka_intvl // 1_000_000_000,
    C.TCP_KEEPCNT: lambda sock: sock._ka_probes,
    C.TCP_INFO: lambda sock: pack_tcp_info(sock.tcp_info()),
    C.TCP_SYNCNT: lambda sock: sock._syncnt or TcpConfig.syn_retries,
    TCP_NOTSENT_LOWAT: lambda sock: sock._notsent_lowat,
    TCP_USER_TIMEOUT: lambda sock: sock._user_timeout,
    C.TCP_MAXSEG: _get_maxseg,
}
