"""ASHA: rungs, the top-1/eta rule, table-driven cases."""

from __future__ import annotations

import pytest
from curve_cases import SHAPES, all_fit, random_study, thinned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubetune.core.spec import EarlyStoppingSpec
from kubetune.core.stopping import keep_steps
from kubetune.core.stopping.asha import asha_stops, rungs
from kubetune.core.trials import Trial, TrialState

R, S, P, F, L = (
    TrialState.RUNNING,
    TrialState.SUCCEEDED,
    TrialState.PRUNED,
    TrialState.FAILED,
    TrialState.LOST,
)


def trial(number: int, state: TrialState, points: dict[int, float]) -> Trial:
    return Trial(number=number, params={}, state=state, curve=tuple(sorted(points.items())))


def stopped(trials, **kw) -> list[int]:
    kw.setdefault("minimize", True)
    kw.setdefault("min_step", 1)
    kw.setdefault("max_step", 27)
    kw.setdefault("reduction_factor", 3)
    return [p.number for p in asha_stops(trials, **kw)]


def at_rung1(values, state=S, start=100):
    """Finished trials that reported only step 1."""
    return [trial(start + i, state, {1: v}) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("min_step", "max_step", "eta", "expected"),
    [
        (1, 27, 3, (1, 3, 9)),
        (1, 28, 3, (1, 3, 9, 27)),
        (2, 100, 4, (2, 8, 32)),
        (5, 5, 3, ()),
        (1, 1000, 10, (1, 10, 100)),
    ],
)
def test_rungs(min_step, max_step, eta, expected):
    assert rungs(min_step, max_step, eta) == expected


def test_rungs_without_max_step_grow_to_a_bound():
    assert rungs(1, None, 2)[:4] == (1, 2, 4, 8)
    assert len(rungs(1, None, 2)) == 62


@pytest.mark.parametrize(
    ("args", "field"),
    [((0, 27, 3), "minStep"), ((1, 27, 1), "reductionFactor")],
)
def test_bad_rungs_are_refused_naming_the_field(args, field):
    with pytest.raises(ValueError, match=field):
        rungs(*args)


CASES = [
    # (id, trials, kwargs, expected stopped numbers)
    # 3 trials at rung 1, floor(3/3) = 1 continues: the best.
    ("worst of three", [trial(0, R, {1: 0.9}), *at_rung1([0.1, 0.5])], {}, [0]),
    ("best of three", [trial(0, R, {1: 0.05}), *at_rung1([0.1, 0.5])], {}, []),
    ("second of three", [trial(0, R, {1: 0.3}), *at_rung1([0.1, 0.5])], {}, [0]),
    # Fewer than eta at the rung: nobody can be judged.
    ("first two continue", [trial(0, R, {1: 0.9}), *at_rung1([0.1])], {}, []),
    # 6 trials: the top 2 continue.
    ("second of six", [trial(0, R, {1: 0.2}), *at_rung1([0.1, 0.5, 0.6, 0.7, 0.8])], {}, []),
    ("third of six", [trial(0, R, {1: 0.55}), *at_rung1([0.1, 0.5, 0.6, 0.7, 0.8])], {}, [0]),
    # Ties continue: nobody is strictly better than a tie for first.
    ("tied for the top", [trial(0, R, {1: 0.1}), *at_rung1([0.1, 0.1])], {}, []),
    # Before the first rung there is nothing to judge.
    ("before the first rung", [trial(0, R, {1: 0.9}), *at_rung1([0.1, 0.5])], {"min_step": 2}, []),
    # Judged at the highest rung reached (3), among those that reached it: the trial is the best
    # of the two there, so it continues though it was the worst at rung 1.
    (
        "judged at the highest rung",
        [
            trial(0, R, {1: 0.9, 2: 0.8, 3: 0.2, 4: 0.2}),
            trial(1, S, {1: 0.1, 3: 0.3}),
            *at_rung1([0.2, 0.3, 0.4]),
        ],
        {},
        [],
    ),
    (
        "pruned at the second rung",
        [
            trial(0, R, {1: 0.6, 3: 0.5}),
            trial(1, S, {1: 0.1, 3: 0.2}),
            trial(2, P, {1: 0.1, 3: 0.3}),
            *at_rung1([0.2, 0.3, 0.4]),
        ],
        {},
        [0],
    ),
    # The value at a rung is the best so far up to that step.
    ("best so far at the rung", [trial(0, R, {1: 0.05, 2: 0.9}), *at_rung1([0.1, 0.5])], {}, []),
    # A report after the rung does not change the value at the rung.
    ("later reports ignored", [trial(0, R, {1: 0.9, 2: 0.01}), *at_rung1([0.1, 0.5])], {}, [0]),
    # Step-wise: a trial that skipped the rung step is there with its best at a step <= rung.
    (
        "skipped the rung step",
        [
            trial(0, R, {2: 0.9, 5: 0.8}),
            *[trial(100 + i, S, {2: v, 4: v}) for i, v in enumerate([0.1, 0.2])],
        ],
        {"min_step": 3},
        [0],
    ),
    # Trials that reached max_step finish: ASHA never stops them.
    (
        "reached max_step",
        [
            trial(0, R, {1: 0.9, 3: 0.9, 9: 0.9, 27: 0.9}),
            *[
                trial(100 + i, S, {1: v, 3: v, 9: v, 27: v})
                for i, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])
            ],
        ],
        {},
        [],
    ),
    # Every state but Lost counts at a rung.
    ("failed trials count", [trial(0, R, {1: 0.9}), *at_rung1([0.1, 0.5], state=F)], {}, [0]),
    ("running trials count", [trial(0, R, {1: 0.9}), *at_rung1([0.1, 0.5], state=R)], {}, [0, 101]),
    ("lost trials do not count", [trial(0, R, {1: 0.9}), *at_rung1([0.1, 0.5], state=L)], {}, []),
    ("maximize", [trial(0, R, {1: 0.1}), *at_rung1([0.9, 0.5])], {"minimize": False}, [0]),
    ("maximize, best", [trial(0, R, {1: 0.95}), *at_rung1([0.9, 0.5])], {"minimize": False}, []),
]


