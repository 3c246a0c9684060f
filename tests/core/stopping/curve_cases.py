"""Random studies of 1000-step learning curves, for the stopping rules' thinning tests.

A study is drawn from a seed: finished trials report 1000 steps, Running ones a random prefix,
Pruned ones a shorter one; some trials are Failed or Lost. Shapes (in loss terms, sign-flipped
for a maximized objective):

- ``noise``: a level plus white noise (a handful of running-best points);
- ``walk``: a random walk (tens of running-best points);
- ``noisy_decay``: an exponential decay plus noise, like a real validation loss;
- ``smooth_decay``: a strictly improving curve: 1000 running-best points, more than thinning
  can keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from kubetune.core.protocol import MAX_CURVE_POINTS, thin_curve
from kubetune.core.trials import Trial, TrialState

__all__ = ["SHAPES", "all_fit", "improvements", "random_study", "thinned"]

SHAPES = ("noise", "walk", "noisy_decay", "smooth_decay")
STEPS = 1000


def _losses(rng: np.random.Generator, shape: str, steps: np.ndarray) -> np.ndarray:
    level = rng.uniform(0.0, 1.0)
    if shape == "noise":
        return level + rng.normal(0.0, rng.uniform(0.05, 0.5), steps.size)
    if shape == "walk":
        return level + np.cumsum(rng.normal(0.0, 0.05, steps.size))
    a, tau = rng.uniform(0.5, 2.0), rng.uniform(20.0, 400.0)
    decay = level + a * np.exp(-steps / tau)
    if shape == "noisy_decay":
        return decay + a * rng.uniform(0.02, 0.3) * rng.normal(size=steps.size)
    if shape == "smooth_decay":
        return level + a / (1.0 + steps / tau)
    raise ValueError(f"shape: {shape!r} is not one of {SHAPES}")


def random_study(seed: int, shape: str, n_trials: int, *, minimize: bool) -> list[Trial]:
    """``n_trials`` trials with full curves; at least two Running."""
    rng = np.random.default_rng(seed)
    sign = 1.0 if minimize else -1.0
    others = [
        TrialState.SUCCEEDED,
        TrialState.SUCCEEDED,
        TrialState.RUNNING,
        TrialState.PRUNED,
        TrialState.FAILED,
        TrialState.LOST,
    ]
    drawn = rng.choice(len(others), size=max(0, n_trials - 2))
    states = [TrialState.RUNNING, TrialState.RUNNING, *(others[k] for k in drawn)]
    stride = int(rng.choice([1, 1, 3]))  # some studies report every third step
    trials = []
    for number, state in enumerate(states):
        first = int(rng.integers(0, 3))
        steps = first + stride * np.arange(STEPS)
        values = sign * _losses(rng, shape, steps)
        if state in (TrialState.RUNNING, TrialState.PRUNED, TrialState.FAILED):
            values = values[: int(rng.integers(1, STEPS + 1))]
        curve = tuple((int(s), float(v)) for s, v in zip(steps, values, strict=False))
        trials.append(Trial(number=number, params={}, state=state, curve=curve))
    return trials


def thinned(
    trials: Sequence[Trial], *, minimize: bool, keep_steps: Iterable[int] = ()
) -> list[Trial]:
    """The same trials with each curve thinned as the metric protocol does."""
    keep = tuple(keep_steps)
    return [
        Trial(
            number=t.number,
            params=t.params,
            state=t.state,
            curve=tuple(thin_curve(t.curve, minimize=minimize, keep_steps=keep)),
        )
        for t in trials
    ]


def improvements(trial: Trial, *, minimize: bool) -> int:
    """How many points improve the running best."""
    sign = 1.0 if minimize else -1.0
    best, n = float("inf"), 0
    for _, v in trial.curve:
        if sign * v < best:
            best, n = sign * v, n + 1
    return n


def all_fit(trials: Sequence[Trial], *, minimize: bool) -> bool:
    """Whether thinning can keep every running-best point of every curve (with first and last)."""
    return all(improvements(t, minimize=minimize) <= MAX_CURVE_POINTS - 2 for t in trials)
