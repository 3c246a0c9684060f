"""Faults: a study takes each of them and still ends as it should.

After each fault the study ends Succeeded with exactly maxTrials counted trials (Succeeded,
Failed, Pruned), no trial number twice, every result that was on a Job before the fault still
there and unchanged, and a status whose counts, nextTrial and best trial match the Jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import Cluster, OperatorProcess, on_agent, wait_for
from kubetune.core import protocol
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import observe as observing
from kubetune.kube import signing
from kubetune_devcluster import cluster as devcluster
from studies import study
from test_operator import condition, get_study, is_true, results, trial_jobs, wait_condition

QUICK = ["quadratic", "--steps", "2", "--sleep", "0.4"]


def numbers_of(jobs: list[dict]) -> list[int]:
    return [int(j["metadata"]["labels"][names.TRIAL_LABEL]) for j in jobs]


def finished(cluster: Cluster, ns: str, name: str, max_trials: int,
             before: dict[int, protocol.TrialResult] | None = None, *,
             unverified: frozenset[int] = frozenset(), timeout: int = 240) -> dict:
    """Wait for Succeeded and check the study against its Jobs; returns the study.

    ``unverified``: trials whose result annotation was edited by hand and that the operator
    counts Lost although their Job is there.
    """
    wait_condition(cluster, ns, name, "Succeeded", timeout=timeout)
    # The last status write and the last result can land in either order: settle on both.
    obj = wait_for(lambda: (lambda o: o if o["status"]["trials"]["running"] == 0
                            and o["status"]["trials"]["pending"] == 0 else None)(
        get_study(cluster, ns, name)), timeout=30, what="no active trials")
    jobs = trial_jobs(cluster, ns, name)
    numbers = numbers_of(jobs)
    assert len(numbers) == len(set(numbers)), f"a trial number twice: {sorted(numbers)}"
    res = {n: r for n, r in results(jobs).items() if n not in unverified}
    assert set(res) == set(numbers) - unverified, f"no result: {set(numbers) - set(res)}"
    counted = [n for n, r in res.items() if r.state.counts_toward_budget]
    assert len(counted) == max_trials, {n: r.state.value for n, r in res.items()}
    for n, r in (before or {}).items():
        if n in res:
            assert res[n] == r, f"trial {n}'s result changed: {r} -> {res[n]}"
    status = obj["status"]
    lost = status["nextTrial"] - len(numbers) + len(unverified)
    by_state = Counter(r.state.value.lower() for r in res.values())
    expected = {s.value.lower(): by_state.get(s.value.lower(), 0) for s in TrialState}
    expected["lost"] = lost
    expected["total"] = status["nextTrial"]
    expected["retries"] = sum(observing.retries(j) for j in jobs)
    expected["infeasible"] = sum(1 for r in res.values() if r.reason == "Infeasible")
    assert status["trials"] == expected
    assert status["nextTrial"] >= max(numbers) + 1
    values = [(r.value, n) for n, r in res.items() if r.state is TrialState.SUCCEEDED]
    assert status["bestTrial"]["value"] == min(values)[0]
    wait_for(lambda: all(names.FINALIZER not in (p["metadata"].get("finalizers") or [])
                         for p in cluster.get("pods", "-n", ns)["items"]),
             timeout=30, what="every result finalizer released")
    return obj


def start(cluster: Cluster, ns: str, name: str, toy: list[str], budget: dict, **kw) -> None:
    cluster.apply(study(name, toy=toy, budget=budget, **kw), ns)


def wait_results(cluster: Cluster, ns: str, name: str, n: int) -> dict[int, protocol.TrialResult]:
    return wait_for(lambda: (lambda r: r if len(r) >= n else None)(
        results(trial_jobs(cluster, ns, name))), timeout=120, what=f"{n} results")


def test_operator_killed_ten_times(cluster: Cluster, running_operator: OperatorProcess,
                                   namespace):
    start(cluster, namespace, "kills", QUICK,
          {"maxTrials": 24, "parallelism": 4, "maxFailedTrials": 1})
    rng = random.Random(7)
    before: dict[int, protocol.TrialResult] = {}
    for _ in range(10):
        time.sleep(rng.uniform(0.2, 3.0))
        before.update(results(trial_jobs(cluster, namespace, "kills")))
        running_operator.kill()
        time.sleep(rng.uniform(0.0, 1.5))
        running_operator.start()
    obj = finished(cluster, namespace, "kills", 24, before)
    assert obj["status"]["trials"]["lost"] == 0
    assert obj["status"]["nextTrial"] == 24


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_restarted_mid_study(cluster: Cluster, running_operator, namespace,
                                           component):
    """Down for 10 s, then restarted. Trials end meanwhile and their pods' final status must
    still land. A trial whose final report could not be sent within the SDK's 30 s (the
    restart of a loaded apiserver can take that long) fails with MetricMissing and counts."""
    start(cluster, namespace, "cp", ["quadratic", "--steps", "3", "--sleep", "0.5"],
          {"maxTrials": 12, "parallelism": 4, "maxFailedTrials": 12})
    before = wait_results(cluster, namespace, "cp", 2)
    devcluster.restart(cluster.state, component, down_seconds=10)
    obj = finished(cluster, namespace, "cp", 12, before)
    assert obj["status"]["trials"]["lost"] == 0
    failed = {r.reason: r.message for r in results(trial_jobs(cluster, namespace, "cp"))
              .values() if r.state is TrialState.FAILED}
    assert set(failed) <= {"MetricMissing"}, failed
    assert running_operator.proc.poll() is None, "the operator outlived the restart"


def _trial_pids(cluster: Cluster, ns: str) -> dict[str, int]:
    """The running trainers of namespace ``ns``, host process ids by pod name: in containers on
    a real node or as the node agent's processes, each seen in this machine's /proc."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"kubetune_trainer" not in cmdline:
                continue
            env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0")
                       if b"=" in v)
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if env.get(b"POD_NAMESPACE") == ns.encode() and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out[env[b"POD_NAME"].decode()] = int(proc.name)
    return out


