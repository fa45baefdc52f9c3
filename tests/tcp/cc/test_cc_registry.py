"""Choosing an algorithm by name, as setsockopt(IPPROTO_TCP, TCP_CONGESTION) does on Linux."""

from __future__ import annotations

import errno
import socket

import pytest

from simsock.tcp import cc
from simsock.tcp.cc.base import CongestionOps, tcp_reno_cong_avoid
from simsock.tcp.cc.cubic import Cubic
from simsock.tcp.cc.reno import NewReno, Reno


def test_builtin_algorithms_are_available_sorted():
    names = cc.available()
    assert {"reno", "newreno", "cubic"} <= set(names)
    assert names == sorted(names)


def test_get_returns_a_fresh_instance_per_connection():
    """Private state is per connection, like icsk_ca_priv."""
    a, b = cc.get("cubic"), cc.get("cubic")
    assert a is not b and isinstance(a, Cubic)
    assert type(cc.get("reno")) is Reno and type(cc.get("newreno")) is NewReno


@pytest.mark.parametrize("value", [b"cubic", "cubic", b"cubic\0", b"cubic\0garbage", bytearray(b"cubic")])
def test_names_are_read_as_linux_reads_the_option(value):
    """bytes or str; the name ends at the first NUL (a C string)."""
    assert cc.get(value).name == "cubic"


@pytest.mark.parametrize("value", [b"nosuch", "nosuch", b"CUBIC", b"cubic ", b"\0", b"x" * 40])
def test_unknown_names_raise_enoent(value):
    with pytest.raises(FileNotFoundError) as info:
        cc.get(value)
    assert info.value.errno == errno.ENOENT


def test_empty_name_raises_einval():
    with pytest.raises(OSError) as info:
        cc.get(b"")
    assert info.value.errno == errno.EINVAL


@pytest.mark.real
def test_errnos_match_the_real_kernel():
    """Differential check: the host's setsockopt fails with the same errno for the same
    bad names (skipped where TCP_CONGESTION does not exist)."""
    if not hasattr(socket, "TCP_CONGESTION"):
        pytest.skip("no TCP_CONGESTION on this platform")
    for value in (b"nosuch", b"", b"\0"):
        with socket.socket() as s:
            with pytest.raises(OSError) as real:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, value)
        with pytest.raises(OSError) as simulated:
            cc.get(value)
        assert simulated.value.errno == real.value.errno


class Aimd(CongestionOps):
    """A user's algorithm: Reno growth, cut to 3/4 on loss."""

    def ssthresh(self, tp):
        return max(tp.snd_cwnd * 3 // 4, 2)

    def cong_avoid(self, tp, ack, acked):
        tcp_reno_cong_avoid(tp, ack, acked)


def test_register_plugs_in_a_user_algorithm():
    cc.register(b"aimd", Aimd)
    try:
        assert "aimd" in cc.available()
        ops = cc.get("aimd")
        assert isinstance(ops, Aimd) and ops.name == "aimd"
    finally:
        cc.unregister("aimd")
    assert "aimd" not in cc.available()
    with pytest.raises(FileNotFoundError):
        cc.get("aimd")


def test_register_refuses_a_taken_name():
    with pytest.raises(FileExistsError) as info:
        cc.register("reno", Aimd)
    assert info.value.errno == errno.EEXIST
    assert type(cc.get("reno")) is Reno


def test_register_can_replace_on_request():
    cc.register("reno", Aimd, replace=True)
    try:
        assert type(cc.get("reno")) is Aimd
    finally:
        cc.register("reno", Reno, replace=True)


def test_register_refuses_an_incomplete_algorithm():
    """Like tcp_validate_congestion_control: ssthresh and cong_avoid are required (EINVAL)."""
    class NoGrowth(CongestionOps):
        def ssthresh(self, tp):
            return 2

    with pytest.raises(OSError) as info:
        cc.register("nogrowth", NoGrowth)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        cc.register("notops", object)
    with pytest.raises(ValueError):
        cc.register("a" * 16, Aimd)
    assert "nogrowth" not in cc.available()
