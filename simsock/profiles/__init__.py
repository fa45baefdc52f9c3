"""Profiles: every number the simulated kernel uses, with where it comes from.

``Simulation(profile="linux")`` (the default) uses :data:`simsock.profiles.linux.LINUX`;
``profile=`` also accepts a :class:`Profile` or the path of a JSON file (a dict of
field name -> value; unknown fields are an
error, missing fields keep the Linux default).
"""

from __future__ import annotations

import dataclasses
import json
import os

from simsock import validate

from .base import Profile
from .linux import LINUX
from .windows import WINDOWS

PROFILES = {"linux": LINUX, "windows": WINDOWS}


def get_profile(profile) -> Profile:
    """Resolve a profile given by name, object or JSON file path."""
    if isinstance(profile, Profile):
        return validate.profile(profile, source=f"profile {profile.name!r}")
    if not isinstance(profile, (str, os.PathLike)):
        raise TypeError(f"profile must be a name ({', '.join(sorted(PROFILES))}), a Profile or a JSON file path, "
                        f"not {type(profile).__name__}")
    key = os.fspath(profile)
    if key in PROFILES:
        return PROFILES[key]
    if os.path.isdir(key):
        raise ValueError(f"profile {key!r} is a directory; give the path of a profile JSON file (written by "
                         f"'simsock profile --from-host -o FILE') or a profile name: {', '.join(sorted(PROFILES))}")
    if os.path.exists(key):
        with open(key, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as exc:
                raise ValueError(f"profile file {key!r} is not valid JSON ({exc}); write one with "
                                 f"'simsock profile --from-host -o FILE'") from None
        if not isinstance(data, dict):
            raise ValueError(f"profile file {key!r} must hold a JSON object of Profile field names to values, "
                             f"not a {type(data).__name__}")
        return profile_from_dict(data, source=key)
    if key.endswith(".json") or os.sep in key:
        raise ValueError(f"profile file {key!r} does not exist; write one with 'simsock profile --from-host -o "
                         f"{key}', or use a profile name: {', '.join(sorted(PROFILES))}")
    raise ValueError(f"unknown profile {key!r}: use one of {', '.join(sorted(PROFILES))} or the path of a "
                     f"profile JSON file (a dict of Profile field names to values)")


def profile_from_dict(data: dict, source: str = "dict") -> Profile:
    base = data.get("base", "linux")
    if base not in PROFILES:
        raise ValueError(f"profile {source}: unknown base {base!r}; use one of {', '.join(sorted(PROFILES))}")
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(data) - fields - {"base"})
    if unknown:
        raise ValueError(f"profile {source}: unknown fields {unknown}; valid fields are {sorted(fields)}")
    values = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v)
              for k, v in data.items() if k != "base"}
    return validate.profile(dataclasses.replace(PROFILES[base], **values), source=f"profile {source}")


def without_cpu_costs(profile="linux") -> Profile:
    """``profile`` with the CPU model's costs at zero (system calls, copies, context
    switches, wake-up latency): threads then take no simulated time except in
    ``k.compute``, for studies (and tests) of the network alone."""
    return dataclasses.replace(get_profile(profile), syscall_ns=0, copy_ps_per_byte=0, context_switch_ns=0,
                               wakeup_ns=0, select_per_fd_ns=0, epoll_per_event_ns=0)


__all__ = ["Profile", "LINUX", "WINDOWS", "get_profile", "profile_from_dict", "PROFILES", "without_cpu_costs"]
