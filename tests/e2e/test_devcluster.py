"""devcluster is a real control plane: the real Job controller, scheduler and RBAC; and its node
agent runs pods as local processes (every pod here asks for the agent's node, where a real node
would otherwise take it)."""

from __future__ import annotations

import json
import textwrap
import time

from conftest import PYTHON_IMAGE, Cluster, on_agent, wait_for
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster import sockets


def pod_manifest(name: str, code: str, *, gpus: int = 0, extra_spec: dict | None = None,
                 sa: str | None = None) -> dict:
    container = {"name": "main", "image": PYTHON_IMAGE, "command": ["python", "-c", code]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    spec = {"restartPolicy": "Never", "containers": [container], **(extra_spec or {})}
    if sa:
        spec["serviceAccountName"] = sa
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": on_agent(spec)}


def phase(cluster: Cluster, ns: str, name: str) -> str | None:
    proc = cluster.kubectl("get", "pod", "-n", ns, name, "-o", "jsonpath={.status.phase}",
                           check=False)
    return proc.stdout if proc.returncode == 0 else None


def test_apiserver_answers_and_namespaces_get_a_service_account(cluster: Cluster, namespace):
    version = cluster.kubectl("version", "-o", "json").stdout
    assert json.loads(version)["serverVersion"]["gitVersion"] == devcluster.KUBE_VERSION
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", namespace,
                                     check=False).returncode == 0,
             what="the default ServiceAccount")


def test_job_completes_through_the_job_controller(cluster: Cluster, namespace):
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "print"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_manifest("x", "print(1)")["spec"]}},
    }
    cluster.apply(job, namespace)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/print",
                    "--timeout=90s")
    pods = cluster.get("pods", "-n", namespace, "-l", "job-name=print")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    logs = cluster.kubectl("logs", "-n", namespace, "job/print").stdout
    assert logs.strip() == "1"


def test_pod_exit_code_is_reported(cluster: Cluster, namespace):
    cluster.apply(pod_manifest("exit3", "import sys; print('bye'); sys.exit(3)"), namespace)
    wait_for(lambda: phase(cluster, namespace, "exit3") == "Failed", what="pod Failed")
    pod = cluster.get("pod", "-n", namespace, "exit3")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"


def test_unknown_image_without_command_fails_with_a_message(cluster: Cluster, namespace):
    manifest = pod_manifest("noimage", "")
    del manifest["spec"]["containers"][0]["command"]
    manifest["spec"]["containers"][0]["image"] = "example.com/some/app:1"
    cluster.apply(manifest, namespace)
    wait_for(lambda: phase(cluster, namespace, "noimage") == "Failed", what="pod Failed")
    pod = cluster.get("pod", "-n", namespace, "noimage")
    assert "give the container a `command`" in pod["status"]["message"]
    assert pod["status"]["reason"] == "UnknownImage"


def test_gpus_are_scheduled_and_queued(cluster: Cluster, namespace, tmp_path):
    gpus = int(cluster.state.config.get("node_gpus", 4)) * len(cluster.state.node_ports)
    assert gpus == 4, "this test expects devcluster's default of one node with 4 GPUs"
    release = tmp_path / "release"
    code = textwrap.dedent(f"""
        import os, time
        print("gpus", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
        while not os.path.exists({str(release)!r}):
            time.sleep(0.1)
    """)
    for i in range(6):
        cluster.apply(pod_manifest(f"gpu-{i}", code, gpus=1), namespace)

    def phases() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in cluster.get("pods", "-n", namespace)["items"]:
            out.setdefault(p["status"].get("phase", "?"), []).append(p["metadata"]["name"])
        return out

    wait_for(lambda: len(phases().get("Running", [])) == 4, what="4 GPU pods Running")
    time.sleep(2)
    now = phases()
    assert len(now["Running"]) == 4
    assert len(now["Pending"]) == 2
    for name in now["Pending"]:
        pod = cluster.get("pod", "-n", namespace, name)
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["status"] == "False"
        assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    devices = sorted(
        cluster.kubectl("logs", "-n", namespace, name).stdout.split()[1] for name in now["Running"]
    )
    assert devices == ["0", "1", "2", "3"]
    release.touch()
    try:
        wait_for(lambda: len(phases().get("Succeeded", [])) == 6, timeout=90,
                 what="all 6 GPU pods Succeeded")
    finally:
        release.unlink()


