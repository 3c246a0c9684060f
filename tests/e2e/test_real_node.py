"""What only a real node shows (devcluster's ``real_cluster``: a kubelet with containerd and
runc runs every pod in a container from an image built from the repository's Dockerfiles; the
rest of the e2e suite runs there too, where the machine has one).

Containers in their own pid namespace and cgroup, images never pulled from beyond loopback, the
service-account token mounted by the kubelet (no kubeconfig) that the SDK reports with, the
trial admission policy against a kubelet's own pod updates, termination messages, the kubelet
ending a pod at its activeDeadlineSeconds (timeouts, pruning), OOM kills at a memory limit,
metrics read from a container's termination message and from its log through the kubelet, the
operator killed and restarted while trials run, and our device plugin's GPUs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import PYTHON_IMAGE, Cluster, OperatorProcess, wait_for
from kubetune.core import protocol
from kubetune.kube import conventions as names
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster import node as devcluster_node
from studies import study
from test_operator import results, trial_jobs, wait_condition

pytestmark = pytest.mark.e2e

TOY_IMAGE = PYTHON_IMAGE


def toy_study(name: str, toy: list[str], **kwargs) -> dict:
    return study(name, toy=toy, container={"image": TOY_IMAGE, **kwargs.pop("container", {})},
                 **kwargs)


def trial_results(cluster: Cluster, ns: str, name: str) -> dict[int, protocol.TrialResult]:
    return results(trial_jobs(cluster, ns, name))


def trial_pods(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return cluster.get("pods", "-n", ns, "-l", f"{names.STUDY_LABEL}={name}")["items"]


def run_pod(cluster: Cluster, ns: str, name: str, script: str, **spec) -> dict:
    """Run ``python -c script`` in the toy-trainer image to the end; return the pod."""
    container = {"name": "main", "image": TOY_IMAGE, "command": ["python", "-c", script],
                 **spec.pop("container", {})}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"restartPolicy": "Never", "containers": [container], **spec}}
    cluster.apply(pod, ns)

    def ended() -> dict | None:
        got = cluster.get("pod", "-n", ns, name)
        return got if got["status"].get("phase") in ("Succeeded", "Failed") else None

    return wait_for(ended, timeout=120, what=f"pod {name} to end")


def test_the_node_is_a_kubelet_with_containerd_on_loopback(real_cluster: Cluster):
    node = real_cluster.get("node", real_cluster.trial_node)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == devcluster.KUBE_VERSION
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
    assert not [t for t in node["spec"].get("taints") or []
                if t["key"] == "node.cloudprovider.kubernetes.io/uninitialized"]
    if real_cluster.state.node_ports:  # beside it, the agent's node takes only who asks
        agent = real_cluster.get("node", real_cluster.agent_node)
        assert {"key": devcluster.AGENT_TAINT, "value": "true",
                "effect": "NoSchedule"} in agent["spec"]["taints"]
        assert agent["metadata"]["labels"][devcluster.AGENT_TAINT] == "true"


def test_a_container_has_its_own_pid_namespace_and_cgroup(real_cluster: Cluster,
                                                          namespace: str):
    script = ("import json, os; print(json.dumps({'pid': os.getpid(), "
              "'pidns': os.readlink('/proc/self/ns/pid'), "
              "'cgroup': open('/proc/self/cgroup').read(), 'uid': os.getuid()}))")
    pod = run_pod(real_cluster, namespace, "isolated", script)
    assert pod["status"]["phase"] == "Succeeded"
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://")
    seen = json.loads(real_cluster.kubectl("logs", "-n", namespace, "isolated").stdout)
    assert seen["pid"] == 1  # the first process of a pid namespace of its own
    assert seen["pidns"] != os.readlink("/proc/self/ns/pid")
    node = devcluster.real_nodes(real_cluster.state)[0]
    assert f"{node.cgroup_root}/kubepods/" in seen["cgroup"]
    assert pod["metadata"]["uid"].replace("-", "_") in seen["cgroup"].replace("-", "_")
    assert seen["uid"] == 10001  # the image's USER


def test_a_pod_that_needs_no_api_gets_a_network_of_its_own(real_cluster: Cluster,
                                                           namespace: str):
    script = "import os; print(sorted(os.listdir('/sys/class/net')))"
    pod = run_pod(real_cluster, namespace, "isolated-net", script)
    assert not pod["spec"].get("hostNetwork")
    assert pod["status"]["podIP"].startswith("10.244.")
    out = real_cluster.kubectl("logs", "-n", namespace, "isolated-net").stdout
    assert "eth0" in out and "lo" in out


def test_an_image_that_was_not_imported_is_never_pulled_from_beyond_loopback(
        real_cluster: Cluster, namespace: str):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example.com/team/app:1"}]}}
    real_cluster.apply(pod, namespace)

    def pull_failed() -> str | None:
        got = real_cluster.get("pod", "-n", namespace, "elsewhere")
        waiting = ((got["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get(
            "waiting") or {}
        return waiting.get("message") if waiting.get("reason") in (
            "ErrImagePull", "ImagePullBackOff") and waiting.get("message") else None

    message = wait_for(pull_failed, timeout=60, what="the pull to fail")
    assert devcluster_node.NO_REGISTRY_SERVER.removeprefix("http://") in message, message


def test_a_study_runs_in_containers_and_reports_through_the_mounted_token(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    real_cluster.apply(toy_study("sdk", ["quadratic", "--steps", "3"],
                                 budget={"maxTrials": 4, "parallelism": 2,
                                         "maxFailedTrials": 0}), namespace)
    obj = wait_condition(real_cluster, namespace, "sdk", "Succeeded", timeout=300)
    assert obj["status"]["trials"]["succeeded"] == 4
    results = trial_results(real_cluster, namespace, "sdk")
    assert sorted(results) == [0, 1, 2, 3]
    for result in results.values():
        assert result.state.value == "Succeeded"
        assert len(result.curve) == 3  # every step's report reached the pod's annotations
    for pod in trial_pods(real_cluster, namespace, "sdk"):
        container = pod["spec"]["containers"][0]
        env = {e["name"] for e in container.get("env") or []}
        assert "KUBECONFIG" not in env  # the SDK used the kubelet-mounted service account token
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
        assert pod["spec"]["serviceAccountName"] == names.TRIAL_SERVICE_ACCOUNT
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")


def test_the_admission_policy_confines_a_trial_pods_token(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    """A trial may annotate its own pod under kubetune.dev/ and nothing else; the kubelet's own
    status updates of the same pods pass (the study completes)."""
    script = Path(__file__).with_name("confinement_probe.py").read_text()
    run_pod(real_cluster, namespace, "bystander", "pass")
    real_cluster.apply(toy_study("confined", ["quadratic"], budget={
        "maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0},
        container={"command": ["python", "-c", script]}), namespace)
    wait_condition(real_cluster, namespace, "confined", "Succeeded", timeout=240)
    pod = trial_pods(real_cluster, namespace, "confined")[0]
    out = json.loads(real_cluster.kubectl("logs", "-n", namespace,
                                          pod["metadata"]["name"]).stdout.splitlines()[0])
    assert out == {"own kubetune annotation": 200, "own label": 403,
                   "own other annotation": 403, "another pod": 403}, out
    bystander = real_cluster.get("pod", "-n", namespace, "bystander")
    assert "kubetune.dev/probe" not in (bystander["metadata"].get("annotations") or {})


def test_a_failed_trial_carries_its_termination_message(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    script = ("import sys; open('/dev/termination-log', 'w').write('dataset shard 7 is corrupt');"
              " sys.exit(3)")
    real_cluster.apply(toy_study("message", ["quadratic"], budget={
        "maxTrials": 1, "parallelism": 1, "maxFailedTrials": 1},
        container={"command": ["python", "-c", script]}), namespace)
    wait_condition(real_cluster, namespace, "message", "Failed", timeout=240)
    result = trial_results(real_cluster, namespace, "message")[0]
    assert (result.state.value, result.reason) == ("Failed", "ExitCode")
    assert "exited with code 3" in result.message
    assert "dataset shard 7 is corrupt" in result.message


# Training code that knows nothing of kubetune: the loss of (x1, x2) on the toy quadratic.
_LOSS = ("import os; x1 = float(os.environ['KUBETUNE_PARAM_X1']); "
         "x2 = float(os.environ['KUBETUNE_PARAM_X2']); loss = (x1 - 0.5)**2 + (x2 - 0.5)**2")


def _losses(cluster: Cluster, ns: str, name: str) -> dict[int, tuple[float, protocol.TrialResult]]:
    """Per trial: the loss its params give, and its recorded result."""
    jobs = trial_jobs(cluster, ns, name)
    got = results(jobs)
    out = {}
    for job in jobs:
        p = json.loads(job["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        n = int(job["metadata"]["labels"][names.TRIAL_LABEL])
        out[n] = ((p["x1"] - 0.5) ** 2 + (p["x2"] - 0.5) ** 2, got[n])
    return out


def test_metrics_come_from_the_termination_message_the_kubelet_reads(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    script = (f"{_LOSS}; open('/dev/termination-log', 'w').write("
              "f'val_loss={loss}\\nnote=written by an unmodified script\\n')")
    manifest = toy_study("termination", ["quadratic"], objective={
        "metric": "val_loss", "direction": "minimize"}, budget={
        "maxTrials": 2, "parallelism": 2, "maxFailedTrials": 0},
        container={"command": ["python", "-c", script]})
    manifest["spec"]["metricsFrom"] = {"terminationMessage": {}}
    real_cluster.apply(manifest, namespace)
    wait_condition(real_cluster, namespace, "termination", "Succeeded", timeout=240)
    seen = _losses(real_cluster, namespace, "termination")
    assert sorted(seen) == [0, 1]
    for loss, result in seen.values():
        assert result.state.value == "Succeeded"
        assert result.value == pytest.approx(loss, rel=1e-12)


def test_metrics_come_from_the_log_through_the_kubelet(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    script = (f"{_LOSS}\nfor epoch in (1, 2):\n"
              "    print(f'epoch {epoch} val_loss={loss * epoch}', flush=True)")
    manifest = toy_study("logged", ["quadratic"], budget={
        "maxTrials": 2, "parallelism": 2, "maxFailedTrials": 0},
        container={"command": ["python", "-c", script]})
    manifest["spec"]["metricsFrom"] = {"log": {
        "pattern": r"epoch (?P<step>[0-9]+) val_loss=(?P<value>[0-9.e+-]+)"}}
    real_cluster.apply(manifest, namespace)
    wait_condition(real_cluster, namespace, "logged", "Succeeded", timeout=240)
    for loss, result in _losses(real_cluster, namespace, "logged").values():
        assert (result.state.value, result.step) == ("Succeeded", 2)
        assert result.value == pytest.approx(2 * loss, rel=1e-12)


def test_an_oom_killed_trial_fails_with_a_clear_reason(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    script = "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    real_cluster.apply(toy_study("oom", ["quadratic"], budget={
        "maxTrials": 1, "parallelism": 1, "maxFailedTrials": 1},
        container={"command": ["python", "-c", script],
                   "resources": {"limits": {"memory": "64Mi"}}}), namespace)
    wait_condition(real_cluster, namespace, "oom", "Failed", timeout=240)
    result = trial_results(real_cluster, namespace, "oom")[0]
    assert (result.state.value, result.reason) == ("Failed", "OOMKilled")
    assert "memory" in result.message
    pod = trial_pods(real_cluster, namespace, "oom")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_the_kubelet_ends_a_trial_at_its_timeout(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    real_cluster.apply(toy_study("timeout", ["quadratic", "--steps", "100", "--sleep", "1"],
                                 budget={"maxTrials": 1, "parallelism": 1, "maxFailedTrials": 1,
                                         "trialTimeoutSeconds": 4}), namespace)
    wait_condition(real_cluster, namespace, "timeout", "Failed", timeout=240)
    result = trial_results(real_cluster, namespace, "timeout")[0]
    assert (result.state.value, result.reason) == ("Failed", "TimedOut")
    assert result.value is not None  # what it reported before the deadline is kept


    def ended_by_kubelet() -> bool:
        status = trial_pods(real_cluster, namespace, "timeout")[0]["status"]
        return (status.get("phase"), status.get("reason")) == ("Failed", "DeadlineExceeded")

    wait_for(ended_by_kubelet, timeout=60, what="the kubelet to end the pod at its deadline")


def test_hopeless_trials_are_pruned_and_their_containers_stopped(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    real_cluster.apply(toy_study(
        "prune", ["curves", "--steps", "20", "--sleep", "0.5"],
        budget={"maxTrials": 4, "parallelism": 4, "maxFailedTrials": 0},
        early_stopping={"name": "median", "minStep": 2, "minTrials": 1}), namespace)
    obj = wait_condition(real_cluster, namespace, "prune", "Succeeded", timeout=300)
    results = trial_results(real_cluster, namespace, "prune")
    pruned = [n for n, r in results.items() if r.state.value == "Pruned"]
    assert obj["status"]["trials"]["pruned"] == len(pruned)
    # Odd trials are hopeless at every step (above 10, the others below 1.5).
    assert any(n % 2 == 1 for n in pruned), results

    def stopped_by_kubelet() -> bool:
        pods = trial_pods(real_cluster, namespace, "prune")
        return all((p["status"].get("phase"), p["status"].get("reason"))
                   == ("Failed", "DeadlineExceeded") for p in pods
                   if int(p["metadata"]["labels"][names.TRIAL_LABEL]) in pruned)

    wait_for(stopped_by_kubelet, timeout=60, what="the kubelet to stop the pruned containers")


def test_killing_the_operator_mid_study_loses_and_duplicates_nothing(
        real_cluster: Cluster, running_operator: OperatorProcess, namespace: str):
    real_cluster.apply(toy_study("restart", ["quadratic", "--steps", "4", "--sleep", "1"],
                                 budget={"maxTrials": 6, "parallelism": 2,
                                         "maxFailedTrials": 0}), namespace)

    def running() -> bool:
        pods = trial_pods(real_cluster, namespace, "restart")
        return any(p["status"].get("phase") == "Running" for p in pods)

    wait_for(running, timeout=120, what="a trial container running")
    running_operator.kill()
    running_operator.start()
    obj = wait_condition(real_cluster, namespace, "restart", "Succeeded", timeout=300)
    assert obj["status"]["trials"]["succeeded"] == 6
    jobs = real_cluster.get("jobs", "-n", namespace, "-l",
                            f"{names.STUDY_LABEL}=restart")["items"]
    assert sorted(int(j["metadata"]["labels"][names.TRIAL_LABEL]) for j in jobs) == list(range(6))
    assert len(trial_results(real_cluster, namespace, "restart")) == 6


def test_fake_gpus_are_scheduled_and_handed_out_by_our_device_plugin(real_cluster: Cluster,
                                                                     namespace: str):
    def capacity() -> str | None:
        node = real_cluster.get("nodes")["items"][0]
        return node["status"].get("allocatable", {}).get("nvidia.com/gpu")

    assert wait_for(capacity, timeout=60, what="nvidia.com/gpu on the node") == "4"
    script = "import os; print(os.environ.get('NVIDIA_VISIBLE_DEVICES', 'unset'))"
    pod = run_pod(real_cluster, namespace, "gpus", script,
                  container={"resources": {"limits": {"nvidia.com/gpu": "2"}}})
    assert pod["status"]["phase"] == "Succeeded"
    ids = real_cluster.kubectl("logs", "-n", namespace, "gpus").stdout.strip().split(",")
    assert len(ids) == 2 and all(i.startswith("fake-gpu-") for i in ids), ids
