"""The median stopping rule: table-driven cases, then invariance under curve thinning."""

from __future__ import annotations

import pytest
from curve_cases import SHAPES, all_fit, random_study, thinned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubetune.core.stopping.median import median_stops
from kubetune.core.trials import Trial, TrialState

R, S, P, L = TrialState.RUNNING, TrialState.SUCCEEDED, TrialState.PRUNED, TrialState.LOST


def trial(number: int, state: TrialState, *values: float, first_step: int = 1) -> Trial:
    """A trial that reported ``values`` at consecutive steps from ``first_step``."""
    curve = tuple((first_step + i, float(v)) for i, v in enumerate(values))
    return Trial(number=number, params={}, state=state, curve=curve)


def peers(n: int, *values: float, state: TrialState = S, start: int = 100) -> list[Trial]:
    return [trial(start + i, state, *values) for i in range(n)]


def stopped(trials, **kw) -> list[int]:
    kw.setdefault("minimize", True)
    return [p.number for p in median_stops(trials, **kw)]


CASES = [
    # (id, trials, kwargs, expected stopped numbers)
    ("worse than median", [trial(0, R, 0.9, 0.8), *peers(5, 0.5, 0.4)], {}, [0]),
    ("better than median", [trial(0, R, 0.5, 0.3), *peers(5, 0.5, 0.4)], {}, []),
    ("equal to median continues", [trial(0, R, 0.5, 0.4), *peers(5, 0.5, 0.4)], {}, []),
    ("too few peers", [trial(0, R, 0.9, 0.8), *peers(4, 0.5, 0.4)], {}, []),
    ("min_trials lowered", [trial(0, R, 0.9, 0.8), *peers(4, 0.5, 0.4)], {"min_trials": 4}, [0]),
    ("before min_step", [trial(0, R, 0.9, 0.8), *peers(5, 0.5, 0.4)], {"min_step": 3}, []),
    ("at min_step", [trial(0, R, 0.9, 0.8, 0.7), *peers(5, 0.5, 0.4, 0.3)], {"min_step": 3}, [0]),
    # Best so far, not the last value: one bad report after a good one does not prune.
    ("best so far counts", [trial(0, R, 0.3, 0.9), *peers(5, 0.5, 0.4)], {}, []),
    # Peers that have not reached the trial's step do not count.
    ("peers short of the step", [trial(0, R, 0.9, 0.8, 0.7), *peers(5, 0.5, 0.4)], {}, []),
    # Peers are compared at the trial's step, not at their end.
    ("peers judged at my step", [trial(0, R, 0.9), *peers(5, 1.0, 0.1)], {}, []),
    # Step-wise interpolation: a peer that skipped step 5 counts with its best at a step <= 5.
    (
        "interpolated peers",
        [
            Trial(0, {}, R, curve=((1, 0.9), (5, 0.8))),
            *[Trial(100 + i, {}, S, curve=((1, 0.5), (4, 0.4), (9, 0.3))) for i in range(5)],
        ],
        {},
        [0],
    ),
    # A peer whose first report is after the step has nothing at that step.
    (
        "peers that started later",
        [trial(0, R, 0.9, 0.8), *[trial(100 + i, S, 0.1, 0.1, first_step=3) for i in range(5)]],
        {},
        [],
    ),
    (
        "running peers count",
        [trial(0, R, 0.9, 0.8), *peers(5, 0.5, 0.4, state=R)],
        {},
        [
            0,
        ],
    ),
    ("pruned peers count", [trial(0, R, 0.9, 0.8), *peers(5, 0.5, 0.4, state=P)], {}, [0]),
    ("lost peers do not count", [trial(0, R, 0.9, 0.8), *peers(5, 0.5, 0.4, state=L)], {}, []),
    ("finished trials are not stopped", [trial(0, S, 0.9, 0.8), *peers(5, 0.5, 0.4)], {}, []),
    (
        "maximize: worse is lower",
        [trial(0, R, 0.5, 0.6), *peers(5, 0.8, 0.9)],
        {"minimize": False},
        [0],
    ),
    (
        "maximize: better is higher",
        [trial(0, R, 0.8, 0.95), *peers(5, 0.8, 0.9)],
        {"minimize": False},
        [],
    ),
    ("no curve, no verdict", [Trial(0, {}, R), *peers(5, 0.5, 0.4)], {}, []),
    # nan and inf reports are skipped: they are never a best.
    ("non-finite skipped", [trial(0, R, 0.3, float("nan")), *peers(5, 0.5, 0.4)], {}, []),
]


@pytest.mark.parametrize(
    ("trials", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_median_rule(trials, kwargs, expected):
    assert stopped(trials, **kwargs) == expected


def test_median_is_of_the_others_and_message_says_why():
    # Peers at 0.2 0.3 0.4 0.5 0.6 (median 0.4); the trial at 0.41 is just worse.
    trials = [trial(9, R, 0.45, 0.41)] + [
        trial(i, S, 0.7, v) for i, v in enumerate([0.2, 0.3, 0.4, 0.5, 0.6])
    ]
    [verdict] = median_stops(trials, minimize=True, metric="val_loss")
    assert verdict.number == 9
    assert verdict.message == (
        "val_loss 0.41 (best so far) at step 2 is worse than the median 0.4 of 5 trials "
        "at that step"
    )
    trials[0] = trial(9, R, 0.45, 0.39)
    assert median_stops(trials, minimize=True) == []


def test_several_running_trials_are_judged_independently():
    trials = [
        trial(0, R, 0.9, 0.8),
        trial(1, R, 0.1, 0.1),
        trial(2, R, 0.95, 0.9),
        *peers(4, 0.5, 0.4),
    ]
    # Each running trial sees the 6 others: two running trials among them.
    assert stopped(trials) == [0, 2]


def test_min_trials_below_one_is_refused():
    with pytest.raises(ValueError, match="minTrials"):
        median_stops([], minimize=True, min_trials=0)


STUDY = {
    "seed": st.integers(0, 2**32 - 1),
    "shape": st.sampled_from(SHAPES),
    "n_trials": st.integers(3, 12),
    "minimize": st.booleans(),
    "min_step": st.integers(0, 300),
    "min_trials": st.integers(1, 5),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**STUDY)
def test_thinned_curves_decide_the_same(seed, shape, n_trials, minimize, min_step, min_trials):
    """Exact when thinning keeps every running-best point; otherwise never prunes more.

    When a curve improves at more than ~200 reports, thinning keeps the most recent
    improvements, so a peer's best at an early step can read worse than it was: the median
    rises and the rule can only prune less (the trial's own best, its latest improvement, is
    kept).
    """
    full = random_study(seed, shape, n_trials, minimize=minimize)
    thin = thinned(full, minimize=minimize)
    assert all(len(t.curve) <= 200 for t in thin)
    kw = {"minimize": minimize, "min_step": min_step, "min_trials": min_trials}
    on_full, on_thin = median_stops(full, **kw), median_stops(thin, **kw)
    if all_fit(full, minimize=minimize):
        assert on_thin == on_full  # numbers and messages alike
    else:
        assert {p.number for p in on_thin} <= {p.number for p in on_full}


@pytest.mark.parametrize("shape", SHAPES)
def test_random_studies_do_get_pruned(shape):
    """The thinning property above is not vacuous: on these studies the rule prunes."""
    studies = [random_study(seed, shape, 10, minimize=seed % 2 == 0) for seed in range(20)]
    pruned = sum(
        len(median_stops(t, minimize=i % 2 == 0, min_trials=3)) for i, t in enumerate(studies)
    )
    running = sum(t.state is R for study in studies for t in study)
    assert 0 < pruned < running
