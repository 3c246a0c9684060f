"""CMA-ES: a replay of the history that proposes the same points however it is asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kubetune.core.samplers import cmaes
from kubetune.core.samplers.cmaes import CMAESSampler, default_popsize
from kubetune.core.samplers.random import RandomSampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState, as_trials

SPACE = Space.from_search_space(
    {
        "x": {"type": "float", "low": -5.0, "high": 5.0},
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        "k": {"type": "int", "low": 1, "high": 12},
        "w": {"type": "int", "low": 8, "high": 512, "log": True},
    }
)
POPSIZE = default_popsize(SPACE.dim)


def _value(space: Space, params: dict) -> float:
    return float(np.sum((space.to_unit(params) - 0.3) ** 2))


def _study(space: Space, budget: int, seed: int, batch: int) -> list[Trial]:
    """A study run in rounds of ``batch`` proposals, each round finished before the next."""
    trials: list[Trial] = []
    sampler = CMAESSampler()
    while len(trials) < budget:
        for p in sampler.suggest(space, trials, batch, minimize=True, seed=seed):
            trials.append(Trial(len(trials), p, TrialState.SUCCEEDED, _value(space, p)))
    return trials


def _ask(trials, n: int, seed: int = 5, space: Space = SPACE) -> list[dict]:
    return CMAESSampler().suggest(space, trials, n, minimize=True, seed=seed)


def test_same_history_same_proposals_after_a_restart():
    trials = _study(SPACE, 3 * POPSIZE + 2, seed=1, batch=3)
    first = _ask(trials, 6)
    # A restarted operator rebuilds the history from Job annotations: plain JSON records.
    records = json.loads(
        json.dumps(
            [
                {
                    "number": t.number,
                    "params": dict(t.params),
                    "state": t.state.value,
                    "value": t.value,
                }
                for t in reversed(trials)
            ]
        )
    )
    assert _ask(as_trials(records), 6) == first


def test_a_generation_is_the_same_asked_at_once_or_one_by_one():
    """Pending members of the current generation: the next proposals are the rest of it."""
    done = _study(SPACE, 2 * POPSIZE, seed=2, batch=POPSIZE)
    at_once = _ask(done, POPSIZE)
    one_by_one: list[dict] = []
    for _ in range(POPSIZE):
        running = [Trial(len(done) + i, p, TrialState.RUNNING) for i, p in enumerate(one_by_one)]
        one_by_one += _ask(done + running, 1)
    assert one_by_one == at_once


def test_finishing_a_generation_moves_the_distribution():
    done = _study(SPACE, 2 * POPSIZE, seed=3, batch=POPSIZE)
    running = [
        Trial(len(done) + i, p, TrialState.RUNNING) for i, p in enumerate(_ask(done, POPSIZE))
    ]
    finished = [
        Trial(t.number, t.params, TrialState.SUCCEEDED, _value(SPACE, t.params)) for t in running
    ]
    waiting = _ask(done + running, 2)
    told = _ask(done + finished, 2)
    assert waiting != told


def test_never_stalls_while_a_generation_runs():
    trials = [Trial(i, p, TrialState.RUNNING) for i, p in enumerate(_ask([], 3 * POPSIZE))]
    out = _ask(trials, 16)
    assert len(out) == 16
    keys = {SPACE.key(p) for p in out} | {SPACE.key(t.params) for t in trials}
    assert len(keys) == 16 + 3 * POPSIZE


def _keys(trials, minimize=True):
    x, f, _ = cmaes._positions(SPACE, as_trials(trials), minimize)
    return x, f


def test_a_straggler_holds_its_generation_only_for_a_while():
    trials = _study(SPACE, 6 * POPSIZE, seed=4, batch=POPSIZE)
    trials[1] = Trial(1, trials[1].params, TrialState.RUNNING)
    axes = cmaes._Axes.of(SPACE)
    x, f = _keys(trials)
    # 5 blocks follow the straggler's: more than 2 * popsize + 1 active trial, so it is passed.
    assert cmaes._replay(x, f, axes, 0, False, n_active=1).cursor == 6 * POPSIZE
    held = cmaes._replay(x[: 3 * POPSIZE], f[: 3 * POPSIZE], axes, 0, False, n_active=1)
    assert held.cursor == 0


def test_failed_members_rank_last_and_empty_generations_are_skipped():
    axes = cmaes._Axes.of(SPACE)
    rng = np.random.default_rng(0)
    x = rng.random((2 * POPSIZE, SPACE.dim))
    f = np.full(2 * POPSIZE, np.inf)  # the first generation failed entirely
    f[POPSIZE:] = np.arange(POPSIZE, dtype=float)
    f[POPSIZE] = np.inf  # the point that would have ranked best failed
    replay = cmaes._replay(x, f, axes, 0, False, n_active=0)
    assert replay.generation == 2
    fresh = cmaes._replay(x[POPSIZE:], f[POPSIZE:], axes, 0, False, n_active=0)
    ranked = f[POPSIZE:].copy()
    ranked[0] = 1e9  # a failure ranks like the worst value
    worst = cmaes._replay(x[POPSIZE:], ranked, axes, 0, False, n_active=0)
    np.testing.assert_allclose(replay.source.mean, fresh.source.mean)
    np.testing.assert_allclose(fresh.source.mean, worst.source.mean)


def test_maximising_is_minimising_the_negation():
    trials = _study(SPACE, 2 * POPSIZE, seed=6, batch=POPSIZE)
    negated = [Trial(t.number, t.params, t.state, -t.value) for t in trials]
    assert CMAESSampler().suggest(SPACE, negated, 3, minimize=False, seed=5) == _ask(trials, 3)


def test_other_samplers_trials_warm_start_the_replay():
    """A model-based sampler's history, closing in on 0.3, draws the replayed mean there."""
    rng = np.random.default_rng(7)
    trials = []
    for i in range(200):
        spread = 0.4 * (1 - i / 200) + 0.02
        p = SPACE.from_unit(np.clip(0.3 + spread * rng.standard_normal(SPACE.dim), 0, 1))
        trials.append(Trial(i, p, TrialState.SUCCEEDED, _value(SPACE, p)))
    x, f = _keys(trials)
    replay = cmaes._replay(x, f, cmaes._Axes.of(SPACE), 0, False, n_active=0)
    assert np.abs(replay.source.mean - 0.3).max() < 0.05
    assert replay.source.sigma < 0.1