def test_trial_processes_killed(cluster: Cluster, running_operator, namespace):
    start(cluster, namespace, "killed", ["quadratic", "--steps", "6", "--sleep", "0.5"],
          {"maxTrials": 8, "parallelism": 3, "maxFailedTrials": 8})
    killed: set[str] = set()
    while len(killed) < 3:
        pids = wait_for(lambda: {k: v for k, v in _trial_pids(cluster, namespace).items()
                                 if k not in killed}, timeout=60, what="a running trial")
        time.sleep(1.0)  # let it report a step or two first
        pod, pid = next(iter(pids.items()))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        killed.add(pod)
    obj = finished(cluster, namespace, "killed", 8)
    res = results(trial_jobs(cluster, namespace, "killed"))
    failed = [r for r in res.values() if r.state is TrialState.FAILED]
    assert obj["status"]["trials"]["failed"] == len(failed) >= 1
    assert {r.reason for r in failed} == {"ExitCode"}
    assert all("exited with code" in (r.message or "") for r in failed)


def _node_ready(cluster: Cluster) -> bool:
    node = cluster.get("node", cluster.agent_node)
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in node["status"].get("conditions") or [])


def test_node_not_ready_for_a_minute(cluster: Cluster, running_operator, namespace):
    """The node stops heartbeating and reports NotReady (as a kubelet whose runtime is down)
    for 60 s: running trials go on, new trial pods wait unscheduled and the study says why.
    On the node agent's node, which can be told to stop heartbeating while it runs its pods
    (a real kubelet whose runtime is down also stops telling when they end)."""
    start(cluster, namespace, "node", ["quadratic", "--steps", "2", "--sleep", "1"],
          {"maxTrials": 10, "parallelism": 2, "maxFailedTrials": 1}, pod_spec=on_agent({}))
    wait_results(cluster, namespace, "node", 1)
    agent = cluster.state.pids["node-agent"]
    node = cluster.agent_node
    os.kill(agent, signal.SIGUSR1)
    try:
        # Without the report the node would turn NotReady only after the controller's grace
        # period (50 s), when the study could be over.
        cluster.kubectl("patch", "node", node, "--subresource=status", "--type=strategic", "-p",
                        json.dumps({"status": {"conditions": [{
                            "type": "Ready", "status": "False", "reason": "KubeletNotReady",
                            "message": "fault test: container runtime is down"}]}}))
        wait_for(lambda: not _node_ready(cluster), timeout=30, what="the node to go NotReady")
        went = time.monotonic()
        waiting = wait_for(lambda: (lambda o: o if "taint" in (
            condition(o, "Ready") or {}).get("message", "") else None)(
            get_study(cluster, namespace, "node")), timeout=40, interval=1,
            what="Ready's message to say why trials wait")
        assert is_true(waiting, "Ready")
        assert waiting["status"]["trials"]["pending"] >= 1
        before = results(trial_jobs(cluster, namespace, "node"))
        time.sleep(max(0.0, 60 - (time.monotonic() - went)))
        assert not _node_ready(cluster)
        assert not is_true(get_study(cluster, namespace, "node"), "Succeeded")
    finally:
        os.kill(agent, signal.SIGUSR2)  # heartbeats again, reporting Ready
    wait_for(lambda: _node_ready(cluster), timeout=60, what="the node to be Ready again")
    obj = finished(cluster, namespace, "node", 10, before)
    assert obj["status"]["trials"]["lost"] == 0


