"""Any kubeconfig works: the command and the operator log in through an ``exec`` credential
plugin (as on EKS, GKE and AKS) with a real ServiceAccount token, and a refused token ends the
command with a line that names the context and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import Cluster, OperatorProcess, wait_for
from studies import study

pytestmark = pytest.mark.e2e

PLUGIN = Path(__file__).parent / "plugins" / "exec_credential.py"


def kubetune(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubetune.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def service_account(cluster: Cluster, namespace: str, name: str, *, cluster_role: str,
                    cluster_wide: bool = False) -> str:
    """A ServiceAccount bound to ``cluster_role``, and a token minted for it (TokenRequest)."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    subject = f"--serviceaccount={namespace}:{name}"
    if cluster_wide:
        cluster.kubectl("create", "clusterrolebinding", f"{namespace}-{name}",
                        f"--clusterrole={cluster_role}", subject)
    else:
        cluster.kubectl("create", "rolebinding", name, "-n", namespace,
                        f"--clusterrole={cluster_role}", subject)
    return cluster.kubectl("create", "token", name, "-n", namespace,
                           "--duration=1h").stdout.strip()


def kubeconfig(cluster: Cluster, path: Path, context: str, user: dict, namespace: str) -> Path:
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "devcluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": f"{context}-user", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "devcluster",
                                                   "user": f"{context}-user",
                                                   "namespace": namespace}}],
    }))
    return path


def exec_user(token: str, folder: Path, name: str) -> tuple[dict, Path]:
    token_file, runs = folder / f"{name}.token", folder / f"{name}.runs"
    token_file.write_text(token)
    runs.write_text("")
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                     "command": sys.executable,
                     "args": [str(PLUGIN), str(token_file), str(runs)],
                     "interactiveMode": "Never"}}, runs


def env_with(cluster: Cluster, path: Path) -> dict[str, str]:
    return {**cluster.env, "KUBECONFIG": str(path)}


@pytest.fixture
def reader_role(cluster: Cluster) -> str:
    """Read access to what ``kubetune get/watch`` reads, and nothing more."""
    name = "kubetune-e2e-reader"
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["kubetune.dev"], "resources": ["tuningstudies"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "events"],
             "verbs": ["get", "list", "watch"]},
        ]}))
    return name


def test_command_and_operator_log_in_through_an_exec_plugin(
        cluster: Cluster, operator: OperatorProcess, namespace: str, reader_role: str,
        tmp_path: Path) -> None:
    # The operator of this test logs in through the plugin alone: the session's own operator
    # (admin client certificate) must not reconcile beside it.
    operator.stop()
    operator_token = service_account(cluster, namespace, "operator", cluster_role="cluster-admin",
                                     cluster_wide=True)
    user, operator_runs = exec_user(operator_token, tmp_path, "operator")
    operator_config = kubeconfig(cluster, tmp_path / "operator.kubeconfig", "cloud-operator",
                                 user, namespace)
    exec_operator = OperatorProcess(
        types.SimpleNamespace(env=env_with(cluster, operator_config)),  # type: ignore[arg-type]
        tmp_path / "operator.log")
    exec_operator.start()
    try:
        exec_operator.wait_serving(timeout=60)
        reader_token = service_account(cluster, namespace, "reader", cluster_role=reader_role)
        user, reader_runs = exec_user(reader_token, tmp_path, "reader")
        reader = env_with(cluster, kubeconfig(cluster, tmp_path / "reader.kubeconfig",
                                              "cloud-reader", user, namespace))
        cluster.apply(study("exec-login", budget={"maxTrials": 3, "parallelism": 3,
                                                  "maxFailedTrials": 1}), namespace)
        watched = kubetune(reader, "watch", "exec-login", "--interval", "0.5",
                           "--timeout", "120", timeout=150)
        assert watched.returncode == 0, (watched.stderr, exec_operator.log_tail())
        assert "study exec-login succeeded" in watched.stderr
        got = kubetune(reader, "get")
        assert got.returncode == 0, got.stderr
        assert "exec-login" in got.stdout
        assert reader_runs.read_text().count("run") >= 1
        assert operator_runs.read_text().count("run") >= 1
        # Who did the work: the operator's ServiceAccount, never an anonymous user.
        job = cluster.get("jobs", "-n", namespace, "-l", "kubetune.dev/trial=0")["items"][0]
        assert job["metadata"]["annotations"].get("kubetune.dev/result")
    finally:
        exec_operator.stop()
        cluster.kubectl("delete", "clusterrolebinding", f"{namespace}-operator", check=False)
        operator.start()


def test_a_revoked_token_names_the_context_and_the_fix(
        cluster: Cluster, namespace: str, reader_role: str, tmp_path: Path) -> None:
    token = service_account(cluster, namespace, "leaver", cluster_role=reader_role)
    path = kubeconfig(cluster, tmp_path / "kubeconfig", "old-laptop", {"token": token},
                      namespace)
    env = env_with(cluster, path)
    ok = kubetune(env, "get")
    assert ok.returncode == 0, ok.stderr
    # Deleting the ServiceAccount revokes every token minted for it.
    cluster.kubectl("delete", "serviceaccount", "leaver", "-n", namespace)

    def refused() -> subprocess.CompletedProcess | None:
        result = kubetune(env, "get")
        return result if result.returncode != 0 else None

    result = wait_for(refused, timeout=30, what="the revoked token to be refused")
    assert result.returncode == 1
    err = result.stderr
    assert "context 'old-laptop'" in err
    assert "expired or was revoked" in err
    assert "Log in again" in err
    assert "Traceback" not in err
    assert "system:anonymous" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_failing_exec_plugin_is_an_error_not_an_anonymous_request(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.stderr.write('refresh token expired')\nsys.exit(1)\n")
    path = kubeconfig(cluster, tmp_path / "kubeconfig", "sso", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(broken)], "interactiveMode": "Never"}}, namespace)
    result = kubetune(env_with(cluster, path), "get")
    assert result.returncode == 1
    assert "context 'sso'" in result.stderr
    assert "exec plugin gave no credentials" in result.stderr
    assert "refresh token expired" in result.stderr
    assert "Traceback" not in result.stderr
