"""decide() with a queue that admits the trials (Kueue): the sampler never proposes ahead of
what the queue admits, and a study without a queue is unchanged."""

from __future__ import annotations

import copy
from typing import Any

from kubetune.core.plan import decide
from kubetune.core.trials import QUEUE_LABEL, QUEUED, Trial, TrialState
from test_plan import BASE, NOW

QUEUE = {"labels": {QUEUE_LABEL: "gpus"}}


def spec(*, queue: bool, parallelism: int = 4) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["budget"] = {**out["budget"], "parallelism": parallelism, "maxTrials": 20}
    if queue:
        out["jobTemplate"]["metadata"] = copy.deepcopy(QUEUE)
    return out


def running(n: int) -> Trial:
    return Trial(n, {"x": 0.5}, TrialState.RUNNING, start_time=NOW - 5)


def queued(n: int) -> Trial:
    return Trial(n, {"x": 0.5}, TrialState.PENDING, reason=QUEUED,
                 message=f"trial {n} waits for its queue 'gpus' to admit it")


def waiting_for_a_node(n: int) -> Trial:
    return Trial(n, {"x": 0.5}, TrialState.PENDING)


def created(s: dict[str, Any], trials: list[Trial]) -> list[int]:
    return [c.number for c in decide(s, trials, NOW).create]


def test_into_a_named_queue_trials_go_one_at_a_time() -> None:
    assert created(spec(queue=True), []) == [0]
    assert created(spec(queue=True), [running(0)]) == [1]
    assert created(spec(queue=True), [running(0), running(1)]) == [2]


def test_nothing_is_created_while_a_trial_waits_for_admission() -> None:
    assert created(spec(queue=True), [running(0), running(1), queued(2)]) == []
    # Also where the template names no queue but a queue suspended the Jobs (a default queue).
    assert created(spec(queue=False), [running(0), queued(1)]) == []


def test_parallelism_still_bounds_what_a_queue_admits() -> None:
    assert created(spec(queue=True, parallelism=2), [running(0), running(1)]) == []


def test_without_a_queue_the_study_fills_its_parallelism() -> None:
    assert created(spec(queue=False), []) == [0, 1, 2, 3]
    # A trial that waits for a node, not for a queue, does not hold the others back.
    assert created(spec(queue=False), [running(0), waiting_for_a_node(1)]) == [2, 3]


def test_a_queued_trial_is_pending_in_the_counts() -> None:
    plan = decide(spec(queue=True), [running(0), queued(1)], NOW)
    assert plan.status["trials"]["pending"] == 1
    assert plan.status["trials"]["running"] == 1
