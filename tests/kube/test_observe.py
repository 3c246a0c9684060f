"""kube.observe: Jobs and pods -> Trial records, results to record, pods to release
(docs/design.md sections 3-4).

Jobs and pods are small dicts shaped as the API server returns them, built by ``job`` and
``pod`` below with only the fields observe reads.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest
from kubetune.core import protocol
from kubetune.core import spec as specs
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import QUEUE_LABEL, QUEUED, Trial, TrialState
from kubetune.kube import conventions as names
from kubetune.kube import observe

UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
PARAMS = {"lr": 0.01, "layers": 3}
T0 = 1714564800.0  # 2024-05-01T12:00:00Z


def ts(seconds: float) -> str:
    """An RFC 3339 time ``seconds`` after T0."""
    return datetime.datetime.fromtimestamp(T0 + seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def job(
    n: int,
    *,
    complete: bool = False,
    failed: str | None = None,
    suspend: bool | None = None,
    result: TrialResult | str | None = None,
    params: dict | None = None,
    start: float | None = 0.0,
    done: float | None = None,
) -> dict[str, Any]:
    """Trial ``n``'s Job. ``failed`` is the Failed condition's reason; ``done`` its end time."""
    annotations = {names.PARAMS_ANNOTATION: json.dumps(PARAMS if params is None else params)}
    if result is not None:
        annotations[names.RESULT_ANNOTATION] = (
            result if isinstance(result, str) else protocol.encode_result(result)
        )
    conditions = []
    if complete:
        conditions.append({"type": "Complete", "status": "True", "lastTransitionTime": ts(100)})
    if failed is not None:
        conditions.append(
            {"type": "Failed", "status": "True", "reason": failed, "lastTransitionTime": ts(100)}
        )
    status: dict[str, Any] = {"conditions": conditions}
    if start is not None:
        status["startTime"] = ts(start)
    if done is not None:
        status["completionTime"] = ts(done)
    spec: dict[str, Any] = {"backoffLimit": 0}
    if suspend is not None:
        spec["suspend"] = suspend
    return {
        "metadata": {
            "name": names.trial_job_name("study", UID, n),
            "namespace": "ml",
            "labels": {names.STUDY_UID_LABEL: UID, names.TRIAL_LABEL: str(n)},
            "annotations": annotations,
        },
        "spec": spec,
        "status": status,
    }


def pod(
    n: int,
    *,
    phase: str = "Running",
    metrics: str | dict | None = None,
    curve: list | None = None,
    start: float | None = 5.0,
    created: float = 1.0,
    name: str | None = None,
    exit_code: int | None = None,
    reason: str | None = None,
    conditions: list[dict] | None = None,
    deleting: bool = False,
    finalizer: bool = True,
) -> dict[str, Any]:
    """A pod of trial ``n``. ``metrics`` is the report (a dict is encoded, a str kept as is)."""
    annotations = {}
    if metrics is not None:
        annotations[names.METRICS_ANNOTATION] = (
            metrics if isinstance(metrics, str) else protocol.encode_metrics(**metrics)
        )
    if curve is not None:
        annotations[names.CURVE_ANNOTATION] = json.dumps(curve)
    meta: dict[str, Any] = {
        "name": name or f"{names.trial_job_name('study', UID, n)}-x{int(created)}",
        "namespace": "ml",
        "creationTimestamp": ts(created),
        "labels": {names.STUDY_UID_LABEL: UID, names.TRIAL_LABEL: str(n)},
        "annotations": annotations,
        "finalizers": [names.FINALIZER] if finalizer else [],
    }
    if deleting:
        meta["deletionTimestamp"] = ts(200)
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if start is not None:
        status["startTime"] = ts(start)
    if reason is not None:
        status["reason"] = reason
    if exit_code is not None:
        status["containerStatuses"] = [
            {
                "name": "trainer",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Error",
                        "message": "CUDA out of memory\n",
                    }
                },
            }
        ]
    return {"metadata": meta, "spec": {"activeDeadlineSeconds": 3600}, "status": status}


def look(
    jobs: list[dict], pods: list[dict], *, minimize: bool = True, next_trial: int = 0
) -> observe.Observation:
    return observe.observe(jobs, pods, observe.Reader("val_loss", minimize), next_trial=next_trial)


def only(seen: observe.Observation) -> Trial:
    assert len(seen.trials) == 1, seen.trials
    return seen.trials[0]


REPORT = {"step": 5, "metrics": {"val_loss": 0.2, "acc": 0.9}}
CURVE = [[1, 0.9], [3, 0.4], [5, 0.2]]


# ---- results already on the Job -------------------------------------------------------------


def test_recorded_result_is_read_from_the_job_alone() -> None:
    recorded = TrialResult(
        TrialState.PRUNED, "EarlyStopped", 0.7, 3, ((1, 0.9), (3, 0.7)), "worse than the median"
    )
    # The pod says something else (it went on reporting); the recorded result wins.
    seen = look(
        [job(0, failed="DeadlineExceeded", result=recorded, done=120)],
        [
            pod(
                0,
                phase="Failed",
                metrics={"step": 9, "metrics": {"val_loss": 0.1}},
                curve=[[9, 0.1]],
            )
        ],
    )
    t = only(seen)
    assert (t.state, t.reason, t.value, t.curve, t.message) == (
        TrialState.PRUNED,
        "EarlyStopped",
        0.7,
        ((1, 0.9), (3, 0.7)),
        "worse than the median",
    )
    assert t.params == PARAMS
    assert t.job == names.trial_job_name("study", UID, 0)
    assert t.end_time == T0 + 120
    assert seen.to_record == {}


def test_recorded_result_without_pods() -> None:
    # Pods do not last; the result on the Job does.
    recorded = TrialResult(TrialState.SUCCEEDED, None, 0.25, 7, ((7, 0.25),))
    seen = look([job(4, complete=True, result=recorded)], [], next_trial=5)
    t = seen.trials[4]
    assert (t.number, t.state, t.value, t.curve) == (4, TrialState.SUCCEEDED, 0.25, ((7, 0.25),))
    assert seen.to_record == {}


def test_unreadable_recorded_result_falls_back_to_the_objects() -> None:
    seen = look(
        [job(0, complete=True, result="{not json")],
        [pod(0, phase="Succeeded", metrics=REPORT, curve=CURVE)],
    )
    assert only(seen).state is TrialState.SUCCEEDED
    assert seen.to_record[0].value == 0.2


# ---- Jobs that ended on their own -----------------------------------------------------------


def test_complete_job_with_metrics_succeeds() -> None:
    seen = look(
        [job(0, complete=True, done=100)], [pod(0, phase="Succeeded", metrics=REPORT, curve=CURVE)]
    )
    t = only(seen)
    assert (t.state, t.value, t.reason) == (TrialState.SUCCEEDED, 0.2, None)
    assert t.curve == ((1, 0.9), (3, 0.4), (5, 0.2))
    assert t.start_time == T0 + 5
    assert t.end_time == T0 + 100
    assert seen.to_record == {
        0: TrialResult(TrialState.SUCCEEDED, None, 0.2, 5, ((1, 0.9), (3, 0.4), (5, 0.2)))
    }
    # What is to record can be recorded.
    assert protocol.parse_result(protocol.encode_result(seen.to_record[0])) == seen.to_record[0]


def test_curve_gets_the_last_report_when_the_curve_lags() -> None:
    seen = look(
        [job(0, complete=True)], [pod(0, phase="Succeeded", metrics=REPORT, curve=CURVE[:2])]
    )
    assert only(seen).curve == ((1, 0.9), (3, 0.4), (5, 0.2))
    assert seen.to_record[0].step == 5


def test_end_time_from_the_condition_when_no_completion_time() -> None:
    seen = look([job(0, complete=True)], [pod(0, phase="Succeeded", metrics=REPORT)])
    assert only(seen).end_time == T0 + 100


def test_value_is_the_last_report_not_the_best() -> None:
    seen = look(
        [job(0, complete=True)],
        [
            pod(
                0,
                phase="Succeeded",
                metrics={"step": 6, "metrics": {"val_loss": 0.3}},
                curve=[*CURVE, [6, 0.3]],
            )
        ],
    )
    assert only(seen).value == 0.3


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        (None, "MetricMissing"),
        ('{"step": 5, "metrics": {"acc": 0.9}, "final": false}', "MetricMissing"),
        ('{"step": 5, "metrics": {"val_loss": 0.2', "MetricInvalid"),
        ('{"step": 5, "metrics": {"val_loss": "low"}}', "MetricInvalid"),
        ('["val_loss", 0.2]', "MetricInvalid"),
        ('{"step": 5, "metrics": {"val_loss": NaN}, "final": false}', "MetricNotFinite"),
        ('{"step": 5, "metrics": {"val_loss": Infinity}}', "MetricNotFinite"),
    ],
)
def test_complete_job_without_a_valid_metric_fails(metrics: str | None, reason: str) -> None:
    seen = look([job(0, complete=True)], [pod(0, phase="Succeeded", metrics=metrics)])
    t = only(seen)
    assert (t.state, t.reason, t.value) == (TrialState.FAILED, reason, None)
    assert t.message
    assert seen.to_record[0].state is TrialState.FAILED
    assert seen.to_record[0].reason == reason
    protocol.encode_result(seen.to_record[0])  # recordable as it is


def test_a_diverged_auxiliary_metric_does_not_fail_the_trial() -> None:
    text = '{"step": 5, "metrics": {"val_loss": 0.2, "grad_norm": NaN}, "final": false}'
    seen = look([job(0, complete=True)], [pod(0, phase="Succeeded", metrics=text)])
    assert (only(seen).state, only(seen).value) == (TrialState.SUCCEEDED, 0.2)


def test_failed_job_with_an_exit_code() -> None:
    seen = look(
        [job(0, failed="BackoffLimitExceeded")],
        [pod(0, phase="Failed", metrics=REPORT, curve=CURVE, exit_code=137)],
    )
    t = only(seen)
    assert (t.state, t.reason) == (TrialState.FAILED, "ExitCode")
    assert "137" in t.message
    assert "trainer" in t.message
    assert "CUDA out of memory" in t.message
    # What it reported before it failed is kept for the samplers.
    assert t.value == 0.2
    assert t.curve[-1] == (5, 0.2)
    assert seen.to_record[0].reason == "ExitCode"


def test_failed_job_without_any_report() -> None:
    t = only(look([job(0, failed="BackoffLimitExceeded")], [pod(0, phase="Failed", exit_code=1)]))
    assert (t.state, t.reason, t.value, t.curve) == (TrialState.FAILED, "ExitCode", None, ())


def test_failed_job_whose_pod_is_gone() -> None:
    t = only(look([job(0, failed="BackoffLimitExceeded")], []))
    assert (t.state, t.reason) == (TrialState.FAILED, "ExitCode")
    assert "gone" in t.message


def test_job_deadline_exceeded_is_timed_out() -> None:
    t = only(look([job(0, failed="DeadlineExceeded")], [pod(0, phase="Failed", metrics=REPORT)]))
    assert (t.state, t.reason, t.value) == (TrialState.FAILED, "TimedOut", 0.2)


def test_pod_deadline_exceeded_is_timed_out() -> None:
    # A pod past its activeDeadlineSeconds fails the Job by its backoff limit.
    t = only(
        look(
            [job(0, failed="BackoffLimitExceeded")],
            [pod(0, phase="Failed", reason="DeadlineExceeded", exit_code=137)],
        )
    )
    assert (t.state, t.reason) == (TrialState.FAILED, "TimedOut")


def test_final_report_on_a_failed_job_succeeds() -> None:
    # The trainer said it was done, then crashed on the way out.
    report = {"step": 8, "metrics": {"val_loss": 0.15}, "final": True}
    seen = look(
        [job(0, failed="BackoffLimitExceeded")],
        [pod(0, phase="Failed", metrics=report, exit_code=139)],
    )
    t = only(seen)
    assert (t.state, t.value, t.reason) == (TrialState.SUCCEEDED, 0.15, None)
    assert seen.to_record[0].step == 8


def test_result_of_the_pod_that_finished_not_a_later_one() -> None:
    # A first pod succeeded; a later one (e.g. recreated) is still Pending.
    seen = look(
        [job(0, complete=True)],
        [
            pod(0, phase="Succeeded", metrics=REPORT, created=1),
            pod(0, phase="Pending", created=50, start=None),
        ],
    )
    assert (only(seen).state, only(seen).value) == (TrialState.SUCCEEDED, 0.2)


@pytest.mark.parametrize("reason", ["BackoffLimitExceeded", "DeadlineExceeded"])
def test_a_failed_trial_reads_the_same_once_its_result_is_recorded(reason: str) -> None:
    jobs_ = [job(0, failed=reason)]
    pods = [pod(0, phase="Failed", metrics=REPORT, exit_code=3)]
    before = look(jobs_, pods)
    jobs_[0]["metadata"]["annotations"][names.RESULT_ANNOTATION] = protocol.encode_result(
        before.to_record[0]
    )
    assert look(jobs_, pods).trials == before.trials


@pytest.mark.parametrize("report", [REPORT, None], ids=["metrics", "no-metrics"])
def test_a_completed_trial_reads_the_same_once_recorded(report: dict | None) -> None:
    jobs_ = [job(0, complete=True, done=90)]
    pods = [pod(0, phase="Succeeded", metrics=report, curve=CURVE)]
    before = look(jobs_, pods)
    jobs_[0]["metadata"]["annotations"][names.RESULT_ANNOTATION] = protocol.encode_result(
        before.to_record[0]
    )
    after = look(jobs_, pods)
    assert after.trials == before.trials
    assert after.to_record == {}


# ---- active trials --------------------------------------------------------------------------


def test_running_pod_is_running_with_its_curve() -> None:
    seen = look(
        [job(2, start=3)],
        [
            pod(
                2,
                phase="Running",
                metrics={"step": 4, "metrics": {"val_loss": 0.5}},
                curve=[[1, 0.9], [3, 0.6]],
                start=7,
            )
        ],
        next_trial=3,
    )
    running = seen.trials[2]
    assert running.number == 2
    assert running.state is TrialState.RUNNING
    assert running.curve == ((1, 0.9), (3, 0.6), (4, 0.5))
    assert running.value == 0.5
    assert running.start_time == T0 + 7
    assert running.params == PARAMS
    assert seen.to_record == {}
    assert seen.pending_reasons == ()


def test_running_pod_with_a_bad_report_keeps_running() -> None:
    # It fails with MetricInvalid when it ends, not while it may still report a good value.
    t = only(look([job(0)], [pod(0, metrics="{oops", curve=[[1, 0.9]])]))
    assert (t.state, t.curve) == (TrialState.RUNNING, ((1, 0.9),))


def test_running_pod_without_reports() -> None:
    t = only(look([job(0)], [pod(0)]))
    assert (t.state, t.value, t.curve) == (TrialState.RUNNING, None, ())


def test_unscheduled_pod_is_pending_with_the_schedulers_message() -> None:
    why = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    unscheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": why,
    }
    seen = look(
        [job(0), job(1)],
        [
            pod(0, phase="Pending", start=None, conditions=[unscheduled]),
            pod(1, phase="Pending", start=None, conditions=[unscheduled]),
        ],
    )
    assert [t.state for t in seen.trials] == [TrialState.PENDING, TrialState.PENDING]
    assert seen.pending_reasons == (why,)  # once, however many trials wait for it
    assert seen.trials[0].start_time == T0  # the Job's startTime until the pod starts


def test_job_without_pods_yet_is_pending() -> None:
    seen = look([job(0, start=None)], [])
    assert only(seen).state is TrialState.PENDING
    assert only(seen).start_time is None
    assert seen.pending_reasons == ()


def test_job_just_created_without_status_is_pending() -> None:
    fresh = job(0)
    del fresh["status"]
    del fresh["metadata"]["annotations"]
    t = only(look([fresh], []))
    assert (t.state, t.params, t.start_time) == (TrialState.PENDING, {}, None)


def test_suspended_job_is_pending_with_a_reason() -> None:
    seen = look([job(0, suspend=True, start=None)], [])
    t = only(seen)
    assert (t.state, t.reason) == (TrialState.PENDING, QUEUED)
    (reason,) = seen.pending_reasons
    assert "suspended" in reason
    assert names.trial_job_name("study", UID, 0) in reason


def test_a_job_in_a_kueue_queue_waits_for_that_queue() -> None:
    j = job(2, suspend=True, start=None)
    j["metadata"]["labels"][QUEUE_LABEL] = "gpus"
    seen = look([j], [], next_trial=3)
    t = seen.trials[2]
    assert (t.state, t.reason) == (TrialState.PENDING, QUEUED)
    assert seen.pending_reasons == (t.message,)
    assert "trial 2 waits for its queue 'gpus' to admit it" in t.message


def test_a_job_queued_again_after_running_is_pending_not_failed() -> None:
    # Kueue preempted it: the Job is suspended again and its pod was ended.
    seen = look([job(0, suspend=True)], [pod(0, phase="Failed", exit_code=143, deleting=True)])
    t = only(seen)
    assert (t.state, t.reason) == (TrialState.PENDING, QUEUED)
    assert seen.to_record == {}


# ---- numbering ------------------------------------------------------------------------------


def test_numbers_without_a_job_below_next_trial_are_lost() -> None:
    seen = look([job(1), job(3)], [pod(1), pod(3)], next_trial=6)
    assert [t.number for t in seen.trials] == [0, 1, 2, 3, 4, 5]
    states = {t.number: t.state for t in seen.trials}
    assert [n for n, s in states.items() if s is TrialState.LOST] == [0, 2, 4, 5]
    lost = seen.trials[0]
    assert (lost.params, lost.reason) == ({}, "JobDeleted")


def test_a_job_above_next_trial_counts_and_fills_the_gap() -> None:
    # The status is written after the Jobs are created: a restart may see a Job above it.
    seen = look([job(0), job(2)], [], next_trial=1)
    assert [(t.number, t.state) for t in seen.trials] == [
        (0, TrialState.PENDING),
        (1, TrialState.LOST),
        (2, TrialState.PENDING),
    ]


def test_pods_of_a_deleted_job_count_as_lost() -> None:
    seen = look([job(1)], [pod(0, phase="Running")], next_trial=2)
    assert [(t.number, t.state) for t in seen.trials] == [
        (0, TrialState.LOST),
        (1, TrialState.PENDING),
    ]


def test_no_objects_no_trials() -> None:
    assert look([], []) == observe.Observation((), {}, ())


def test_objects_without_a_trial_label_are_ignored() -> None:
    stray = job(0)
    del stray["metadata"]["labels"][names.TRIAL_LABEL]
    bad = job(1)
    bad["metadata"]["labels"][names.TRIAL_LABEL] = "one"
    assert look([stray, bad], []).trials == ()


def test_unreadable_params_annotation_gives_empty_params() -> None:
    broken = job(0)
    broken["metadata"]["annotations"][names.PARAMS_ANNOTATION] = "{"
    assert only(look([broken], [])).params == {}


def test_maximize_keeps_the_best_when_thinning() -> None:
    # A full curve (200 points) plus a last report: thinned, and the running best kept.
    curve = [[s, s / 1000] for s in range(200)]
    seen = look(
        [job(0, complete=True)],
        [
            pod(
                0,
                phase="Succeeded",
                curve=curve,
                metrics={"step": 500, "metrics": {"val_loss": 0.05}},
            )
        ],
        minimize=False,
    )
    t = only(seen)
    assert len(t.curve) <= protocol.MAX_CURVE_POINTS
    assert t.curve[0] == (0, 0.0)
    assert t.curve[-1] == (500, 0.05)
    assert (199, 0.199) in t.curve
    assert not any(math.isnan(v) for _, v in t.curve)


# ---- releasable pods ------------------------------------------------------------------------


def released(jobs: list[dict], pods: list[dict], recorded: set[int] | None = None) -> set[str]:
    return {p["metadata"]["name"] for p in observe.releasable_pods(jobs, pods, recorded or set())}


def test_released_when_the_result_is_on_the_job() -> None:
    result = TrialResult(TrialState.SUCCEEDED, None, 0.2, 5, ((5, 0.2),))
    p = pod(0, phase="Succeeded", name="p0")
    assert released([job(0, complete=True, result=result)], [p]) == {"p0"}


def test_released_when_recorded_this_reconcile() -> None:
    p = pod(0, phase="Succeeded", name="p0")
    assert released([job(0, complete=True)], [p], {0}) == {"p0"}


def test_kept_while_the_result_is_not_recorded() -> None:
    # The Job finished but its result is only on this pod: keep it until recorded.
    jobs_ = [job(0, complete=True), job(1, failed="BackoffLimitExceeded")]
    pods = [
        pod(0, phase="Succeeded", name="p0", deleting=True),
        pod(
            1,
            phase="Failed",
            name="p1",
            conditions=[{"type": "DisruptionTarget", "status": "True"}],
        ),
    ]
    assert released(jobs_, pods) == set()
    assert released(jobs_, pods, {1}) == {"p1"}


def test_released_when_the_job_is_gone() -> None:
    assert released([], [pod(0, name="p0"), pod(1, phase="Succeeded", name="p1")]) == {"p0", "p1"}


def test_released_when_disrupted_or_deleting_while_the_job_runs() -> None:
    evicted = pod(
        0,
        phase="Failed",
        name="evicted",
        created=1,
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        ],
    )
    deleting = pod(0, phase="Running", name="deleting", created=2, deleting=True)
    current = pod(0, phase="Running", name="current", created=3)
    not_disrupted = pod(
        0,
        phase="Running",
        name="fine",
        created=4,
        conditions=[{"type": "DisruptionTarget", "status": "False"}],
    )
    assert released([job(0)], [evicted, deleting, current, not_disrupted]) == {
        "evicted",
        "deleting",
    }


def test_a_disrupted_pod_the_job_has_not_replaced_is_kept() -> None:
    # Its Job may yet fail past maxRetries: its DisruptionTarget says why, so it waits for the
    # result, or for the Job's next pod.
    evicted = pod(0, phase="Failed", name="evicted", created=1, conditions=EVICTED)
    assert released([job(0)], [evicted]) == set()
    assert released([job(0)], [evicted, pod(0, name="next", created=2)]) == {"evicted"}


def test_only_pods_with_our_finalizer() -> None:
    result = TrialResult(TrialState.SUCCEEDED, None, 0.2, 5, ())
    p = pod(0, phase="Succeeded", name="p0", finalizer=False)
    assert released([job(0, complete=True, result=result)], [p]) == set()


def test_running_pod_is_kept() -> None:
    assert released([job(0)], [pod(0, name="p0")]) == set()


def test_releasable_pods_is_public() -> None:
    assert "releasable_pods" in observe.__all__


def test_a_container_killed_at_its_memory_limit_fails_the_trial_with_reason_oomkilled() -> None:
    killed = pod(0, phase="Failed", metrics=REPORT, exit_code=137)
    killed["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    t = only(look([job(0, failed="BackoffLimitExceeded")], [killed]))
    assert (t.state, t.reason, t.value) == (TrialState.FAILED, "OOMKilled", 0.2)
    assert "memory" in t.message and "trainer" in t.message


# ---- metrics from the termination message or the log (spec.metricsFrom) ---------------------


def source_reader(source: dict, logs: dict[int, str] | None = None,
                  containers: tuple[str, ...] = ("trainer",)) -> observe.Reader:
    spec = specs.parse_spec({
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "searchSpace": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
        "metricsFrom": source,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": c, "image": "i"} for c in containers]}}}}})
    return observe.Reader.of(spec, logs)


def terminated(p: dict, container: str, message: str | None, code: int = 0) -> dict:
    state: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
    if message is not None:
        state["message"] = message
    p["status"].setdefault("containerStatuses", []).append(
        {"name": container, "state": {"terminated": state}})
    return p


def test_the_termination_message_of_the_named_container_is_the_result() -> None:
    reader = source_reader({"terminationMessage": {"container": "trainer"}},
                           containers=("sidecar", "trainer"))
    p = terminated(terminated(pod(0, phase="Succeeded"), "sidecar", "val_loss=9"),
                   "trainer", "val_loss=0.125\n")
    seen = observe.observe([job(0, complete=True)], [p], reader)
    assert seen.to_record[0].state is TrialState.SUCCEEDED
    assert seen.to_record[0].value == 0.125 and seen.to_record[0].curve == ((0, 0.125),)


def test_a_trial_without_a_termination_message_fails_metric_missing() -> None:
    reader = source_reader({"terminationMessage": {}})
    p = terminated(pod(0, phase="Succeeded"), "trainer", None)
    (trial,) = observe.observe([job(0, complete=True)], [p], reader).trials
    assert (trial.state, trial.reason) == (TrialState.FAILED, protocol.METRIC_MISSING)
    assert "/dev/termination-log" in (trial.message or "")


def test_a_failed_container_keeps_its_exit_reason_whatever_its_message_says() -> None:
    reader = source_reader({"terminationMessage": {}})
    p = terminated(pod(0, phase="Failed"), "trainer", "val_loss=0.1", code=2)
    (trial,) = observe.observe([job(0, failed="BackoffLimitExceeded")], [p], reader).trials
    assert (trial.state, trial.reason, trial.value) == (TrialState.FAILED, "ExitCode", 0.1)


def test_a_running_trial_has_no_value_from_a_termination_message() -> None:
    reader = source_reader({"terminationMessage": {}})
    (trial,) = observe.observe([job(0)], [pod(0, metrics={"step": 1, "metrics": {
        "val_loss": 3.0}})], reader).trials
    assert trial.state is TrialState.RUNNING and trial.value is None and trial.curve == ()


def test_an_ended_trial_whose_log_is_not_read_yet_waits_running() -> None:
    log_source = {"log": {"pattern": r"val_loss=(?P<value>\S+)"}}
    ended = ([job(0, complete=True)], [pod(0, phase="Succeeded")])
    (waiting,) = observe.observe(*ended, source_reader(log_source)).trials
    assert waiting.state is TrialState.RUNNING
    seen = observe.observe(*ended, source_reader(log_source, {0: "val_loss=0.5"}))
    assert seen.to_record[0].value == 0.5


# ---- pods lost to their node (budget.maxRetries) ----------------------------------------------

EVICTED = [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}]


def with_failed_pods(j: dict, failed: int) -> dict:
    j["status"]["failed"] = failed
    return j


def test_a_running_trial_counts_the_pods_its_node_lost() -> None:
    j = with_failed_pods(job(0), 2)
    lost = pod(0, phase="Failed", conditions=EVICTED, created=1.0)
    (trial,) = look([j], [lost, pod(0, created=2.0)]).trials
    assert trial.state is TrialState.RUNNING and trial.retries == 2


def test_a_trial_that_succeeds_after_a_re_run_keeps_its_count() -> None:
    j = with_failed_pods(job(0, complete=True, done=100), 1)
    ok = pod(0, phase="Succeeded", created=2.0,
             metrics={"step": 2, "metrics": {"val_loss": 0.5}, "final": True})
    seen = look([j], [pod(0, phase="Failed", conditions=EVICTED), ok])
    assert seen.to_record[0].state is TrialState.SUCCEEDED and seen.trials[0].retries == 1


def test_a_pod_lost_once_more_than_max_retries_fails_the_trial_as_pod_lost() -> None:
    j = with_failed_pods(job(0, failed="BackoffLimitExceeded"), 4)
    last = pod(0, phase="Failed", conditions=EVICTED, exit_code=137, created=4.0)
    (trial,) = look([j], [last]).trials
    assert (trial.state, trial.reason, trial.retries) == (TrialState.FAILED, "PodLost", 3)
    assert "EvictionByEvictionAPI" in (trial.message or "")
    assert "after 3 re-runs" in (trial.message or "")


def test_the_training_codes_failure_is_not_a_retry() -> None:
    j = with_failed_pods(job(0, failed="PodFailurePolicy"), 1)
    (trial,) = look([j], [pod(0, phase="Failed", exit_code=2)]).trials
    assert (trial.reason, trial.retries) == ("ExitCode", 0)


def test_pods_of_a_job_being_deleted_are_released_disrupted_or_not() -> None:
    # A foreground deletion removes the Job only once its pods are gone.
    going = job(0)
    going["metadata"]["deletionTimestamp"] = ts(200)
    evicted = pod(0, phase="Failed", name="evicted", conditions=EVICTED)
    assert released([going], [evicted, pod(0, name="running", created=2.0, deleting=True)]) == {
        "evicted", "running"}
