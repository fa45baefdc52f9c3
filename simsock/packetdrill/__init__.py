"""Linux's packetdrill scripts, run against a simulated Linux host.

``run_script(path)`` parses a packetdrill script (:mod:`.script`, from packetdrill's own
grammar), reads its options (:mod:`.config`) and setup lines (:mod:`.setup`: the sysctls it
sets), builds the host and its tun-like device (:mod:`.world`) and runs the script
(:mod:`.runner`): ``<`` packets are injected at their times and ``>`` packets captured and
matched (:mod:`.packets`), system calls are made on the simulated socket API and their
results compared (:mod:`.syscalls`), ``%{ }%`` assertions are checked against ``tcp_info``
(:mod:`.code`). The :class:`Result` (:mod:`.result`) is PASS, or the first mismatch with its
script line and simulated time. ``simsock packetdrill SCRIPT...`` is the command-line form.
"""

from .config import Config
from .result import Result
from .runner import Runner, run_script
from .script import ScriptError, parse, parse_file

__all__ = ["Config", "Result", "Runner", "ScriptError", "parse", "parse_file", "run_script", "run_scripts"]


def run_scripts(paths, strict: bool = False, tolerance_usecs: int | None = None) -> list[Result]:
    """Run each script; the results in the same order."""
    return [run_script(p, strict=strict, tolerance_usecs=tolerance_usecs) for p in paths]
