"""A study whose trials queue in Kueue (its controller and webhooks running in devcluster): a
ClusterQueue with a quota of 2 GPUs admits at most 2 trials of 1 GPU each, though the study's
parallelism is 4; the study never holds more than one trial waiting for admission, says in its
Ready condition why trials wait, and ends with exactly maxTrials results."""

from __future__ import annotations

import time

from conftest import Cluster
from queues import gpu_queues
from studies import study
from test_operator import condition, get_study, is_true, results, trial_jobs


def test_a_queue_of_two_gpus_admits_two_trials_at_a_time(cluster: Cluster, running_operator,
                                                         namespace):
    with gpu_queues(cluster, namespace, gpus=2) as queues:
        manifest = study(
            "queued-gpus", toy=["quadratic", "--steps", "8", "--sleep", "0.4"],
            budget={"maxTrials": 6, "parallelism": 4, "maxFailedTrials": 0},
            container={"resources": {"limits": {"nvidia.com/gpu": 1},
                                     "requests": {"cpu": "100m", "memory": "64Mi"}}},
            job_meta={"labels": queues.labels})
        cluster.apply(manifest, namespace)

        most_admitted, most_waiting, explained = 0, 0, ""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            obj = get_study(cluster, namespace, "queued-gpus")
            jobs = trial_jobs(cluster, namespace, "queued-gpus")
            ended = [j for j in jobs if any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True"
                for c in j.get("status", {}).get("conditions") or [])]
            live = [j for j in jobs if j not in ended]
            admitted = [j for j in live if not j["spec"].get("suspend")]
            most_admitted = max(most_admitted, len(admitted))
            most_waiting = max(most_waiting, len(live) - len(admitted))
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
