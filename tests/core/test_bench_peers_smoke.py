"""The benchmark against public optimizers, run tiny: every suite runs, scores and resumes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
pytest.importorskip("cocoex", reason="the bench extra (COCO's cocoex) is not installed")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_peers", BENCHMARKS / "bench_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_runs_every_suite_and_resumes(bench, tmp_path, capsys):
    argv = [
        "--smoke",
        "--workers=1",
        f"--cache={tmp_path / 'c.json'}",
        f"--out={tmp_path / 'o.md'}",
    ]
    assert bench.main(argv) == 0
    report = (tmp_path / "o.md").read_text()
    for row in ("| bbob | 2 | seq |", "| noisy | 2 | q4 |", "| mixed | 5 | seq |", "| mixed | 6 |"):
        assert row in report
    assert "Targets" in report and "Seconds per suggestion" in report
    runs = json.loads((tmp_path / "c.json").read_text())
    entry = runs["noisy/8/1/2|kt-auto|q4|0|8"]
    assert len(entry["true"]) == 8
    assert sum(k for _, _, k in entry["times"]) == 8  # two asks of four
    capsys.readouterr()
    assert bench.main(argv) == 0
    assert "runs to do" not in capsys.readouterr().out


def test_bbob_optimum_is_exact(bench):
    import suites

    problem = suites.build("bbob/1/1/5", 0)
    assert problem.optimum == pytest.approx(79.48)
    # The sphere's f - f* is the squared distance to its optimum: positive away from it.
    assert problem.evaluate({f"x{i}": 0.0 for i in range(5)})[1] > problem.optimum


def test_noise_is_multiplicative_and_seeded(bench):
    import suites

    a, b = suites.build("noisy/2/1/2", 3), suites.build("noisy/2/1/2", 3)
    x = {"x0": 1.0, "x1": -2.0}
    first = a.evaluate(x)
    assert first == b.evaluate(x)
    observed, true = first
    assert observed != true
    assert (observed - a.optimum) / (true - a.optimum) > 0


def test_win_tie_loss_counts_a_tie_as_a_tie(bench):
    rows = {
        "p1": {"kt-auto": [-2.0], "ngopt": [-1.0]},  # auto better by a decade: a win
        "p2": {"kt-auto": [-1.0], "ngopt": [-1.05]},  # within 0.1: a tie
        "p3": {"kt-auto": [0.0], "ngopt": [-1.0]},  # a loss
        "p4": {"kt-auto": [-8.0], "ngopt": [-8.0]},  # both at the floor: a tie
    }
    assert bench.win_tie_loss(rows, "kt-auto", "ngopt") == (1, 2, 1)
