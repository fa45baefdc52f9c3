"""The experiment runner and the ``simsock`` command, driven by a toy experiment.

The toy lives in a throwaway package written to a temporary directory; the runner is pointed
at it with ``SIMSOCK_EXPERIMENTS`` (inherited by the processes a sweep spawns), so nothing
here depends on the real studies in ``experiments/``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simsock import experiment
from simsock.cli import main
from simsock.experiment import ExperimentError, parse_grid, parse_overrides

TOY_PACKAGE = "simsock_toy_experiments"

TOY = '''
"""Toy dice: the sum of seeded dice stays under a limit.

A stand-in for a real study, small enough to run in milliseconds.
"""

import random

from simsock import plot as plotting

CLAIMS = ["T1.1", "T1.2"]
PARAMS = {"dice": 3, "sides": 6, "limit": 1000, "scale": 1.0, "verbose": False,
          "label": "d", "weights": [1, 2]}
PARAM_HELP = {"dice": "number of dice thrown"}


def run(params, seed):
    rng = random.Random(seed)
    rolls = [rng.randint(1, params["sides"]) for _ in range(params["dice"])]
    times = [i * 0.1 for i in range(len(rolls))]
    return {"rolls": rolls, "total": sum(rolls) * params["scale"], "limit": params["limit"],
            "label": params["label"], "series": {"t_s": times, "running": rolls}}


def check(result):
    from simsock.claims import Checks
    c = Checks()
    c.at_most("T1.1", "total", result["total"], result["limit"])
    c.at_least("T1.2", "dice thrown", len(result["rolls"]), 1)
    return c.list


def plot(result, outdir):
    fig, ax = plotting.figure("Toy dice", "time (s)", "roll (pips)")
    plotting.step_plot(ax, result["series"]["t_s"], result["series"]["running"], "roll")
    plotting.shade_intervals(ax, [(0.0, 0.05), (0.1, 0.15)], "blocked")
    plotting.annotate_claim(ax, "T1.1: the total stays under the limit")
    return [plotting.save(fig, outdir / "dice.png")]
'''


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    package = root / TOY_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text('"""Toy experiments for the runner tests."""\n')
    (package / "toy.py").write_text(TOY)
    (package / "_helpers.py").write_text('"""Not an experiment: names with _ are skipped."""\n')
    (package / "no_claims.py").write_text(textwrap.dedent('''
        """Breaks the contract: no CLAIMS."""
        PARAMS = {}
        def run(params, seed): return {}
        def check(result): return []
        def plot(result, outdir): return []
    '''))
    return root


@pytest.fixture
def toy(toy_root, monkeypatch, tmp_path) -> Path:
    """Point the runner at the toy package and work in an empty directory."""
    monkeypatch.syspath_prepend(str(toy_root))
    monkeypatch.setenv(experiment.PACKAGE_ENV, TOY_PACKAGE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


PARAMS = {"n": 3, "rate": 1.5, "on": False, "name": "x", "sizes": [64, 128], "tags": ["a"]}


# --- parameters --------------------------------------------------------------------------------


def test_overrides_take_the_type_of_the_default():
    got = parse_overrides(["n=7", "rate=2", "on=yes", "name=hello world", "sizes=1,2,3",
                           "tags=b,c"], PARAMS)
    assert got == {"n": 7, "rate": 2.0, "on": True, "name": "hello world",
                   "sizes": [1, 2, 3], "tags": ["b", "c"]}
    assert type(got["rate"]) is float


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("YES", True),
                                         ("false", False), ("0", False), ("no", False)])
def test_booleans_accept_the_usual_spellings(text, value):
    assert parse_overrides([f"on={text}"], PARAMS) == {"on": value}


def test_integers_may_be_written_with_an_exponent_or_underscores():
    assert parse_overrides(["n=1e6"], PARAMS) == {"n": 1_000_000}
    assert parse_overrides(["n=10_000"], PARAMS) == {"n": 10_000}


def test_a_key_given_twice_keeps_the_last_value():
    assert parse_overrides(["n=1", "n=2"], PARAMS) == {"n": 2}


def test_unknown_key_names_the_valid_keys_and_the_closest():
    with pytest.raises(ExperimentError) as info:
        parse_overrides(["rtae=3"], PARAMS)
    message = str(info.value)
    assert "'rtae'" in message and "did you mean 'rate'" in message
    assert "n, name, on, rate, sizes, tags" in message


@pytest.mark.parametrize("item, expected", [
    ("n=abc", "not an integer"),
    ("n=1.5", "not an integer"),
    ("rate=fast", "not a number"),
    ("rate=nan", "not a finite number"),
    ("on=maybe", "not a boolean"),
    ("sizes=1,x", "not an integer"),
    ("n", "not of the form key=value"),
    ("=3", "not of the form key=value"),
])
def test_bad_values_are_explained(item, expected):
    with pytest.raises(ExperimentError, match=expected):
        parse_overrides([item], PARAMS)


def test_grid_splits_alternatives_on_commas_and_list_alternatives_on_semicolons():
    grid = parse_grid(["n=1,2", "sizes=64,128;1024"], PARAMS)
    assert grid == {"n": [1, 2], "sizes": [[64, 128], [1024]]}
    assert list(grid) == ["n", "sizes"]
    with pytest.raises(ExperimentError, match="repeats a value"):
        parse_grid(["n=1,1"], PARAMS)


def test_claim_status_attributes_failures_by_claim_id():
    status = experiment.claim_status(
        ["C5.4", "C5.41"], ["C5.4: 0 drops, expected at least 1", "ran for 0 s"])
    assert status == {"C5.4": ["C5.4: 0 drops, expected at least 1", "ran for 0 s"],
                      "C5.41": ["ran for 0 s"]}


# --- discovery ---------------------------------------------------------------------------------


def test_discover_lists_experiments_in_order_skipping_private_modules(toy):
    assert experiment.available() == ["no_claims", "toy"]
    assert experiment.title(experiment.load("toy")) == (
        "Toy dice: the sum of seeded dice stays under a limit.")


def test_unknown_experiment_suggests_the_closest_name_and_lists_all(toy):
    with pytest.raises(ExperimentError) as info:
        experiment.load("tyo")
    assert "unknown experiment 'tyo'; did you mean 'toy'? Available: no_claims, toy" == str(
        info.value)


def test_an_experiment_breaking_the_contract_is_named(toy):
    with pytest.raises(ExperimentError, match="'no_claims'.*missing: CLAIMS"):
        experiment.load("no_claims")


# --- running -----------------------------------------------------------------------------------


def test_result_json_has_a_header_and_defaults_to_results_name(toy):
    outcome = experiment.run_experiment("toy", seed=3, overrides=["dice=2"])
    assert outcome.result_path == toy / "results" / "toy" / "result.json"
    saved = json.loads(outcome.result_path.read_text())
    assert saved["experiment"] == "toy" and saved["seed"] == 3
    assert saved["claims"] == ["T1.1", "T1.2"]
    assert saved["params"]["dice"] == 2 and saved["params"]["sides"] == 6
    assert "simsock_version" in saved and len(saved["result"]["rolls"]) == 2
    assert outcome.passed and outcome.figures == [toy / "results" / "toy" / "dice.png"]
    assert str(toy) not in outcome.result_path.read_text()


def test_results_and_figures_are_byte_identical_across_runs_and_processes(toy, toy_root):
    """Same experiment, parameters and seed: same bytes, in this process and in a fresh one
    (whose str hashes are randomised differently)."""
    first = experiment.run_experiment("toy", 5, {"dice": 20}, toy / "a")
    second = experiment.run_experiment("toy", 5, {"dice": 20}, toy / "b")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_root), *sys.path]),
           "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "simsock.cli", "run", "toy", "--seed", "5",
                    "--set", "dice=20", "--out", str(toy / "c")],
                   check=True, env=env, capture_output=True)
    text = first.result_path.read_bytes()
    assert text == second.result_path.read_bytes() == (toy / "c" / "result.json").read_bytes()
    assert text.endswith(b"\n") and b"NaN" not in text
    png = (toy / "a" / "dice.png").read_bytes()
    assert png == (toy / "b" / "dice.png").read_bytes() == (toy / "c" / "dice.png").read_bytes()
    other = experiment.run_experiment("toy", 6, {"dice": 20}, toy / "d")
    assert other.result_path.read_bytes() != text


def test_cli_run_prints_pass_per_claim_and_absolute_paths(toy, capsys):
    assert main(["run", "toy", "--out", "out"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  PASS T1.1" in lines and "  PASS T1.2" in lines
    written = [Path(line.strip()) for line in lines[lines.index("wrote:") + 1:]]
    assert written == [toy / "out" / "result.json", toy / "out" / "dice.png"]
    assert all(path.is_absolute() and path.exists() for path in written)


def test_cli_run_exits_1_when_the_check_fails(toy, capsys):
    assert main(["run", "toy", "--set", "limit=0"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL T1.1" in out and "  PASS T1.2" in out
    assert "total = 8, expected <= 0" in out


@pytest.mark.parametrize("argv, expected", [
    (["run", "tyo"], "unknown experiment 'tyo'; did you mean 'toy'?"),
    (["run", "toy", "--set", "dicee=2"], "unknown parameter 'dicee'; did you mean 'dice'?"),
    (["run", "toy", "--set", "dice=two"], "bad value for dice: 'two' is not an integer"),
    (["run", "toy", "--seed", "x"], "'x' is not an integer"),
    (["sweep", "toy", "--grid", "dice=1", "--seeds", "0"], "must be at least 1"),
    (["sweep", "toy", "--grid", "dice=1,2", "--set", "dice=3"], "both fixed"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(toy, capsys, argv, expected):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("simsock: error: ") and expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_cli_list_shows_names_claims_and_titles_then_parameters(toy, capsys):
    assert main(["list", "toy"]) == 0
    out = capsys.readouterr().out
    assert "claims:\n  T1.1\n  T1.2\n" in out
    assert "  dice = 3  number of dice thrown" in out and "  weights = 1,2" in out


def test_cli_sweep_runs_the_grid_times_seeds_on_two_processes(toy, capsys):
    argv = ["sweep", "toy", "--grid", "dice=2,4", "--seeds", "2", "--jobs", "2",
            "--set", "limit=12", "--out", "sw"]
    assert main(argv) == 0
    assert "2 point(s) x 2 seed(s) = 4 run(s)" in capsys.readouterr().out
    with open(toy / "sw" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dice"], r["seed"]) for r in rows] == [("2", "1"), ("2", "2"), ("4", "1"),
                                                     ("4", "2")]
    assert [r["result_file"] for r in rows] == [
        "dice=2/seed1/result.json", "dice=2/seed2/result.json",
        "dice=4/seed1/result.json", "dice=4/seed2/result.json"]
    for row in rows:
        saved = json.loads((toy / "sw" / row["result_file"]).read_text())
        assert saved["params"]["dice"] == int(row["dice"]) and saved["params"]["limit"] == 12
        assert float(row["result.total"]) == saved["result"]["total"]
        assert row["passed"] == ("true" if saved["result"]["total"] <= 12 else "false")
    # a point run in a worker process matches the same run made here
    alone = experiment.run_experiment("toy", 2, {"dice": 4, "limit": 12}, toy / "alone")
    assert alone.result_path.read_bytes() == (toy / "sw/dice=4/seed2/result.json").read_bytes()
    summary = (toy / "sw" / "summary.csv").read_bytes()
    assert main(argv[:-1] + ["sw2"]) == 0
    assert (toy / "sw2" / "summary.csv").read_bytes() == summary


def test_cli_report_embeds_figures_by_relative_path(toy, capsys):
    assert main(["report", "--out", "rep"]) == 1  # no_claims breaks the contract
    out = capsys.readouterr().out
    assert "PASS toy" in out and "ERROR no_claims" in out
    page = (toy / "rep" / "report.html").read_text()
    assert '<img src="toy/dice.png"' in page and str(toy) not in page
    assert "Toy dice: the sum of seeded dice stays under a limit." in page
    assert (toy / "rep" / "toy" / "dice.png").exists()
