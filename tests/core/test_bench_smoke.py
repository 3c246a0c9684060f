"""The sampler benchmark, run tiny: it runs, scores, resumes from its cache and writes README."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_samplers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_samplers", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(report: str, table: str, row: str, column: str) -> str:
    lines = report.split(f"**{table}**", 1)[1].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == row:
            return cells[header.index(column)]
    raise AssertionError(f"no row {row!r} in {table!r}")


def test_tiny_run_scores_and_resumes(bench, tmp_path, capsys):
    # Ours, and Optuna's too where the bench extra is installed (its GP stays in its random
    # startup at this budget, so torch is not loaded).
    argv = [
        "--seeds=1",
        "--budgets=4,8",
        "--functions=branin,mixed6",
        "--workers=1",
        "--timing-trials=20",
        "--timing-asks=2",
        f"--cache={tmp_path / 'runs.json'}",
        f"--out={tmp_path / 'samplers.md'}",
    ]
    assert bench.main(argv) == 0
    samplers = bench.parse_args(argv).samplers
    assert {"random", "sobol"} <= set(samplers)
    report = (tmp_path / "samplers.md").read_text()
    for heading in ("Budget 4, seq", "Budget 8, batch4", "Time per suggestion", "Targets"):
        assert heading in report
    runs = json.loads((tmp_path / "runs.json").read_text())
    entry = runs["run|mixed6|random|batch4|0"]
    assert len(entry["values"]) == len(entry["times"]) == 8
    # Random search is the scale, so with one seed its own normalized regret is exactly 1.
    assert _cell(report, "Budget 8, seq", "branin", "random") == "1.000 / 1.000"
    capsys.readouterr()
    assert bench.main(argv) == 0
    assert capsys.readouterr().out.startswith("0 runs to do")


def test_readme_block_is_replaced_in_place(bench, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench.README_START}\nold\n{bench.README_END}\nafter\n")
    bench.write_readme(readme, "new table")
    assert readme.read_text() == (
        f"# x\n\nbefore\n{bench.README_START}\nnew table\n{bench.README_END}\nafter\n"
    )


def test_a_tie_is_not_a_win(bench):
    table = {("branin", 10, "seq"): {"auto": [0.0], "optuna-gp": [0.0], "optuna-tpe": [0.5]}}
    (line, *_) = bench.targets(table, {}, {}, ["branin"], [10], ["seq"], 10)
    assert line.startswith("MISS")
    assert "on 0/1 functions (need 1; 1 tied)" in line
