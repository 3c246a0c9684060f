"""decide() for studies with several objectives and with constraints: the front, its
hypervolume and reference point, the leaderboard by rank, goals, and the status's bounds."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import numpy as np
import pytest
from kubetune.core import pareto
from kubetune.core.plan import decide
from kubetune.core.spec import StudyStatus
from kubetune.core.trials import Trial, TrialState

NOW = 1_000_000.0
OK = TrialState.SUCCEEDED
MULTI: dict[str, Any] = {
    "objectives": [{"metric": "acc", "direction": "maximize"},
                   {"metric": "ms", "direction": "minimize"}],
    "constraints": [{"metric": "mb", "max": 100}],
    "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "algorithm": {"name": "random", "seed": 1},
    "budget": {"maxTrials": 100, "parallelism": 1},
    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}},
}


def spec(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(MULTI)
    out.update(changes)
    return out


def trial(n: int, acc: float, ms: float, mb: float = 10.0, state: TrialState = OK) -> Trial:
    return Trial(n, {"x": n / 1000}, state, acc, ((1, acc),), job=f"j-{n}",
                 values={"acc": acc, "ms": ms, "mb": mb})


def test_the_status_carries_the_front_hypervolume_and_reference():
    trials = [trial(0, 0.9, 20), trial(1, 0.8, 10), trial(2, 0.7, 30), trial(3, 0.95, 40),
              trial(4, 0.99, 5, mb=500)]  # 4 is best on both but breaks the constraint
    status = decide(spec(), trials, NOW).status
    assert status["frontSize"] == 3
    assert [e["number"] for e in status["paretoFront"]] == [3, 0, 1]  # by acc, best first
    assert status["paretoFront"][0]["values"] == {"acc": 0.95, "ms": 40}
    assert status["bestTrial"] is None and status["bestValue"] is None
    assert status["trials"]["infeasible"] == 1 and status["trials"]["succeeded"] == 5
    # Reference: worst of the feasible trials (acc 0.7, ms 40), pushed out by a tenth of range.
    assert status["referencePoint"] == pytest.approx({"acc": 0.7 - 0.025, "ms": 40 + 3.0})
    y = np.array([[-0.95, 40], [-0.9, 20], [-0.8, 10]])
    assert status["hypervolume"] == pytest.approx(
        pareto.hypervolume(y, np.array([-0.675, 43.0])))
    board = status["leaderboard"]
    assert [e["rank"] for e in board] == [0, 0, 0, 1]
    assert board[3]["number"] == 2 and 4 not in [e["number"] for e in board]
    StudyStatus.model_validate(status)  # the CRD's status schema takes it


def test_a_given_reference_is_used_as_it_is():
    s = spec(objectives=[{"metric": "acc", "direction": "maximize", "reference": 0.5},
                         {"metric": "ms", "direction": "minimize", "reference": 100}])
    status = decide(s, [trial(0, 0.9, 20)], NOW).status
    assert status["referencePoint"] == {"acc": 0.5, "ms": 100}
    assert status["hypervolume"] == pytest.approx(0.4 * 80)


def test_the_derived_reference_stops_moving_after_ten_trials():
    first = [trial(i, 0.5 + i / 100, 50 - i) for i in range(10)]
    before = decide(spec(), first, NOW).status
    later = decide(spec(), [*first, trial(10, 0.1, 900)], NOW).status
    assert later["referencePoint"] == before["referencePoint"]
    assert later["hypervolume"] == pytest.approx(before["hypervolume"])


def test_a_large_front_is_thinned_to_fifty_keeping_its_extremes():
    trials = [trial(i, i / 199, i / 199 * 100) for i in range(200)]  # all non-dominated
    status = decide(spec(), trials, NOW).status
    assert status["frontSize"] == 200
    numbers = [e["number"] for e in status["paretoFront"]]
    assert len(numbers) == 50 and numbers[0] == 199 and numbers[-1] == 0


def test_goals_end_the_study_once_one_feasible_trial_meets_them_all():
    s = spec(objectives=[{"metric": "acc", "direction": "maximize", "goal": 0.9},
                         {"metric": "ms", "direction": "minimize", "goal": 15}])
    assert decide(s, [trial(0, 0.95, 20), trial(1, 0.8, 10)], NOW).finished is None
    assert decide(s, [trial(0, 0.95, 10, mb=200)], NOW).finished is None  # infeasible
    done = decide(s, [trial(0, 0.8, 10), trial(1, 0.92, 12)], NOW).finished
    assert done is not None and done.reason == "GoalReached"
    assert "trial 1 reached acc 0.92, ms 12" in done.message


def test_the_summary_says_the_front():
    plan = decide(spec(), [trial(0, 0.9, 20), trial(1, 0.8, 10)], NOW)
    assert "Pareto front of 2 trials, hypervolume" in plan.summary


def test_without_a_success_there_is_no_front():
    status = decide(spec(), [Trial(0, {"x": 0.1}, TrialState.FAILED)], NOW).status
    assert status["frontSize"] == 0 and status["paretoFront"] == []
    assert status["hypervolume"] is None


def test_one_objective_with_a_constraint_never_makes_an_infeasible_trial_best():
    s = spec(objectives=None, objective={"metric": "acc", "direction": "maximize"})
    del s["objectives"]
    status = decide(s, [trial(0, 0.9, 1), trial(1, 0.99, 1, mb=101)], NOW).status
    assert status["bestTrial"]["number"] == 0
    assert [e["number"] for e in status["leaderboard"]] == [0]
    assert status["trials"]["infeasible"] == 1
    assert "frontSize" not in status


def test_the_status_stays_bounded_with_four_objectives_and_long_params():
    s = spec(objectives=[{"metric": f"m{i}", "direction": "minimize"} for i in range(4)],
             searchSpace={f"p{i:02d}": {"type": "categorical", "values": ["v" * 200]}
                          for i in range(64)})
    rng = np.random.default_rng(0)
    trials = []
    for n in range(2000):
        y = rng.dirichlet(np.ones(4))  # on a simplex: many points are non-dominated
        trials.append(Trial(n, {f"p{i:02d}": "v" * 200 for i in range(64)}, OK, float(y[0]),
                            values={f"m{i}": float(v) for i, v in enumerate(y)}))
    status = decide(s, trials, NOW).status
    assert status["frontSize"] > 50
    assert len(json.dumps(status)) < 64 * 1024
    StudyStatus.model_validate(status)


def test_front_entries_are_exactly_the_non_dominated_feasible_trials():
    rng = np.random.default_rng(3)
    trials = [trial(n, float(a), float(b), mb=float(c)) for n, (a, b, c) in
              enumerate(zip(rng.random(40), rng.random(40) * 50, rng.random(40) * 200,
                            strict=True))]
    status = decide(spec(), trials, NOW).status
    feasible = [t for t in trials if t.values["mb"] <= 100]
    front = {t.number for t in feasible if not any(
        (o.values["acc"] >= t.values["acc"] and o.values["ms"] <= t.values["ms"]) and
        (o.values["acc"] > t.values["acc"] or o.values["ms"] < t.values["ms"])
        for o in feasible)}
    assert {e["number"] for e in status["paretoFront"]} == front
    for a, b in itertools.pairwise(status["leaderboard"]):
        assert a["rank"] <= b["rank"]
