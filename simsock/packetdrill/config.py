"""A run's settings: packetdrill's command-line options (config.c), which a script may also
set in its first lines (``--tolerance_usecs=10000``)."""

from __future__ import annotations

from dataclasses import dataclass

from .result import Unsupported


@dataclass
class Config:
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    strict: bool = False            # zero timing tolerance
    strict_segments: bool = False   # no aggregation of captured packets
    local_ip: str = "192.168.0.1"
    remote_ip: str = "192.0.2.1"
    bind_port: int = 8080
    connect_port: int = 8080
    tcp_ts_tick_usecs: int = 0
    mtu: int = 1500
    ip_version: str = "ipv4"


_KNOWN_OPTIONS = {"tolerance_usecs", "tolerance_percent", "local_ip", "remote_ip", "bind_port",
                  "connect_port", "tcp_ts_tick_usecs", "mtu", "ip_version", "strict_segments"}


def apply_options(cfg: Config, options: dict) -> None:
    """Set the script's ``--name=value`` options on ``cfg``; an option the interpreter does
    not know fails the script, named."""
    for name, value in options.items():
        if name not in _KNOWN_OPTIONS:
            raise Unsupported(f"option --{name}")
        if name == "ip_version":
            if value != "ipv4":
                raise Unsupported(f"--ip_version={value} (only ipv4 is modelled)")
            continue
        if name == "strict_segments":
            cfg.strict_segments = True
            continue
        if value is None:
            raise Unsupported(f"option --{name} without a value")
        if name in ("local_ip", "remote_ip"):
            setattr(cfg, name, value)
        elif name == "tolerance_percent":
            cfg.tolerance_percent = float(value)
        else:
            setattr(cfg, name, int(value, 0))
