"""Random search: uniform on the unit cube, so uniform in each parameter's own scale."""

from __future__ import annotations

import math

import numpy as np
from kubetune.core.samplers.random import RandomSampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import SMALL


def test_uniform_in_each_parameters_scale():
    space = Space.from_search_space(
        {
            "x": {"type": "float", "low": 0.0, "high": 10.0},
            "lr": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
        }
    )
    out = RandomSampler().suggest(space, [], 3000, minimize=True, seed=0)
    x = np.array([p["x"] for p in out])
    lr = np.log10([p["lr"] for p in out])
    for values, edges in ((x, np.linspace(0, 10, 11)), (lr, np.linspace(-6, 0, 7))):
        counts, _ = np.histogram(values, edges)
        expected = len(values) / len(counts)
        # A chi-square at p ~ 0.001: a biased transform fails it, chance almost never does.
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 3 * len(counts) + 10, counts
        assert not math.isnan(chi2)


def test_a_full_discrete_space_repeats_rather_than_fails():
    points = [{"a": a, "c": c} for a in range(3) for c in ("x", "y")]
    trials = [Trial(i, p, TrialState.SUCCEEDED, 1.0) for i, p in enumerate(points)]
    out = RandomSampler().suggest(SMALL, trials, 3, minimize=True, seed=0)
    assert len(out) == 3
    assert all(SMALL.contains(p) for p in out)