def test_jobs_deleted_by_hand_are_lost_and_replaced(cluster: Cluster, running_operator,
                                                    namespace):
    start(cluster, namespace, "deleted", ["quadratic", "--steps", "3", "--sleep", "0.5"],
          {"maxTrials": 10, "parallelism": 3, "maxFailedTrials": 1})
    before = wait_results(cluster, namespace, "deleted", 2)
    done = min(before)
    running = wait_for(lambda: [j for j in trial_jobs(cluster, namespace, "deleted")
                                if names.RESULT_ANNOTATION not in j["metadata"]["annotations"]],
                       what="a running trial")[-1]
    gone = {done, int(running["metadata"]["labels"][names.TRIAL_LABEL])}
    for job in trial_jobs(cluster, namespace, "deleted"):
        if int(job["metadata"]["labels"][names.TRIAL_LABEL]) in gone:
            cluster.kubectl("delete", "job", "-n", namespace, job["metadata"]["name"],
                            "--wait=false")
    obj = finished(cluster, namespace, "deleted", 10,
                   {n: r for n, r in before.items() if n not in gone})
    numbers = numbers_of(trial_jobs(cluster, namespace, "deleted"))
    assert not gone & set(numbers), "a deleted trial's number was used again"
    assert obj["status"]["trials"]["lost"] == 2
    assert obj["status"]["nextTrial"] == 12


def _edit_result(cluster: Cluster, ns: str, job: dict, **changes) -> None:
    text = job["metadata"]["annotations"][names.RESULT_ANNOTATION]
    doc = {**json.loads(text), **changes}
    patch = {"metadata": {"annotations": {names.RESULT_ANNOTATION: json.dumps(doc)}}}
    cluster.kubectl("patch", "job", "-n", ns, job["metadata"]["name"], "--type=merge",
                    "-p", json.dumps(patch))


def test_result_edited_by_hand_is_detected(cluster: Cluster, running_operator, namespace):
    """An edited result is never believed: re-derived from its pod when the pod is there (the
    value is back as it was), else the trial is Lost and another takes its place."""
    start(cluster, namespace, "edited", ["quadratic", "--steps", "2", "--sleep", "0.6"],
          {"maxTrials": 10, "parallelism": 2, "maxFailedTrials": 1})
    before = wait_results(cluster, namespace, "edited", 2)
    jobs = {int(j["metadata"]["labels"][names.TRIAL_LABEL]): j
            for j in trial_jobs(cluster, namespace, "edited")}
    restored, lost = sorted(before)[:2]
    for job in jobs.values():
        if job["metadata"]["annotations"].get(names.RESULT_ANNOTATION):
            assert job["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION].startswith(
                "hmac-sha256:")
    # Trial `lost`'s pod goes first, so nothing can tell its result again.
    cluster.kubectl("delete", "pod", "-n", namespace, "-l", f"{names.TRIAL_LABEL}={lost}",
                    "--wait=true", "--timeout=60s")
    _edit_result(cluster, namespace, jobs[restored], value=-1000.0)
    _edit_result(cluster, namespace, jobs[lost], value=-2000.0)

    def restored_again() -> bool:
        r = results(trial_jobs(cluster, namespace, "edited"))
        return r.get(restored) == before[restored]

    wait_for(restored_again, timeout=60, what=f"trial {restored}'s result restored")
    obj = finished(cluster, namespace, "edited", 10,
                   {n: r for n, r in before.items() if n != lost}, unverified=frozenset({lost}))
    assert obj["status"]["bestTrial"]["value"] >= 0, "an edited value was believed"
    assert obj["status"]["trials"]["lost"] == 1
    assert obj["status"]["nextTrial"] == 11
    assert all(e["number"] != lost for e in obj["status"]["leaderboard"])
    events = cluster.get("events", "-n", namespace,
                         "--field-selector", "reason=ResultUnverified")["items"]
    assert sorted(int(e["message"].split()[1]) for e in events) == sorted([restored, lost])


