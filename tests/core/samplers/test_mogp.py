"""The multi-objective GP sampler: its EHVI math against brute force, its contract, constraints,
and its hypervolume against random search's."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from kubetune.core import pareto
from kubetune.core.objectives import Objective
from kubetune.core.samplers import get_multi_sampler, mogp
from kubetune.core.samplers._gp import ehvi
from kubetune.core.samplers.base import history_of
from kubetune.core.samplers.gp import GPSampler, default_n_startup
from kubetune.core.samplers.mogp import MultiGPSampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import CATEGORICAL, CONDITIONAL, MIXED, NUMERIC, SMALL, history

UNIT3 = Space.from_search_space({k: {"type": "float", "low": 0.0, "high": 1.0} for k in "xyz"})
UNIT4 = Space.from_search_space({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0}
                                 for i in range(4)})


def objectives(m: int) -> list[Objective]:
    """``m`` objectives; the second is maximised, so both directions are exercised."""
    return [Objective(f"f{j}", minimize=j != 1) for j in range(m)]


def values(space: Space, params: dict, m: int) -> dict[str, float]:
    """Conflicting bowls, one per objective, centred at different corners of the cube."""
    u = np.nan_to_num(space.to_unit(params), nan=0.5)
    out = {}
    for j in range(m):
        v = float(np.sum((u - (j + 0.5) / m) ** 2)) + 0.05 * math.sin(5.0 * float(u[0]) + j)
        out[f"f{j}"] = -v if j == 1 else v
    return out


def mo_history(space: Space, count: int, m: int, seed: int = 0, *,
               mixed_states: bool = True) -> list[Trial]:
    """``sampler_cases.history`` with every Succeeded trial's objectives in ``values``."""
    return [
        dataclasses.replace(t, values=values(space, t.params, m))
        if t.state is TrialState.SUCCEEDED and space.contains(t.params) else t
        for t in history(space, count, seed, mixed_states=mixed_states)
    ]


def ask(space: Space, trials: list[Trial], n: int, m: int, seed: int = 0) -> list[dict]:
    return MultiGPSampler().suggest(space, trials, n, objectives=objectives(m), seed=seed)


def assert_admissible_and_new(space: Space, trials: list[Trial], out: list[dict]) -> None:
    assert all(space.contains(p) for p in out)
    keys = [space.key(p) for p in out]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & history_of(space, trials, minimize=True).seen


# --- EHVI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_boxes_cover_exactly_what_the_front_does_not_dominate(m: int) -> None:
    rng = np.random.default_rng(m)
    floor, ref = -1.0, np.full(m, 1.05)
    for k in (0, 1, 6, 25):
        y = np.round(rng.random((k, m)) * 5) / 5  # ties and dominated points included
        lower, upper = ehvi.boxes(y, ref)
        volume = np.prod(upper - np.maximum(lower, floor), axis=1).sum()
        expected = np.prod(ref - floor) - (pareto.hypervolume(y, ref) if k else 0.0)
        assert volume == pytest.approx(expected, abs=1e-9)
        z = floor + rng.random((3000, m)) * (ref - floor)
        inside = ((z[:, None] >= lower[None]) & (z[:, None] < upper[None])).all(-1).sum(axis=1)
        dominated = (y[None] <= z[:, None]).all(-1).any(axis=1)
        assert (inside <= 1).all()
        np.testing.assert_array_equal(inside == 1, ~dominated)


class Fixed:
    """A posterior with the same mean and variance everywhere."""

    def __init__(self, mean: float, var: float) -> None:
        self.mean, self.var = mean, var

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(x), self.mean), np.full(len(x), self.var)


