"""devcluster for the end-to-end tests: started once per session (or reused when one is
already running under .devcluster/) and taken down afterwards if this session started it.

Where this machine can run a real node (root, namespaces, runc: ``node.missing_requirements``),
the cluster has one, a kubelet with containerd and runc that runs every pod in a container from
images built from the repository's Dockerfiles, and every test's pods run there. Beside it is
one node of the node agent (pods as host processes), tainted so that only pods that ask for it
land there: the agent's own tests and what a real node here cannot do (``on_agent``). On a
machine without a real node the agent's node is the only one, and the tests that need
containers (``real_cluster``) are skipped with what is missing. The addons Kueue and JobSet run
in either.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster import node as devcluster_node

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster")).resolve()
IMAGES = ("toy-trainer", "operator")
# The image every test pod runs: Python, kubetune's SDK and the toy trainer. On the node agent a
# container's `python` command is this machine's interpreter and the image only names it.
PYTHON_IMAGE = "kubetune/toy-trainer:0.1.0"
ADDONS = ("kueue", "jobset")
JOBSET_RESOURCE = "jobsets.jobset.x-k8s.io/v1alpha2"


# Python source for scripts that test pods run: ``server``, ``ctx`` (TLS) and ``token`` for the
# pod's own calls to the API server, from the kubeconfig the node agent hands a pod or from the
# service account a kubelet mounts.
POD_LOGIN = textwrap.dedent("""
    import json, os, ssl
    if "KUBECONFIG" in os.environ:
        _config = json.load(open(os.environ["KUBECONFIG"]))
        server = _config["clusters"][0]["cluster"]["server"]
        ctx = ssl.create_default_context(
            cafile=_config["clusters"][0]["cluster"]["certificate-authority"])
        token = open(_config["users"][0]["user"]["tokenFile"]).read().strip()
    else:
        _account = "/var/run/secrets/kubernetes.io/serviceaccount"
        server = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"],
                                    os.environ["KUBERNETES_SERVICE_PORT"])
        ctx = ssl.create_default_context(cafile=_account + "/ca.crt")
        token = open(_account + "/token").read().strip()
""")


@dataclass
class Cluster:
    """A running devcluster, driven the way a user drives one: kubectl with the kubeconfig."""

    state: devcluster.ClusterState
    bin: Path

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.bin / "kubectl"), *args], input=input, capture_output=True, text=True,
            env=self.env, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | dict, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=text)

    def logs(self) -> str:
        out = []
        for name in self.state.pids:
            out.append(f"--- {name} ---\n{devcluster.tail_log(self.state, name, 30)}")
        return "\n".join(out)

    @property
    def real(self) -> bool:
        """Whether pods run in containers here (a real node), not as host processes."""
        return bool(self.state.real_nodes)

    @property
    def trial_node(self) -> str:
        """The node that pods without a toleration for the agent's taint run on."""
        return sorted(self.state.real_nodes or self.state.node_ports)[0]

    @property
    def agent_node(self) -> str:
        """The node agent's node (pods that ask for it with ``on_agent`` run there)."""
        return sorted(self.state.node_ports)[0]


