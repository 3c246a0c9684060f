"""A study whose trials queue in Kueue (its controller and webhooks running in devcluster): a
ClusterQueue with a quota of 2 GPUs admits at most 2 trials of 1 GPU each, though the study's
parallelism is 4; the study never holds more than one trial waiting for admission, says in its
Ready condition why trials wait, and ends with exactly maxTrials results."""

from __future__ import annotations

import time

from conftest import Cluster
from kubetune.kube.observe import job_ended
from queues import gpu_queues
from studies import study
from test_operator import condition, get_study, is_true, results, trial_jobs


def gpu_study(name: str, queues, *, steps: int, budget: dict) -> dict:
    """The toy quadratic, each pod asking ``queues`` for one GPU."""
    return study(
        name, toy=["quadratic", "--steps", str(steps), "--sleep", "0.4"], budget=budget,
        container={"resources": {"limits": {"nvidia.com/gpu": 1},
                                 "requests": {"cpu": "100m", "memory": "64Mi"}}},
        job_meta={"labels": queues.labels})


def admitted_and_waiting(jobs: list[dict]) -> tuple[list[dict], list[dict]]:
    """The Jobs that have not ended, split by whether their queue admitted them."""
    live = [j for j in jobs if not job_ended(j)]
    return ([j for j in live if not j["spec"].get("suspend")],
            [j for j in live if j["spec"].get("suspend")])


def test_a_queue_of_two_gpus_admits_two_trials_at_a_time(cluster: Cluster, running_operator,
                                                         namespace):
    with gpu_queues(cluster, namespace, gpus=2) as queues:
        cluster.apply(gpu_study("queued-gpus", queues, steps=8, budget={
            "maxTrials": 6, "parallelism": 4, "maxFailedTrials": 0}), namespace)

        most_admitted, most_waiting, explained = 0, 0, ""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            obj = get_study(cluster, namespace, "queued-gpus")
            admitted, waiting = admitted_and_waiting(
                trial_jobs(cluster, namespace, "queued-gpus"))
            most_admitted = max(most_admitted, len(admitted))
            most_waiting = max(most_waiting, len(waiting))
            ready = condition(obj, "Ready") or {}
            if "waits for its queue 'gpu'" in (ready.get("message") or ""):
                explained = ready["message"]
            if is_true(obj, "Succeeded") or is_true(obj, "Failed"):
                break
            time.sleep(0.3)

        assert is_true(obj, "Succeeded"), obj.get("status")
        assert condition(obj, "Succeeded")["reason"] == "MaxTrialsReached"
        jobs = trial_jobs(cluster, namespace, "queued-gpus")
        recorded = results(jobs)
        assert len(jobs) == len(recorded) == 6
        assert all(r.state.value == "Succeeded" for r in recorded.values())
        counts = obj["status"]["trials"]
        assert (counts["succeeded"], counts["failed"], counts["lost"]) == (6, 0, 0)
        # The queue's quota, not the study's parallelism, decided how many ran at once.
        assert most_admitted == 2
        # The sampler proposed at most one trial ahead of what the queue admitted.
        assert most_waiting == 1
        assert "Kueue" in explained
        # Every trial went through Kueue: each Job has its Workload, admitted and finished.
        workloads = cluster.get("workloads.kueue.x-k8s.io", "-n", namespace)["items"]
        owners = {ref["name"] for w in workloads for ref in w["metadata"]["ownerReferences"]}
        assert {j["metadata"]["name"] for j in jobs} <= owners


def test_the_workers_of_a_trial_are_admitted_together(cluster: Cluster, running_operator,
                                                      namespace):
    # Two workers of 1 GPU each under a quota of 3 GPUs: one trial at a time, never half of one.
    with gpu_queues(cluster, namespace, gpus=3) as queues:
        manifest = gpu_study("gang", queues, steps=6, budget={
            "maxTrials": 3, "parallelism": 3, "maxFailedTrials": 0})
        manifest["spec"]["trial"] = {"workers": 2}
        cluster.apply(manifest, namespace)

        most_admitted, running_pods = 0, set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            obj = get_study(cluster, namespace, "gang")
            if is_true(obj, "Succeeded") or is_true(obj, "Failed"):
                break
            admitted, _ = admitted_and_waiting(trial_jobs(cluster, namespace, "gang"))
            most_admitted = max(most_admitted, len(admitted))
            pods = cluster.get("pods", "-n", namespace, "-l", "kubetune.dev/study=gang")["items"]
            running_pods.update(p["metadata"]["name"] for p in pods
                                if p["status"].get("phase") == "Running")
            time.sleep(0.3)

        assert is_true(obj, "Succeeded"), obj.get("status")
        assert obj["status"]["trials"]["succeeded"] == 3
        assert most_admitted == 1
        # Every trial ran both of its workers.
        jobs = trial_jobs(cluster, namespace, "gang")
        assert all(j["status"].get("succeeded") == 2 for j in jobs)
        assert len(running_pods) == 6
