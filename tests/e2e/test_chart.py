"""The Helm chart on devcluster: the rendered manifests pass a server-side dry run; installed, the
operator runs as a pod under the chart's own ServiceAccount and RBAC (not as admin), a study
succeeds, `helm test` passes and reports one test, on a real node the operator runs from its
image in a container that the kubelet restarts when it is killed, every call the operator made
was allowed and the RBAC grants nothing it did not use, an upgrade keeps studies running, a
second release lives beside the first, uninstalling keeps the CRD, and a reinstall under another
name with a new result key keeps every recorded result and the leaderboard.

While the chart's operator runs, the session's local operator (which watches every namespace)
is stopped, so that no study has two operators; it is started again afterwards. The release
watches only its own namespace.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from conftest import PYTHON_IMAGE, ROOT, Cluster, OperatorProcess, wait_for
from kubetune.kube import conventions as names
from kubetune.kube import signing
from kubetune_devcluster import cluster as devcluster
from studies import study

CHART = ROOT / "helm" / "kubetune"
RELEASE = "ktc"
# The images devcluster's real node holds (imported, never pulled); the node agent runs the
# same names as host processes.
IMAGE_VALUES = ("image.pullPolicy=Never", f"tests.trainerImage={PYTHON_IMAGE}")
FULLNAME = f"{RELEASE}-kubetune"
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
HELM_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
# The operator grants pods get to kubetune-trial, so it must hold it, though it never calls it;
# it reads pods/log only for a study with metricsFrom.log, and creates a Service only for a
# study whose trials have several workers, neither of which this release runs.
GRANTED_UNUSED = {("", "pods", "get"), ("", "pods/log", "get"), ("", "services", "create")}


@dataclass
class Release:
    cluster: Cluster
    namespace: str
    port: int
    started: float

    def helm(self, *args: str, check: bool = True, timeout: float = 240) -> str:
        proc = subprocess.run([str(self.cluster.bin / "helm"), *args], capture_output=True,
                              text=True, env=self.cluster.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}\n{self.operator_log()}")
        return proc.stdout + proc.stderr

    @property
    def account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{FULLNAME}"

    def operator_pods(self) -> list[dict]:
        return self.cluster.get("pods", "-n", self.namespace, "-l",
                                "app.kubernetes.io/component=operator")["items"]

    def operator_log(self) -> str:
        proc = self.cluster.kubectl("logs", "-n", self.namespace, f"deploy/{FULLNAME}",
                                    "--tail=40", check=False)
        return f"--- operator pod log ---\n{proc.stdout}{proc.stderr}"

    def wait_succeeded(self, name: str, timeout: int = 120) -> dict:
        proc = self.cluster.kubectl("wait", "-n", self.namespace, "--for=condition=Succeeded",
                                    f"ts/{name}", f"--timeout={timeout}s", check=False,
                                    timeout=timeout + 30)
        assert proc.returncode == 0, f"{name} did not succeed:\n{proc.stderr}\n" + \
            json.dumps(self.cluster.get("ts", "-n", self.namespace, name).get("status"),
                       indent=1) + "\n" + self.operator_log()
        return self.cluster.get("ts", "-n", self.namespace, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render(cluster: Cluster, namespace: str, *values: str) -> list[dict]:
    sets = [a for v in values for a in ("--set", v)]
    out = subprocess.run([str(cluster.bin / "helm"), "template", RELEASE, str(CHART), "-n",
                          namespace, *sets], capture_output=True, text=True, check=True,
                         env=cluster.env).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _adopt(cluster: Cluster, docs: list[dict], namespace: str) -> list[dict]:
    """Hand the cluster-wide objects the chart renders and that already exist (the session's
    CRD, a trial policy applied by another test) to the release, as a user adopting them would;
    return them as they were, to be restored after the uninstall.
    """
    saved = []
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            continue
        ref = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
        found = cluster.kubectl("get", ref, "-o", "json", "--ignore-not-found").stdout
        if not found.strip():
            continue
        obj = json.loads(found)
        owner = (obj["metadata"].get("annotations") or {}).get(HELM_ANNOTATIONS[0])
        if owner and owner != RELEASE and subprocess.run(
                [str(cluster.bin / "helm"), "status", owner, "-n",
                 obj["metadata"]["annotations"].get(HELM_ANNOTATIONS[1], "")],
                capture_output=True, env=cluster.env).returncode == 0:
            pytest.fail(f"{ref} belongs to the installed Helm release {owner!r} (make demo?); "
                        f"run `make demo-down` before the tests")
        saved.append(obj)
        cluster.kubectl("annotate", "--overwrite", ref, f"{HELM_ANNOTATIONS[0]}={RELEASE}",
                        f"{HELM_ANNOTATIONS[1]}={namespace}")
        cluster.kubectl("label", "--overwrite", ref, "app.kubernetes.io/managed-by=Helm")
    return saved


def _restore(cluster: Cluster, saved: list[dict]) -> None:
    for obj in saved:
        meta = obj["metadata"]
        ref = f"{obj['kind'].lower()}/{meta['name']}"
        if cluster.kubectl("get", ref, "--ignore-not-found").stdout.strip():
            # Kept (the CRD): take the adoption marks off again.
            cluster.kubectl("annotate", ref, *(f"{a}-" for a in HELM_ANNOTATIONS), check=False)
            if "app.kubernetes.io/managed-by" not in (meta.get("labels") or {}):
                cluster.kubectl("label", ref, "app.kubernetes.io/managed-by-", check=False)
            continue
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation",
                    "managedFields"):
            meta.pop(key, None)
        obj.pop("status", None)
        cluster.kubectl("create", "-f", "-", input=json.dumps(obj))


@contextlib.contextmanager
def installed(cluster: Cluster, operator: OperatorProcess, *values: str,
              timeout: str = "2m") -> Iterator[Release]:
    """The chart installed in a new namespace it watches, with the local ``operator`` stopped
    meanwhile (one operator at a time: the chart's); uninstalled and restored afterwards.
    Liveness and metrics listen on free loopback ports."""
    operator.stop()
    namespace = f"chart-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    port = _free_port()
    values = (f"watchNamespaces={{{namespace}}}", *IMAGE_VALUES, *values,
              "liveness.bindAddress=127.0.0.1", f"liveness.port={port}",
              "metrics.bindAddress=127.0.0.1", f"metrics.port={_free_port()}")
    saved = _adopt(cluster, _render(cluster, namespace, *values), namespace)
    r = Release(cluster, namespace, port, time.time())
    try:
        # The adopted objects were applied by kubectl: the chart's fields win over its.
        r.helm("install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout", timeout,
               "--force-conflicts", *[a for v in values for a in ("--set", v)])
        yield r
    finally:
        r.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--ignore-not-found",
               check=False)
        _restore(cluster, saved)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        operator.ensure_running()


@pytest.fixture(scope="module")
def release(cluster: Cluster, operator: OperatorProcess) -> Iterator[Release]:
    with installed(cluster, operator) as r:
        yield r


def _audit(cluster: Cluster, user: str) -> list[dict]:
    """The audit events of ``user``, one per request."""
    events: dict[str, dict] = {}
    with (cluster.state.root / "audit.log").open() as f:
        for line in f:
            if user not in line:
                continue
            e = json.loads(line)
            if e["user"]["username"] == user:
                events[e["auditID"]] = e
    return list(events.values())


def _rbac_key(e: dict) -> tuple[str, str, str] | None:
    ref = e.get("objectRef")
    if not ref:
        return None  # discovery (/api, /apis/...), which every account may read
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, e["verb"]


def _rules(role: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def test_rendered_manifests_pass_a_server_side_dry_run(cluster: Cluster, namespace: str):
    for values in ([], [f"watchNamespaces={{{namespace}}}"]):
        docs = _render(cluster, namespace, *values)
        assert {"Deployment", "ServiceAccount", "RoleBinding"} <= {d["kind"] for d in docs}
        for doc in docs:
            if doc["kind"] == "Pod":  # the test pod: its own account exists only in `helm test`
                doc["spec"]["serviceAccountName"] = "default"
        text = "\n---\n".join(json.dumps(d) for d in docs)
        out = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                              input=text).stdout
        assert "deployment.apps/ktc-kubetune created (server dry run)" in out, out


def test_operator_runs_as_a_pod_under_the_charts_service_account(release: Release):
    pods = wait_for(lambda: [p for p in release.operator_pods()
                             if p["status"].get("phase") == "Running"],
                    timeout=60, what="the operator pod Running")
    (pod,) = pods
    assert pod["spec"]["serviceAccountName"] == FULLNAME
    args = pod["spec"]["containers"][0]["args"]
    assert f"--namespace={release.namespace}" in args and "--leader-elect" in args

    def alive() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{release.port}/healthz",
                                        timeout=3) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(alive, timeout=60, what="the operator's liveness endpoint")
    lease = release.cluster.get("lease", "-n", release.namespace, FULLNAME)
    assert lease["spec"]["holderIdentity"]


def test_a_study_succeeds_under_the_charts_rbac(release: Release):
    release.cluster.apply(study("tiny", budget={"maxTrials": 4, "parallelism": 2}),
                          release.namespace)
    obj = release.wait_succeeded("tiny")
    assert obj["status"]["trials"]["succeeded"] == 4
    # The Jobs were made by the operator's own account, not by an admin.
    creators = {e["user"]["username"] for e in _all_job_creations(release)}
    assert creators == {release.account}


def _all_job_creations(release: Release) -> list[dict]:
    out = []
    with (release.cluster.state.root / "audit.log").open() as f:
        for line in f:
            if '"create"' not in line or release.namespace not in line:
                continue
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if (e["verb"] == "create" and ref.get("resource") == "jobs"
                    and ref.get("namespace") == release.namespace
                    and e.get("stage") == "ResponseComplete"
                    and "dryRun" not in e["requestURI"]):
                out.append(e)
    assert out, "no Job creation in the audit log"
    return out


def test_helm_test_passes(release: Release):
    out = release.helm("test", RELEASE, "-n", release.namespace, "--logs", "--timeout", "3m")
    assert "Succeeded (MaxTrialsReached)" in out, out
    # One test, reported once (its RBAC objects are not test hooks).
    assert out.count("TEST SUITE:") == 1, out


def _running_operator_pod(release: Release) -> dict:
    return wait_for(lambda: [p for p in release.operator_pods()
                             if p["status"].get("phase") == "Running"
                             and all(c.get("ready") for c in p["status"]["containerStatuses"])],
                    timeout=120, what="the operator pod Running and ready")[0]


def test_the_operator_runs_from_its_image_in_a_container(real_cluster: Cluster,
                                                         release: Release):
    pod = _running_operator_pod(release)
    assert pod["spec"]["containers"][0]["image"] == "kubetune/operator:0.1.0"
    status = pod["status"]["containerStatuses"][0]
    assert status["containerID"].startswith("containerd://")
    assert status["imageID"]  # the image containerd ran, imported from our build
    log = release.cluster.kubectl("logs", "-n", release.namespace,
                                  pod["metadata"]["name"]).stdout
    assert '"name": "tiny"' in log  # the container's output of the study above, via the kubelet


def test_a_killed_operator_container_is_restarted_and_carries_on(real_cluster: Cluster,
                                                                 release: Release):
    """kill -9 of the operator's process: the kubelet restarts the container and the study
    started before finishes with every trial once."""
    pod = _running_operator_pod(release)
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    release.cluster.apply(
        study("after-kill", toy=["quadratic", "--steps", "3", "--sleep", "1"],
              budget={"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 0}),
        release.namespace)
    # From the host: inside its pid namespace the operator is pid 1, which SIGKILL skips.
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix(
        "containerd://")
    node = devcluster.real_nodes(release.cluster.state)[0]
    tasks = node.ctr("tasks", "list").stdout.splitlines()
    (host_pid,) = [int(line.split()[1]) for line in tasks if line.startswith(container_id)]
    os.kill(host_pid, signal.SIGKILL)

    def restarted() -> bool:
        got = release.cluster.get("pod", "-n", release.namespace, pod["metadata"]["name"])
        return got["status"]["containerStatuses"][0]["restartCount"] > restarts

    wait_for(restarted, timeout=120, what="the kubelet to restart the operator container")
    obj = release.wait_succeeded("after-kill", timeout=300)
    assert obj["status"]["trials"]["succeeded"] == 4
    jobs = release.cluster.get("jobs", "-n", release.namespace, "-l",
                               "kubetune.dev/study=after-kill")["items"]
    assert len(jobs) == 4
    # Gone again with its Jobs, so the tests below count the studies of every node alike.
    release.cluster.kubectl("delete", "ts", "-n", release.namespace, "after-kill",
                            "--wait=true", "--timeout=60s")
    wait_for(lambda: not release.cluster.get("jobs", "-n", release.namespace, "-l",
                                             "kubetune.dev/study=after-kill")["items"],
             timeout=60, what="the study's Jobs to be collected")


def test_upgrade_keeps_studies_running(release: Release):
    before = {p["metadata"]["name"] for p in release.operator_pods()}
    # New ports too: on devcluster's real node the operator's pod is on the host network, where
    # the new pod could not start beside the old one on the same ports (on a real cluster each
    # pod has its own network and the ports stay).
    release.port = _free_port()
    release.helm("upgrade", RELEASE, str(CHART), "-n", release.namespace, "--reuse-values",
                 "--set", "logFormat=plain", "--set", f"liveness.port={release.port}",
                 "--set", f"metrics.port={_free_port()}", "--wait", "--timeout", "2m")

    def new_pod() -> list[dict]:
        return [p for p in release.operator_pods() if p["metadata"]["name"] not in before
                and p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]

    (pod,) = wait_for(new_pod, timeout=60, what="the upgraded operator pod")
    assert "--log-format=plain" in pod["spec"]["containers"][0]["args"]
    # The new pod takes the Lease over (within its 15 s) and reconciles a new study.
    release.cluster.apply(study("after-upgrade", budget={"maxTrials": 2, "parallelism": 2}),
                          release.namespace)
    release.wait_succeeded("after-upgrade", timeout=120)


def test_every_call_was_allowed_and_every_rule_was_used(release: Release):
    def used() -> set[tuple[str, str, str]]:
        return {k for e in _audit(release.cluster, release.account) if (k := _rbac_key(e))}

    # After the upgrade the new pod found the signing key's Secret (create refused as it
    # exists, then get) and took the Lease over; it renews every 5 s: wait for a renewal.
    wait_for(lambda: ("coordination.k8s.io", "leases", "update") in used(), timeout=30,
             what="a Lease renewal in the audit log")
    events = _audit(release.cluster, release.account)
    denied = [f"{e['verb']} {e['requestURI']}" for e in events
              if e.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"]
    assert denied == [], f"calls the chart's RBAC refused: {denied}"
    granted = _rules(release.cluster.get("role", "-n", release.namespace, FULLNAME))
    own = _rules(release.cluster.get("role", "-n", release.namespace, f"{FULLNAME}-self"))
    calls = used()
    assert calls <= granted | own
    assert (granted | own) - calls == GRANTED_UNUSED, "granted but never called"


def _values(namespace: str) -> list[str]:
    return [f"watchNamespaces={{{namespace}}}", *IMAGE_VALUES, "liveness.bindAddress=127.0.0.1",
            f"liveness.port={_free_port()}", "metrics.bindAddress=127.0.0.1",
            f"metrics.port={_free_port()}"]


def test_a_second_release_lives_beside_the_first(release: Release):
    """One release per team: cluster-scoped names are the release's, the CRD the first
    release installed is left alone, and the second operator turns Ready (readinessProbe)."""
    cluster = release.cluster
    other = f"team-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", other)
    try:
        out = release.helm("install", "ktc-b", str(CHART), "-n", other, "--wait", "--timeout",
                           "2m", *[a for v in _values(other) for a in ("--set", v)])
        notes = " ".join(out.split())
        assert f"owned by the Helm release {RELEASE}" in notes and "left it as it is" in notes, out
        policies = {p["metadata"]["name"] for p in cluster.get(
            "validatingadmissionpolicies", "-l", "app.kubernetes.io/name=kubetune")["items"]}
        assert {f"{FULLNAME}-trial-pods", "ktc-b-kubetune-trial-pods"} <= policies
        crd = cluster.get("crd", "tuningstudies.kubetune.dev")
        assert crd["metadata"]["annotations"][HELM_ANNOTATIONS[0]] == RELEASE
        (pod,) = cluster.get("pods", "-n", other, "-l",
                             "app.kubernetes.io/component=operator")["items"]
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
    finally:
        release.helm("uninstall", "ktc-b", "-n", other, "--wait", "--ignore-not-found",
                     check=False)
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_uninstall_keeps_the_crd_and_its_studies(release: Release):
    release.helm("uninstall", RELEASE, "-n", release.namespace, "--wait", "--timeout", "2m")
    crd = release.cluster.get("crd", "tuningstudies.kubetune.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(release.cluster.get("ts", "-n", release.namespace)["items"]) == 2
    left = release.cluster.kubectl("get", "deploy,role,rolebinding,sa", "-n", release.namespace,
                                   "-l", "app.kubernetes.io/instance=ktc", "-o", "name").stdout
    assert left.strip() == ""



def _history(release: Release) -> tuple[dict, dict]:
    """Every recorded result (text and signature, by Job) and every study's ranking."""
    cluster, ns = release.cluster, release.namespace
    jobs = cluster.get("jobs", "-n", ns, "-l", names.STUDY_UID_LABEL)["items"]
    recorded = {j["metadata"]["name"]: (j["metadata"]["annotations"][names.RESULT_ANNOTATION],
                                        j["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION])
                for j in jobs if names.RESULT_ANNOTATION in j["metadata"]["annotations"]}
    ranking = {s["metadata"]["name"]: {k: s["status"].get(k) for k in
                                       ("leaderboard", "bestTrial", "trials", "phase", "progress")}
               for s in cluster.get("ts", "-n", ns)["items"]}
    return recorded, ranking


def test_a_reinstall_with_a_new_key_keeps_every_result(release: Release):
    """After the uninstall: a new key is added to the kept Secret (rotation), and the chart is
    installed again under another name. Every recorded result and every leaderboard stay as
    they were; new results are signed with the new key."""
    cluster, ns = release.cluster, release.namespace
    recorded, ranking = _history(release)
    assert len(recorded) == 6 and set(ranking) == {"tiny", "after-upgrade"}
    new_key = secrets.token_bytes(32)
    cluster.kubectl("patch", "secret", "-n", ns, signing.KEY_SECRET, "--type=merge", "-p",
                    json.dumps({"data": {"key-2": base64.b64encode(new_key).decode()}}))
    try:
        # The CRD still carries the uninstalled release's marks: the chart leaves it alone.
        release.helm("install", "ktc-again", str(CHART), "-n", ns, "--wait", "--timeout", "2m",
                     *[a for v in _values(ns) for a in ("--set", v)])
        cluster.apply(study("after-reinstall", budget={"maxTrials": 2, "parallelism": 2}), ns)
        release.wait_succeeded("after-reinstall", timeout=120)
        after, ranking_after = _history(release)
        assert {k: v for k, v in after.items() if k in recorded} == recorded
        assert {k: v for k, v in ranking_after.items() if k in ranking} == ranking
        fresh = [sig for name, (_, sig) in after.items() if name not in recorded]
        assert len(fresh) == 2
        assert all(sig.split(":")[1] == signing.key_id(new_key) for sig in fresh), fresh
        doubted = cluster.get("events", "-n", ns, "--field-selector",
                              "reason=ResultUnverified")["items"]
        assert doubted == [], [e["message"] for e in doubted]
    finally:
        release.helm("uninstall", "ktc-again", "-n", ns, "--wait", "--ignore-not-found",
                     check=False)
