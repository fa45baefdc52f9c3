"""Profiles: every number the kernel uses, documented, loadable by name, object or JSON."""

import dataclasses
import inspect
import json

import pytest

import simsock
from simsock import AF_INET, SO_RCVBUF, SO_SNDBUF, SOCK_DGRAM, SOL_SOCKET
from simsock.profiles import LINUX, Profile, base, get_profile, linux, profile_from_dict

FIELDS = [f.name for f in dataclasses.fields(Profile)]


def _documented_in_class(name: str) -> bool:
    src = inspect.getsource(base.Profile).splitlines()
    for i, line in enumerate(src):
        if line.strip().startswith(name + ":"):
            return "#" in line or src[i - 1].strip().startswith("#")
    return False


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_documented(name):
    """Each Profile field carries a comment in the class saying what it is, or is explained
    (with its source) in the Linux profile's docstring."""
    comments = " ".join(line.split("#", 1)[1] for line in inspect.getsource(base.Profile).splitlines()
                        if "#" in line)
    assert _documented_in_class(name) or name in comments or name in linux.__doc__, \
        f"Profile.{name} is not documented in simsock/profiles/base.py or linux.py"


def test_every_field_has_a_value_in_linux():
    """The Linux profile sets every field (no None left)."""
    assert all(getattr(LINUX, n) is not None for n in FIELDS)
    assert LINUX.name == "linux" and LINUX.kernel == "6.18"


def test_get_profile_by_name_object_and_error():
    """get_profile('linux') is LINUX; a Profile passes through; an unknown name is a
    ValueError naming the choices; a wrong type is a TypeError."""
    assert get_profile("linux") is LINUX
    assert get_profile(LINUX) is LINUX
    with pytest.raises(ValueError, match=r"^unknown profile 'nosuch': use one of linux, windows or the path of a profile "
                                         r"JSON file"):
        get_profile("nosuch")
    with pytest.raises(TypeError, match=r"^profile must be a name \(linux, windows\), a Profile or a JSON file path, not int$"):
        get_profile(3)
    with pytest.raises(ValueError, match="unknown profile 'nosuch'"):
        simsock.Simulation(profile="nosuch")


def test_profile_error_says_what_to_pass():
    """The error for an unknown profile names the known profiles and the JSON alternative,
    and points to no command that does not exist."""
    with pytest.raises(ValueError) as info:
        get_profile("nosuch")
    message = str(info.value)
    assert "linux" in message and "JSON" in message
    assert "simsock profile" not in message


def test_json_round_trip(tmp_path):
    """A profile written as JSON (to_dict) and read back by path equals the original,
    tuples included."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(LINUX.to_dict()))
    loaded = get_profile(str(path))
    assert loaded == LINUX
    assert isinstance(loaded.udp_truesize_steps[0], tuple)
    assert get_profile(path) == LINUX            # os.PathLike too


def test_partial_json_profile_changes_the_simulation(tmp_path):
    """A JSON profile with some fields keeps Linux's values for the rest, and a Simulation
    built with it uses them (new sockets' SO_RCVBUF/SO_SNDBUF, the setsockopt cap)."""
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"name": "small", "rmem_default": 50000, "wmem_default": 60000, "rmem_max": 100000}))
    prof = get_profile(str(path))
    assert prof.rmem_default == 50000 and prof.tcp_rmem == LINUX.tcp_rmem
    sim = simsock.Simulation(profile=str(path))
    h = sim.add_host("h")
    out = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        out.append((s.getsockopt(SOL_SOCKET, SO_RCVBUF), s.getsockopt(SOL_SOCKET, SO_SNDBUF)))
        s.setsockopt(SOL_SOCKET, SO_RCVBUF, 10**6)
        out.append(s.getsockopt(SOL_SOCKET, SO_RCVBUF))

    h.spawn(prog)
    sim.run(until="1s")
    assert out == [(50000, 60000), 200000]


def test_json_unknown_field_rejected(tmp_path):
    """An unknown field in a profile file is an error listing the valid fields."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"rmem_defualt": 1}))
    with pytest.raises(ValueError, match=r"unknown fields \['rmem_defualt'\]; valid fields are"):
        get_profile(str(path))


def test_profile_is_immutable():
    """Profiles are frozen: a run cannot change another run's numbers."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        LINUX.rmem_default = 1


@pytest.mark.parametrize("payload, truesize", [
    (0, 832), (100, 832), (197, 832), (198, 1280), (645, 1280), (646, 2304), (1000, 2304), (1472, 2304),
    (1669, 2304), (1670, 4352), (3717, 4352), (3718, 8448), (4000, 8448), (7813, 8448), (7814, 16640),
    (16004, 16640), (16005, 16837), (65507, 66339),
])
def test_udp_truesize(payload, truesize):
    """The receive-buffer charge per datagram by payload size (measured on 6.18)."""
    assert LINUX.udp_truesize(payload) == truesize


@pytest.mark.parametrize("requested, rcv, snd", [
    (1, 2304, 4608), (1152, 2304, 4608), (1153, 2306, 4608), (2304, 4608, 4608), (2305, 4610, 4610),
    (10000, 20000, 20000), (4194304, 8388608, 8388608), (10**7, 8388608, 8388608), (-1, 8388608, 8388608),
])
def test_stored_buffer_rules(requested, rcv, snd):
    """setsockopt stores min(v, *mem_max) * 2, at least SOCK_MIN_RCVBUF/SOCK_MIN_SNDBUF."""
    assert (LINUX.stored_rcvbuf(requested), LINUX.stored_sndbuf(requested)) == (rcv, snd)


def test_no_doubling_profile():
    """A profile with sockopt_buf_doubles=False stores the value as given (capped, raised
    to the minimum)."""
    p = profile_from_dict({"sockopt_buf_doubles": False})
    assert (p.stored_rcvbuf(10000), p.stored_rcvbuf(1), p.stored_rcvbuf(10**8)) == (10000, 2304, 4194304)
