"""Trials that are another resource than a Job (spec.trialTemplate), JobSet first: the spec,
the resource the operator creates, and how it reads the trial from the resource's conditions
and the pod its kind says reports."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from kubetune.core import protocol, workloads
from kubetune.core.spec import SpecError, parse_spec
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import errors as kube_errors
from kubetune.kube import jobs, observe
from kubetune.kube.reconcile import _unwatched
from test_observe import UID, look, only, pod, ts

STUDY = {"metadata": {"name": "js", "namespace": "ml", "uid": UID}}
POD = {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "trainer", "image": "kubetune/trainer:0.1.0"}]}}
JOBSET = {
    "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
    "metadata": {"labels": {"kueue.x-k8s.io/queue-name": "gpus"}},
    "spec": {"replicatedJobs": [
        {"name": "leader", "replicas": 1, "template": {"spec": {"template": copy.deepcopy(POD)}}},
        {"name": "workers", "replicas": 2, "template": {"spec": {"template": copy.deepcopy(POD)}}},
    ]},
}


def spec_of(template: dict[str, Any], **extra: Any) -> Any:
    return parse_spec({
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "searchSpace": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
        "budget": {"maxTrials": 4, "trialTimeoutSeconds": 600},
        "trialTemplate": template, **extra,
    })


def test_jobset_is_known_and_reports_from_its_first_replicated_jobs_first_pod() -> None:
    kind = workloads.kind_of(JOBSET)
    assert kind is not None
    assert (kind.group, kind.version, kind.resource) == ("jobset.x-k8s.io", "v1alpha2",
                                                         "jobsets")
    assert (kind.success, kind.failure) == ("Completed", "Failed")
    assert kind.metrics_pod == {"jobset.sigs.k8s.io/replicatedjob-name": "leader",
                                "jobset.sigs.k8s.io/job-index": "0"}
    assert workloads.TrialKind.decode(kind.encode()) == kind


def test_a_kind_kubetune_does_not_know_names_what_it_needs() -> None:
    template = {"apiVersion": "ray.io/v1", "kind": "RayJob",
                "spec": {"rayClusterSpec": {"headGroupSpec": {"template": copy.deepcopy(POD)}}}}
    with pytest.raises(SpecError) as e:
        spec_of(template)
    assert "spec.trialTemplate" in str(e.value) and "metricsPod.matchLabels" in str(e.value)
    given = {**template, "resource": "rayjobs", "successCondition": "Succeeded",
             "failureCondition": "Failed",
             "metricsPod": {"matchLabels": {"ray.io/node-type": "head"}}}
    kind = workloads.kind_of(spec_of(given).trial_template)
    assert kind is not None and kind.resource == "rayjobs"
    assert kind.metrics_pod == {"ray.io/node-type": "head"}


def test_a_pytorchjob_reports_from_its_master_and_its_own_fields_win() -> None:
    template = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                "spec": {"pytorchReplicaSpecs": {"Master": {"template": copy.deepcopy(POD)},
                                                 "Worker": {"template": copy.deepcopy(POD)}}}}
    kind = workloads.kind_of(spec_of(template).trial_template)
    assert kind is not None
    assert (kind.resource, kind.success, kind.failure) == ("pytorchjobs", "Succeeded", "Failed")
    assert kind.metrics_pod == {"training.kubeflow.org/replica-type": "master",
                                "training.kubeflow.org/replica-index": "0"}
    own = workloads.kind_of({**template, "metricsPod": {"matchLabels": {"role": "leader"}}})
    assert own is not None and own.metrics_pod == {"role": "leader"}
    # Another group's kind of the same name is not Kubeflow's.
    assert workloads.kind_of({**template, "apiVersion": "example.com/v1"}) is None


@pytest.mark.parametrize(("template", "says"), [
    ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": POD}}, "jobTemplate"),
    ({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {}},
     "holds no pod template"),
    ({"kind": "JobSet", "spec": JOBSET["spec"]}, "group/version"),
    ({**JOBSET, "replicas": 3}, "is not a field of trialTemplate"),
])
def test_a_bad_trial_template_is_refused_naming_the_field(template: dict, says: str) -> None:
    with pytest.raises(SpecError) as e:
        spec_of(template)
    assert "spec.trialTemplate" in str(e.value) and says in str(e.value)


def test_both_templates_or_workers_with_a_trial_template_are_refused() -> None:
    with pytest.raises(SpecError, match="exactly one of them"):
        spec_of(JOBSET, jobTemplate={"spec": {"template": POD}})
    with pytest.raises(SpecError, match=r"trial\.workers"):
        spec_of(JOBSET, trial={"workers": 2})


def test_the_trial_jobset_carries_kubetunes_labels_and_every_pod_is_a_trial_pod() -> None:
    spec = spec_of(JOBSET)
    body = jobs.build_trial(STUDY, spec, 5, {"lr": 0.01})
    assert (body["apiVersion"], body["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    meta = body["metadata"]
    assert meta["name"] == names.trial_job_name("js", UID, 5)
    assert meta["labels"][names.TRIAL_LABEL] == "5"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "gpus"  # the template's own kept
    assert protocol.parse_params(meta["annotations"][names.PARAMS_ANNOTATION]) == {"lr": 0.01}
    assert meta["ownerReferences"][0]["uid"] == UID
    pods = list(workloads.pod_templates(body["spec"]))
    assert len(pods) == 2
    for p in pods:
        assert p["metadata"]["labels"][names.STUDY_UID_LABEL] == UID
        assert names.FINALIZER in p["metadata"]["finalizers"]
        env = {e["name"]: e for e in p["spec"]["containers"][0]["env"]}
        assert env["KUBETUNE_TRIAL"]["value"] == "5" and "KUBETUNE_PARAM_LR" in env
        assert p["spec"]["activeDeadlineSeconds"] == 600
    assert jobs.trial_path(body) == (
        "/apis/jobset.x-k8s.io/v1alpha2/namespaces/ml/jobsets/js-0a1b2-5")
    # The study's template is untouched.
    assert "metadata" not in spec.trial_template["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"]


def jobset(n: int, condition: str | None = None, result: protocol.TrialResult | None = None
           ) -> dict[str, Any]:
    body = jobs.build_trial(STUDY, spec_of(JOBSET), n, {"lr": 0.01})
    body["metadata"]["labels"][names.STUDY_UID_LABEL] = UID
    body["metadata"]["annotations"][names.PARAMS_ANNOTATION] = '{"lr": 0.01}'
    if result is not None:
        body["metadata"]["annotations"][names.RESULT_ANNOTATION] = protocol.encode_result(result)
    if condition:
        body["status"] = {"conditions": [{"type": condition, "status": "True",
                                          "lastTransitionTime": ts(50), "message": "done"}]}
    return body


def jobset_pod(n: int, rjob: str, index: int, **kw: Any) -> dict[str, Any]:
    p = pod(n, name=f"js-0a1b2-{n}-{rjob}-{index}-0-abcde", **kw)
    p["metadata"]["labels"].update({"jobset.sigs.k8s.io/replicatedjob-name": rjob,
                                    "jobset.sigs.k8s.io/job-index": str(index),
                                    names.COMPLETION_INDEX: "0"})
    return p


def test_a_completed_jobset_succeeds_with_the_leaders_metrics() -> None:
    final = {"step": 2, "metrics": {"val_loss": 0.125}, "final": True}
    other = {"step": 2, "metrics": {"val_loss": 5.0}, "final": True}
    seen = look([jobset(0, "Completed")], [
        jobset_pod(0, "leader", 0, phase="Succeeded", metrics=final),
        jobset_pod(0, "workers", 0, phase="Succeeded", metrics=other, created=2.0),
        jobset_pod(0, "workers", 1, phase="Succeeded", metrics=other, created=3.0)])
    t = only(seen)
    assert (t.state, t.value) == (TrialState.SUCCEEDED, 0.125)
    assert 0 in seen.to_record


def test_a_failed_jobset_fails_the_trial() -> None:
    seen = look([jobset(0, "Failed")], [jobset_pod(0, "workers", 1, phase="Failed",
                                                   exit_code=2)])
    t = only(seen)
    assert (t.state, t.reason) == (TrialState.FAILED, "ExitCode")


def test_a_running_jobset_is_running_and_a_suspended_one_queued() -> None:
    seen = look([jobset(0)], [jobset_pod(0, "leader", 0)])
    assert only(seen).state is TrialState.RUNNING
    queued = jobset(1)
    queued["spec"]["suspend"] = True
    seen = look([queued], [], next_trial=2)
    assert seen.trials[1].reason == "Queued"


def test_a_recorded_jobset_result_reads_back_and_the_stop_patch_leaves_its_spec() -> None:
    result = protocol.TrialResult(TrialState.PRUNED, "EarlyStopped", 0.5, 3, ((3, 0.5),))
    t = only(look([jobset(0, result=result)], []))
    assert (t.state, t.value) == (TrialState.PRUNED, 0.5)
    patch = jobs.result_patch(result, jobset(0), stop=True)
    assert "spec" not in patch  # a JobSet has no backoffLimit


def test_a_kind_the_operator_does_not_watch_is_named_with_the_flag() -> None:
    spec = spec_of(JOBSET)
    why = _unwatched(spec, frozenset())
    assert why is not None and "--workload jobsets.jobset.x-k8s.io/v1alpha2" in why
    assert _unwatched(spec, frozenset({workloads.Resource.parse(
        "jobsets.jobset.x-k8s.io/v1alpha2")})) is None


@pytest.mark.parametrize("text", ["jobsets", "jobsets.jobset.x-k8s.io",
                                  ".jobset.x-k8s.io/v1alpha2"])
def test_a_bad_workload_flag_says_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"resource\.group/version"):
        workloads.Resource.parse(text)


def test_observe_reads_a_trial_object_as_a_job() -> None:
    view = observe.as_job(jobset(0, "Completed"))
    assert observe.job_condition(view, "Complete") is not None
    assert observe.as_job(view)["status"] == view["status"]  # reading twice changes nothing


class _Answers:
    """A client whose GET answers with ``error`` (or an empty list)."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.paths: list[str] = []

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        self.paths.append(path)
        if self.error is not None:
            raise self.error
        return {"items": []}


@pytest.mark.parametrize(("error", "says"), [
    (None, None),
    (kube_errors.NotFound(404, "the server could not find the requested resource"),
     "does not serve it"),
    (kube_errors.Forbidden(403, "jobsets is forbidden"), "may not list it"),
])
def test_the_operator_checks_each_workload_before_it_starts(error: Exception | None,
                                                           says: str | None) -> None:
    from kubetune.__main__ import _workload_problem

    client = _Answers(error)
    resource = workloads.Resource.parse("jobsets.jobset.x-k8s.io/v1alpha2")
    problem = asyncio.run(_workload_problem(client, resource))
    assert client.paths == ["/apis/jobset.x-k8s.io/v1alpha2/jobsets"]
    assert problem is None if says is None else (problem is not None and says in problem)