class Bowl:
    """A posterior whose mean and variance are quadratics of x, with exact gradients."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = a, b

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((x - self.a) ** 2).sum(1) - 0.5, 0.01 + 0.1 * ((x - self.b) ** 2).sum(1)

    def predict_with_grad(self, x: np.ndarray):
        mean, var = self.predict(x)
        return mean, var, 2 * (x - self.a), 0.2 * (x - self.b)


@pytest.mark.parametrize("m", [2, 3])
def test_ehvi_matches_monte_carlo(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    front = rng.random((6, m))
    ref = np.full(m, 1.2)
    mean, sd = rng.random(m) * 0.8, 0.1 + 0.2 * rng.random(m)
    acq = ehvi.LogEHVI([Fixed(mu, s * s) for mu, s in zip(mean, sd, strict=True)], front, ref)
    exact = float(np.exp(acq(np.zeros((1, 2)))[0]))
    base = pareto.hypervolume(front, ref)
    draws = mean + sd * rng.standard_normal((4000, m))
    gains = np.array([pareto.hypervolume(np.vstack([front, y]), ref) - base for y in draws])
    assert abs(exact - gains.mean()) < 4 * gains.std() / math.sqrt(len(gains))


def test_ehvi_of_an_empty_front_is_the_product_of_expected_improvements() -> None:
    ref = np.array([0.3, -0.2])
    acq = ehvi.LogEHVI([Fixed(0.1, 0.04), Fixed(0.0, 0.09)], np.zeros((0, 2)), ref)
    def ei(mu: float, sd: float, best: float) -> float:
        z = (best - mu) / sd
        pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return sd * (pdf + z * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))))

    expected = ei(0.1, 0.2, 0.3) * ei(0.0, 0.3, -0.2)
    assert acq(np.zeros((1, 2)))[0] == pytest.approx(math.log(expected), rel=1e-10)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("scale", [1.0, 4.0, 10.0])
def test_ehvi_gradient_matches_finite_differences_into_the_tail(m: int, scale: float) -> None:
    rng = np.random.default_rng(m)
    posteriors = [Bowl(rng.random(2), rng.random(2)) for _ in range(m)]
    acq = ehvi.LogEHVI(posteriors, rng.random((5, m)) * 2 - 1, np.full(m, 1.5))
    x = rng.random((4, 2)) * scale
    value, grad = acq.with_grad(x)
    np.testing.assert_allclose(value, acq(x), rtol=1e-10)
    assert np.isfinite(value).all()
    step = 1e-6
    numeric = np.stack([(acq(x + step * e) - acq(x - step * e)) / (2 * step) for e in np.eye(2)],
                       axis=1)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


# --- the scalarisation for three or four objectives --------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_scalarisation_averages_to_the_hypervolume(m: int) -> None:
    """Over directions drawn as the sampler draws them, the best score of a set of points,
    clipped at 0 and to the power m, times the unit ball's volume per orthant, is the
    hypervolume the set dominates up to the reference point (Golovin and Zhang, 2020)."""
    rng = np.random.default_rng(m)
    points = rng.uniform(0.0, 1.0, size=(8, m)) ** 0.5
    lams = np.stack([mogp._direction(rng, m) for _ in range(100_000)])
    best = np.stack([mogp._hypervolume_score(points, lam) for lam in lams]).max(axis=1)
    ball_orthant = math.pi ** (m / 2) / math.gamma(m / 2 + 1) / 2**m
    estimate = ball_orthant * float(np.mean(np.clip(best, 0.0, None) ** m))
    exact = pareto.hypervolume(points, np.full(m, mogp._SCALARISATION_REF))
    assert exact > 0.05
    assert estimate == pytest.approx(exact, rel=0.02)


def test_directions_are_unit_and_positive_and_reach_every_objective() -> None:
    rng = np.random.default_rng(0)
    lams = np.stack([mogp._direction(rng, 3) for _ in range(3000)])
    np.testing.assert_allclose(np.linalg.norm(lams, axis=1), 1.0)
    assert (lams > 0).all()
    # Each objective is the one the direction leans on most in about a third of the draws.
    assert np.bincount(lams.argmax(axis=1), minlength=3).min() > 800


# --- the sampler's contract --------------------------------------------------------------------


def test_registered_under_gp() -> None:
    assert isinstance(get_multi_sampler("gp"), MultiGPSampler)
    assert ask(MIXED, [], 0, 2) == []


def test_startup_is_the_gp_samplers_design() -> None:
    n = default_n_startup(NUMERIC.dim)
    design = GPSampler().suggest(NUMERIC, [], n, minimize=True, seed=4)
    assert ask(NUMERIC, [], n, 2, seed=4) == design
    trials = mo_history(NUMERIC, 3, 2, mixed_states=False)
    assert ask(NUMERIC, trials, 2, 2, seed=4) == GPSampler().suggest(
        NUMERIC, trials, 2, minimize=True, seed=4)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_proposals_are_deterministic_admissible_and_new(m: int) -> None:
    trials = mo_history(MIXED, 40, m, seed=m)
    out = ask(MIXED, trials, 4, m, seed=1)
    assert len(out) == 4
    assert out == ask(MIXED, trials, 4, m, seed=1)
    assert_admissible_and_new(MIXED, trials, out)


@pytest.mark.parametrize("space", [NUMERIC, CATEGORICAL, CONDITIONAL], ids=["num", "cat", "cond"])
def test_other_spaces(space: Space) -> None:
    trials = mo_history(space, 30, 2, seed=1)
    out = ask(space, trials, 3, 2)
    assert len(out) == 3
    assert_admissible_and_new(space, trials, out)
    if space is CONDITIONAL:
        for p in out:
            assert ("momentum" in p) == (p["optimizer"] == "sgd")
            assert ("dampening" in p) == (p.get("nesterov") is False)


def test_pending_trials_and_batch_members_are_spread() -> None:
    trials = mo_history(UNIT3, 14, 2, seed=3, mixed_states=False)
    (single,) = ask(UNIT3, trials, 1, 2)
    (after,) = ask(UNIT3, [*trials, Trial(len(trials), single, TrialState.RUNNING)], 1, 2)
    assert UNIT3.key(after) != UNIT3.key(single)
    batch = ask(UNIT3, trials, 8, 2)
    u = np.array([UNIT3.to_unit(p) for p in batch])
    gaps = np.linalg.norm(u[:, None] - u[None, :], axis=-1)[np.triu_indices(8, 1)]
    assert gaps.min() > 1e-3


def test_degenerate_histories_still_give_new_points() -> None:
    trials = mo_history(UNIT3, 12, 2, mixed_states=False)
    flat = [dataclasses.replace(t, values={"f0": 1.0, "f1": 2.0}) for t in trials]
    # A trial that lacks an objective counts as failed.
    partial = [*trials, Trial(12, UNIT3.from_unit(np.full(3, 0.5)), TrialState.SUCCEEDED,
                              values={"f0": 0.0})]
    for case in (flat, partial):
        out = ask(UNIT3, case, 3, 2)
        assert len(out) == 3
        assert_admissible_and_new(UNIT3, case, out)


def test_an_exhausted_space_still_answers() -> None:
    points = [{"a": a, "c": c} for a in (0, 1, 2) for c in ("x", "y")]
    trials = [Trial(i, p, TrialState.SUCCEEDED, values=values(SMALL, p, 2))
              for i, p in enumerate(points)]
    out = ask(SMALL, trials, 2, 2)
    assert len(out) == 2
    assert all(SMALL.contains(p) for p in out)


# --- constraints -------------------------------------------------------------------------------


def two_bowls(u: np.ndarray, y: float) -> float:
    """Deep at x = 0.9, which breaks the constraint x <= 0.5; shallower at x = 0.1."""
    return float(min(((u - [0.9, y, 0.5]) ** 2).sum(), ((u - [0.1, y, 0.5]) ** 2).sum() + 0.05))


def constrained_history(seed: int, count: int = 30, *, low: float = 0.0) -> list[Trial]:
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(count):
        u = rng.random(3)
        u[0] = low + (1.0 - low) * u[0]
        trials.append(Trial(i, UNIT3.from_unit(u), TrialState.SUCCEEDED,
                            values={"f0": two_bowls(u, 0.3), "f1": -two_bowls(u, 0.7)},
                            violation=max(0.0, float(u[0]) - 0.5)))
    return trials


def zeroed(trials: list[Trial], to: float | None = 0.0) -> list[Trial]:
    return [dataclasses.replace(t, violation=to) for t in trials]


def test_proposals_stay_in_the_feasible_half() -> None:
    # Measured (seeds 0-5): 92% of proposals feasible against 10% with the violations zeroed.
    def share(trials: list[Trial], seed: int) -> float:
        return float(np.mean([p["x"] <= 0.5 for p in ask(UNIT3, trials, 8, 2, seed=seed)]))

    constrained = np.mean([share(constrained_history(s), s) for s in range(4)])
    ignored = np.mean([share(zeroed(constrained_history(s)), s) for s in range(4)])
    assert constrained >= 0.7
    assert constrained - ignored >= 0.4


def test_no_violation_is_the_same_as_no_constraints() -> None:
    trials = constrained_history(2)
    assert ask(UNIT3, zeroed(trials), 3, 2) == ask(UNIT3, zeroed(trials, None), 3, 2)


def test_with_no_feasible_trial_proposals_head_for_feasibility() -> None:
    trials = [dataclasses.replace(t, violation=t.params["x"] - 0.2)
              for t in constrained_history(1, low=0.4)]
    out = ask(UNIT3, trials, 6, 2)
    assert_admissible_and_new(UNIT3, trials, out)
    assert np.mean([p["x"] for p in out]) < min(t.params["x"] for t in trials)


def test_the_front_holds_feasible_trials_only(monkeypatch) -> None:
    trials = constrained_history(0)
    # Better than every trial on both objectives, but infeasible.
    cheat = Trial(len(trials), UNIT3.from_unit(np.array([0.95, 0.5, 0.5])),
                  TrialState.SUCCEEDED, values={"f0": -1.0, "f1": 1.0}, violation=0.45)
    fronts = []
    original = ehvi.LogEHVI

    def spy(posteriors, front, ref):
        fronts.append(front)
        return original(posteriors, front, ref)

    monkeypatch.setattr(ehvi, "LogEHVI", spy)
    ask(UNIT3, [*trials, cheat], 1, 2)
    ask(UNIT3, zeroed([*trials, cheat]), 1, 2)
    assert len(fronts[0]) >= 2  # the feasible trials' front
    assert len(fronts[1]) == 1  # counted, the cheat would dominate every other point


# --- quality -----------------------------------------------------------------------------------


def zdt1(u: np.ndarray) -> tuple[float, float]:
    g = 1.0 + 9.0 * float(np.mean(u[1:]))
    return float(u[0]), g * (1.0 - math.sqrt(float(u[0]) / g))


def zdt1_hypervolume(sampler, seed: int, budget: int = 30) -> float:
    trials: list[Trial] = []
    objs = [Objective("f1", True), Objective("f2", True)]
    while len(trials) < budget:
        (p,) = sampler.suggest(UNIT4, trials, 1, objectives=objs, seed=seed)
        f1, f2 = zdt1(UNIT4.to_unit(p))
        trials.append(Trial(len(trials), p, TrialState.SUCCEEDED, values={"f1": f1, "f2": f2}))
    y = np.array([[t.values["f1"], t.values["f2"]] for t in trials])
    return pareto.hypervolume(y, [1.1, 11.0])


class UniformSampler:
    name = "uniform"

    def suggest(self, space, trials, n, *, objectives, seed):
        rng = np.random.default_rng([seed, len(trials)])
        return [space.from_unit(rng.random(space.dim)) for _ in range(n)]


def test_gp_beats_random_search_on_zdt1_in_30_trials() -> None:
    # The best hypervolume to (1.1, 11) is 12.1 - 1/3 = 11.767. Measured (seeds 0-5): the GP
    # left 0.034 to 0.039 of it, random search 2.04 to 2.98.
    best = 1.1 * 11.0 - 1.0 / 3.0
    gp_gap = [best - zdt1_hypervolume(MultiGPSampler(), s) for s in range(3)]
    random_gap = [best - zdt1_hypervolume(UniformSampler(), s) for s in range(3)]
    assert max(gp_gap) < 0.2
    assert np.median(gp_gap) < np.median(random_gap) / 10
