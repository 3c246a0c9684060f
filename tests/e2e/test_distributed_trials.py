"""Trials of several workers on devcluster's node agent (spec.trial.workers): one Indexed Job
per trial, workers that find worker 0 by name through the study's headless Service,
torch.distributed between them, worker 0's metrics, every worker ended with the trial, and one
worker's failure named in the trial's result."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from conftest import Cluster, on_agent, wait_for
from kubetune.core import protocol
from kubetune.kube import conventions as names
from studies import study
from test_operator import results, trial_jobs, wait_condition


def pods_of(cluster: Cluster, ns: str, job: str) -> list[dict]:
    items = cluster.get("pods", "-n", ns, "-l", f"batch.kubernetes.io/job-name={job}")["items"]
    return sorted(items, key=lambda p: int(p["metadata"]["labels"][names.COMPLETION_INDEX]))


def workers(manifest: dict, n: int = 2) -> dict:
    """``manifest`` with ``n`` workers per trial, run by the node agent: workers find worker 0
    by its name under the study's Service, which needs cluster DNS, and devcluster runs none
    (on the agent, pods of a namespace resolve each other's names)."""
    manifest["spec"]["trial"] = {"workers": n}
    template = manifest["spec"]["jobTemplate"]["spec"]["template"]
    template["spec"] = on_agent(template["spec"])
    # The node agent's pods share the host's loopback, where gloo must stay.
    container = template["spec"]["containers"][0]
    container.setdefault("env", []).append({"name": "GLOO_SOCKET_IFNAME", "value": "lo"})
    return manifest


def test_two_workers_train_with_torch_distributed_and_worker_0_reports(
        cluster: Cluster, running_operator, namespace):
    manifest = workers(study(
        "ddp", space={"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
        objective={"metric": "val_loss", "direction": "minimize"},
        budget={"maxTrials": 2, "parallelism": 1, "maxFailedTrials": 0},
        container={"image": "kubetune/trainer:0.1.0",
                   "args": ["--epochs=3", "--width=32", "--threads=1"]}))
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "ddp", "Succeeded", timeout=400)
    assert obj["status"]["trials"]["succeeded"] == 2
    assert len(obj["status"]["leaderboard"]) == 2

    service = cluster.get("service", "-n", namespace, "-l", f"{names.STUDY_LABEL}=ddp")["items"]
    assert len(service) == 1 and service[0]["spec"]["clusterIP"] == "None"
    subdomain = service[0]["metadata"]["name"]
    recorded = results(trial_jobs(cluster, namespace, "ddp"))
    for job in trial_jobs(cluster, namespace, "ddp"):
        name = job["metadata"]["name"]
        assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
        assert job["status"]["succeeded"] == 2
        pods = pods_of(cluster, namespace, name)
        assert [p["spec"]["hostname"] for p in pods] == [f"{name}-0", f"{name}-1"]
        assert {p["spec"]["subdomain"] for p in pods} == {subdomain}
        logs = [cluster.kubectl("logs", "-n", namespace, p["metadata"]["name"]).stdout
                for p in pods]
        # Both ranks joined one gloo group through worker 0's name and trained the same model.
        assert "worker 0 of 2 (gloo)" in logs[0] and "worker 1 of 2 (gloo)" in logs[1]
        losses = [re.findall(r"val_loss=([0-9.]+)", text) for text in logs]
        assert len(losses[0]) == 3 and losses[0] == losses[1]
        # Worker 0 reported; worker 1 wrote nothing to its pod.
        annotations = [p["metadata"].get("annotations") or {} for p in pods]
        assert names.METRICS_ANNOTATION in annotations[0]
        assert names.METRICS_ANNOTATION not in annotations[1]
        result = recorded[int(job["metadata"]["labels"][names.TRIAL_LABEL])]
        assert result.state.value == "Succeeded"
        assert result.value == protocol.parse_metrics(
            annotations[0][names.METRICS_ANNOTATION], "val_loss").metrics["val_loss"]
        assert abs(result.value - float(losses[0][-1])) < 1e-4


def test_pruning_a_trial_of_two_workers_ends_both(cluster: Cluster, running_operator, namespace):
    manifest = workers(study(
        "ddp-prune", toy=["curves", "--steps", "9", "--sleep", "0.6"],
        budget={"maxTrials": 6, "parallelism": 2, "maxFailedTrials": 1},
        early_stopping={"name": "median", "minStep": 2, "minTrials": 2},
        algorithm={"name": "random", "seed": 5},
        space={"x1": {"type": "float", "low": 0.0, "high": 1.0},
               "x2": {"type": "float", "low": 0.0, "high": 1.0}}))
    cluster.apply(manifest, namespace)
    wait_condition(cluster, namespace, "ddp-prune", "Succeeded", timeout=400)
    jobs = trial_jobs(cluster, namespace, "ddp-prune")
    pruned = {n for n, r in results(jobs).items() if r.state.value == "Pruned"}
    assert pruned
    for job in jobs:
        if int(job["metadata"]["labels"][names.TRIAL_LABEL]) not in pruned:
            continue
        name = job["metadata"]["name"]

        def ended(name: str = name) -> list[str] | None:
            phases = [p["status"].get("phase") for p in pods_of(cluster, namespace, name)]
            return phases if phases and "Running" not in phases and "Pending" not in phases \
                else None

        wait_for(ended, timeout=60, what=f"both workers of the pruned Job {name} to end")


def test_a_killed_worker_fails_the_trial_with_its_name(cluster: Cluster, running_operator,
                                                      namespace):
    manifest = workers(study(
        "ddp-kill", toy=["quadratic", "--steps", "120", "--sleep", "0.5"],
        budget={"maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0}))
    cluster.apply(manifest, namespace)
    job = wait_for(lambda: trial_jobs(cluster, namespace, "ddp-kill"), timeout=60,
                   what="the trial Job")[0]["metadata"]["name"]

    def both_running() -> list[dict] | None:
        pods = pods_of(cluster, namespace, job)
        return pods if len(pods) == 2 and all(
            p["status"].get("phase") == "Running" for p in pods) else None

    victim = wait_for(both_running, timeout=90, what="both workers running")[1]
    meta = victim["metadata"]
    # The node agent runs each container as a process group; its pid is kept beside its log.
    pod_dir = Path(cluster.state.root) / "pods" / f"{namespace}_{meta['name']}_{meta['uid'][:8]}"
    os.killpg(int((pod_dir / "trial.pid").read_text()), signal.SIGKILL)

    obj = wait_condition(cluster, namespace, "ddp-kill", "Failed", timeout=120)
    result = results(trial_jobs(cluster, namespace, "ddp-kill"))[0]
    assert (result.state.value, result.reason) == ("Failed", "ExitCode")
    assert result.message.startswith(f"worker 1 of 2 (pod {meta['name']}): container trial "
                                      "exited with code"), result.message
    assert obj["status"]["trials"]["retries"] == 0

    def worker_0_ended() -> str | None:
        pods = [p for p in pods_of(cluster, namespace, job)
                if p["metadata"]["labels"][names.COMPLETION_INDEX] == "0"]
        if not pods:
            return "deleted"
        phase = pods[0]["status"].get("phase")
        return phase if phase in ("Failed", "Succeeded") else None

    wait_for(worker_0_ended, timeout=60, what="worker 0 to be ended with the trial")
