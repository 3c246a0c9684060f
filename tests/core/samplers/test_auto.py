"""Auto: which sampler proposes when, and that it defers to it unchanged."""

from __future__ import annotations

import pytest
from kubetune.core.samplers import get_sampler
from kubetune.core.samplers.auto import (
    GP_MAX_DIM,
    GP_MAX_OBSERVED,
    AutoSampler,
    choose_sampler,
    startup_trials,
)
from kubetune.core.samplers.base import History, history_of
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import CATEGORICAL, MIXED, NUMERIC, ONE_D, history

WIDE = Space.from_search_space(
    {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(GP_MAX_DIM + 1)}
)


def _observed(space: Space, count: int) -> History:
    trials = [
        Trial(t.number, t.params, TrialState.SUCCEEDED, 1.0 + t.number)
        for t in history(space, count, mixed_states=False)
    ]
    return history_of(space, trials, minimize=True)


@pytest.mark.parametrize(
    ("space", "observed", "expected"),
    [
        (NUMERIC, 0, "gp"),
        (MIXED, 1, "gp"),
        (WIDE, 0, "sobol"),
        (WIDE, startup_trials(WIDE) - 1, "sobol"),
        (MIXED, GP_MAX_OBSERVED - 1, "gp"),
        (NUMERIC, GP_MAX_OBSERVED, "cmaes"),
        (MIXED, GP_MAX_OBSERVED, "tpe"),
        (CATEGORICAL, GP_MAX_OBSERVED, "tpe"),
        (ONE_D, GP_MAX_OBSERVED, "tpe"),
        (WIDE, startup_trials(WIDE), "cmaes"),
    ],
)
def test_choice(space, observed, expected):
    assert choose_sampler(space, _observed(space, observed)) == expected


def test_only_trials_with_a_value_end_the_startup():
    trials = [
        Trial(t.number, t.params, TrialState.FAILED if t.number % 2 else TrialState.RUNNING)
        for t in history(WIDE, 30, mixed_states=False)
    ]
    assert choose_sampler(WIDE, history_of(WIDE, trials, minimize=True)) == "sobol"


@pytest.mark.parametrize("count", [3, 12])
def test_defers_to_the_chosen_sampler(count):
    trials = history(NUMERIC, count, seed=2)
    chosen = choose_sampler(NUMERIC, history_of(NUMERIC, trials, minimize=False))
    expected = get_sampler(chosen).suggest(NUMERIC, trials, 2, minimize=False, seed=4)
    assert AutoSampler().suggest(NUMERIC, trials, 2, minimize=False, seed=4) == expected