def test_deleting_a_running_pod_kills_its_process(cluster: Cluster, namespace):
    marker = f"devcluster-sleeper-{namespace}"
    cluster.apply(pod_manifest("sleeper", f"import time; time.sleep(600)  # {marker}"), namespace)
    wait_for(lambda: phase(cluster, namespace, "sleeper") == "Running", what="pod Running")
    assert sockets.processes_matching(marker), "the pod's process should be running"
    cluster.kubectl("delete", "pod", "-n", namespace, "sleeper", "--wait=true", "--timeout=60s")
    assert cluster.kubectl("get", "pod", "-n", namespace, "sleeper",
                           check=False).returncode != 0
    wait_for(lambda: not sockets.processes_matching(marker), timeout=10,
             what="the process to be gone")


def test_active_deadline_stops_a_sleeping_pod(cluster: Cluster, namespace):
    cluster.apply(pod_manifest("deadline", "import time; time.sleep(600)",
                               extra_spec={"activeDeadlineSeconds": 3}), namespace)
    wait_for(lambda: phase(cluster, namespace, "deadline") == "Failed", timeout=60,
             what="pod Failed by its deadline")
    assert cluster.get("pod", "-n", namespace, "deadline")["status"]["reason"] == "DeadlineExceeded"


def test_lowering_active_deadline_of_a_running_pod_stops_it(cluster: Cluster, namespace):
    cluster.apply(pod_manifest("lowered", "import time; time.sleep(600)",
                               extra_spec={"activeDeadlineSeconds": 3600}), namespace)
    wait_for(lambda: phase(cluster, namespace, "lowered") == "Running", what="pod Running")
    cluster.kubectl("patch", "pod", "-n", namespace, "lowered", "--type=merge",
                    "-p", '{"spec":{"activeDeadlineSeconds":1}}')
    wait_for(lambda: phase(cluster, namespace, "lowered") == "Failed", timeout=30,
             what="pod Failed after its deadline was lowered")


def test_logs_of_a_finished_pod(cluster: Cluster, namespace):
    cluster.apply(pod_manifest("talker", "print('hello'); print('from devcluster')"), namespace)
    wait_for(lambda: phase(cluster, namespace, "talker") == "Succeeded", what="pod Succeeded")
    logs = cluster.kubectl("logs", "-n", namespace, "talker").stdout
    assert logs.splitlines() == ["hello", "from devcluster"]
    assert cluster.kubectl("logs", "-n", namespace, "talker", "--tail=1").stdout.strip() == (
        "from devcluster"
    )


ANNOTATE_SELF = textwrap.dedent("""
    import json, os, ssl, sys, urllib.request
    cfg = json.load(open(os.environ["KUBECONFIG"]))
    server = cfg["clusters"][0]["cluster"]["server"]
    ca = cfg["clusters"][0]["cluster"]["certificate-authority"]
    token = open(cfg["users"][0]["user"]["tokenFile"]).read()
    ns, name = os.environ["POD_NAMESPACE"], os.environ["POD_NAME"]
    target = sys.argv[1] if len(sys.argv) > 1 else name
    req = urllib.request.Request(
        f"{server}/api/v1/namespaces/{ns}/pods/{target}", method="PATCH",
        data=json.dumps({"metadata": {"annotations": {"kubetune.dev/metrics": "{}"}}}).encode(),
        headers={"Authorization": "Bearer " + token,
                 "Content-Type": "application/merge-patch+json"})
    try:
        urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca))
        print("patched")
    except urllib.error.HTTPError as e:
        print("denied", e.code)
        sys.exit(1)
""")

DOWNWARD_ENV = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def test_pod_token_can_annotate_its_own_pod_only_with_rbac(cluster: Cluster, namespace):
    rbac = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: patcher}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: patch-pods}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, patch]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: patcher}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: patch-pods}}
