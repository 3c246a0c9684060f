"""TPE: the Parzen estimators it is built on, and the sampler's behaviour on small problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
from kubetune.core.samplers import _parzen
from kubetune.core.samplers.random import RandomSampler
from kubetune.core.samplers.tpe import TPESampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import MIXED

DISCRETE = {
    "int": {"type": "int", "low": -3, "high": 9},
    "int_step": {"type": "int", "low": 16, "high": 256, "step": 16},
    "int_log": {"type": "int", "low": 1, "high": 300, "log": True},
    "float_step": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
}


def _estimator(space: Space, count: int, seed: int = 0) -> _parzen.ParzenEstimator:
    rng = np.random.default_rng(seed)
    points = np.array([space.to_unit(space.from_unit(u)) for u in rng.random((count, space.dim))])
    return _parzen.build_estimator(_parzen.Axes.of(space), points.reshape(count, space.dim))


@pytest.mark.parametrize("count", [0, 1, 2, 7, 60])
def test_continuous_density_integrates_to_one(count):
    space = Space.from_search_space(
        {
            "x": {"type": "float", "low": -1.0, "high": 4.0},
            "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        }
    )
    estimator = _estimator(space, count, seed=count)
    grid = (np.arange(200) + 0.5) / 200  # midpoint rule on the unit square
    points = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    mass = float(np.exp(estimator.log_pdf(points)).mean())
    assert mass == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("name", list(DISCRETE))
@pytest.mark.parametrize("count", [0, 3, 40])
def test_discrete_probabilities_sum_to_one(name, count):
    space = Space.from_search_space({name: DISCRETE[name]})
    param = space.params[0]
    estimator = _estimator(space, count, seed=count)
    cells = _parzen.Cells.of(param)
    centres = cells.centre(np.arange(param.n_values))[:, None]
    assert len({param.from_unit(u) for u in centres[:, 0]}) == param.n_values  # each value once
    assert float(np.exp(estimator.log_pdf(centres)).sum()) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("count", [0, 1, 9])
def test_categorical_kernels_and_mixture_sum_to_one(count):
    space = Space.from_search_space({"c": {"type": "categorical", "values": ["a", "b", "c", "d"]}})
    estimator = _estimator(space, count, seed=count)
    (table,) = estimator.categorical
    assert table.shape == (count + 1, 4)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    centres = (np.arange(4)[:, None] + 0.5) / 4
    assert float(np.exp(estimator.log_pdf(centres)).sum()) == pytest.approx(1.0, abs=1e-12)


def test_categorical_kernel_weights_the_observed_value():
    space = Space.from_search_space({"c": {"type": "categorical", "values": ["a", "b", "c"]}})
    points = np.array([[space.to_unit({"c": v})[0]] for v in ("b", "b", "c")])
    table = _parzen.build_estimator(_parzen.Axes.of(space), points).categorical[0]
    # prior_weight / (n + 1) = 1/4 everywhere, plus 1 on the observed value, normalised.
    np.testing.assert_allclose(table[0], np.array([0.25, 1.25, 0.25]) / 1.75)
    np.testing.assert_allclose(table[3], [1 / 3, 1 / 3, 1 / 3])


def test_bandwidths_follow_the_neighbour_rule_with_magic_clip():
    mus = np.array([[0.1], [0.5], [0.52], [0.9]])
    sigmas = _parzen._bandwidths(mus)[:, 0]
    # Ends use their inner gap; inner points the larger gap; floor 1 / min(100, n + 2) = 1/6.
    np.testing.assert_allclose(sigmas, [0.4, 0.4, 0.38, 0.38])
    tight = _parzen._bandwidths(np.array([[0.5], [0.5], [0.5]]))[:, 0]
    np.testing.assert_allclose(tight, 1 / 5)


@pytest.mark.parametrize("name", list(DISCRETE))
def test_cells_match_the_space(name):
    space = Space.from_search_space({name: DISCRETE[name]})
    param = space.params[0]
    cells = _parzen.Cells.of(param)
    index = np.arange(param.n_values)
    lower, upper = cells.bounds(index)
    assert lower[0] == 0.0
    assert upper[-1] == 1.0
    np.testing.assert_allclose(lower[1:], upper[:-1])
    for i in index:
        value = param.from_unit((lower[i] + upper[i]) / 2)
        assert param.to_unit(value) == pytest.approx(float(cells.centre(np.array(i))), abs=1e-12)
        for u in (lower[i] + 1e-9, upper[i] - 1e-9):
            assert param.from_unit(u) == value
            assert int(cells.index(np.array(u))) == i


def test_log_gauss_mass_is_accurate_in_both_tails():
    from scipy import stats

    a = np.array([-1.0, -40.0, 35.0, -0.5, 3.0])
    b = np.array([2.0, -39.0, 36.0, 0.5, 3.0 + 1e-7])
    got = _parzen.log_gauss_mass(a, b)
    assert np.isfinite(got).all()
    assert got[0] == pytest.approx(math.log(stats.norm.cdf(2.0) - stats.norm.cdf(-1.0)), rel=1e-9)
    assert got[3] == pytest.approx(math.log(stats.norm.cdf(0.5) - stats.norm.cdf(-0.5)), rel=1e-9)
    assert got[4] == pytest.approx(math.log(stats.norm.pdf(3.0) * 1e-7), rel=1e-6)
    # Far in the tails a plain difference of CDFs is 0 or 1 - 1; ours keeps the tail's mass.
    assert got[1] == pytest.approx(stats.norm.logcdf(-39.0), abs=0.1)
    assert got[2] == pytest.approx(stats.norm.logsf(35.0), abs=0.1)


def test_samples_follow_the_density():
    space = Space.from_search_space({"k": {"type": "int", "low": 1, "high": 40, "log": True}})
    estimator = _estimator(space, 6, seed=2)
    draws = estimator.sample(np.random.default_rng(0), 100_000)[:, 0]
    centres, counts = np.unique(draws, return_counts=True)
    expected = np.exp(estimator.log_pdf(centres[:, None]))
    np.testing.assert_allclose(counts / len(draws), expected, atol=4e-3)


# --- the sampler ------------------------------------------------------------------------------


def _sphere(space: Space, params: dict) -> float:
    return float(np.sum((space.to_unit(params) - 0.37) ** 2))


def _run(sampler, space: Space, budget: int, seed: int, batch: int = 1) -> float:
    trials: list[Trial] = []
    while len(trials) < budget:
        for p in sampler.suggest(space, trials, batch, minimize=True, seed=seed):
            trials.append(Trial(len(trials), p, TrialState.SUCCEEDED, _sphere(space, p)))
    return min(t.value for t in trials)


def test_beats_random_search_on_a_sphere():
    space = Space.from_search_space(
        {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(4)}
    )
    tpe = [_run(TPESampler(), space, 60, seed) for seed in range(3)]
    rand = [_run(RandomSampler(), space, 60, seed) for seed in range(3)]
    assert np.median(tpe) < 0.5 * np.median(rand), (tpe, rand)


def test_startup_trials_are_uniform_then_the_model_concentrates():
    space = Space.from_search_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    trials = [
        Trial(i, {"x": x}, TrialState.SUCCEEDED, (x - 0.8) ** 2)
        for i, x in enumerate(np.linspace(0.02, 0.98, 30))
    ]
    out = TPESampler().suggest(space, trials, 16, minimize=True, seed=0)
    xs = np.array([p["x"] for p in out])
    assert np.median(np.abs(xs - 0.8)) < 0.15
    # Maximising the same values flips what is good.
    out = TPESampler().suggest(space, trials, 16, minimize=False, seed=0)
    assert np.median([abs(p["x"] - 0.8) for p in out]) > 0.3


def test_failed_trials_are_avoided():
    space = Space.from_search_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    trials = [
        Trial(
            i,
            {"x": x},
            TrialState.FAILED if x < 0.5 else TrialState.SUCCEEDED,
            None if x < 0.5 else 1.0,
        )
        for i, x in enumerate(np.linspace(0.01, 0.99, 40))
    ]
    out = TPESampler().suggest(space, trials, 16, minimize=True, seed=1)
    assert np.mean([p["x"] >= 0.5 for p in out]) >= 0.75


def test_pending_trials_push_proposals_away():
    """Constant liar: Running trials on the good region make the batch look elsewhere too."""
    space = Space.from_search_space(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "y": {"type": "float", "low": 0.0, "high": 1.0},
        }
    )
    rng = np.random.default_rng(4)
    done = [
        Trial(
            i,
            {"x": float(u[0]), "y": float(u[1])},
            TrialState.SUCCEEDED,
            float(np.sum((u - 0.3) ** 2)),
        )
        for i, u in enumerate(rng.random((40, 2)))
    ]
    crowd = [
        Trial(40 + i, {"x": float(u[0]), "y": float(u[1])}, TrialState.RUNNING)
        for i, u in enumerate(0.3 + 0.04 * (rng.random((20, 2)) - 0.5))
    ]

    def near(trials):
        out = TPESampler().suggest(space, trials, 16, minimize=True, seed=2)
        return np.mean([max(abs(p["x"] - 0.3), abs(p["y"] - 0.3)) < 0.05 for p in out])

    assert near(done + crowd) < near(done)


def test_every_trial_failed_still_proposes_away_from_failures():
    trials = [
        Trial(i, MIXED.from_unit(np.full(MIXED.dim, 0.5)), TrialState.FAILED) for i in range(1)
    ]
    trials += [
        Trial(i + 1, MIXED.from_unit(u), TrialState.FAILED)
        for i, u in enumerate(np.random.default_rng(0).random((15, MIXED.dim)))
    ]
    out = TPESampler().suggest(MIXED, trials, 5, minimize=True, seed=0)
    assert len(out) == 5
    assert all(MIXED.contains(p) for p in out)


def test_five_hundred_trials_propose_a_batch():

    rng = np.random.default_rng(0)
    trials = [
        Trial(i, MIXED.from_unit(u), TrialState.SUCCEEDED, float(np.sum(u**2)))
        for i, u in enumerate(rng.random((500, MIXED.dim)))
    ]
    sampler = TPESampler()
    out = sampler.suggest(MIXED, trials, 4, minimize=True, seed=1)
    # Speed is measured by benchmarks/bench_samplers.py, not asserted here.
    assert len(out) == 4
    assert all(MIXED.contains(p) for p in out)
