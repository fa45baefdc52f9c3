"""``simsock sweep``: local processes or a Dask cluster, same bytes; streamed, resumable
summary; a figure of the metric against the swept parameter; "seeds make no difference"."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

from simsock import sweep
from simsock.cli import main

TOY = '''
"""Toy noise: a mean of seeded noise around a level."""

import random

CLAIMS = ["S1.1"]
PARAMS = {"level": 1.0, "noise": 0.5, "samples": 20, "fail_at": 0.0}


def run(params, seed):
    if params["level"] == params["fail_at"]:
        raise RuntimeError("this point crashes")
    rng = random.Random(seed)
    xs = [params["level"] + rng.uniform(-1, 1) * params["noise"] for _ in range(params["samples"])]
    return {"mean_delay_ms": sum(xs) / len(xs), "samples": params["samples"], "label": "x",
            "series": xs}


def check(result):
    try:
        from simsock.claims import Checks
    except ImportError:          # a runner that reads failures as plain sentences
        return [] if result["mean_delay_ms"] <= 3 else [f"S1.1: mean {result['mean_delay_ms']:.2f} ms > 3"]
    c = Checks()
    c.at_most("S1.1", "mean delay", result["mean_delay_ms"], 3, unit="ms")
    return c.list


def plot(result, outdir):
    return []
'''


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    package = tmp_path / "sweep_toy"
    package.mkdir()
    (package / "__init__.py").write_text('"""Toy experiments."""\n')
    (package / "noise.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SIMSOCK_EXPERIMENTS", "sweep_toy")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m.startswith("sweep_toy")]:
        del sys.modules[name]
    return tmp_path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".csv")}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


GRID = ["level=1,2,3.5"]


def test_a_dask_cluster_gives_the_local_sweeps_bytes(toy):
    distributed = pytest.importorskip("distributed", reason="pip install 'simsock[cluster]' for Dask")
    sweep.run_sweep("noise", GRID, 3, outdir=toy / "local", jobs=1)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        remote = sweep.run_sweep("noise", GRID, 3, outdir=toy / "dask", scheduler=cluster.scheduler_address)
    assert remote.reused == 0 and len(remote.outcomes) == 9
    assert _files(toy / "local") == _files(toy / "dask")
    rows = _rows(remote.summary_path)
    assert [(r["level"], r["seed"]) for r in rows] == [(lv, s) for lv in ("1.0", "2.0", "3.5") for s in "123"]
    assert [r["passed"] for r in rows] == ["true"] * 6 + ["false"] * 3
    assert remote.seeds_matter and remote.metric == "mean_delay_ms"
    assert remote.figure_path.name == "mean_delay_ms.png" and remote.figure_path.stat().st_size > 5000


def test_the_cli_takes_the_scheduler_from_the_environment(toy, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="pip install 'simsock[cluster]' for Dask")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv(sweep.SCHEDULER_ENV, cluster.scheduler_address)
        assert main(["sweep", "noise", "--grid", "level=1,2", "--seeds", "2", "--out", "sw"]) == 0
    out = capsys.readouterr().out
    assert f"on the Dask cluster at {cluster.scheduler_address}" in out
    assert "mean_delay_ms.png (mean_delay_ms against level)" in out


def test_an_unreachable_scheduler_is_one_line(toy, capsys):
    pytest.importorskip("distributed")
    status = main(["sweep", "noise", "--grid", "level=1", "--scheduler", "tcp://127.0.0.1:9", "--out", "x"])
    assert status == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_a_sweep_resumes_without_rerunning_what_is_done(toy):
    first = sweep.run_sweep("noise", GRID, 2, outdir=toy / "sw", jobs=1)
    before = _files(toy / "sw")
    (toy / "sw" / "level=2.0" / "seed2" / "result.json").unlink()
    stamp = (toy / "sw" / "level=1.0" / "seed1" / "result.json").stat().st_mtime_ns
    again = sweep.run_sweep("noise", GRID, 2, outdir=toy / "sw", jobs=1)
    assert again.reused == 5 and first.reused == 0
    assert _files(toy / "sw") == before
    assert (toy / "sw" / "level=1.0" / "seed1" / "result.json").stat().st_mtime_ns == stamp
    changed = sweep.run_sweep("noise", GRID, 2, overrides=["samples=5"], outdir=toy / "sw", jobs=1)
    assert changed.reused == 0          # other parameters: not the same runs
    fresh = sweep.run_sweep("noise", GRID, 2, overrides=["samples=5"], outdir=toy / "sw", jobs=1, resume=False)
    assert fresh.reused == 0


def test_summary_has_the_finished_runs_when_a_later_one_crashes(toy):
    """summary.csv is rewritten as runs finish: a crash at the third point leaves the first
    two points' rows; the rerun (fixed) reuses them."""
    with pytest.raises(Exception, match="this point crashes"):
        sweep.run_sweep("noise", GRID, 2, overrides=["fail_at=3.5"], outdir=toy / "sw", jobs=1)
    rows = _rows(toy / "sw" / "summary.csv")
    assert [(r["level"], r["seed"]) for r in rows] == [("1.0", "1"), ("1.0", "2"), ("2.0", "1"), ("2.0", "2")]
    done = sweep.run_sweep("noise", ["level=1,2"], 2, overrides=["fail_at=3.5"], outdir=toy / "sw", jobs=1)
    assert done.reused == 4


