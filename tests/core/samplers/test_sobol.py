"""Sobol: the i-th trial is the i-th point of the study's scrambled sequence."""

from __future__ import annotations

import numpy as np
from kubetune.core.samplers.sobol import SobolSampler
from kubetune.core.trials import Trial, TrialState
from sampler_cases import MIXED, SMALL, history
from scipy.stats import qmc


def _sequence(seed: int, count: int) -> list[dict]:
    engine = qmc.Sobol(MIXED.dim, scramble=True, rng=np.random.default_rng(seed))
    return [MIXED.from_unit(u) for u in engine.random(count)]


def test_proposals_follow_the_sequence():
    expected = _sequence(5, 8)
    first = SobolSampler().suggest(MIXED, [], 3, minimize=True, seed=5)
    assert first == expected[:3]
    trials = [Trial(i, p, TrialState.SUCCEEDED, 1.0) for i, p in enumerate(first)]
    assert SobolSampler().suggest(MIXED, trials, 5, minimize=True, seed=5) == expected[3:8]


def test_points_taken_by_other_trials_are_skipped_and_lost_ones_reused():
    expected = _sequence(2, 4)
    trials = [
        Trial(0, expected[1], TrialState.RUNNING),
        Trial(1, expected[0], TrialState.LOST),
        *history(MIXED, 10, seed=1, mixed_states=False)[2:],
    ]
    assert SobolSampler().suggest(MIXED, trials, 3, minimize=True, seed=2) == [
        expected[0],
        expected[2],
        expected[3],
    ]


def test_a_full_discrete_space_still_answers():
    points = [{"a": a, "c": c} for a in range(3) for c in ("x", "y")]
    trials = [Trial(i, p, TrialState.SUCCEEDED, 1.0) for i, p in enumerate(points)]
    out = SobolSampler().suggest(SMALL, trials, 2, minimize=True, seed=0)
    assert len(out) == 2
    assert all(SMALL.contains(p) for p in out)
