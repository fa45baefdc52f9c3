"""The world packetdrill builds with its tun device, on the simulator.

One host (``--local_ip``) whose route to the script's remote address (``--remote_ip``), and
to any address it does not own, is a :class:`Device` with no queue and no delay: what the
host sends there is captured with its time, for the runner to match against ``>`` lines.
The script's sysctls (read by :mod:`.setup`) become the host's profile where the profile
holds them, the TCP stack's defaults, and fields of each new connection's ``TcpConfig``.
"""

from __future__ import annotations

import dataclasses

from simsock import Simulation
from simsock.host import Host
from simsock.net.packet import Packet
from simsock.profiles import Profile, without_cpu_costs
from simsock.tcp import cc as cc_registry

from .config import Config
from .setup import SetupError


class Device:
    """The tun device: what the host sends to the remote address is captured here."""

    def __init__(self, env, mtu: int):
        self.env = env
        self.mtu = mtu
        self.name = "tun0"
        self.captured: list[tuple[int, Packet]] = []
        self.rate_bps = None
        self.delay_ns = 0
        self.tso = True         # segmentation offload: TCP hands it TSO bursts (simsock.tcp.gso)

    def send(self, pkt: Packet) -> int:
        self.captured.append((self.env._now, pkt))
        return self.env._now


#: sysctls each new connection reads: sysctl name -> TcpConfig field. The sysctls setup.py
#: holds at one value (tcp_slow_start_after_idle, tcp_min_tso_segs, ...) are the model's
#: fixed behaviour and set nothing; tcp_syncookies is a profile field.
_CONNECTION_SYSCTLS = {"tcp_syn_retries": "syn_retries", "tcp_synack_retries": "synack_retries",
                       "tcp_notsent_lowat": "notsent_lowat", "tcp_ecn": "ecn",
                       "tcp_pacing_ss_ratio": "pacing_ss_ratio", "tcp_pacing_ca_ratio": "pacing_ca_ratio"}


def build(cfg: Config, settings: dict) -> tuple[Simulation, Host, Device]:
    """The simulation, its one host and the host's tun device, with ``settings`` (the
    script's sysctls) applied."""
    sim = Simulation(seed=1, profile=_profile(settings), trace=False)
    host = sim.add_host("local")
    sim._addresses.pop(host.address, None)
    host.address = cfg.local_ip
    sim._addresses[host.address] = host
    device = Device(sim.env, cfg.mtu)
    real_route = host.route

    # the route is replaced on this one host: every address but its own leaves by the device
    def route(dst, _real=real_route):
        if dst == cfg.remote_ip or not host.owns(dst):
            return (device, cfg.mtu, host.address)
        return _real(dst)
    host.route = route
    _configure_tcp(host.tcp, settings)
    return sim, host, device


def _profile(settings: dict) -> Profile:
    """Linux without CPU costs (packetdrill times only the network), with the sysctls the
    profile holds."""
    prof = without_cpu_costs("linux")
    repl = {}
    for name in ("tcp_rmem", "tcp_wmem"):
        if name in settings:
            if len(settings[name]) != 3:
                raise SetupError(f"sysctl {name} needs three numbers")
            repl[name] = tuple(settings[name])
    for name in ("tcp_sack", "tcp_dsack"):
        if name in settings:
            repl[name] = bool(settings[name])
    for name in ("tcp_recovery", "tcp_early_retrans", "tcp_syncookies", "tcp_congestion_control"):
        if name in settings:
            repl[name] = settings[name]
    return dataclasses.replace(prof, name="linux+packetdrill", **repl)


def _configure_tcp(stack, settings: dict) -> None:
    """The stack's defaults from the sysctls, and each new connection's ``TcpConfig``."""
    if "tcp_congestion_control" in settings:
        name = settings["tcp_congestion_control"]
        try:
            cc_registry.get(name)
        except OSError:
            raise SetupError(f"sysctl tcp_congestion_control={name}: "
                             f"no such congestion control in the model") from None
        stack.default_congestion = name
    if "tcp_fastopen" in settings:
        stack.fastopen = settings["tcp_fastopen"]

    def config_for(sock, remote_ip, _orig=stack.config_for):
        tcp_cfg = _orig(sock, remote_ip)
        if "tcp_timestamps" in settings:
            tcp_cfg.timestamps = bool(settings["tcp_timestamps"])
        for name, attr in _CONNECTION_SYSCTLS.items():
            if name in settings:
                setattr(tcp_cfg, attr, settings[name])
        return tcp_cfg
    stack.config_for = config_for
