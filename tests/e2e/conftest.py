"""devcluster for the end-to-end tests: started once per session (or reused when one is
already running under .devcluster/) and taken down afterwards if this session started it.

Two kinds of node: ``cluster`` runs pods on the node agent (host processes, any machine), with
the addons Kueue and JobSet (a reused cluster without them gets them);
``real_cluster`` (state under .devcluster-real/) runs them on a real node, a kubelet with
containerd and runc, from images built from the repository's Dockerfiles. Tests that need
containers use ``real_cluster``; on a machine that cannot run a real node (no root, no
namespaces, no runc) they are skipped with what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
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
REAL_STATE_DIR = Path(os.environ.get("DEVCLUSTER_REAL_STATE", ROOT / ".devcluster-real")).resolve()
REAL_IMAGES = ("toy-trainer", "operator")
ADDONS = ("kueue", "jobset")
JOBSET_RESOURCE = "jobsets.jobset.x-k8s.io/v1alpha2"


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


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    existing = devcluster.load_state(STATE_DIR)
    reuse = existing is not None and devcluster.is_healthy(existing)
    config = devcluster.ClusterConfig.from_env(STATE_DIR)
    config = dataclasses.replace(config, addons=tuple(dict.fromkeys(config.addons + ADDONS)))
    state = devcluster.up(config)  # a healthy cluster is reused, with the addons it lacks started
    c = Cluster(state, devcluster.binaries_dir())
    yield c
    if not reuse and not os.environ.get("DEVCLUSTER_KEEP"):
        devcluster.down(STATE_DIR)


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[Cluster]:
    """devcluster with one real node and no agent node, so every pod runs in a container."""
    bins = devcluster.binaries_dir()
    missing = devcluster_node.missing_requirements(bins)
    if missing:
        pytest.skip("needs a real node (kubelet, containerd, runc); missing: " + "; ".join(missing))
    existing = devcluster.load_state(REAL_STATE_DIR)
    reuse = (existing is not None and devcluster.is_healthy(existing)
             and bool(existing.real_nodes) and not existing.node_ports)
    config = devcluster.ClusterConfig(state_dir=REAL_STATE_DIR, nodes=0, real_nodes=1,
                                      images=REAL_IMAGES)
    state = existing if reuse and existing is not None else devcluster.up(config, timeout=300)
    c = Cluster(state, bins)
    yield c
    if not reuse and not os.environ.get("DEVCLUSTER_KEEP"):
        devcluster.down(REAL_STATE_DIR)


def _namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def real_namespace(real_cluster: Cluster) -> Iterator[str]:
    yield from _namespace(real_cluster, "r")


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


@pytest.fixture(scope="session")
def real_operator(real_cluster: Cluster) -> Iterator[OperatorProcess]:
    """The operator as a local process against the real-node cluster."""
    proc = start_operator_process(real_cluster)
    yield proc
    proc.stop()


@pytest.fixture
def running_real_operator(real_operator: OperatorProcess) -> OperatorProcess:
    real_operator.ensure_running()
    real_operator.wait_serving()
    return real_operator


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
        c = item.funcargs.get("cluster") or item.funcargs.get("real_cluster")
        if c is not None:
            report.sections.append(("devcluster logs", c.logs()))
        op = (item.funcargs.get("running_operator") or item.funcargs.get("operator")
              or item.funcargs.get("running_real_operator"))
        if op is not None:
            report.sections.append(("operator log", op.log_tail()))
