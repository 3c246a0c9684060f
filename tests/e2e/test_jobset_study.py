"""A study whose trials are JobSets (spec.trialTemplate), with JobSet's own controller and
webhooks running in devcluster: the operator creates each trial's JobSet, JobSet makes its
Jobs and pods, the leader's pod reports, and every trial's result is recorded on its JobSet."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import dashboards
from conftest import PYTHON_IMAGE, Cluster, wait_for
from kubetune.core import protocol
from kubetune.kube import conventions as names
from test_kubetune_command import kubetune
from test_operator import condition, get_study, is_true, wait_condition

TOY = {"name": "trial", "image": PYTHON_IMAGE,
       "args": ["toy", "quadratic", "--steps", "3", "--sleep", "0.2"]}


def replicated(name: str, replicas: int) -> dict:
    return {"name": name, "replicas": replicas, "template": {"spec": {
        "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                 "containers": [dict(TOY)]}}}}}


def jobset_study(name: str) -> dict:
    return {"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy",
            "metadata": {"name": name},
            "spec": {
                "objective": {"metric": "loss", "direction": "minimize"},
                "searchSpace": {"x1": {"type": "float", "low": -2.0, "high": 2.0},
                                "x2": {"type": "float", "low": -2.0, "high": 2.0}},
                "algorithm": {"name": "auto", "seed": 3},
                "budget": {"maxTrials": 3, "parallelism": 2, "maxFailedTrials": 0},
                "trialTemplate": {
                    "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
                    "spec": {"replicatedJobs": [replicated("leader", 1),
                                                replicated("workers", 1)]}},
            }}


def test_a_study_of_jobset_trials_records_every_result(cluster: Cluster, running_operator,
                                                       namespace):
    cluster.apply(jobset_study("js"), namespace)
    obj = wait_condition(cluster, namespace, "js", "Succeeded", timeout=300)
    assert condition(obj, "Succeeded")["reason"] == "MaxTrialsReached"
    assert obj["status"]["trials"]["succeeded"] == 3
    jobsets = cluster.get("jobsets.jobset.x-k8s.io", "-n", namespace, "-l",
                          f"{names.STUDY_LABEL}=js")["items"]
    assert len(jobsets) == 3
    for js in jobsets:
        assert is_true(js, "Completed")
        result = protocol.parse_result(js["metadata"]["annotations"][names.RESULT_ANNOTATION])
        assert result.state.value == "Succeeded"
        # The value is the leader's report: its pod, made by JobSet's Job, carries it.
        name = js["metadata"]["name"]
        pods = cluster.get("pods", "-n", namespace, "-l",
                           f"jobset.sigs.k8s.io/jobset-name={name}")["items"]
        assert len(pods) == 2
        leader = [p for p in pods if p["metadata"]["labels"][
            "jobset.sigs.k8s.io/replicatedjob-name"] == "leader"]
        report = protocol.parse_metrics(
            leader[0]["metadata"]["annotations"][names.METRICS_ANNOTATION], "loss")
        assert result.value == report.metrics["loss"]
        params = protocol.parse_params(js["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        assert abs(result.value - ((params["x1"] - 0.5) ** 2 + (params["x2"] - 0.5) ** 2)) < 1e-6
    assert get_study(cluster, namespace, "js")["status"]["bestTrial"]["job"] in {
        js["metadata"]["name"] for js in jobsets}
    # `kubetune get` reads the trials from their JobSets.
    shown = kubetune(cluster, "get", "js", "-n", namespace, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    trials = json.loads(shown.stdout)["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1, 2]
    assert all(t["state"] == "Succeeded" and t["curve"] for t in trials)
    # So does the dashboard: it starts watching JobSets once it sees a study of them.
    rows = dashboard_rows(cluster, namespace, "js")
    assert sorted(r["number"] for r in rows) == [0, 1, 2]
    assert {r["pod"] for r in rows} <= {p["metadata"]["name"] for p in cluster.get(
        "pods", "-n", namespace, "-l", "jobset.sigs.k8s.io/replicatedjob-name=leader")["items"]}


def dashboard_rows(cluster: Cluster, namespace: str, study: str) -> list[dict]:
    """The trial rows ``kubetune dashboard -n NAMESPACE`` serves for ``study``, once it has
    three Succeeded with their pods (its watches of JobSets and of pods catch up apart)."""
    with dashboards.serving(cluster, "-n", namespace) as url:
        rows_url = f"{url}api/studies/{namespace}/{study}/trials"

        seen: list[list[dict]] = [[]]

        def three() -> list[dict] | None:
            try:
                with urllib.request.urlopen(rows_url, timeout=10) as resp:
                    seen[0] = json.load(resp)["rows"]
            except urllib.error.HTTPError:
                return None  # the study is not listed yet
            rows = seen[0]
            done = len(rows) == 3 and all(r["state"] == "Succeeded" and r["pod"] for r in rows)
            return rows if done else None

        try:
            return wait_for(three, timeout=60,
                            what="three Succeeded trial rows with their pods on the dashboard")
        except AssertionError as e:
            raise AssertionError(f"{e}; the rows last served: {seen[0]}") from None


def test_a_study_of_a_kind_the_operator_does_not_watch_says_how_to_watch_it(
        cluster: Cluster, running_operator, namespace):
    study = jobset_study("pt")
    study["spec"]["trialTemplate"] = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "resource": "pytorchjobs",
        "successCondition": "Succeeded", "failureCondition": "Failed",
        "metricsPod": {"matchLabels": {"training.kubeflow.org/replica-type": "master"}},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {
            "restartPolicy": "Never", "containers": [dict(TOY)]}}}}}}
    cluster.apply(study, namespace)
    obj = wait_condition(cluster, namespace, "pt", "Stalled", timeout=60)
    message = condition(obj, "Stalled")["message"]
    assert "--workload pytorchjobs.kubeflow.org/v1" in message
