"""Grid search: exhaustive, shuffled by the seed, and honest about running out."""

from __future__ import annotations

import pytest
from kubetune.core.samplers.grid import (
    GridSampler,
    axis_size,
    axis_value,
    grid_exhausted,
    grid_size,
    iter_grid,
)
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import MIXED, SMALL


def _run(space: Space, seed: int, *, batch: int) -> list[dict]:
    """Ask until the grid runs out, marking earlier proposals as finished."""
    trials: list[Trial] = []
    while True:
        out = GridSampler().suggest(space, trials, batch, minimize=True, seed=seed)
        if not out:
            return [dict(t.params) for t in trials]
        assert not grid_exhausted(space, trials)
        trials += [Trial(len(trials) + i, p, TrialState.SUCCEEDED, 0.0) for i, p in enumerate(out)]


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_visits_every_point_once_then_reports_exhaustion(batch):
    visited = _run(SMALL, seed=3, batch=batch)
    assert sorted((p["a"], p["c"]) for p in visited) == [
        (a, c) for a in range(3) for c in ("x", "y")
    ]
    trials = [Trial(i, p, TrialState.SUCCEEDED, 0.0) for i, p in enumerate(visited)]
    assert grid_exhausted(SMALL, trials)
    assert GridSampler().suggest(SMALL, trials, 3, minimize=True, seed=3) == []


def test_running_trials_hold_their_point_and_lost_ones_do_not():
    points = list(iter_grid(SMALL, 0))
    trials = [Trial(i, p, TrialState.RUNNING) for i, p in enumerate(points)]
    assert grid_exhausted(SMALL, trials)
    trials[2] = Trial(2, points[2], TrialState.LOST)
    assert not grid_exhausted(SMALL, trials)
    assert GridSampler().suggest(SMALL, trials, 5, minimize=False, seed=0) == [points[2]]


def test_off_grid_trials_do_not_count():
    space = Space.from_search_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    trials = [Trial(i, {"x": 0.1 + 0.01 * i}, TrialState.SUCCEEDED, 1.0) for i in range(10)]
    assert not grid_exhausted(space, trials)
    assert len(GridSampler().suggest(space, trials, 10, minimize=True, seed=0)) == 5


def test_float_axes():
    space = Space.from_search_space(
        {
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "p": {"type": "float", "low": 0.0, "high": 0.5},
            "s": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        }
    )
    lr, p, s = space.params
    assert [axis_value(lr, j) for j in range(axis_size(lr))] == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert [axis_value(p, j) for j in range(axis_size(p))] == [0.0, 0.125, 0.25, 0.375, 0.5]
    assert [axis_value(s, j) for j in range(axis_size(s))] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert grid_size(space) == 5 * 5 * 4


def test_size_of_the_mixed_space():
    # x and lr: 5 points each; dropout 11; layers 8; width 16..512 every int; batch 16 steps.
    assert grid_size(MIXED) == 5 * 5 * 11 * 8 * 497 * 16 * 3 * 2


def test_order_is_a_seeded_permutation():
    first = list(iter_grid(SMALL, 1))
    assert len({SMALL.key(p) for p in first}) == grid_size(SMALL)
    assert first == list(iter_grid(SMALL, 1))
    assert any(list(iter_grid(SMALL, s)) != first for s in range(2, 6))


def test_a_batch_equals_one_at_a_time():
    batch = GridSampler().suggest(MIXED, [], 4, minimize=True, seed=9)
    trials: list[Trial] = []
    for i in range(4):
        (p,) = GridSampler().suggest(MIXED, trials, 1, minimize=True, seed=9)
        trials.append(Trial(i, p, TrialState.RUNNING))
    assert [dict(t.params) for t in trials] == batch


def test_a_conditional_grid_visits_each_valid_combination_once() -> None:
    space = Space.from_search_space(CONDITIONAL_SPEC)
    points = list(iter_grid(space, 5))
    # sgd: 5 momenta x 2 nesterov; adam and rmsprop: 6 layers each.
    assert len(points) == grid_size(space) == space.size == 5 * 2 + 6 + 6
    assert len({space.key(p) for p in points}) == len(points)
    assert all(space.contains(p) for p in points)
    taken: list = []
    while (out := GridSampler().suggest(space, taken, 7, minimize=True, seed=5)):
        taken += [Trial(len(taken) + i, p, TrialState.SUCCEEDED, 1.0) for i, p in enumerate(out)]
    assert len(taken) == space.size and grid_exhausted(space, taken)


CONDITIONAL_SPEC = {
    "optimizer": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.9, "step": 0.1,
                 "when": {"optimizer": ["sgd"]}},
    "nesterov": {"type": "categorical", "values": [True, False],
                 "when": {"optimizer": ["sgd"]}},
    "layers": {"type": "int", "low": 1, "high": 6, "when": {"optimizer": ["adam", "rmsprop"]}},
}
