"""The contract every sampler keeps, written once and run for each registered sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kubetune.core.samplers.base import history_of
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState
from sampler_cases import CATEGORICAL, CONDITIONAL, MIXED, NUMERIC, ONE_D, SMALL, history

# (prior trials, n): sparse on purpose, so the file stays fast.
SIZES = [(0, 1), (5, 4), (40, 16), (500, 3)]


def _ask(sampler, space: Space, trials, n: int, *, minimize: bool = True, seed: int = 0):
    return sampler.suggest(space, trials, n, minimize=minimize, seed=seed)


def _assert_admissible(space: Space, proposals: list[dict]) -> None:
    for p in proposals:
        assert space.contains(p), f"{p} is not in the space"
        for param in space.params:
            if param.name not in p:
                continue  # inactive: contains() checked that its conditions say so
            v = p[param.name]
            if param.kind == "int":
                assert type(v) is int, f"{param.name}={v!r} should be a Python int"
            if param.kind == "float":
                assert type(v) is float, f"{param.name}={v!r} should be a Python float"
        json.dumps(p)  # proposals go into a Job annotation


def _assert_new(space: Space, trials, proposals: list[dict]) -> None:
    """No proposal repeats another or a configuration a (non-Lost) trial holds."""
    taken = history_of(space, trials, minimize=True).seen
    keys = [space.key(p) for p in proposals]
    assert len(set(keys)) == len(keys), f"duplicates within the batch: {proposals}"
    assert not taken & set(keys), "proposes a configuration a trial already holds"


def _spread(space: Space, proposals: list[dict]) -> float:
    """Largest distance between two proposals on the unit cube."""
    u = np.array([space.to_unit(p) for p in proposals])
    return float(np.max(np.abs(u[:, None, :] - u[None, :, :]).sum(-1)))


@pytest.mark.parametrize(("prior", "n"), SIZES)
@pytest.mark.parametrize("minimize", [True, False])
def test_proposals_are_admissible_and_new(sampler, prior, n, minimize):
    trials = history(MIXED, prior, seed=prior)
    out = _ask(sampler, MIXED, trials, n, minimize=minimize)
    assert len(out) == n
    _assert_admissible(MIXED, out)
    _assert_new(MIXED, trials, out)


@pytest.mark.parametrize("space", [NUMERIC, CATEGORICAL, ONE_D], ids=["numeric", "cat", "1d"])
@pytest.mark.parametrize("prior", [0, 12, 30])
def test_other_spaces(sampler, space, prior):
    trials = history(space, prior, seed=1, mixed_states=False)
    out = _ask(sampler, space, trials, 3)
    assert len(out) == 3
    _assert_admissible(space, out)
    _assert_new(space, trials, out)


@pytest.mark.parametrize("prior", [0, 12, 40])
def test_a_conditional_space_never_gets_an_inactive_parameter(sampler, prior):
    trials = history(CONDITIONAL, prior, seed=2)
    out = _ask(sampler, CONDITIONAL, trials, 4)
    assert len(out) == 4
    _assert_admissible(CONDITIONAL, out)  # exactly the active parameters, each admissible
    _assert_new(CONDITIONAL, trials, out)
    for p in out:
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        assert ("dampening" in p) == (p.get("nesterov") is False)


def test_deterministic(sampler):
    trials = history(MIXED, 24, seed=3)
    first = _ask(sampler, MIXED, trials, 4, seed=11)
    second = _ask(sampler, MIXED, list(trials), 4, seed=11)
    assert first == second


def test_seed_matters(sampler):
    assert _ask(sampler, MIXED, [], 2, seed=0) != _ask(sampler, MIXED, [], 2, seed=1)


@pytest.mark.parametrize("taken", [1, 3, 5])
def test_never_repeats_while_the_space_has_room(sampler, taken):
    """A six-point space with some points held by finished and running trials."""
    states = [TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.FAILED, TrialState.PENDING]
    points = [{"a": a, "c": c} for a in range(3) for c in ("x", "y")]
    trials = [
        Trial(i, points[i], states[i % len(states)], 1.0 + i if i % 4 == 0 else None)
        for i in range(taken)
    ]
    out = _ask(sampler, SMALL, trials, 6 - taken)
    assert len(out) == 6 - taken
    _assert_new(SMALL, trials, out)
    assert {SMALL.key(p) for p in out} | {SMALL.key(t.params) for t in trials} == {
        SMALL.key(p) for p in points
    }


def test_every_trial_failed(sampler):
    trials = [
        Trial(i, MIXED.from_unit(np.full(MIXED.dim, (i + 0.5) / 20)), TrialState.FAILED)
        for i in range(20)
    ]
    out = _ask(sampler, MIXED, trials, 4)
    assert len(out) == 4
    _assert_admissible(MIXED, out)
    _assert_new(MIXED, trials, out)


def test_constant_objective(sampler):
    trials = [
        Trial(t.number, t.params, TrialState.SUCCEEDED, 0.5)
        for t in history(NUMERIC, 25, seed=5, mixed_states=False)
    ]
    out = _ask(sampler, NUMERIC, trials, 4)
    assert len(out) == 4
    _assert_admissible(NUMERIC, out)
    _assert_new(NUMERIC, trials, out)


def test_batch_is_diverse(sampler):
    trials = history(NUMERIC, 20, seed=6, mixed_states=False)
    out = _ask(sampler, NUMERIC, trials, 8)
    _assert_new(NUMERIC, trials, out)
    assert _spread(NUMERIC, out) > 0.05


def test_running_trials_are_pending_points(sampler):
    """Asking one at a time, with earlier proposals Running, gives a diverse batch too."""
    trials = history(NUMERIC, 20, seed=7, mixed_states=False)
    batch: list[dict] = []
    for _ in range(8):
        running = [Trial(len(trials) + i, p, TrialState.RUNNING) for i, p in enumerate(batch)]
        batch += _ask(sampler, NUMERIC, trials + running, 1)
    _assert_new(NUMERIC, trials, batch)
    assert _spread(NUMERIC, batch) > 0.05
