"""The README's commands are the ones CI runs.

README.md opens with a fenced block of two commands: the first runs the main experiment, the
second runs the tests. `.ci/run` keeps the test command in one variable, TEST_COMMAND, and
prints it with `--print-test-command`; the two must not drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The non-empty lines of the first fenced block in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert block, "README.md has no fenced code block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_main_command_and_the_test_command():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert ".venv/bin/simsock run " in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    printed = subprocess.run(["bash", str(ci), "--print-test-command"], check=True,
                             capture_output=True, text=True).stdout.rstrip("\n")
    assert printed == readme_commands()[1]
