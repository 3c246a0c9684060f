"""A trial pod reports through its own pod's annotations, and may do nothing else: RBAC lets
kubetune-trial get and patch pods, and the ValidatingAdmissionPolicy narrows that to the pod's
own kubetune.dev/* annotations."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import POD_LOGIN, PYTHON_IMAGE, Cluster, on_agent, trial_policy, wait_for
from kubetune.core import protocol
from kubetune.kube import conventions as names
from kubetune.kube import jobs as builders

# Runs inside a trial pod: each attempt patches a pod with the pod's own token and prints the
# HTTP status and the API's message, one JSON line per attempt.
PROBE = POD_LOGIN + textwrap.dedent("""
    import sys, urllib.request, urllib.error
    ns, me = os.environ["POD_NAMESPACE"], os.environ["POD_NAME"]
    def patch(case, pod, body):
        req = urllib.request.Request(
            f"{server}/api/v1/namespaces/{ns}/pods/{pod}", method="PATCH",
            data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + token,
                     "Content-Type": "application/merge-patch+json"})
        try:
            urllib.request.urlopen(req, context=ctx)
            print(json.dumps({"case": case, "code": 200}), flush=True)
        except urllib.error.HTTPError as e:
            msg = json.loads(e.read() or b"{}").get("message", "")
            print(json.dumps({"case": case, "code": e.code, "message": msg}), flush=True)
    patch("own-annotation", me, {"metadata": {"annotations": {"kubetune.dev/metrics": "{}"}}})
    patch("other-pod", sys.argv[1], {"metadata": {"annotations": {"kubetune.dev/metrics": "{}"}}})
    patch("label", me, {"metadata": {"labels": {"hacked": "yes"}}})
    patch("spec", me, {"spec": {"activeDeadlineSeconds": 5}})
    patch("foreign-annotation", me, {"metadata": {"annotations": {"example.com/x": "1"}}})
    patch("finalizer", me, {"metadata": {"finalizers": None}})
""")


@pytest.fixture
def trial_account(cluster: Cluster, namespace: str) -> str:
    cluster.apply(trial_policy(cluster))
    for obj in (builders.trial_service_account(namespace), builders.trial_role(namespace),
                builders.trial_role_binding(namespace, "kubetune-trial")):
        cluster.apply(obj, namespace)
    return "kubetune-trial"


def _trial_pod(name: str, container: dict, *, finalizer: bool = False) -> dict:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    # Labelled as the operator labels a trial's pods (devcluster's real node gives such pods
    # the API server's address).
    meta: dict = {"name": name, "labels": {names.TRIAL_LABEL: "0"}}
    if finalizer:
        meta["finalizers"] = ["kubetune.dev/result"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
        "restartPolicy": "Never", "serviceAccountName": "kubetune-trial",
        "containers": [{"name": "main", **container, "env": env + container.get("env", [])}],
    }}


def test_trainer_reports_each_epoch_on_its_own_pod(cluster: Cluster, namespace, trial_account):
    params = {"epochs": 3, "threads": 1, "lr": 0.003}
    pod = _trial_pod("trainer", {
        "image": "kubetune/trainer:0.1.0",
        "env": [{"name": "KUBETUNE_PARAMS", "value": json.dumps(params)},
                {"name": "KUBETUNE_METRIC", "value": "val_loss"}],
    })
    # The reference trainer needs torch: its image (5.7 GiB) is built by `make demo`, which runs
    # it on the real node, and not by the tests; the node agent runs it from this checkout.
    pod["spec"] = on_agent(pod["spec"])
    cluster.apply(pod, namespace)

    def finished() -> dict | None:
        obj = cluster.get("pod", "-n", namespace, "trainer")
        return obj if obj["status"].get("phase") in ("Succeeded", "Failed") else None

    obj = wait_for(finished, timeout=180, what="the trainer pod to finish")
    assert obj["status"]["phase"] == "Succeeded", cluster.kubectl(
        "logs", "-n", namespace, "trainer").stdout
    annotations = obj["metadata"]["annotations"]
    report = protocol.parse_metrics(annotations["kubetune.dev/metrics"], "val_loss")
    assert report.step == 3 and report.final
    assert {"val_loss", "val_accuracy"} <= set(report.metrics)
    curve = protocol.parse_curve(annotations["kubetune.dev/curve"])
    assert [step for step, _ in curve] == [1, 2, 3]


def test_policy_confines_a_trial_to_its_own_annotations(cluster: Cluster, namespace,
                                                        trial_account):
    victim = _trial_pod("victim", {"image": PYTHON_IMAGE,
                                   "command": ["python", "-c", "import time; time.sleep(120)"]})
    cluster.apply(victim, namespace)
    prober = _trial_pod("prober", {"image": PYTHON_IMAGE,
                                   "command": ["python", "-c", PROBE, "victim"]}, finalizer=True)
    cluster.apply(prober, namespace)
    try:
        wait_for(lambda: cluster.get("pod", "-n", namespace, "prober")["status"].get("phase")
                 in ("Succeeded", "Failed"), timeout=90, what="the probe pod to finish")
        lines = cluster.kubectl("logs", "-n", namespace, "prober").stdout.splitlines()
    finally:
        cluster.kubectl("patch", "pod", "-n", namespace, "prober", "--type=json",
                        "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)
    outcome = {r["case"]: r for r in map(json.loads, lines)}
    assert outcome["own-annotation"]["code"] == 200
    for case, words in {
        "other-pod": "only update its own pod",
        "label": "labels",
        "spec": "spec",
        "foreign-annotation": "kubetune.dev/* annotations",
        "finalizer": "finalizers",
    }.items():
        assert outcome[case]["code"] in (403, 422), outcome[case]
        assert "kubetune-trial-pods" in outcome[case]["message"]
        assert words in outcome[case]["message"], outcome[case]
    pod = cluster.get("pod", "-n", namespace, "victim")
    assert "kubetune.dev/metrics" not in (pod["metadata"].get("annotations") or {})


def test_job_controller_is_not_caught_by_the_policy(cluster: Cluster, namespace, trial_account):
    template = _trial_pod("x", {"image": PYTHON_IMAGE, "command": ["python", "-c", "print(1)"]},
                          finalizer=False)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "plain"},
           "spec": {"backoffLimit": 0, "template": {"spec": template["spec"]}}}
    cluster.apply(job, namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/plain",
                    "--timeout=90s")
