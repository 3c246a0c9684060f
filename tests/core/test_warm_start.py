"""Which trials of earlier studies carry over into a warm-started study (core.warm_start), and
how decide() hands them to the sampler."""

from __future__ import annotations

from typing import Any

import pytest
from kubetune import core
from kubetune.core import plan as plans
from kubetune.core import spec as specs
from kubetune.core import warm_start as warm
from kubetune.core.trials import Trial, TrialState

OK, FAIL = TrialState.SUCCEEDED, TrialState.FAILED


def spec(**changes: Any) -> specs.StudySpec:
    obj: dict[str, Any] = {
        "objective": {"metric": "loss", "direction": "minimize"},
        "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                        "opt": {"type": "categorical", "values": ["adam", "sgd"]}},
        "algorithm": {"name": "gp", "seed": 5},
        "budget": {"maxTrials": 10, "parallelism": 2},
        "warmStart": {"studies": ["before"]},
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "t", "image": "i"}]}}}},
    }
    obj.update(changes)
    return specs.parse_spec(obj)


def trial(n: int, x: float, value: float | None, state: TrialState = OK, **params: Any) -> Trial:
    return Trial(number=n, params={"x": x, "opt": "adam", **params}, state=state, value=value)


def test_succeeded_trials_in_the_space_carry_over_best_first_numbered_below_zero() -> None:
    before = warm.PriorStudy("before", "loss", "minimize", (
        trial(0, 0.2, 3.0), trial(1, 0.5, 1.0, lr=0.1),  # lr: not in this space, dropped
        trial(2, 1.5, 0.5),  # x outside [0, 1]
        trial(3, 0.7, None, FAIL), trial(4, 0.9, 2.0, opt="rmsprop")))
    prior = warm.prior_history(spec(), [before])
    assert [(t.number, dict(t.params), t.value) for t in prior.trials] == [
        (-1, {"x": 0.5, "opt": "adam"}, 1.0), (-2, {"x": 0.2, "opt": "adam"}, 3.0)]
    assert prior.message == ("before: 2 of 4 succeeded trials (the others lie outside this "
                             "search space)")


def test_a_study_with_another_objective_or_no_trials_gives_nothing_and_says_why() -> None:
    other = warm.PriorStudy("acc", "accuracy", "maximize", (trial(0, 0.5, 0.9),))
    prior = warm.prior_history(spec(), [other, warm.PriorStudy("gone")])
    assert prior.trials == ()
    assert prior.message == ("acc: not used, it optimises accuracy (maximize), this study loss "
                             "(minimize); gone: no trials found in this namespace")


def test_maximising_keeps_the_highest_and_at_most_max_prior() -> None:
    many = tuple(trial(i, i / 1000, float(i)) for i in range(warm.MAX_PRIOR + 50))
    prior = warm.prior_history(
        spec(objective={"metric": "loss", "direction": "maximize"}),
        [warm.PriorStudy("before", "loss", "maximize", many)])
    assert len(prior.trials) == warm.MAX_PRIOR
    assert prior.trials[0].value == warm.MAX_PRIOR + 49
    assert min(t.value or 0 for t in prior.trials) == 50.0
    assert prior.message.endswith(f"the best {warm.MAX_PRIOR} of {warm.MAX_PRIOR + 50} "
                                  "carried over")


def test_decide_hands_the_prior_to_the_sampler_but_counts_only_its_own() -> None:
    s = spec()
    before = warm.PriorStudy("before", "loss", "minimize",
                             tuple(trial(i, i / 10, (i / 10 - 0.3) ** 2) for i in range(8)))
    prior = warm.prior_history(s, [before])
    cold = plans.decide(s, [], 0.0)
    warmed = plans.decide(s, [], 0.0, prior=prior)
    # gp past its startup design: its first proposals are model-based, from the prior.
    assert [c.params for c in warmed.create] == core.suggest(s, list(prior.trials), 2)
    assert [c.params for c in warmed.create] != [c.params for c in cold.create]
    assert [c.number for c in warmed.create] == [0, 1]
    assert warmed.status["trials"]["total"] == 2 and warmed.status["bestTrial"] is None
    assert warmed.status["warmStart"] == {"trials": 8, "message": prior.message}
    assert "warmStart" not in plans.decide(spec(warmStart=None), [], 0.0).status


@pytest.mark.parametrize("name", ["Before", "a_b", "-x", "x" * 254])
def test_a_study_name_that_cannot_be_one_is_refused(name: str) -> None:
    with pytest.raises(specs.SpecError, match=r"spec\.warmStart\.studies\[0\]"):
        spec(warmStart={"studies": [name]})
