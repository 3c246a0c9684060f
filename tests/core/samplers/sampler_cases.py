"""Spaces and histories shared by the sampler tests (imported by name: pytest puts this folder on
sys.path)."""

from __future__ import annotations

import math

import numpy as np
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState

# Every kind of parameter and transform the space supports.
MIXED_SEARCH_SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "layers": {"type": "int", "low": 1, "high": 8},
    "width": {"type": "int", "low": 16, "high": 512, "log": True},
    "batch": {"type": "int", "low": 16, "high": 256, "step": 16},
    "optimizer": {"type": "categorical", "values": ["adam", "sgd", "adamw"]},
    "flag": {"type": "categorical", "values": [True, False]},
}
MIXED = Space.from_search_space(MIXED_SEARCH_SPACE)
# Six configurations: small enough to fill.
SMALL = Space.from_search_space(
    {
        "a": {"type": "int", "low": 0, "high": 2},
        "c": {"type": "categorical", "values": ["x", "y"]},
    }
)
CATEGORICAL = Space.from_search_space(
    {
        "c1": {"type": "categorical", "values": ["a", "b", "c", "d"]},
        "c2": {"type": "categorical", "values": [1, 2.5, "three"]},
        "c3": {"type": "categorical", "values": [True, False, None, "x", 0]},
    }
)
ONE_D = Space.from_search_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
NUMERIC = Space.from_search_space(
    {
        "x": {"type": "float", "low": -5.0, "high": 10.0},
        "y": {"type": "float", "low": 0.0, "high": 15.0},
        "k": {"type": "int", "low": 1, "high": 20},
    }
)


# A conditional space: an optimizer with parameters of its own, one of them nested twice.
CONDITIONAL = Space.from_search_space({
    "optimizer": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}},
    "nesterov": {"type": "categorical", "values": [True, False],
                 "when": {"optimizer": ["sgd"]}},
    "dampening": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1,
                  "when": {"nesterov": [False]}},
    "beta2": {"type": "float", "low": 0.9, "high": 0.9999, "when": {"optimizer": ["adam"]}},
    "layers": {"type": "int", "low": 1, "high": 6,
               "when": {"optimizer": ["adam", "rmsprop"]}},
})


def objective(space: Space, params: dict) -> float:
    """A smooth bowl on the unit cube with its minimum inside, so models have something to fit
    (an inactive parameter's axis reads as the bowl's bottom)."""
    u = np.nan_to_num(space.to_unit(params), nan=0.3)
    return float(np.sum((u - 0.3) ** 2) + 0.1 * math.sin(7.0 * float(u[0])))


def history(space: Space, count: int, seed: int = 0, *, mixed_states: bool = True) -> list[Trial]:
    """``count`` trials at random points, most Succeeded with ``objective`` as value.

    With ``mixed_states`` the history has every state, as a real study does: Failed (no value),
    Pruned (a value), Running, Pending, Lost, and one trial whose params no longer fit the space.
    """
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(count):
        params = space.from_unit(rng.random(space.dim))
        state, value = TrialState.SUCCEEDED, objective(space, params)
        if mixed_states:
            if i % 7 == 3:
                state, value = TrialState.FAILED, None
            elif i % 11 == 5:
                state = TrialState.PRUNED
            elif i % 13 == 6:
                state, value = TrialState.RUNNING, None
            elif i % 17 == 8:
                state, value = TrialState.PENDING, None
            elif i % 19 == 9:
                state = TrialState.LOST
            elif i % 23 == 10:
                params = {**params, "gone": 1}  # from before a spec change
        trials.append(Trial(number=i, params=params, state=state, value=value))
    return trials