@pytest.mark.parametrize(
    ("trials", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_asha_rule(trials, kwargs, expected):
    assert stopped(trials, **kwargs) == expected


def test_running_trials_at_one_rung_compete_with_each_other():
    trials = [trial(i, R, {1: v}) for i, v in enumerate([0.4, 0.1, 0.3, 0.2, 0.9, 0.5])]
    # 6 at rung 1, top 2 (0.1 and 0.2) continue.
    assert stopped(trials) == [0, 2, 4, 5]


def test_message_says_rank_and_rung():
    trials = [trial(7, R, {1: 0.9, 2: 0.5}), *at_rung1([0.1, 0.5])]
    [verdict] = asha_stops(
        trials, minimize=True, min_step=1, max_step=27, reduction_factor=3, metric="val_loss"
    )
    assert verdict.number == 7
    assert verdict.message == (
        "val_loss 0.9 (best so far) at rung step 1 ranks 3 of 3 trials there; "
        "only the top 1 (1/3) continue"
    )


def test_no_max_step_judges_every_rung():
    trials = [trial(0, R, {1: 0.1, 3: 0.1, 9: 0.1, 27: 0.9, 81: 0.9})]
    trials += [trial(10 + i, S, {81: v}) for i, v in enumerate([0.05, 0.06])]
    assert stopped(trials, max_step=None) == [0]
    assert stopped(trials, max_step=81) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from(SHAPES),
    n_trials=st.integers(3, 12),
    minimize=st.booleans(),
    min_step=st.integers(1, 60),
    eta=st.integers(2, 4),
    max_step=st.sampled_from([None, 300, 999, 1000, 3000]),
)
def test_thinned_curves_decide_the_same(seed, shape, n_trials, minimize, min_step, eta, max_step):
    """Exact when the rungs are kept (``keep_steps``), whatever the curve; exact without them
    too when thinning can keep every running-best point."""
    full = random_study(seed, shape, n_trials, minimize=minimize)
    kw = {
        "minimize": minimize,
        "min_step": min_step,
        "max_step": max_step,
        "reduction_factor": eta,
    }
    on_full = asha_stops(full, **kw)
    ladder = rungs(min_step, max_step, eta)
    with_rungs = thinned(full, minimize=minimize, keep_steps=ladder)
    assert all(len(t.curve) <= 200 for t in with_rungs)
    assert asha_stops(with_rungs, **kw) == on_full  # numbers and messages alike
    if all_fit(full, minimize=minimize):
        assert asha_stops(thinned(full, minimize=minimize), **kw) == on_full


@pytest.mark.parametrize("shape", SHAPES)
def test_random_studies_do_get_pruned(shape):
    """The thinning property above is not vacuous: on these studies ASHA prunes."""
    pruned = running = 0
    for seed in range(20):
        study = random_study(seed, shape, 10, minimize=seed % 2 == 0)
        pruned += len(
            asha_stops(study, minimize=seed % 2 == 0, min_step=1, max_step=1000, reduction_factor=3)
        )
        running += sum(t.state is R for t in study)
    assert 0 < pruned < running


def test_keep_steps_are_the_rungs():
    asha = EarlyStoppingSpec(name="asha", min_step=2, max_step=100, reduction_factor=4)
    assert keep_steps(asha) == (2, 8, 32)
    assert keep_steps(EarlyStoppingSpec(name="median", min_step=5)) == ()
    assert keep_steps(None) == ()
