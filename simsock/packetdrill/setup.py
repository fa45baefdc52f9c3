"""Setup lines: the shell commands a script runs, read as settings, never executed.

packetdrill scripts configure the kernel under test with backquoted shell commands, nearly
always ``sysctl`` (directly, through ``common/defaults.sh``, or through
``common/set_sysctls.py /proc/sys/net/...=value``). The interpreter recognises those and
applies them to the simulated host; anything else is reported by name and fails the
script, so that nothing a script asks for is silently skipped.

A sysctl is *modelled* when the simulated stack reads it (the value changes behaviour) and
*held* when the model implements one fixed behaviour: a held sysctl is accepted only at
the value that behaviour corresponds to (the Linux default or the packetdrill default),
and any other value fails the script with the sysctl named.
"""

from __future__ import annotations

import os
import re
import shlex


#: sysctl name (without ``net.ipv4.``/``net.core.``) -> (parser, values the model can take).
#: ``None`` as the allowed set: any value is modelled.
def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x, 0) for x in text.split())


def _int(text: str) -> int:
    return int(text.strip(), 0)


def _word(text: str) -> str:
    return text.strip()


#: name -> (parser, allowed, what it does). ``allowed``: None = every value is modelled; a set =
#: the model implements that one behaviour, other values fail named; "note" = recognised but
#: not modelled: accepted, and the run's notes say so (``simsock packetdrill -v``).
SYSCTLS: dict[str, tuple] = {
    "tcp_rmem": (_ints, None, "receive buffer min/default/max (profile tcp_rmem)"),
    "tcp_wmem": (_ints, None, "send buffer min/default/max (profile tcp_wmem)"),
    "tcp_timestamps": (_int, None, "RFC 7323 timestamps on SYN and every segment"),
    "tcp_sack": (_int, None, "SACK-permitted on SYN / SYN-ACK (profile tcp_sack)"),
    "tcp_dsack": (_int, None, "D-SACK reporting (profile tcp_dsack)"),
    "tcp_recovery": (_int, None, "RACK loss detection, bit 0x1 (profile tcp_recovery)"),
    "tcp_early_retrans": (_int, None, "tail loss probes with 3 or 4 (profile tcp_early_retrans)"),
    "tcp_syn_retries": (_int, None, "SYN retransmissions before ETIMEDOUT"),
    "tcp_synack_retries": (_int, None, "SYN-ACK retransmissions"),
    "tcp_congestion_control": (_word, None, "default congestion control"),
    "tcp_notsent_lowat": (_int, None, "default TCP_NOTSENT_LOWAT"),
    "tcp_syncookies": (_int, None, "SYN cookies when the SYN or accept queue overflows (profile)"),
    "tcp_pacing_ss_ratio": (_int, None, "pacing rate in slow start, % of cwnd/srtt"),
    "tcp_pacing_ca_ratio": (_int, None, "pacing rate in congestion avoidance, % of cwnd/srtt"),
    "tcp_ecn": (_int, {0, 1, 2}, "classic ECN negotiation (0 off, 1 request and accept, 2 accept); "
                "AccECN (3 and up) is not modelled"),
    # one behaviour modelled
    "tcp_fack": (_int, {0}, "no FACK (removed from Linux)"),
    "tcp_reordering": (_int, {3}, "initial reordering degree (dupthresh) 3"),
    "tcp_slow_start_after_idle": (_int, {0}, "no cwnd restart after idle"),
    "tcp_min_tso_segs": (_int, {2}, "smallest TSO burst 2 segments"),
    "tcp_window_scaling": (_int, {1}, "window scaling on"),
    "tcp_moderate_rcvbuf": (_int, {1}, "receive-buffer autotuning on"),
    "tcp_no_metrics_save": (_int, {0, 1}, "no metrics cache is modelled: both values behave alike"),
    # recognised, not modelled
    "tcp_frto": (_int, "note", "F-RTO (RFC 5682) is not modelled: no spurious-RTO detection or undo"),
    "tcp_tso_win_divisor": (_int, "note", "TSO deferral (tcp_tso_should_defer) is not modelled"),
    "tcp_ecn_option": (_int, "note", "the AccECN option has no effect without AccECN"),
    "tcp_fastopen": (_int, None, "TCP Fast Open, client bit 0x1: cookie request and cache, deferred "
                     "connect (data in the SYN and the server side are not modelled)"),
    "tcp_fastopen_key": (_word, "note", "TCP Fast Open is not modelled"),
}