def on_agent(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` placed on a node of the node agent (a copy): for the agent's own tests, and
    for what devcluster's real node cannot do (workers finding each other by name needs cluster
    DNS, which devcluster does not run)."""
    spec = copy.deepcopy(pod_spec)
    spec["nodeSelector"] = {**spec.get("nodeSelector", {}), devcluster.AGENT_TAINT: "true"}
    spec["tolerations"] = [*spec.get("tolerations", []),
                           {"key": devcluster.AGENT_TAINT, "operator": "Exists",
                            "effect": "NoSchedule"}]
    return spec


def wait_for(check: Callable[[], Any], timeout: float = 60, interval: float = 0.5,
             what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A host folder that test pods can read (see ``shared_volume``)."""
    path = Path(tempfile.mkdtemp(prefix="kubetune-e2e-"))
    path.chmod(0o755)  # the images run as an unprivileged user
    yield path
    shutil.rmtree(path, ignore_errors=True)


def shared_volume(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pod volume and its mount that show host folder ``path`` at the same path in a container
    (the agent's processes see it as it is), so that a test can release a waiting pod with a
    file."""
    return ({"name": "shared", "hostPath": {"path": str(path), "type": "Directory"}},
            {"name": "shared", "mountPath": str(path), "readOnly": True})


def _config() -> tuple[devcluster.ClusterConfig, list[str]]:
    """The cluster to test on, and what this machine lacks for a real node (empty if nothing).
    DEVCLUSTER_REAL_NODES / DEVCLUSTER_NODES, when set, choose the nodes instead."""
    config = devcluster.ClusterConfig.from_env(STATE_DIR)
    missing = devcluster_node.missing_requirements(devcluster.binaries_dir())
    if not {"DEVCLUSTER_REAL_NODES", "DEVCLUSTER_NODES"} & set(os.environ) and not missing:
        config = dataclasses.replace(config, nodes=1, real_nodes=1)
    if config.real_nodes:
        config = dataclasses.replace(config, images=tuple(dict.fromkeys(config.images + IMAGES)))
    config = dataclasses.replace(config, addons=tuple(dict.fromkeys(config.addons + ADDONS)))
    return config, missing


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    config, _ = _config()
    existing = devcluster.load_state(STATE_DIR)
    reuse = existing is not None and devcluster.is_healthy(existing)
    if reuse and existing is not None and (
            bool(existing.real_nodes) != bool(config.real_nodes)
            or bool(existing.node_ports) != bool(config.nodes)):
        devcluster.down(STATE_DIR)  # another kind of node than this machine can test on
        reuse = False
    # A healthy cluster is reused, with the addons it lacks started and its images current.
    state = devcluster.up(config, timeout=300)
    c = Cluster(state, devcluster.binaries_dir())
    yield c
    if not reuse and not os.environ.get("DEVCLUSTER_KEEP"):
        devcluster.down(STATE_DIR)


@pytest.fixture(scope="session")
def real_cluster(cluster: Cluster) -> Cluster:
    """The cluster, for a test that needs containers: skipped where pods are host processes."""
    if not cluster.real:
        _, missing = _config()
        pytest.skip("needs a real node (kubelet, containerd, runc); " + (
            "missing: " + "; ".join(missing) if missing else
            "DEVCLUSTER_REAL_NODES / DEVCLUSTER_NODES chose the node agent"))
    return cluster


def _namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    yield from _namespace(cluster, "t")


class OperatorProcess:
    """The operator as a local process (``python -m kubetune``) with the admin kubeconfig."""

    def __init__(self, cluster: Cluster, log_path: Path, extra_args: tuple[str, ...] = ()):
        self.cluster = cluster
        self.log_path = log_path
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = self.cluster.env
        env["PYTHONUNBUFFERED"] = "1"
        log = self.log_path.open("ab")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.liveness = f"http://127.0.0.1:{sock.getsockname()[1]}/healthz"
        sock.close()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.metrics = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
        sock.close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubetune", "--liveness", self.liveness,
             "--metrics", self.metrics, "--log-format", "json", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        self.starts += 1

    def kill(self) -> None:
        """kill -9: no cleanup, as a crashed or evicted operator."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def wait_serving(self, timeout: float = 30) -> None:
        """Until the metrics endpoint answers (it starts before kopf's watches)."""

        def answers() -> bool:
            try:
                with urllib.request.urlopen(self.metrics, timeout=2):
                    return True
            except OSError:
                return False

        wait_for(answers, timeout=timeout, interval=0.2, what="the operator's metrics endpoint")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no operator log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def trial_policy(cluster: Cluster) -> str:
    """The chart's trial-pod admission policy, named as a release "kubetune" names it."""
    return subprocess.run(
        [str(cluster.bin / "helm"), "template", "kubetune", str(ROOT / "helm" / "kubetune"),
         "--show-only", "templates/trial-policy.yaml"],
        capture_output=True, text=True, check=True, env=cluster.env).stdout


def start_operator_process(cluster: Cluster, args: tuple[str, ...] = ()) -> OperatorProcess:
    """The CRD and the trial policy applied, and the operator started as a local process with
    ``args``."""
    installed = cluster.kubectl("get", "deployments", "-A", "-l",
                                "app.kubernetes.io/name=kubetune", "-o", "name").stdout.strip()
    if installed:
        pytest.exit(f"an installed kubetune operator would reconcile beside the tests' own "
                    f"({installed}); run `make demo-down` first", returncode=2)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                    str(ROOT / "crds" / "tuningstudy.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/tuningstudies.kubetune.dev",
                    "--timeout=60s")
    cluster.apply(trial_policy(cluster))
    proc = OperatorProcess(cluster, cluster.state.log_dir / "operator.log", args)
    proc.start()
    return proc


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    # JobSet runs in this cluster (ADDONS), so the operator also runs trials that are JobSets.
    proc = start_operator_process(cluster, ("--workload", JOBSET_RESOURCE))
    yield proc
    proc.stop()


@pytest.fixture
def running_operator(operator: OperatorProcess) -> OperatorProcess:
    """The operator, started again if an earlier test left it stopped."""
    operator.ensure_running()
    operator.wait_serving()
    return operator


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        c = item.funcargs.get("cluster")
        if c is not None:
            report.sections.append(("devcluster logs", c.logs()))
        op = item.funcargs.get("running_operator") or item.funcargs.get("operator")
        if op is not None:
            report.sections.append(("operator log", op.log_tail()))
