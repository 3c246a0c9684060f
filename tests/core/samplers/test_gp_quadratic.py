"""The quadratic model's step (``_gp.quadratic``) and where the ``gp`` sampler takes it."""

from __future__ import annotations

import numpy as np
import pytest
from kubetune.core.samplers import gp
from kubetune.core.samplers._gp import quadratic
from kubetune.core.samplers.base import history_of
from kubetune.core.samplers.gp import GPSampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState

D = 4
TARGET = np.array([0.42, 0.61, 0.37, 0.55])


def rotated_valley(x: np.ndarray) -> np.ndarray:
    """A rotated quadratic with condition number 1e4: axis-aligned models see a blur."""
    q, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(D, D)))
    h = q @ np.diag([1.0, 10.0, 100.0, 1e4]) @ q.T
    z = x - TARGET
    return np.einsum("ni,ij,nj->n", z, h, z)


def near_target(n: int, radius: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(TARGET + rng.uniform(-radius, radius, size=(n, D)), 0.0, 1.0)


def test_fitted_points_are_the_coefficients_plus_the_dimension() -> None:
    assert quadratic.n_coefficients(5) == 21
    assert quadratic.fitted_points(5) == 26
    assert quadratic.fitted_points(1) == 4


def test_steps_to_the_minimum_of_a_rotated_ill_conditioned_quadratic() -> None:
    x = near_target(40, 0.2)
    point = quadratic.minimum(x, rotated_valley(x))
    assert point is not None
    np.testing.assert_allclose(point, TARGET, atol=1e-8)


def test_uses_only_the_best_points() -> None:
    x = near_target(30, 0.2, seed=1)
    y = rotated_valley(x)
    # Far, bad points that no quadratic through the bowl explains: they are not fitted.
    far = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    point = quadratic.minimum(np.vstack([x, far]), np.concatenate([y, [1e9, 3e9, 2e9]]))
    assert point is not None
    np.testing.assert_allclose(point, TARGET, atol=1e-8)


def test_a_minimum_beyond_the_fitted_points_is_approached_not_jumped_to() -> None:
    # Points on one side of the bowl: the step stops at the edge of the ball they span.
    rng = np.random.default_rng(2)
    x = np.clip(0.9 + rng.uniform(-0.05, 0.05, size=(30, D)), 0.0, 1.0)
    y = np.sum((x - 0.1) ** 2, axis=1)
    point = quadratic.minimum(x, y)
    assert point is not None
    best = x[np.argmin(y)]
    fitted = x[np.argsort(y)[: quadratic.fitted_points(D)]]
    reach = np.max(np.linalg.norm(fitted - best, axis=1))
    assert np.linalg.norm(point - best) == pytest.approx(reach, rel=1e-6)
    assert np.sum((point - 0.1) ** 2) < y.min()  # and it is downhill, toward the minimum


@pytest.mark.parametrize(
    "values",
    [
        lambda x: x[:, 0] ** 2 - x[:, 1] ** 2,  # a saddle: no minimum to step to
        lambda x: -np.sum((x - 0.5) ** 2, axis=1),  # a hill
        lambda x: np.full(len(x), 3.0),  # flat
    ],
)
def test_no_step_where_the_model_has_no_believable_minimum(values) -> None:
    x = near_target(30, 0.3, seed=3)
    assert quadratic.minimum(x, values(x)) is None


def test_no_step_before_enough_trials() -> None:
    x = near_target(quadratic.fitted_points(D) - 1, 0.2)
    assert quadratic.minimum(x, rotated_valley(x)) is None
    x = near_target(quadratic.fitted_points(D), 0.2)
    assert quadratic.minimum(x, rotated_valley(x)) is not None


def test_overflowing_values_give_no_step() -> None:
    x = near_target(30, 0.2)
    y = np.where(np.arange(30) % 2 == 0, 1e308, -1e308)
    assert quadratic.minimum(x, y) is None


# --- in the gp sampler --------------------------------------------------------------------------

SPACE = Space.from_search_space(
    {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(D)}
)


def history(space: Space, x: np.ndarray, y: np.ndarray) -> list[Trial]:
    return [
        Trial(i, space.from_unit(u), TrialState.SUCCEEDED, float(v))
        for i, (u, v) in enumerate(zip(x, y, strict=True))
    ]


def test_the_gp_sampler_takes_the_step_first_then_its_own_points() -> None:
    x = near_target(30, 0.2, seed=4)
    trials = history(SPACE, x, rotated_valley(x))
    batch = GPSampler().suggest(SPACE, trials, 3, minimize=True, seed=0)
    np.testing.assert_allclose(SPACE.to_unit(batch[0]), TARGET, atol=1e-8)
    assert all(np.linalg.norm(SPACE.to_unit(p) - TARGET) > 1e-6 for p in batch[1:])
    # Maximising the negated bowl is the same study.
    flipped = [Trial(t.number, t.params, t.state, -t.value) for t in trials]
    (first,) = GPSampler().suggest(SPACE, flipped, 1, minimize=False, seed=0)
    np.testing.assert_allclose(SPACE.to_unit(first), TARGET, atol=1e-8)


def test_the_gp_sampler_takes_no_step_on_a_space_with_a_discrete_axis() -> None:
    # An int axis of five values, itself quadratic: the model has a minimum, but a step to it
    # would have to be rounded on that axis, so the sampler does not take it.
    space = Space.from_search_space(
        {
            **{f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(D)},
            "k": {"type": "int", "low": 0, "high": 4},
        }
    )
    x = near_target(30, 0.2, seed=4)
    ks = np.arange(30) % 5
    trials = [
        Trial(t.number, {**t.params, "k": int(k)}, t.state, t.value + float(k - 2) ** 2)
        for t, k in zip(history(SPACE, x, rotated_valley(x)), ks, strict=True)
    ]
    h = history_of(space, trials, minimize=True)
    assert quadratic.minimum(h.x, h.y) is not None
    assert gp._quadratic_step(space, h, gp._domain(space)) is None
    (first,) = GPSampler().suggest(space, trials, 1, minimize=True, seed=0)
    step = np.array([first[f"x{i}"] for i in range(D)])
    assert np.linalg.norm((step + 5.0) / 10.0 - TARGET) > 1e-6