def test_a_constant_objective_restarts_with_a_larger_population():
    trials = [
        Trial(t.number, t.params, t.state, 1.0) for t in _study(SPACE, 40 * POPSIZE, 0, POPSIZE)
    ]
    x, f = _keys(trials)
    replay = cmaes._replay(x, f, cmaes._Axes.of(SPACE), 0, False, n_active=0)
    assert replay.popsize > POPSIZE
    assert len(_ask(trials, 4)) == 4


def test_integer_axes_keep_a_margin():
    ints = Space.from_search_space(
        {
            "a": {"type": "int", "low": 0, "high": 9},
            "b": {"type": "categorical", "values": [1, 2, 3]},
        }
    )
    margins = cmaes._Axes.of(ints).margins(np.array([0.5, 0.5]), popsize=6)
    from scipy import special

    z = special.ndtri(1 - 1 / 12)
    np.testing.assert_allclose(margins, [0.1 / (2 * z), (1 / 3) / (2 * z)])
    # A long run on a small integer space keeps finding configurations it has not tried.
    trials = _study(ints, 24, seed=0, batch=2)
    assert len({ints.key(t.params) for t in trials}) == 24


def test_sep_cma_from_twenty_parameters():
    wide = Space.from_search_space(
        {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(cmaes.SEP_CMA_DIM)}
    )
    trials = _study(wide, 3 * default_popsize(wide.dim), seed=0, batch=default_popsize(wide.dim))
    x, f, _ = cmaes._positions(wide, as_trials(trials), True)
    replay = cmaes._replay(x, f, cmaes._Axes.of(wide), 0, True, n_active=0)
    assert replay.source.B is None  # diagonal covariance
    assert replay.generation == 3


def test_beats_random_search_on_a_sphere():
    sphere = Space.from_search_space(
        {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(4)}
    )

    def best(trials):
        return min(t.value for t in trials)

    cma = [best(_study(sphere, 120, seed, batch=default_popsize(4))) for seed in range(3)]
    rand = []
    for seed in range(3):
        out = RandomSampler().suggest(sphere, [], 120, minimize=True, seed=seed)
        rand.append(min(_value(sphere, p) for p in out))
    assert np.median(cma) < 0.2 * np.median(rand), (cma, rand)


def test_five_hundred_trials_replay():
    # Speed is measured by benchmarks/bench_samplers.py, not asserted here.
    trials = _study(SPACE, 500, seed=0, batch=25)
    out = _ask(trials, 4)
    assert len(out) == 4
    assert all(SPACE.contains(p) for p in out)


@pytest.mark.parametrize("n", [-1])
def test_a_negative_count_is_refused(n):
    with pytest.raises(ValueError, match="n=-1"):
        _ask([], n)
