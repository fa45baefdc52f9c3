"""Linux's packetdrill scripts, run against a simulated Linux host.

``run_script(path)`` parses a packetdrill script (:mod:`.script`, from packetdrill's own
grammar), applies its setup lines (:mod:`.setup`: the sysctls it sets), and runs it
(:mod:`.runner`): ``<`` packets are injected at their times on the host's tun-like device,
``>`` packets are captured and matched, system calls are made on the simulated socket API
and their results compared, ``%{ }%`` assertions are checked against ``tcp_info``
(:mod:`.code`). The result is PASS, or the first mismatch with its script line and
simulated time. ``simsock packetdrill SCRIPT...`` is the command-line form.
"""

from .runner import Config, Result, Runner, run_script
from .script import ScriptError, parse, parse_file

__all__ = ["Config", "Result", "Runner", "ScriptError", "parse", "parse_file", "run_script", "run_scripts"]


def run_scripts(paths, strict: bool = False, tolerance_usecs: int | None = None) -> list[Result]:
    """Run each script; the results in the same order."""
    return [run_script(p, strict=strict, tolerance_usecs=tolerance_usecs) for p in paths]
