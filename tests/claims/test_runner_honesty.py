"""The runner's verdicts: PASS only when a check naming the claim ran and held; UNCHECKED and
NOT MEASURED are printed, counted, recorded and exit 1 (unless --allow-unchecked); a crash in
check or plot is reported, never raised. Driven by a toy package written to a temporary
directory, as tests/test_experiment_runner.py does."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from simsock import experiment
from simsock.claims import NOT_MEASURABLE, TEXT, Checks, status_of
from simsock.cli import main

PACKAGE = "simsock_honesty_toys"

TOYS = {
    "legacy": '''
        """Legacy: the old contract, strings for failures; one claim is never named."""
        CLAIMS = ["C1.1", "C1.2"]
        PARAMS = {"fail": False}
        def run(params, seed): return {"fail": params["fail"]}
        def check(result): return ["C1.1: it failed"] if result["fail"] else []
        def plot(result, outdir): return []
    ''',
    "measured": '''
        """Measured: a check that can be made only with two threads."""
        from simsock.claims import Checks
        CLAIMS = ["C9.6", "C9.7"]
        PARAMS = {"threads": 2, "races": 3, "crash_plot": False, "crash_check": False}
        def run(params, seed): return dict(params)
        def check(result):
            if result["crash_check"]:
                raise KeyError("races")
            c = Checks()
            if result["threads"] < 2:
                c.not_measured("C9.6", "one thread cannot race")
            else:
                c.at_least("C9.6", "races", result["races"], 1)
            c.equal("C9.7", "races with IOCP", 0, 0)
            return c.list
        def plot(result, outdir):
            if result["crash_plot"]:
                raise TypeError("no figure")
            from simsock import plot as plotting
            fig, ax = plotting.figure("toy", "x (s)", "y (count)")
            ax.plot([0, 1], [0, result["races"]])
            return [plotting.save(fig, outdir / "toy.png")]
    ''',
}


@pytest.fixture
def toys(tmp_path_factory, monkeypatch, tmp_path):
    root = tmp_path_factory.mktemp("honesty")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text('"""Toys."""\n')
    for name, source in TOYS.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv(experiment.PACKAGE_ENV, PACKAGE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_claim_no_check_names_is_unchecked_not_pass(toys, capsys):
    outcome = experiment.run_experiment("legacy", 1, {}, toys / "a", plots=False)
    assert outcome.statuses() == {"C1.1": "UNCHECKED", "C1.2": "UNCHECKED"}
    assert not outcome.passed and not outcome.failed
    assert main(["run", "legacy", "--out", "b"]) == 1
    out = capsys.readouterr().out
    assert "UNCHECKED C1.1" in out and "2 UNCHECKED" in out
    assert main(["run", "legacy", "--out", "c", "--allow-unchecked"]) == 0


def test_a_failure_string_still_fails_its_claim(toys):
    outcome = experiment.run_experiment("legacy", 1, {"fail": True}, toys / "a", plots=False)
    assert outcome.statuses()["C1.1"] == "FAIL" and outcome.failed


def test_not_measured_is_never_pass_and_exits_1(toys, capsys):
    assert main(["run", "measured", "--set", "threads=1", "--out", "nm"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"NOT MEASURED C9\.6 .*\n.*one thread cannot race", out)
    assert "PASS         C9.7" in out
    doc = json.loads((toys / "nm" / "result.json").read_text())
    assert doc["claim_status"]["C9.6"]["status"] == "NOT MEASURED"
    assert doc["claim_status"]["C9.6"]["text"] == TEXT["C9.6"]
    assert main(["run", "measured", "--set", "threads=1", "--out", "nm2", "--allow-unchecked"]) == 0


def test_result_json_records_numbers_and_thresholds(toys):
    experiment.run_experiment("measured", 1, {"races": 0}, toys / "r", plots=False)
    doc = json.loads((toys / "r" / "result.json").read_text())
    check = doc["claim_status"]["C9.6"]["checks"][0]
    assert doc["claim_status"]["C9.6"]["status"] == "FAIL"
    assert check == {"status": "FAIL", "text": "races = 0, expected >= 1", "measured": {"races": 0},
                     "threshold": ">= 1"}


def test_pass_prints_the_claim_text_and_its_key_number(toys, capsys):
    assert main(["run", "measured", "--out", "p"]) == 0
    out = capsys.readouterr().out
    assert f"PASS C9.6  {TEXT['C9.6']}" in out
    assert "measured: races = 3" in out


def test_a_crashing_plot_is_reported_and_the_verdict_kept(toys, capsys):
    assert main(["run", "measured", "--set", "crash_plot=true", "--out", "cp"]) == 0
    out = capsys.readouterr().out
    assert "figure not drawn: plot failed: TypeError: no figure" in out
    assert "Traceback" not in out


def test_a_crashing_check_is_a_fail_with_the_error(toys, capsys):
    assert main(["run", "measured", "--set", "crash_check=true", "--out", "cc"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "the check crashed: KeyError" in out


def test_status_order():
    c = Checks()
    c.at_least("C1.1", "x", 1, 1)
    assert status_of(c.list) == "PASS"
    c.not_measured("C1.1", "why")
    assert status_of(c.list) == "NOT MEASURED"
    c.at_most("C1.1", "y", 2, 1)
    assert status_of(c.list) == "FAIL"
    assert status_of([]) == "UNCHECKED"


def test_a_time_parameter_without_a_unit_is_refused(capsys):
    assert main(["run", "udp_overflow", "--set", "delay=5"]) == 2
    err = capsys.readouterr().err
    assert "'5' has no unit" in err and err.count("\n") == 1


# --- the real experiments ----------------------------------------------------------------------


def test_every_claim_is_cited_or_declared_not_measurable(capsys):
    cited = {claim for module in experiment.discover().values() for claim in module.CLAIMS}
    assert cited <= set(TEXT), f"unknown claim ids: {cited - set(TEXT)}"
    assert sorted(set(TEXT) - cited - set(NOT_MEASURABLE)) == []
    assert len(TEXT) == 45
    assert main(["list", "--claims"]) == 0
    out = capsys.readouterr().out
    assert "NOT CITED" not in out and all(f"{claim} " in out for claim in TEXT)


def test_the_project_describes_every_claim():
    doc = (Path(__file__).parents[2] / "docs" / "claims.md").read_text(encoding="utf-8")
    assert all(f"**{claim}**" in doc for claim in TEXT)


def test_list_name_shows_the_claim_texts(capsys):
    assert main(["list", "udp_overflow"]) == 0
    out = capsys.readouterr().out
    assert f"C5.4  {TEXT['C5.4']}" in out


def test_a_sweep_point_that_cannot_compare_is_not_passed(toys):
    import csv

    from simsock import sweep
    result = sweep.run_sweep("measured", ["threads=1,2"], 1, jobs=1, outdir=toys / "sw")
    with open(result.summary_path, newline="", encoding="utf-8") as handle:
        rows = {row["threads"]: row["passed"] for row in csv.DictReader(handle)}
    assert rows == {"1": "false", "2": "true"}
