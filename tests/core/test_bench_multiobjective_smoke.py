"""The multi-objective benchmark, run tiny: every problem and sampler runs, is scored and is
published (results file and README block); and the yardstick itself is right: the true fronts'
hypervolumes, the hypervolume curve, ties and the trials-to-reach count."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
pytest.importorskip("pymoo", reason="the bench extra (pymoo) is not installed")
pytest.importorskip("optuna", reason="the bench extra (optuna) is not installed")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(
        "bench_multiobjective", BENCHMARKS / "bench_multiobjective.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_smoke_runs_every_problem_and_writes_the_readme_block(bench, tmp_path, monkeypatch):
    # Publish into a README of our own: the real one is written only by a real run.
    monkeypatch.setattr(sys.modules["tables"], "ROOT", tmp_path)
    start, end = bench.MARK
    (tmp_path / "README.md").write_text(f"intro\n{start}\nstale table\n{end}\noutro\n")
    out = tmp_path / "mo.md"
    assert bench.main(["--smoke", "--workers=1", f"--out={out}", "--readme"]) == 0

    results = out.read_text()
    table = results.split("**6 trials, sequential: mean normalised hypervolume**")[1]
    ran = table.strip().splitlines()[0].strip("| ").split(" | ")[1:]
    # Every sampler of the smoke run is in the table, or named with the reason it did not run.
    for name in ("kt-auto", "kt-random", "optuna-tpe", "pymoo-nsga2"):
        assert (name in ran) != (f"{name} (" in results)
    assert {"optuna-tpe", "pymoo-nsga2"} <= set(ran)
    for title in ("6 trials, sequential", "12 trials, sequential", "8 trials, batches of 4"):
        assert f"**{title}: mean normalised hypervolume**" in results
        assert f"**{title}: milliseconds per suggestion**" in results
    for problem in bench.PROBLEMS:
        assert f"| {problem} |" in results
    assert "Runs that failed" not in results
    assert "**Target**" in results and "Trials to 95%" in results
    if "kt-auto" in ran:  # it is judged against every other sampler
        assert "kt-auto W/T/L per seed" in results and "vs optuna-tpe" in results

    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith(f"intro\n{start}\n") and readme.endswith(f"{end}\noutro\n")
    assert "stale table" not in readme
    assert results.split("\n\n", 1)[1].strip() in readme


def test_the_readme_has_the_block_that_readme_writes(bench):
    readme = (BENCHMARKS.parent / "README.md").read_text()
    assert bench.MARK[0] in readme and bench.MARK[1] in readme


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("zdt1", 2 / 3 + 0.1 + 0.11),  # integral of (1.1 - (1 - sqrt x)) on [0, 1], plus the
        ("zdt2", 1 / 3 + 0.1 + 0.11),  # 0.1 x 1.1 strip past f1 = 1
        ("dtlz2", 1.1**3 - math.pi / 6),
        ("dtlz2-4", 1.1**4 - math.pi**2 / 32),
    ],
)
def test_true_front_hypervolume_matches_the_closed_form(bench, name, expected):
    assert bench.build(name).best_hv == pytest.approx(expected, rel=2e-4)


def test_dtlz2_sampled_front_agrees_with_the_closed_form(bench):
    from pymoo.util.ref_dirs import get_reference_directions

    problem = bench.build("dtlz2")
    front = problem.pymoo.pareto_front(get_reference_directions("das-dennis", 3,
                                                                n_partitions=200))
    assert bench.hypervolume(front, problem.ref) / problem.best_hv == pytest.approx(1, abs=0.01)


def test_dtlz2_4_sampled_front_approaches_the_closed_form_from_below(bench):
    from pymoo.util.ref_dirs import get_reference_directions

    problem = bench.build("dtlz2-4")
    ratios = []
    for partitions in (20, 40):
        dirs = get_reference_directions("das-dennis", 4, n_partitions=partitions)
        front = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)  # on the unit sphere
        ratios.append(bench.hypervolume(front, problem.ref) / problem.best_hv)
    assert 0.95 < ratios[0] < ratios[1] < 1.0


@pytest.mark.parametrize("name", ["zdt1", "zdt2", "zdt3", "dtlz2", "dtlz2-4", "srn"])
def test_no_feasible_points_beat_the_true_front(bench, name):
    """Many points near the front, or (SRN) all over the box, never exceed the best-known
    hypervolume; SRN's literature front (pymoo's) would be beaten by 0.7%."""
    problem = bench.build(name)
    rng = np.random.default_rng(0)
    xl = np.broadcast_to(problem.pymoo.xl, problem.n_var)
    xu = np.broadcast_to(problem.pymoo.xu, problem.n_var)
    x = xl + (xu - xl) * rng.random((20_000, problem.n_var))
    if name.startswith("zdt"):
        x[:, 1:] *= 1e-3  # g close to 1: near the front
    if name.startswith("dtlz2"):
        x[:, problem.n_obj - 1 :] = 0.5 + 1e-3 * (x[:, problem.n_obj - 1 :] - 0.5)
    f, g = problem.evaluate(x)
    hv = bench.hypervolume(f[np.all(g <= 0, axis=1)], problem.ref) / problem.best_hv
    assert 0.95 < hv <= 1.0


def test_hv_curve_counts_only_feasible_points_inside_the_reference_box(bench):
    problem = bench.build("zdt1")
    f = np.array([[2.0, 0.0], [0.5, 0.5], [0.6, 0.6], [0.0, 0.0], [0.25, 0.25]])
    feasible = np.array([True, True, True, False, True])
    curve = bench.hv_curve(f, feasible, problem)
    # Outside the box: nothing; then (0.5, 0.5): 0.6 x 0.6; dominated (0.6, 0.6): no change;
    # infeasible ideal point: no change; (0.25, 0.25) dominates (0.5, 0.5): 0.85 x 0.85.
    expected = np.array([0, 0.36, 0.36, 0.36, 0.85**2]) / problem.best_hv
    np.testing.assert_allclose(curve, expected, rtol=1e-12)


def test_trials_to_reach_is_the_first_trial_at_or_over_the_fraction(bench):
    assert bench.trials_to_reach(np.array([0.1, 0.94, 0.95, 0.99])) == 3
    assert bench.trials_to_reach(np.array([0.1, 0.5])) is None


def test_win_tie_loss_counts_a_tie_as_a_tie(bench):
    ours = [0.80, 0.500, 0.30, 0.7]
    theirs = [0.70, 0.504, 0.40, 0.7]  # a win, a tie (within 0.005), a loss, a tie
    assert bench.win_tie_loss(ours, theirs) == (1, 2, 1)


def test_our_hypervolume_agrees_with_pymoos(bench):
    """The benchmark scores with pymoo's exact hypervolume; kubetune's own must agree."""
    pareto = pytest.importorskip("kubetune.core.pareto",
                                 reason="kubetune.core.pareto is not written yet")
    rng = np.random.default_rng(1)
    for m in (2, 3):
        y = rng.random((60, m))
        ref = np.full(m, 1.1)
        assert float(pareto.hypervolume(y, ref)) == pytest.approx(bench.hypervolume(y, ref),
                                                                   rel=1e-9)
