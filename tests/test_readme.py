"""The README's commands are the ones CI runs.

README.md opens with a fenced block of two commands: the first runs the main experiment, the
second runs the tests. `.ci/run` keeps the test command in one variable, TEST_COMMAND, and
prints it with `--print-test-command`; the two must not drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def test_the_readme_example_prints_what_the_readme_says(tmp_path):
    """The example program under "An example" prints exactly the two lines the README quotes
    (time and reply, then the server's UDP counters)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## An example", 1)[1]
    program = re.search(r"^```python\n(.*?)^```", section, re.M | re.S).group(1)
    quoted = [q.replace("\n", " ") for q in re.findall(r"prints `(.*?)`", section, re.S)[:1]
              + re.findall(r"UDP counters: `(.*?)`", section, re.S)[:1]]
    assert len(quoted) == 2, quoted
    script = tmp_path / "example.py"
    script.write_text(program, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True, text=True,
                         cwd=tmp_path).stdout
    assert out.splitlines() == quoted


def test_what_to_try_next_flips_the_claim_it_says(tmp_path):
    """Each `--set` change in the README's "What to try next" table takes C5.4 from PASS (to
    NOT MEASURED: the run can no longer show it), as the table says, and leaves C7.2 holding."""
    from simsock import experiment
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### What to try next", 1)[1].split("\n## ", 1)[0]
    changes = re.findall(r"^\| `--set (\S+?)` \|", section, re.M)
    assert len(changes) == 3, changes
    for change in changes:
        outcome = experiment.run_experiment("udp_overflow", 1, [change], tmp_path / change, plots=False)
        assert outcome.statuses() == {"C5.4": "NOT MEASURED", "C7.2": "PASS"}, (change, outcome.statuses())
    default = experiment.run_experiment("udp_overflow", 1, None, tmp_path / "default", plots=False)
    assert default.passed
