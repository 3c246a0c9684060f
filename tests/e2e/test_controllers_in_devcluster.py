"""Kueue and JobSet in devcluster: their own managers, built from their Go modules, with webhooks
the apiserver calls over loopback, and the pods of the Jobs they manage."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

from conftest import PYTHON_IMAGE, Cluster, wait_for
from queues import gpu_queues, queued_job


def replicated_job(name: str, code: str) -> dict[str, Any]:
    return {"name": name, "replicas": 1, "template": {"spec": {
        "parallelism": 1, "completions": 1, "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": PYTHON_IMAGE, "command": ["python", "-c", code]}]}}}}}


def jobset(name: str, *replicated: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": name}, "spec": {"replicatedJobs": list(replicated), **spec}}


def test_a_jobset_of_two_replicated_jobs_completes(cluster: Cluster, namespace: str) -> None:
    cluster.apply(jobset("pair", replicated_job("leader", "print('leader')"),
                         replicated_job("worker", "print('worker')")), namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Completed", "jobset/pair",
                    "--timeout=120s")
    js = cluster.get("jobset", "-n", namespace, "pair")
    # JobSet's defaulting webhook, not the CRD's schema, sets the completion mode.
    assert [rj["template"]["spec"]["completionMode"] for rj in js["spec"]["replicatedJobs"]] \
        == ["Indexed", "Indexed"]
    jobs = cluster.get("jobs", "-n", namespace, "-l", "jobset.sigs.k8s.io/jobset-name=pair")
    assert sorted(j["metadata"]["name"] for j in jobs["items"]) == ["pair-leader-0",
                                                                    "pair-worker-0"]
    for job in ("pair-leader-0", "pair-worker-0"):
        logs = cluster.kubectl("logs", "-n", namespace, f"job/{job}").stdout
        assert logs.strip() == job.split("-")[1]


def test_jobset_validating_webhook_rejects_an_unknown_target(cluster: Cluster,
                                                             namespace: str) -> None:
    bad = jobset("bad", replicated_job("worker", "print(1)"),
                 successPolicy={"operator": "All", "targetReplicatedJobs": ["nobody"]})
    proc = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(bad),
                           check=False)
    assert proc.returncode != 0
    assert "vjobset.kb.io" in proc.stderr
    assert "invalid replicatedJob name 'nobody' does not appear" in proc.stderr


def _jobs(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in cluster.get("jobs", "-n", namespace)["items"]}


def _workloads(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """Kueue's Workloads by the name of the Job that owns each."""
    items = cluster.get("workloads.kueue.x-k8s.io", "-n", namespace)["items"]
    return {w["metadata"]["ownerReferences"][0]["name"]: w for w in items}


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _running(jobs: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name, j in jobs.items() if not j["spec"].get("suspend"))


def _complete(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete").get("status") == "True"


def test_kueue_admits_gpu_jobs_up_to_the_quota(cluster: Cluster, namespace: str,
                                              shared_dir: Path) -> None:
    names = ["gpu-a", "gpu-b", "gpu-c"]
    with gpu_queues(cluster, namespace, gpus=2) as queues:
        for name in names:
            code = textwrap.dedent(f"""
                import os, time
                while not os.path.exists({str(shared_dir / name)!r}):
                    time.sleep(0.1)
                print("done")
            """)
            created = json.loads(cluster.kubectl(
                "create", "-o", "json", "-f", "-",
                input=json.dumps(queued_job(name, code, queues, shared=shared_dir))).stdout)
            # Created unsuspended; Kueue's Job webhook suspended it on its way in.
            assert created["spec"]["suspend"] is True, created["spec"]

        def two_admitted() -> list[str] | None:
            admitted = _running(_jobs(cluster, namespace))
            return admitted if len(admitted) == 2 else None

        running = wait_for(two_admitted, timeout=60, what="two Jobs admitted")
        waiting = next(n for n in names if n not in running)

        def pending() -> dict[str, Any] | None:
            reserved = _condition(_workloads(cluster, namespace).get(waiting, {}),
                                  "QuotaReserved")
            return reserved if reserved.get("reason") == "Pending" else None

        reserved = wait_for(pending, what=f"{waiting}'s Workload Pending")
        assert reserved["status"] == "False"
        assert "nvidia.com/gpu" in reserved["message"]
        for name in running:
            assert _condition(_workloads(cluster, namespace)[name], "Admitted")["status"] == "True"
        # The quota holds: no third admission while both run.
        time.sleep(3)
        assert _running(_jobs(cluster, namespace)) == running
        wait_for(lambda: sum(p["status"].get("phase") == "Running" for p in
                             cluster.get("pods", "-n", namespace)["items"]) == 2,
                 what="the two admitted Jobs' pods Running")

        first = running[0]
        (shared_dir / first).touch()
        wait_for(lambda: _complete(_jobs(cluster, namespace)[first]), timeout=60,
                 what=f"{first} Complete")
        wait_for(lambda: not _jobs(cluster, namespace)[waiting]["spec"].get("suspend"),
                 timeout=60, what=f"{waiting} admitted after {first} finished")
        assert _condition(_workloads(cluster, namespace)[waiting], "QuotaReserved")["status"] \
            == "True"
        wait_for(lambda: any(p["status"].get("phase") == "Running"
                             for p in cluster.get("pods", "-n", namespace,
                                                  "-l", f"job-name={waiting}")["items"]),
                 what=f"{waiting}'s pod Running")

        for name in names:
            (shared_dir / name).touch()
        wait_for(lambda: all(_complete(j) for j in _jobs(cluster, namespace).values()),
                 timeout=90, what="all three Jobs Complete")
        for name in names:
            logs = cluster.kubectl("logs", "-n", namespace, f"job/{name}").stdout.split()
            assert logs[0] == "done"
