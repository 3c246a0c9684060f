"""kube.status: a Plan -> the study's .status, with conditions as kstatus reads them
(docs/design.md section 2).

Plans come from ``kubetune.core.plan.decide`` on small specs with an injected ``suggest``, so no
sampler runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import pytest
from kubetune.core.plan import Plan, decide
from kubetune.core.spec import StudySpec, StudyStatus
from kubetune.core.trials import Trial, TrialState
from kubetune.kube import status as statuses

T0 = 1714564800.0  # 2024-05-01T12:00:00Z
LATER = T0 + 3600
OLD = "2020-01-01T00:00:00Z"
TYPES = ["Ready", "Reconciling", "Stalled", "Suspended", "Succeeded", "Failed"]


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_suggest(spec: StudySpec, trials: Sequence[Trial], n: int) -> list[dict[str, Any]]:
    return [{"x": 0.5}] * n


def spec(**budget: Any) -> dict[str, Any]:
    suspend = budget.pop("suspend", False)
    goal = budget.pop("goal", None)
    return {
        "objective": {"metric": "val_loss", "direction": "minimize", "goal": goal},
        "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 1, **budget},
        "suspend": suspend,
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "t", "image": "kubetune/trainer"}],
                    }
                }
            }
        },
    }


def trial(n: int, state: TrialState, value: float | None = None) -> Trial:
    return Trial(n, {"x": 0.1 * n}, state, value, reason="ExitCode" if state == "Failed" else None)


def plan(study: dict[str, Any], trials: Sequence[Trial] = ()) -> Plan:
    return decide(study, trials, T0, suggest=fake_suggest)


RUNNING = plan(spec(), [trial(0, TrialState.RUNNING), trial(1, TrialState.SUCCEEDED, 0.3)])
WAITING = plan(spec())  # two new trials, Pending
SUSPENDED = plan(spec(suspend=True), [trial(0, TrialState.SUCCEEDED, 0.3)])
SUCCEEDED = plan(
    spec(maxTrials=2, parallelism=1),
    [trial(0, TrialState.SUCCEEDED, 0.3), trial(1, TrialState.SUCCEEDED, 0.2)],
)
GOAL = plan(spec(goal=0.25), [trial(0, TrialState.SUCCEEDED, 0.2), trial(1, TrialState.RUNNING)])
FAILED = plan(spec(), [trial(0, TrialState.FAILED), trial(1, TrialState.FAILED)])


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {c["type"]: c for c in status["conditions"]}
    assert len(out) == len(status["conditions"]), "a condition type twice"
    return out


def states(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {k: (c["status"], c["reason"]) for k, c in conditions(status).items()}


def make(
    p: Plan,
    previous: dict[str, Any] | None = None,
    *,
    now: float = T0,
    generation: int = 3,
    pending_reasons: Sequence[str] = (),
) -> dict[str, Any]:
    status = statuses.study_status(
        p, previous or {}, generation=generation, now=now, pending_reasons=pending_reasons
    )
    StudyStatus.model_validate(status)  # fits the CRD's status schema
    return status


def test_plans_are_the_ones_meant() -> None:
    assert (RUNNING.finished, RUNNING.phase) == (None, "Running")
    assert len(WAITING.create) == 2
    assert SUSPENDED.suspended
    assert SUCCEEDED.finished.reason == "MaxTrialsReached"
    assert GOAL.finished.reason == "GoalReached"
    assert FAILED.finished.reason == "TooManyFailedTrials"


def test_running_study_conditions() -> None:
    status = make(RUNNING)
    assert [c["type"] for c in status["conditions"]] == TYPES
    assert states(status) == {
        "Ready": ("True", "Running"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "SpecAccepted"),
        "Suspended": ("False", "NotSuspended"),
        "Succeeded": ("False", "Running"),
        "Failed": ("False", "Running"),
    }
    ready = conditions(status)["Ready"]
    assert ready["message"] == RUNNING.summary
    for c in status["conditions"]:
        assert c["observedGeneration"] == 3
        assert c["lastTransitionTime"] == rfc3339(T0)
    assert status["observedGeneration"] == 3
    assert status["startTime"] == rfc3339(T0)
    assert status["completionTime"] is None


def test_plan_status_is_carried() -> None:
    status = make(RUNNING)
    for key, value in RUNNING.status.items():
        assert status[key] == value
    assert status["trials"]["running"] == 1
    assert status["bestTrial"]["value"] == 0.3


def test_suspended() -> None:
    status = make(SUSPENDED)
    assert states(status)["Suspended"] == ("True", "SuspendRequested")
    assert states(status)["Ready"] == ("True", "Suspended")
    assert "suspended" in conditions(status)["Ready"]["message"]


@pytest.mark.parametrize(
    ("p", "reason"), [(SUCCEEDED, "MaxTrialsReached"), (GOAL, "GoalReached")], ids=["max", "goal"]
)
def test_succeeded(p: Plan, reason: str) -> None:
    status = make(p)
    assert states(status)["Succeeded"] == ("True", reason)
    assert conditions(status)["Succeeded"]["message"] == p.finished.message
    # The Failed condition says how the study ended, not that it runs.
    assert states(status)["Failed"] == ("False", reason)
    assert states(status)["Ready"] == ("True", reason)
    # kstatus: Current, so `helm --wait` and Flux accept a succeeded study.
    assert states(status)["Stalled"] == ("False", "SpecAccepted")
    assert status["phase"] == "Succeeded"
    assert status["completionTime"] == rfc3339(T0)


def test_failed() -> None:
    status = make(FAILED)
    assert states(status)["Failed"] == ("True", "TooManyFailedTrials")
    assert "maxFailedTrials" in conditions(status)["Failed"]["message"]
    assert states(status)["Succeeded"] == ("False", "TooManyFailedTrials")
    assert states(status)["Ready"] == ("False", "TooManyFailedTrials")
    # kstatus: Failed, so `helm upgrade --wait` and Flux stop waiting with the reason.
    assert states(status)["Stalled"] == ("True", "TooManyFailedTrials")
    assert conditions(status)["Stalled"]["message"] == (
        f"TooManyFailedTrials: {FAILED.finished.message}")
    assert status["phase"] == "Failed"
    assert status["completionTime"] == rfc3339(T0)


def test_a_resumed_failed_study_is_no_longer_stalled() -> None:
    failed = make(FAILED)
    resumed = make(plan(spec(maxFailedTrials=3), [trial(0, TrialState.FAILED),
                                                  trial(1, TrialState.FAILED)]), failed,
                   now=LATER)
    assert states(resumed)["Stalled"] == ("False", "SpecAccepted")
    assert states(resumed)["Failed"] == ("False", "Running")
    assert conditions(resumed)["Stalled"]["lastTransitionTime"] == rfc3339(LATER)
    assert resumed["phase"] == "Running"


@pytest.mark.parametrize(
    ("p", "phase"),
    [(WAITING, "Pending"), (RUNNING, "Running"), (SUSPENDED, "Suspended"),
     (SUCCEEDED, "Succeeded"), (FAILED, "Failed")],
)
def test_phase_and_the_conditions_agree(p: Plan, phase: str) -> None:
    status = make(p)
    assert status["phase"] == phase
    ready = conditions(status)["Ready"]
    if phase in ("Pending", "Running", "Suspended"):
        assert (ready["status"], ready["reason"]) == ("True", phase)
        # Neither terminal condition claims an ending while the study goes on.
        assert states(status)["Succeeded"] == states(status)["Failed"] == ("False", phase)


def test_printer_column_fields() -> None:
    status = make(RUNNING)
    assert status["progress"] == "1/4"  # done: Succeeded, Failed, Pruned; not Running
    assert status["bestValue"] == "0.3"
    long = plan(spec(), [trial(0, TrialState.SUCCEEDED, 0.10596491228070176),
                         trial(1, TrialState.PRUNED, 0.2), trial(2, TrialState.FAILED),
                         trial(3, TrialState.STOPPED, 0.01)])
    assert make(long)["bestValue"] == "0.105965"
    assert make(long)["progress"] == "3/4"
    assert make(WAITING)["bestValue"] is None


def test_pending_reasons_in_the_ready_message() -> None:
    why = ["0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", "b", "c", "d"]
    message = conditions(make(WAITING, pending_reasons=why))["Ready"]["message"]
    assert message.startswith(WAITING.summary)
    assert "Insufficient nvidia.com/gpu" in message
    assert "d" not in message.removeprefix(WAITING.summary).split(" | ")  # three at most
    # Not when no trial is pending.
    assert conditions(make(SUCCEEDED, pending_reasons=why))["Ready"]["message"] == (
        SUCCEEDED.finished.message
    )


def test_long_messages_are_cut() -> None:
    message = conditions(make(WAITING, pending_reasons=["x" * 5000]))["Ready"]["message"]
    assert len(message) <= statuses.MAX_MESSAGE


# ---- what is kept from the previous status --------------------------------------------------


def test_transition_time_kept_while_status_holds() -> None:
    first = make(RUNNING)
    for c in first["conditions"]:
        c["lastTransitionTime"] = OLD
    second = make(RUNNING, first, now=LATER)
    assert {c["lastTransitionTime"] for c in second["conditions"]} == {OLD}


def test_transition_time_kept_when_only_the_reason_changes() -> None:
    # Ready stays True from Running to Suspended: not a transition.
    previous = make(RUNNING)
    for c in previous["conditions"]:
        c["lastTransitionTime"] = OLD
    after = conditions(make(SUSPENDED, previous, now=LATER))
    assert after["Ready"]["reason"] == "Suspended"
    assert after["Ready"]["lastTransitionTime"] == OLD
    assert after["Suspended"]["lastTransitionTime"] == rfc3339(LATER)


def test_transition_time_set_when_status_changes() -> None:
    previous = make(RUNNING)
    for c in previous["conditions"]:
        c["lastTransitionTime"] = OLD
    after = conditions(make(FAILED, previous, now=LATER))
    assert after["Failed"]["lastTransitionTime"] == rfc3339(LATER)
    assert after["Ready"]["lastTransitionTime"] == rfc3339(LATER)
    assert after["Succeeded"]["lastTransitionTime"] == OLD
    assert after["Stalled"]["lastTransitionTime"] == rfc3339(LATER)
    assert after["Suspended"]["lastTransitionTime"] == OLD


def test_start_time_kept() -> None:
    previous = {"startTime": OLD}
    assert make(RUNNING, previous, now=LATER)["startTime"] == OLD
    assert make(SUCCEEDED, previous, now=LATER)["startTime"] == OLD


def test_completion_time_set_once_and_kept() -> None:
    done = make(SUCCEEDED)
    assert done["completionTime"] == rfc3339(T0)
    again = make(SUCCEEDED, done, now=LATER)
    assert again["completionTime"] == rfc3339(T0)
    # A study resumed (maxTrials raised) is no longer complete.
    assert make(RUNNING, again, now=LATER)["completionTime"] is None


def test_observed_generation_follows_the_generation() -> None:
    status = make(RUNNING, make(RUNNING, generation=1), generation=2)
    assert status["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}


# ---- invalid specs and new generations ------------------------------------------------------


def test_invalid_status_is_stalled() -> None:
    previous = make(RUNNING)
    status = statuses.invalid_status(
        "spec.budget.parallelism: must be <= maxTrials", previous, generation=4, now=LATER
    )
    StudyStatus.model_validate(status)
    assert states(status) == {
        "Ready": ("False", "InvalidSpec"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("True", "InvalidSpec"),
    }
    stalled = conditions(status)["Stalled"]
    assert stalled["message"] == "spec.budget.parallelism: must be <= maxTrials"
    assert status["phase"] == "Invalid"
    assert stalled["lastTransitionTime"] == rfc3339(LATER)
    assert conditions(status)["Reconciling"]["lastTransitionTime"] == rfc3339(T0)
    assert status["observedGeneration"] == 4
    # What the study did before is kept.
    assert status["trials"] == previous["trials"]
    assert status["startTime"] == previous["startTime"]


def test_invalid_status_of_a_new_study() -> None:
    status = statuses.invalid_status("bad", {}, generation=1, now=T0)
    StudyStatus.model_validate(status)
    assert states(status)["Stalled"] == ("True", "InvalidSpec")
    assert states(status)["Ready"] == ("False", "InvalidSpec")


def test_reconciling_status_marks_a_new_generation() -> None:
    previous = make(RUNNING, generation=1)
    status = statuses.reconciling_status(previous, generation=2, now=LATER)
    assert list(status) == ["conditions"]
    assert states(status)["Reconciling"] == ("True", "NewGeneration")
    assert conditions(status)["Reconciling"]["lastTransitionTime"] == rfc3339(LATER)
    assert states(status)["Ready"] == ("True", "Running")  # the others untouched
    assert conditions(status)["Ready"] == conditions(previous)["Ready"]
    # Once acted on, Reconciling is False again.
    done = make(RUNNING, {**previous, **status}, now=LATER + 1, generation=2)
    assert states(done)["Reconciling"] == ("False", "Reconciled")


# ---- change detection -----------------------------------------------------------------------


def test_identical_status_is_not_a_change() -> None:
    first = make(RUNNING)
    again = make(RUNNING, first, now=LATER)
    assert not statuses.conditions_changed(first, again)
    done = make(SUCCEEDED, first, now=LATER)
    assert not statuses.conditions_changed(done, make(SUCCEEDED, done, now=LATER + 60))


def test_condition_order_and_nulls_are_not_a_change() -> None:
    first = make(RUNNING)
    shuffled = {k: v for k, v in first.items() if v is not None}
    shuffled["conditions"] = list(reversed(first["conditions"]))
    assert not statuses.conditions_changed(first, shuffled)


def test_real_changes_are_changes() -> None:
    first = make(RUNNING)
    assert statuses.conditions_changed(first, make(SUCCEEDED, first, now=LATER))
    assert statuses.conditions_changed(first, make(RUNNING, first, generation=4))
    assert statuses.conditions_changed({}, first)
    more = make(
        plan(spec(), [trial(0, TrialState.RUNNING), trial(1, TrialState.SUCCEEDED, 0.1)]), first
    )
    assert statuses.conditions_changed(first, more)


def test_progress_alone_is_a_routine_change() -> None:
    first = make(RUNNING)
    better = make(
        plan(spec(), [trial(0, TrialState.RUNNING), trial(1, TrialState.SUCCEEDED, 0.1)]), first
    )
    assert statuses.conditions_changed(first, better)
    assert statuses.routine_change(first, better)  # a new best value and counts: progress
    # A new trial number is progress too: the operator keeps it while the write waits.
    assert statuses.routine_change(first, {**first, "nextTrial": first["nextTrial"] + 1})


def test_what_waiting_tools_read_is_never_routine() -> None:
    first = make(RUNNING)
    assert not statuses.routine_change(first, make(SUCCEEDED, first, now=LATER))  # phase
    assert not statuses.routine_change(first, make(RUNNING, first, generation=4))
    assert not statuses.routine_change({}, first)  # the first status
    suspended = make(SUSPENDED, first, now=LATER)
    assert not statuses.routine_change(first, suspended)
    # A condition whose reason changes while its status holds is not progress either.
    ready = conditions(first)["Ready"]
    renamed = {**first, "conditions": [
        {**c, "reason": "Elsewhere"} if c is ready else c for c in first["conditions"]]}
    assert not statuses.routine_change(first, renamed)