def test_a_sweep_whose_seeds_make_no_difference_says_so(toy, capsys):
    assert main(["sweep", "noise", "--grid", "level=1,2", "--set", "noise=0", "--seeds", "3",
                 "--out", "flat", "-q"]) == 0
    assert "seeds make no difference" in capsys.readouterr().out
    assert main(["sweep", "noise", "--grid", "level=1,2", "--seeds", "3", "--out", "noisy", "-q"]) == 0
    assert "seeds make no difference" not in capsys.readouterr().out


def test_the_figure_has_a_title_units_error_bars_and_no_offset(toy, monkeypatch):
    import matplotlib.pyplot as plt

    from simsock import plot as plotting
    seen = {}
    real_save = plotting.save

    def spy(fig, path):
        ax = fig.axes[0]
        fig.canvas.draw()
        seen.update(title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(),
                    offset=ax.yaxis.get_offset_text().get_text(),
                    bars=sum(1 for c in ax.containers if type(c).__name__ == "ErrorbarContainer"),
                    legend=ax.get_legend_handles_labels()[1])
        return real_save(fig, path)

    monkeypatch.setattr(plotting, "save", spy)
    sweep.run_sweep("noise", ["level=1000,1000.5", "samples=5,50"], 3, outdir=toy / "fig", jobs=1)
    plt.close("all")
    assert seen["title"] == "noise: mean_delay_ms against level (mean ± 1 sd over 3 seeds)"
    assert seen["xlabel"] == "level (parameter, as set with --grid)" and seen["ylabel"] == "mean_delay_ms (ms)"
    assert seen["offset"] == ""              # 1000.x is written out, not "+1e3"
    assert seen["bars"] == 2 and seen["legend"] == ["samples=5", "samples=50"]


def test_a_metric_that_is_not_a_number_is_one_line(toy, capsys):
    assert main(["sweep", "noise", "--grid", "level=1", "--metric", "label", "--out", "m", "-q"]) == 2
    assert "--metric label: not a number" in capsys.readouterr().err


def test_the_default_metric_is_a_number_that_the_sweep_changes():
    runs = [{"bin_s": 0.02, "dropped": 5, "label": "x"}, {"bin_s": 0.02, "dropped": 0, "label": "x"}]
    assert sweep._pick_metric(runs, None) == "dropped"           # not the constant bin width
    assert sweep._pick_metric(runs[:1] * 2, None) == "bin_s"      # nothing varies: the first number
    assert sweep._pick_metric(runs, "bin_s") == "bin_s"


def test_the_figure_labels_the_parameter_with_its_help_and_says_when_seeds_agree(toy, monkeypatch):
    from simsock import plot as plotting
    (toy / "sweep_toy" / "noise.py").write_text(TOY + '\nPARAM_HELP = {"level": "mean delay set, ms"}\n')
    seen = {}
    real_save = plotting.save

    def spy(fig, path):
        seen.update(title=fig.axes[0].get_title(), xlabel=fig.axes[0].get_xlabel())
        return real_save(fig, path)

    monkeypatch.setattr(plotting, "save", spy)
    sweep.run_sweep("noise", ["level=1,2"], 2, overrides=["noise=0"], outdir=toy / "flat", jobs=1)
    assert seen == {"title": "noise: mean_delay_ms against level (the same with each of 2 seeds)",
                    "xlabel": "level: mean delay set, ms"}
