"""The GP sampler: its math against finite differences and naive formulas, and its behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from kubetune.core.samplers import gp
from kubetune.core.samplers._gp import acquisition, fit, kernels, optimize, warping
from kubetune.core.samplers.gp import GPSampler, default_n_startup
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from scipy import stats

MIXED = Space.from_search_space(
    {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "batch": {"type": "int", "low": 16, "high": 256, "log": True},
        "layers": {"type": "int", "low": 1, "high": 8},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
        "opt": {"type": "categorical", "values": ["adam", "sgd", "adamw"]},
        "x": {"type": "float", "low": -1.0, "high": 1.0},
    }
)
IS_CAT = np.array([False, False, False, False, True, False])
BRANIN = Space.from_search_space(
    {"x1": {"type": "float", "low": -5, "high": 10}, "x2": {"type": "float", "low": 0, "high": 15}}
)


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def mixed_value(p: dict) -> float:
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (p["layers"] - 3) ** 2 / 4
        + (p["opt"] != "adamw")
        + p["x"] ** 2
        + p["dropout"]
        + abs(math.log2(p["batch"] / 64))
    )


def done(space: Space, points: list[dict], values: list[float | None]) -> list[Trial]:
    return [
        Trial(i, p, TrialState.SUCCEEDED if v is not None else TrialState.FAILED, v)
        for i, (p, v) in enumerate(zip(points, values, strict=True))
    ]


def random_history(space: Space, n: int, f, seed: int = 0) -> list[Trial]:
    rng = np.random.default_rng(seed)
    points = [space.from_unit(rng.random(space.dim)) for _ in range(n)]
    return done(space, points, [f(p) for p in points])


def mixed_points(rng: np.random.Generator, m: int) -> np.ndarray:
    x = rng.random((m, 6))
    x[:, 4] = (rng.integers(3, size=m) + 0.5) / 3
    return x


# --- kernel and fit ---------------------------------------------------------------------------


def test_matern_derivative_matches_finite_differences() -> None:
    r2 = np.array([0.0, 1e-4, 0.3, 2.0, 9.0])
    h = 1e-7
    _, deriv = kernels.matern52(r2)
    numeric = (kernels.matern52(r2 + h)[0] - kernels.matern52(np.maximum(r2 - h, 0))[0]) / (
        r2 + h - np.maximum(r2 - h, 0)
    )
    np.testing.assert_allclose(deriv, numeric, rtol=1e-4, atol=1e-6)
    assert kernels.matern52(np.array([0.0]))[0][0] == 1.0


def test_scaled_distance_matches_brute_force_with_hamming_axes() -> None:
    rng = np.random.default_rng(0)
    a, b = mixed_points(rng, 5), mixed_points(rng, 7)
    w = rng.uniform(0.5, 20, size=6)
    brute = np.array(
        [
            [
                sum(
                    w[j] * (float(u[j] != v[j]) if IS_CAT[j] else (u[j] - v[j]) ** 2)
                    for j in range(6)
                )
                for v in b
            ]
            for u in a
        ]
    )
    np.testing.assert_allclose(kernels.scaled_sq_dist(a, b, w, IS_CAT), brute, atol=1e-12)
    dists = kernels.axis_sq_dists(a, IS_CAT)
    np.testing.assert_allclose(
        np.tensordot(w, dists, 1), kernels.scaled_sq_dist(a, a, w, IS_CAT), atol=1e-12
    )


def test_neg_log_posterior_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    x = mixed_points(rng, 15)
    y = warping.standardize(np.sin(6 * x[:, 0]) + x[:, 4] + rng.normal(0, 0.1, 15))
    dists = kernels.axis_sq_dists(x, IS_CAT)
    theta = np.concatenate([rng.normal(1.0, 1.0, 6), [0.2, -4.0]])
    _, grad = fit.neg_log_posterior(theta, dists, y)
    h = 1e-6
    numeric = [
        (
            fit.neg_log_posterior(theta + e, dists, y)[0]
            - fit.neg_log_posterior(theta - e, dists, y)[0]
        )
        / (2 * h)
        for e in np.eye(8) * h
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_fit_recovers_a_short_lengthscale_on_the_relevant_axis() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((40, 3))
    y = warping.standardize(np.sin(12 * x[:, 0]))
    params = fit.fit_kernel_params(x, y, np.zeros(3, dtype=bool))
    assert params.lengthscales[0] < 0.5 < min(params.lengthscales[1:])
    assert params.noise < 1e-2


def posterior_for_test() -> fit.Posterior:
    rng = np.random.default_rng(3)
    x = mixed_points(rng, 20)
    y = warping.standardize(np.cos(5 * x[:, 0]) * x[:, 1] + x[:, 4])
    params = fit.KernelParams(np.array([8.0, 3.0, 1.0, 2.0, 0.7, 5.0]), 1.3, 1e-4)
    return fit.Posterior.fit(x, y, params, IS_CAT)


def test_posterior_gradients_match_finite_differences() -> None:
    post = posterior_for_test().with_fantasies(mixed_points(np.random.default_rng(4), 3))
    xq = mixed_points(np.random.default_rng(5), 4)
    mean, _var, dmean, dvar = post.predict_with_grad(xq)
    h = 1e-6
    for j in np.flatnonzero(~IS_CAT):
        e = np.zeros(6)
        e[j] = h
        (m1, v1), (m0, v0) = post.predict(xq + e), post.predict(xq - e)
        np.testing.assert_allclose(dmean[:, j], (m1 - m0) / (2 * h), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(dvar[:, j], (v1 - v0) / (2 * h), rtol=1e-4, atol=1e-6)
    assert not dmean[:, IS_CAT].any()
    np.testing.assert_allclose(post.predict(xq)[0], mean)


def test_fantasies_keep_the_mean_and_shrink_the_variance() -> None:
    post = posterior_for_test()
    xp = mixed_points(np.random.default_rng(6), 2)
    xq = np.vstack([xp, mixed_points(np.random.default_rng(7), 5)])
    mean0, var0 = post.predict(xq)
    mean1, var1 = post.with_fantasies(xp).predict(xq)
    np.testing.assert_allclose(mean1, mean0, atol=1e-8)
    assert np.all(var1 <= var0 + 1e-12)
    assert np.all(var1[:2] < 1e-3)


# --- log EI ------------------------------------------------------------------------------------


def test_log_h_matches_naive_formula_where_that_is_stable() -> None:
    z = np.linspace(-8, 6, 300)
    naive = np.log(stats.norm.pdf(z) + z * stats.norm.cdf(z))
    np.testing.assert_allclose(acquisition.log_h(z), naive, rtol=1e-9, atol=1e-12)


def test_log_h_stays_finite_and_increasing_far_into_the_tail() -> None:
    z = -np.logspace(0, 12, 200)[::-1]
    values = acquisition.log_h(z)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) > 0)
    # Asymptotically h(z) ~ phi(z) / z^2.
    np.testing.assert_allclose(
        acquisition.log_h(np.array([-1e4]))[0],
        -5e7 - 0.5 * math.log(2 * math.pi) - 2 * math.log(1e4),
        rtol=1e-12,
    )


def test_log_ei_matches_naive_ei_and_its_gradient() -> None:
    rng = np.random.default_rng(8)
    mean, var = rng.normal(0, 1, 50), rng.uniform(0.01, 2, 50)
    best = -0.5
    sd = np.sqrt(var)
    z = (best - mean) / sd
    naive = sd * (stats.norm.pdf(z) + z * stats.norm.cdf(z))
    value, d_mean, d_var = acquisition.log_ei_with_grad(mean, var, best)
    np.testing.assert_allclose(value, np.log(naive), rtol=1e-9)
    np.testing.assert_allclose(acquisition.log_ei(mean, var, best), value)
    h = 1e-6
    num_mean = acquisition.log_ei(mean + h, var, best) - acquisition.log_ei(mean - h, var, best)
    num_var = acquisition.log_ei(mean, var + h, best) - acquisition.log_ei(mean, var - h, best)
    np.testing.assert_allclose(d_mean, num_mean / (2 * h), rtol=1e-5)
    np.testing.assert_allclose(d_var, num_var / (2 * h), rtol=1e-5)


def test_log_ei_gradient_through_the_posterior() -> None:
    post = posterior_for_test()
    acq = acquisition.LogEI(post, best=-1.0)
    xq = mixed_points(np.random.default_rng(9), 3)
    _, grad = acq.with_grad(xq)
    h = 1e-6
    for j in np.flatnonzero(~IS_CAT):
        e = np.zeros(6)
        e[j] = h
        np.testing.assert_allclose(
            grad[:, j], (acq(xq + e) - acq(xq - e)) / (2 * h), rtol=1e-4, atol=1e-6
        )


# --- warping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [-2.0, -0.5, 0.0, 0.7, 1.0, 2.0, 3.5])
def test_yeo_johnson_is_increasing_and_matches_scipy(lam: float) -> None:
    y = np.linspace(-5, 5, 101)
    t = warping.yeo_johnson(y, lam)
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, stats.yeojohnson(y, lmbda=lam), rtol=1e-9, atol=1e-12)


def test_yeo_johnson_lambda_is_the_maximum_likelihood_one() -> None:
    y = warping.standardize(np.exp(np.random.default_rng(10).normal(0, 1, 200)))
    lam = warping.fit_yeo_johnson(y)
    assert lam < 1.0  # right-skewed data is compressed
    assert abs(lam - stats.yeojohnson_normmax(y)) < 0.02


@pytest.mark.parametrize("method", sorted(warping.WARPS))
def test_warps_keep_order_and_standardise(method: str) -> None:
    y = np.array([3.0, 1e5, -2.0, 7.0, 7.0, 1.0, 250.0, 0.5])
    w = warping.warp(y, method)
    assert np.all(np.sign(np.diff(w[np.argsort(y, kind="stable")])) >= 0)
    assert abs(w.mean()) < 1e-9
    assert abs(w.std() - 1) < 1e-9
    assert not warping.warp(np.full(5, 3.0), method).any()


def test_standardize_survives_huge_and_tiny_values() -> None:
    for y in (np.array([1e300, -1e300, 5e299]), np.array([1e-300, 2e-300, 3e-300])):
        w = warping.standardize(y)
        assert np.all(np.isfinite(w))
        assert abs(w.std() - 1) < 1e-9


# --- acquisition optimiser ---------------------------------------------------------------------


def test_maximize_returns_admissible_points_best_first() -> None:
    choices = (
        None,
        (np.arange(241) + 0.5) / 241,
        (np.arange(8) + 0.5) / 8,
        None,
        (np.arange(3) + 0.5) / 3,
        None,
    )
    domain = optimize.Domain(IS_CAT, choices)
    post = posterior_for_test()
    acq = acquisition.LogEI(post, best=float(post.predict(post.x)[0].min()))
    xs, fs = optimize.maximize(
        acq,
        domain,
        np.random.default_rng(11),
        anchors=post.x[:3],
        lengthscales=post.params.lengthscales,
    )
    assert np.all(np.diff(fs) <= 1e-12)
    np.testing.assert_allclose(acq(xs), fs, rtol=1e-9, atol=1e-9)
    for j in (1, 2, 4):
        assert np.isin(xs[:, j], choices[j]).all()
    rng = np.random.default_rng(12)
    random_best = acq(domain.snap(rng.random((4096, 6)))).max()
    assert fs[0] >= random_best


# --- the sampler -------------------------------------------------------------------------------


def test_startup_walks_one_design_without_repeats() -> None:
    sampler = GPSampler()
    first = sampler.suggest(BRANIN, [], 2, minimize=True, seed=5)
    trials = done(BRANIN, first, [branin(p) for p in first])
    second = sampler.suggest(BRANIN, trials, 4, minimize=True, seed=5)
    assert second == sampler.suggest(BRANIN, [], 6, minimize=True, seed=5)[2:]
    assert default_n_startup(2) == 6
    assert default_n_startup(30) == 10


def test_suggestions_are_deterministic_admissible_and_new() -> None:
    trials = random_history(MIXED, 12, mixed_value)
    sampler = GPSampler()
    a = sampler.suggest(MIXED, trials, 4, minimize=True, seed=3)
    b = sampler.suggest(MIXED, trials, 4, minimize=True, seed=3)
    assert a == b
    keys = {MIXED.key(t.params) for t in trials}
    assert all(MIXED.contains(p) for p in a)
    assert len({MIXED.key(p) for p in a} | keys) == len(keys) + 4


def test_batch_is_spread_out_and_avoids_pending_trials() -> None:
    trials = random_history(BRANIN, 10, branin, seed=1)
    sampler = GPSampler()
    (single,) = sampler.suggest(BRANIN, trials, 1, minimize=True, seed=0)
    running = [*trials, Trial(10, single, TrialState.RUNNING)]
    (after,) = sampler.suggest(BRANIN, running, 1, minimize=True, seed=0)
    assert BRANIN.key(after) != BRANIN.key(single)
    batch = sampler.suggest(BRANIN, trials, 8, minimize=True, seed=0)
    u = np.array([BRANIN.to_unit(p) for p in batch])
    gaps = np.linalg.norm(u[:, None] - u[None, :], axis=-1)[np.triu_indices(8, 1)]
    assert gaps.min() > 1e-3


@pytest.mark.parametrize(
    "values",
    [
        [None] * 6,  # every trial failed
        [4.0] * 6,  # a constant objective
        [1e300, -1e300, 3e299, 1.0, 2.0, 5e299],
        [1e-300, 2e-300, 3e-300, 4e-300, 5e-300, 6e-300],
        [1.0, None, 2.0, None, 0.5, 3.0],
    ],
)
def test_degenerate_histories_still_give_new_points(values: list) -> None:
    rng = np.random.default_rng(0)
    points = [BRANIN.from_unit(rng.random(2)) for _ in values]
    trials = done(BRANIN, points, values)
    out = GPSampler().suggest(BRANIN, trials, 3, minimize=False, seed=1)
    assert len(out) == 3
    assert all(BRANIN.contains(p) for p in out)
    assert not {BRANIN.key(p) for p in out} & {BRANIN.key(p) for p in points}


def test_one_point_and_two_point_histories(monkeypatch) -> None:
    monkeypatch.setattr(gp, "default_n_startup", lambda dim: 2)
    trials = random_history(BRANIN, 1, branin)
    assert len(GPSampler().suggest(BRANIN, trials, 16, minimize=True, seed=0)) == 16
    trials = random_history(BRANIN, 2, branin)
    out = GPSampler().suggest(BRANIN, trials, 16, minimize=True, seed=0)
    assert len({BRANIN.key(p) for p in out}) == 16


def test_near_copies_of_known_points_are_not_informative() -> None:
    post = posterior_for_test()
    ls = post.params.lengthscales
    near = post.x[:2] + np.array([0.1, 0, 0, 0, 0, 0]) * ls * gp._MIN_STEP
    far = post.x[:2] + np.array([3.0, 0, 0, 0, 0, 0]) * ls * gp._MIN_STEP
    kept = gp._informative(np.vstack([near, far]), post, MIXED)
    np.testing.assert_array_equal(kept, far)


def test_duplicated_trials_do_not_break_the_fit(monkeypatch) -> None:
    monkeypatch.setattr(gp, "default_n_startup", lambda dim: 4)
    trials = random_history(MIXED, 8, mixed_value)
    trials = trials + [Trial(8 + i, t.params, t.state, t.value) for i, t in enumerate(trials)]
    out = GPSampler().suggest(MIXED, trials, 2, minimize=True, seed=0)
    assert len(out) == 2
    assert all(MIXED.contains(p) for p in out)


def test_exhausted_space_still_answers(monkeypatch) -> None:
    monkeypatch.setattr(gp, "default_n_startup", lambda dim: 2)
    tiny = Space.from_search_space({"k": {"type": "int", "low": 0, "high": 2}})
    trials = done(tiny, [{"k": 0}, {"k": 1}, {"k": 2}], [1.0, 0.0, 2.0])
    out = GPSampler().suggest(tiny, trials, 2, minimize=True, seed=0)
    assert len(out) == 2
    assert all(tiny.contains(p) for p in out)


def test_long_history_is_capped(monkeypatch) -> None:
    monkeypatch.setattr(gp, "_MAX_TRAIN", 150)
    # Speed is the benchmark's to measure (benchmarks/bench_samplers.py); this shows a
    # capped training set still proposes valid, new points from a 500-trial history.
    trials = random_history(MIXED, 500, mixed_value)
    out = GPSampler().suggest(MIXED, trials, 1, minimize=True, seed=0)
    assert MIXED.contains(out[0])
    assert MIXED.key(out[0]) not in {MIXED.key(t.params) for t in trials}


def test_latin_hypercube_fills_every_stratum_once() -> None:
    u = gp.latin_hypercube(3, 7, np.random.default_rng(0))
    assert u.shape == (7, 3)
    for axis in u.T:
        assert sorted(np.floor(axis * 7).astype(int)) == list(range(7))


def run(sampler, space: Space, f, budget: int, seed: int) -> float:
    trials: list[Trial] = []
    while len(trials) < budget:
        (p,) = sampler.suggest(space, trials, 1, minimize=True, seed=seed)
        trials.append(Trial(len(trials), p, TrialState.SUCCEEDED, f(p)))
    return min(t.value for t in trials)  # type: ignore[type-var]


class UniformSampler:
    name = "uniform"

    def suggest(self, space, trials, n, *, minimize, seed):
        rng = np.random.default_rng([seed, len(trials)])
        return [space.from_unit(rng.random(space.dim)) for _ in range(n)]


def test_gp_beats_random_search_on_branin_in_25_trials() -> None:
    regret_gp = [run(GPSampler(), BRANIN, branin, 25, seed) - 0.397887 for seed in range(3)]
    regret_rs = [run(UniformSampler(), BRANIN, branin, 25, seed) - 0.397887 for seed in range(3)]
    assert max(regret_gp) < 0.05
    assert np.median(regret_gp) < np.median(regret_rs) / 10


def test_trust_region_shrinks_after_failures_and_grows_after_successes() -> None:
    startup = [5.0, 4.0, 3.0]
    stuck = np.array(startup + [3.0] * 8)  # two runs of max(4, d=2) trials without a gain
    assert gp.trust_length(stuck, 3, 2) == pytest.approx(gp._TR_INIT / 4)
    improving = np.array([*startup, 2.0, 1.0, 0.5])  # three gains in a row
    assert gp.trust_length(improving, 3, 2) == pytest.approx(min(2 * gp._TR_INIT, gp._TR_MAX))
    # Shrunk below the minimum, it starts over rather than collapsing to a point.
    assert gp.trust_length(np.array(startup + [3.0] * 400), 3, 2) >= gp._TR_MIN


def test_trust_region_is_a_box_around_the_incumbent_on_continuous_axes() -> None:
    center = np.array([0.5, 0.9, 0.2])
    lower, upper = gp.trust_region(
        center, 0.4, np.array([1.0, 4.0, 1.0]), np.array([True, True, False])
    )
    # Widths follow the lengthscales, scaled so their geometric mean is the length.
    assert (upper - lower)[0] == pytest.approx(0.4 / 4 ** (1 / 3))
    assert lower[1] == pytest.approx(0.9 - 0.2 * 4 / 4 ** (1 / 3)) and upper[1] == 1.0
    assert (lower[2], upper[2]) == (0.0, 1.0)  # a discrete axis keeps its whole range


# ---- conditional spaces: NaN is "inactive", never a number ----------------------------------


def test_an_inactive_axis_adds_nothing_between_two_points_without_it_and_all_otherwise() -> None:
    from kubetune.core.samplers._gp import kernels

    w = np.array([4.0, 9.0])
    is_cat = np.array([False, False])
    a = np.array([[0.2, np.nan], [0.2, 0.5], [0.2, np.nan]])
    b = np.array([[0.2, np.nan], [0.2, 0.1]])
    r2 = kernels.scaled_sq_dist(a, b, w, is_cat)
    np.testing.assert_allclose(r2, [[0.0, 9.0], [9.0, 9.0 * 0.16], [0.0, 9.0]])
    d = kernels.axis_sq_dists(a, is_cat)
    np.testing.assert_allclose(d[1], [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def test_conditional_posterior_gradients_match_finite_differences() -> None:
    from sampler_cases import CONDITIONAL

    rng = np.random.default_rng(8)
    x = CONDITIONAL.mask(rng.random((25, CONDITIONAL.dim)))
    is_cat = np.array([p.kind == "categorical" for p in CONDITIONAL.params])
    y = warping.standardize(np.nan_to_num(x, nan=0.3).sum(axis=1))
    params = fit.KernelParams(np.full(CONDITIONAL.dim, 2.0), 1.0, 1e-4)
    post = fit.Posterior.fit(x, y, params, is_cat)
    xq = CONDITIONAL.mask(np.random.default_rng(9).random((6, CONDITIONAL.dim)))
    mean, _var, dmean, dvar = post.predict_with_grad(xq)
    h = 1e-6
    for j in np.flatnonzero(~is_cat):
        e = np.zeros(CONDITIONAL.dim)
        e[j] = h
        (m1, v1), (m0, v0) = post.predict(xq + e), post.predict(xq - e)
        rows = ~np.isnan(xq[:, j])
        np.testing.assert_allclose(dmean[rows, j], ((m1 - m0) / (2 * h))[rows], rtol=1e-4,
                                   atol=1e-6)
        np.testing.assert_allclose(dvar[rows, j], ((v1 - v0) / (2 * h))[rows], rtol=1e-4,
                                   atol=1e-6)
        assert not dmean[~rows, j].any()
    np.testing.assert_allclose(post.predict(xq)[0], mean)