def created_jobs(cluster: Cluster, namespace: str) -> int:
    """Jobs created in ``namespace`` (dry runs not counted), by the API server's audit log:
    it remembers the Jobs that a deletion has removed since."""
    created: set[str] = set()
    with (cluster.state.root / "audit.log").open() as f:
        for line in f:
            if namespace not in line or '"create"' not in line:
                continue
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if (e.get("verb") == "create" and ref.get("resource") == "jobs"
                    and ref.get("namespace") == namespace and "dryRun" not in e["requestURI"]
                    and (e.get("responseStatus") or {}).get("code") == 201):
                created.add(e["auditID"])
    return len(created)


def test_study_deleted_in_the_foreground_starts_no_new_trials(cluster: Cluster,
                                                              running_operator, namespace):
    """A foreground deletion removes the Jobs while the study is still there: they are not
    Lost trials to replace."""
    start(cluster, namespace, "fg", ["quadratic", "--steps", "20", "--sleep", "0.5"],
          {"maxTrials": 6, "parallelism": 2, "maxFailedTrials": 1})
    wait_for(lambda: len(trial_jobs(cluster, namespace, "fg")) == 2, what="2 trial Jobs")
    cluster.kubectl("delete", "ts", "-n", namespace, "fg", "--cascade=foreground",
                    "--wait=true", "--timeout=90s", timeout=120)
    time.sleep(2)  # time for a wrong replacement to show
    assert created_jobs(cluster, namespace) == 2
    assert trial_jobs(cluster, namespace, "fg") == []


def evict(cluster: Cluster, ns: str, pod: str) -> None:
    """Evict ``pod`` through the Eviction API, as a node drain does."""
    cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", "-f", "-",
                    input=json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                                      "metadata": {"name": pod, "namespace": ns}}))


def running_pod(cluster: Cluster, ns: str, name: str, trial: int) -> dict:
    def running() -> dict | None:
        for p in cluster.get("pods", "-n", ns, "-l", f"{names.STUDY_LABEL}={name},"
                             f"{names.TRIAL_LABEL}={trial}")["items"]:
            if p["status"].get("phase") == "Running" and not p["metadata"].get(
                    "deletionTimestamp"):
                return p
        return None
    return wait_for(running, timeout=60, what=f"trial {trial}'s pod running")


# On a real kubelet the trainer runs as pid 1, which SIGTERM does not end: a grace period of
# 1 s makes an eviction kill it (else it finishes its steps within the default 30 s and its pod
# Succeeds, as Kubernetes has it).
QUICK_EVICTION = {"terminationGracePeriodSeconds": 1}


def test_an_evicted_trial_is_re_run_with_its_params_and_counted_apart(
        cluster: Cluster, running_operator, namespace):
    start(cluster, namespace, "evicted", ["quadratic", "--steps", "8", "--sleep", "0.5"],
          {"maxTrials": 3, "parallelism": 3, "maxFailedTrials": 0, "maxRetries": 1},
          pod_spec=QUICK_EVICTION)
    first = running_pod(cluster, namespace, "evicted", 0)
    evict(cluster, namespace, first["metadata"]["name"])
    second = wait_for(lambda: (lambda p: p if p["metadata"]["uid"] != first["metadata"]["uid"]
                               else None)(running_pod(cluster, namespace, "evicted", 0)),
                      timeout=60, what="a new pod for trial 0")
    env = {e["name"]: e.get("value") for e in second["spec"]["containers"][0]["env"]}
    assert json.loads(env["KUBETUNE_PARAMS"]) == json.loads(
        first["spec"]["containers"][0]["env"][0]["value"])
    obj = finished(cluster, namespace, "evicted", 3)
    assert obj["status"]["trials"]["retries"] == 1
    assert obj["status"]["trials"]["failed"] == 0
    assert results(trial_jobs(cluster, namespace, "evicted"))[0].state is TrialState.SUCCEEDED


def test_a_trial_evicted_past_max_retries_fails_as_pod_lost(cluster: Cluster, running_operator,
                                                             namespace):
    start(cluster, namespace, "no-retries", ["quadratic", "--steps", "8", "--sleep", "0.5"],
          {"maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0, "maxRetries": 0},
          pod_spec=QUICK_EVICTION)
    evict(cluster, namespace,
           running_pod(cluster, namespace, "no-retries", 0)["metadata"]["name"])
    wait_condition(cluster, namespace, "no-retries", "Failed")
    result = results(trial_jobs(cluster, namespace, "no-retries"))[0]
    assert (result.state, result.reason) == (TrialState.FAILED, "PodLost")
    assert "EvictionByEvictionAPI" in (result.message or "")
