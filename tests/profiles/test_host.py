"""``simsock profile --from-host``: a profile measured on this Linux, loaded by the simulator.

On a machine running the kernel the default linux profile was checked against (6.18), the
measured fields must equal the default profile's, except the ones that describe this
machine's network interface rather than the kernel (:data:`MACHINE_FIELDS`).
"""

import json
import os
import sys

import pytest

import simsock
from simsock.cli import main
from simsock.constants import AF_INET, SOCK_DGRAM
from simsock.profiles import LINUX, get_profile, profile_from_dict
from simsock.profiles.host import differences, measure, measured_fields

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--from-host reads Linux's /proc and /sys")

#: Fields of the NIC of the default route (a VM's virtio NIC may have MTU 1400), not of the kernel.
MACHINE_FIELDS = {"default_mtu", "txqueuelen",
                  # a build choice (CONFIG_DEFAULT_TCP_CONG): bbr on this machine, cubic upstream
                  # and in the linux profile (see simsock/profiles/linux.py)
                  "tcp_congestion_control"}


@pytest.fixture(scope="module")
def measured():
    if not sys.platform.startswith("linux"):
        pytest.skip("--from-host reads Linux's /proc and /sys")
    return measure()


@linux
def test_measured_profile_round_trips_through_json(measured, tmp_path):
    """The JSON file loads as a Profile equal to the measured one, and loads from its path."""
    path = tmp_path / "host.json"
    path.write_text(measured.to_json())
    data = json.loads(path.read_text())
    assert data["base"] == "linux"
    assert profile_from_dict(data) == measured.profile()
    assert get_profile(str(path)) == measured.profile()
    assert get_profile(str(path)).kernel == os.uname().release


@linux
def test_measurement_is_deterministic(measured):
    """Measuring twice gives the same file (bisection over fixed payloads, no timing)."""
    assert measure().to_json() == measured.to_json()


@linux
def test_simulation_accepts_the_measured_profile(measured, tmp_path):
    """Simulation(profile=path) runs with it: a fresh UDP socket's SO_RCVBUF is the host's."""
    path = tmp_path / "host.json"
    path.write_text(measured.to_json())
    got = []

    async def prog(k):
        s = k.socket(AF_INET, SOCK_DGRAM)
        got.append(s.getsockopt(1, 8))    # SOL_SOCKET, SO_RCVBUF
        s.close()
    sim = simsock.Simulation(seed=1, profile=str(path))
    sim.add_host("a").spawn(prog)
    sim.run()
    assert got == [measured.values["rmem_default"]]


@linux
def test_every_field_has_a_source(measured):
    """Each measured field names where its value came from; the others say they were copied."""
    for name in measured_fields():
        assert name in measured.sources
        assert not measured.sources[name].startswith("not ")
    assert set(measured.values) == set(LINUX.to_dict())


@linux
def test_matches_the_default_linux_profile_on_its_kernel(measured):
    """On the kernel the linux profile was checked against, every measured number agrees
    (except the default route's NIC, which belongs to the machine); elsewhere the differences
    are listed."""
    diffs = differences(measured.profile())
    if not os.uname().release.startswith(LINUX.kernel + "."):
        pytest.skip(f"kernel {os.uname().release}, profile checked on {LINUX.kernel}: differences {diffs}")
    unexplained = {k: v for k, v in diffs.items() if k not in MACHINE_FIELDS}
    assert unexplained == {}, f"measured here vs the linux profile: {unexplained}"


@linux
def test_truesize_steps_match_the_documented_measurement(measured):
    """The bisection finds the skb truesize steps the linux profile documents (832 up to 197
    bytes, kmalloc buckets, then payload + 832)."""
    p = measured.profile()
    if not os.uname().release.startswith(LINUX.kernel + "."):
        pytest.skip("truesize steps depend on the kernel's skb layout")
    assert p.udp_truesize_steps == LINUX.udp_truesize_steps
    assert p.udp_truesize_linear == LINUX.udp_truesize_linear
    assert p.udp_truesize(0) == 832 and p.udp_truesize(20000) == 20832


@linux
def test_cli_writes_a_profile_file(tmp_path, capsys):
    """simsock profile --from-host -o FILE writes a loadable file; without -o, JSON on stdout."""
    path = tmp_path / "mine.json"
    assert main(["profile", "--from-host", "-o", str(path)]) == 0
    assert get_profile(str(path)).name == "host"
    capsys.readouterr()
    assert main(["profile", "--from-host"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel"] == os.uname().release


def test_cli_show_and_usage_errors(tmp_path, capsys):
    """profile show NAME|FILE prints every field; mistakes exit 2 with one line saying what to do."""
    assert main(["profile", "show", "linux"]) == 0
    out = capsys.readouterr().out
    assert "udp_truesize_steps" in out and "somaxconn" in out
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"somaxconn": 128}))
    assert main(["profile", "show", str(path)]) == 0
    assert "somaxconn              128   (linux: 4096)" in capsys.readouterr().out
    assert main(["profile"]) == 2
    assert "simsock profile --from-host" in capsys.readouterr().err
    assert main(["profile", "show", str(tmp_path / "missing.json")]) == 2
    assert "cannot read profile" in capsys.readouterr().err
    assert main(["profile", "show", "--from-host"]) == 2


@pytest.mark.skipif(sys.platform != "linux", reason="reads the running Linux")
def test_from_host_reads_hz_and_syncookies():
    """--from-host measures CONFIG_HZ from SO_RCVTIMEO's jiffy rounding and reads
    tcp_syncookies and tcp_max_syn_backlog."""
    from simsock.profiles.host import kernel_hz, measure
    hz = kernel_hz()
    assert hz in (100, 250, 300, 1000)
    values = measure().values
    assert values["hz"] == hz
    with open("/proc/sys/net/ipv4/tcp_syncookies") as f:
        assert values["tcp_syncookies"] == int(f.read())