subjects: [{{kind: ServiceAccount, name: patcher, namespace: {namespace}}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody}}
"""
    cluster.apply(rbac, namespace)
    for name, sa in (("allowed", "patcher"), ("denied", "nobody")):
        manifest = pod_manifest(name, ANNOTATE_SELF, sa=sa)
        manifest["spec"]["containers"][0]["env"] = DOWNWARD_ENV
        cluster.apply(manifest, namespace)
    wait_for(lambda: phase(cluster, namespace, "allowed") in ("Succeeded", "Failed"),
             what="the allowed pod to end")
    wait_for(lambda: phase(cluster, namespace, "denied") in ("Succeeded", "Failed"),
             what="the denied pod to end")
    assert cluster.kubectl("logs", "-n", namespace, "allowed").stdout.strip() == "patched"
    pod = cluster.get("pod", "-n", namespace, "allowed")
    assert pod["metadata"]["annotations"]["kubetune.dev/metrics"] == "{}"
    assert phase(cluster, namespace, "denied") == "Failed"
    assert cluster.kubectl("logs", "-n", namespace, "denied").stdout.strip() == "denied 403"


def test_only_loopback_is_dialled(cluster: Cluster, namespace):
    # Exercise the control plane (a Job with a token-bearing pod, logs) while sampling the
    # sockets of every process devcluster started, pods included.
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "net"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_manifest(
            "x", "import time; time.sleep(4); print('done')")["spec"]}},
    }
    cluster.apply(job, namespace)
    seen: list = []
    deadline = time.monotonic() + 20
    checked = 0
    while time.monotonic() < deadline:
        pids = sockets.tree(list(devcluster.cluster_pids(cluster.state)))
        conns = sockets.connections(pids)
        checked += len(conns)
        seen.extend(c for c in conns if not c.loopback)
        done = cluster.kubectl("get", "job", "-n", namespace, "net", "-o",
                               "jsonpath={.status.succeeded}").stdout
        if done == "1":
            break
        time.sleep(0.5)
    assert checked > 0, "no sockets were seen: the sampler is not looking at the right processes"
    assert seen == []


def test_node_stays_ready_without_pods(cluster: Cluster):
    node = cluster.agent_node
    lease_times = set()
    deadline = time.monotonic() + 125
    while time.monotonic() < deadline:
        obj = cluster.get("node", node)
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", ready
        taints = [t["key"] for t in obj["spec"].get("taints", [])]
        assert "node.kubernetes.io/unreachable" not in taints
        lease = cluster.get("lease", "-n", "kube-node-lease", node)
        lease_times.add(lease["spec"]["renewTime"])
        time.sleep(10)
    assert len(lease_times) >= 8, "the node's Lease should be renewed about every 10 s"


def test_init_containers_env_sources_and_termination_message(cluster: Cluster, namespace):
    cluster.kubectl("create", "configmap", "-n", namespace, "settings", "--from-literal=mode=fast")
    cluster.kubectl("create", "secret", "generic", "-n", namespace, "creds",
                    "--from-literal=token=s3cret")
    marker = f"/tmp/devcluster-init-{namespace}"
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "full"},
        "spec": on_agent({
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": PYTHON_IMAGE, "command": [
                "python", "-c", f"open({marker!r}, 'w').write('ready')"]}],
            "containers": [{
                "name": "main", "image": PYTHON_IMAGE,
                "command": ["python", "-c", textwrap.dedent(f"""
                    import os, sys
                    assert open({marker!r}).read() == 'ready', 'init container did not run'
                    print(os.environ['MODE'], os.environ['TOKEN'], os.environ['POD_IP'])
                    print('the reason it failed', file=sys.stderr)
                    sys.exit(2)
                """)],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "env": [
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                       "key": "mode"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                                     "key": "token"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                ],
            }],
        }),
    }
    cluster.apply(pod, namespace)
    wait_for(lambda: phase(cluster, namespace, "full") == "Failed", what="pod Failed")
    obj = cluster.get("pod", "-n", namespace, "full")
    init = obj["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert init["exitCode"] == 0
    main = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert main["exitCode"] == 2
    assert "the reason it failed" in main["message"]
    assert cluster.kubectl("logs", "-n", namespace, "full").stdout.splitlines()[0] == (
        "fast s3cret 127.0.0.1")
