"""The chart on a real node: the operator runs as a pod from the operator image (built from
operator/Dockerfile), trials run from the toy-trainer image, and `helm test` passes, as a user
with kind would see it. The chart's own behaviour (RBAC, upgrade, uninstall) is test_chart.py's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from conftest import Cluster, OperatorProcess, wait_for
from kubetune_devcluster import cluster as devcluster
from studies import study
from test_chart import RELEASE, Release, installed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def real_release(real_cluster: Cluster, real_operator: OperatorProcess) -> Iterator[Release]:
    # Host network here (devcluster's API access policy): the operator's ports are loopback ones.
    with installed(real_cluster, real_operator, "image.tag=0.1.0", "image.pullPolicy=Never",
                   "tests.trainerImage=kubetune/toy-trainer:0.1.0", timeout="3m") as r:
        yield r


def running_operator_pod(release: Release) -> dict:
    return wait_for(lambda: [p for p in release.operator_pods()
                             if p["status"].get("phase") == "Running"
                             and all(c.get("ready") for c in p["status"]["containerStatuses"])],
                    timeout=120, what="the operator pod Running and ready")[0]


def test_the_operator_runs_as_a_pod_from_its_image(real_release: Release):
    pod = running_operator_pod(real_release)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "kubetune/operator:0.1.0"
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://")
    assert status["imageID"]  # the image containerd ran, imported from our build


def test_a_study_succeeds_with_the_operator_in_a_pod(real_release: Release):
    real_release.cluster.apply(
        study("tiny", container={"image": "kubetune/toy-trainer:0.1.0"},
              budget={"maxTrials": 3, "parallelism": 3, "maxFailedTrials": 0}),
        real_release.namespace)
    obj = real_release.wait_succeeded("tiny", timeout=240)
    assert obj["status"]["trials"]["succeeded"] == 3
    pod = running_operator_pod(real_release)
    log = real_release.cluster.kubectl("logs", "-n", real_release.namespace,
                                       pod["metadata"]["name"]).stdout
    assert '"name": "tiny"' in log  # the container's output, through the kubelet


def test_helm_test_passes_on_the_real_node(real_release: Release):
    out = real_release.helm("test", RELEASE, "-n", real_release.namespace, "--logs",
                            "--timeout", "4m", timeout=300)
    assert "Succeeded (MaxTrialsReached)" in out, out


def test_a_killed_operator_container_is_restarted_and_carries_on(real_release: Release):
    """kill -9 of the operator's process: the kubelet restarts the container
    and the study started before finishes with every trial once."""
    pod = running_operator_pod(real_release)
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    real_release.cluster.apply(
        study("after-kill", toy=["quadratic", "--steps", "3", "--sleep", "1"],
              container={"image": "kubetune/toy-trainer:0.1.0"},
              budget={"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 0}),
        real_release.namespace)
    # From the host: inside its pid namespace the operator is pid 1, which SIGKILL skips.
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix(
        "containerd://")
    node = devcluster.real_nodes(real_release.cluster.state)[0]
    tasks = node.ctr("tasks", "list").stdout.splitlines()
    (host_pid,) = [int(line.split()[1]) for line in tasks if line.startswith(container_id)]
    os.kill(host_pid, signal.SIGKILL)

    def restarted() -> bool:
        got = real_release.cluster.get("pod", "-n", real_release.namespace,
                                       pod["metadata"]["name"])
        return got["status"]["containerStatuses"][0]["restartCount"] > restarts

    wait_for(restarted, timeout=120, what="the kubelet to restart the operator container")
    obj = real_release.wait_succeeded("after-kill", timeout=300)
    assert obj["status"]["trials"]["succeeded"] == 4
    jobs = real_release.cluster.get("jobs", "-n", real_release.namespace, "-l",
                                    "kubetune.dev/study=after-kill")["items"]
    assert len(jobs) == 4