_PREFIXES = ("net.ipv4.", "net.core.", "/proc/sys/net/ipv4/", "/proc/sys/net/core/")


class SetupError(Exception):
    """A setup command or sysctl the interpreter does not know (named in the message)."""


def _sysctl_name(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            return key[len(p):].replace("/", ".")
    if key.startswith("/proc/sys/"):
        return key[len("/proc/sys/"):].replace("/", ".")
    return key


def set_sysctl(settings: dict, key: str, value: str, notes: list | None = None) -> None:
    name = _sysctl_name(key)
    spec = SYSCTLS.get(name)
    if spec is None:
        raise SetupError(f"unknown sysctl {key!r}: the simulated host does not model it")
    parse, allowed, _ = spec
    try:
        v = parse(value)
    except ValueError:
        raise SetupError(f"sysctl {key}={value!r}: not a valid value") from None
    if allowed == "note":
        if notes is not None:
            notes.append(f"sysctl {name}={value}: {spec[2]}")
        settings[name] = v
        return
    if allowed is not None and v not in allowed:
        raise SetupError(f"sysctl {key}={value}: the model implements only "
                         f"{' or '.join(str(a) for a in sorted(allowed))} ({spec[2]})")
    settings[name] = v


_SHELL_ARITH = re.compile(r"\$\(\(([0-9*+\- ]+)\)\)")


def _expand(text: str) -> str:
    # $((15*1024*1024)) as the shell computes it (digits and + - * only)
    def arith(m):
        expr = m.group(1)
        if not re.fullmatch(r"[0-9*+\- ]+", expr):    # pragma: no cover - regex guarantees
            raise SetupError(f"cannot evaluate $(({expr}))")
        total = 0
        for term in re.findall(r"[+-]?\s*[0-9*\s]+", expr):
            prod = 1
            sign = -1 if term.strip().startswith("-") else 1
            for f in term.strip().lstrip("+-").split("*"):
                prod *= int(f)
            total += sign * prod
        return str(total)
    return _SHELL_ARITH.sub(arith, text)


def run_commands(text: str, script_dir: str, settings: dict, notes: list[str], depth: int = 0) -> None:
    """Read the shell lines of a backquoted command (or of a sourced setup script) and apply
    what they set. Unknown commands raise :class:`SetupError`."""
    if depth > 4:
        raise SetupError("setup scripts nest too deeply")
    for raw in _expand(text).splitlines():
        line = raw.split("#", 1)[0].strip() if "#" in raw and not raw.strip().startswith("#!") else raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s*(>|2>|>>)\s*/dev/null", "", line)
        line = line.replace("2>&1", "").strip()
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise SetupError(f"cannot read setup command {line!r}: {e}") from None
        if not words:
            continue
        cmd = words[0]
        base = os.path.basename(cmd)
        if cmd == "sysctl":
            args = [w for w in words[1:] if not w.startswith("-")]
            if any(w.startswith("-") and w not in ("-q", "-w", "-e") for w in words[1:]):
                raise SetupError(f"sysctl option not understood in {line!r}")
            for a in args:
                if "=" not in a:
                    raise SetupError(f"sysctl {a!r} reads a value; only settings are understood")
                k, v = a.split("=", 1)
                set_sysctl(settings, k, v, notes)
        elif base == "set_sysctls.py":
            for a in words[1:]:
                k, _, v = a.partition("=")
                set_sysctl(settings, k, v, notes)
        elif base.endswith(".sh") and base.startswith("sysctl_restore"):
            notes.append("sysctl restore: each script runs on a fresh simulated host")
        elif base == "defaults.sh" or (base.endswith(".sh") and not cmd.startswith("/tmp/")):
            path = cmd if os.path.isabs(cmd) else os.path.normpath(os.path.join(script_dir, cmd))
            if not os.path.exists(path):
                raise SetupError(f"setup script {cmd!r} not found (looked for {path})")
            with open(path, encoding="utf-8") as f:
                run_commands(f.read(), os.path.dirname(path), settings, notes, depth + 1)
        elif words[:3] == ["ip", "tcp_metrics", "flush"]:
            notes.append("ip tcp_metrics flush: the simulated host keeps no TCP metrics")
        elif words[:2] == ["tc", "qdisc"] and "pfifo" in words:
            notes.append("tc qdisc pfifo on tun0: the simulated device has no queue of its own")
        else:
            raise SetupError(f"setup command not understood: {line!r}")
