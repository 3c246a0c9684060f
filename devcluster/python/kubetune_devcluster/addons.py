"""Kueue and JobSet in devcluster: ``ClusterConfig(addons=("kueue", "jobset"))``, or
``DEVCLUSTER_ADDONS=kueue,jobset``.

Each addon is the project's own controller manager, built from its Go module by build.sh and run
as a local process against the apiserver, installed from the project's own manifests (kustomize's
config/default, rendered by build.sh into ``<cache>/manifests``) with what loopback needs:

- no Deployment, Service, ConfigMap, Secret or APIService: the manager is a local process with its
  configuration in ``<state>/addons/<name>/config.yaml`` and its log in ``<state>/logs``;
- webhooks and CRD conversion at ``https://127.0.0.1:<port><path>`` with the cluster CA as their
  caBundle, served with a certificate from devcluster's CA (the manager's own certificate
  management is off); failurePolicy, rules and selectors stay upstream's;
- the manager logs in with a client certificate whose user name is its ServiceAccount's, so the
  project's RBAC bindings apply unchanged.

The webhook configurations are registered once the manager's webhook server answers: most fail
closed, and registered earlier they would reject what they cover while the manager starts.
Ready means the manager's /healthz and /readyz answer 200 and the apiserver reaches its webhook
(a server-side dry run comes back mutated by it).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubetune_devcluster import cluster as cluster_mod
from kubetune_devcluster import pki as pki_mod

__all__ = ["ADDONS", "Addon", "Ports", "loopback_manifests", "manager_argv", "manager_config",
           "manifests_path", "stop", "up"]

# What upstream installs that a local process does without (see the module's docstring).
_SKIPPED_KINDS = frozenset({"Deployment", "Service", "ConfigMap", "Secret", "APIService"})
_WEBHOOK_KINDS = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})


@dataclass(frozen=True)
class Ports:
    """The loopback ports one manager serves on."""

    webhook: int
    health: int
    metrics: int


@dataclass(frozen=True)
class Addon:
    """One controller manager: its binary (``<bin>/<name>``), version (build.sh's), the namespace
    and ServiceAccount its manifests install, and a dry run its webhook must mutate."""

    name: str
    version: str
    namespace: str
    service_account: str
    probe: dict[str, Any]
    probe_mutated: Callable[[dict[str, Any]], bool]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _container() -> dict[str, Any]:
    return {"name": "probe", "image": "devcluster.invalid/probe", "command": ["true"]}


ADDONS: dict[str, Addon] = {
    # Kueue suspends a Job that names a queue at its creation: its Job webhook did that.
    "kueue": Addon(
        name="kueue", version="v0.17.0", namespace="kueue-system",
        service_account="kueue-controller-manager",
        probe={
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "devcluster-probe", "namespace": "default",
                         "labels": {"kueue.x-k8s.io/queue-name": "devcluster-probe"}},
            "spec": {"suspend": False, "template": {"spec": {
                "restartPolicy": "Never", "containers": [_container()]}}},
        },
        probe_mutated=lambda job: job["spec"].get("suspend") is True,
    ),
    # JobSet's defaulting webhook gives every replicated Job an Indexed completion mode.
    "jobset": Addon(
        name="jobset", version="v0.11.0", namespace="jobset-system",
        service_account="jobset-controller-manager",
        probe={
            "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": "devcluster-probe", "namespace": "default"},
            "spec": {"replicatedJobs": [{"name": "probe", "template": {"spec": {
                "template": {"spec": {"restartPolicy": "Never",
                                      "containers": [_container()]}}}}}]},
        },
        probe_mutated=lambda js: all(
            rj["template"]["spec"].get("completionMode") == "Indexed"
            for rj in js["spec"]["replicatedJobs"]),
    ),
}


def manager_config(addon: Addon, ports: Ports, cert_dir: Path) -> dict[str, Any]:
    """The manager's configuration file, a purely computational function: loopback ports, no
    leader election (one replica), devcluster's certificates in ``cert_dir``."""
    health = {"healthProbeBindAddress": f"127.0.0.1:{ports.health}"}
    webhook = {"host": "127.0.0.1", "port": ports.webhook, "certDir": str(cert_dir)}
    common = {
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "health": health,
        "webhook": webhook,
    }
    if addon.name == "kueue":
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2", **common,
            "namespace": addon.namespace,
            "metrics": {"bindAddress": f"127.0.0.1:{ports.metrics}"},
            "manageJobsWithoutQueueName": False,
            "integrations": {"frameworks": ["batch/job", "jobset.x-k8s.io/jobset"]},
            # The pending-workloads API is an aggregated apiserver on a port of its own, which
            # the apiserver would reach through a Service: devcluster has none.
            "featureGates": {"VisibilityOnDemand": False},
        }
    if addon.name == "jobset":
        return {
            "apiVersion": "config.jobset.x-k8s.io/v1alpha1", **common,
            "metrics": {"bindAddress": f"127.0.0.1:{ports.metrics}", "certDir": str(cert_dir)},
        }
    raise ValueError(f"devcluster: no configuration for addon {addon.name!r}")


def manager_argv(addon: Addon, bins: Path, folder: Path) -> list[str]:
    argv = [str(bins / addon.name), f"--config={folder / 'config.yaml'}",
            f"--kubeconfig={folder / 'kubeconfig'}"]
    if addon.name == "kueue":  # the flag build.sh's overlay adds
        argv.append(f"--metrics-cert-dir={folder / 'certs'}")
    return argv


def loopback_manifests(objects: Iterable[dict[str, Any]], webhook: str,
                       ca_bundle: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Upstream's install manifests made for a local manager, a purely computational function:
    (what to apply before it starts, its webhook configurations). Every ``clientConfig`` that
    names a Service points at ``webhook`` (``https://127.0.0.1:<port>``) with ``ca_bundle``."""
    before: list[dict[str, Any]] = []
    webhooks: list[dict[str, Any]] = []
    for obj in objects:
        if not obj or obj.get("kind") in _SKIPPED_KINDS:
            continue
        obj = _point_at(copy.deepcopy(obj), webhook, ca_bundle)
        (webhooks if obj["kind"] in _WEBHOOK_KINDS else before).append(obj)
    return before, webhooks


def _point_at(node: Any, webhook: str, ca_bundle: str) -> Any:
    if isinstance(node, dict):
        config = node.get("clientConfig")
        if isinstance(config, dict) and "service" in config:
            path = config["service"].get("path", "/")
            node["clientConfig"] = {"url": f"{webhook}{path}", "caBundle": ca_bundle}
        for value in node.values():
            _point_at(value, webhook, ca_bundle)
    elif isinstance(node, list):
        for value in node:
            _point_at(value, webhook, ca_bundle)
    return node


def manifests_path(addon: Addon, bins: Path) -> Path:
    return bins.parent / "manifests" / f"{addon.name}-{addon.version}.yaml"


def up(state: cluster_mod.ClusterState, names: Iterable[str], *, timeout: float = 120.0) -> None:
    """Install and start the addons in ``names`` that ``state`` does not run yet, and wait until
    each is ready. A manager that exits or does not get ready raises with its log's tail."""
    todo = [ADDONS[n] for n in dict.fromkeys(names) if n not in state.pids]
    if not todo:
        return
    bins = cluster_mod.binaries_dir()
    missing = [str(manifests_path(a, bins)) for a in todo if not manifests_path(a, bins).exists()]
    if missing:
        raise RuntimeError(f"devcluster: addon manifests missing: {missing}; "
                           "run `bash devcluster/build.sh`")
    p = pki_mod.Pki(state.root / "pki")
    ca_bundle = base64.b64encode(p.ca.read_bytes()).decode()
    ports = {a.name: Ports(*cluster_mod._free_ports(3)) for a in todo}
    before: list[dict[str, Any]] = []
    webhooks: list[dict[str, Any]] = []
    for addon in todo:
        # libyaml's loader when there is one: these files are megabytes of CRD schemas
        objects = yaml.load_all(manifests_path(addon, bins).read_text(),
                                Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        prepared = loopback_manifests(objects, f"https://127.0.0.1:{ports[addon.name].webhook}",
                                      ca_bundle)
        before += prepared[0]
        webhooks += prepared[1]
    _apply(state, bins, before)
    crds = [f"crd/{o['metadata']['name']}" for o in before
            if o["kind"] == "CustomResourceDefinition"]
    _kubectl(state, bins, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    for addon in todo:
        folder = _write_files(state, p, addon, ports[addon.name])
        cluster_mod._start(state, addon.name, manager_argv(addon, bins, folder))
    ctx = ssl.create_default_context(cafile=str(p.ca))
    for addon in todo:
        url = f"https://127.0.0.1:{ports[addon.name].webhook}/"
        _wait(state, addon, "its webhook server", functools.partial(_answers, url, ctx), timeout)
    _apply(state, bins, webhooks)
    for addon in todo:
        _wait(state, addon, "the apiserver calling its webhook",
              functools.partial(_probe, state, bins, addon), timeout)
        health = f"http://127.0.0.1:{ports[addon.name].health}"
        _wait(state, addon, "/healthz and /readyz", functools.partial(_healthy, health), timeout)


def stop(state: cluster_mod.ClusterState) -> None:
    """Stop the addons' managers (before the control plane, so that they stop cleanly)."""
    for name in ADDONS:
        pid = state.pids.pop(name, None)
        if pid is not None:
            cluster_mod._terminate_group(pid)
    cluster_mod._save(state)


def _write_files(state: cluster_mod.ClusterState, p: pki_mod.Pki, addon: Addon,
                 ports: Ports) -> Path:
    """The manager's certificates, kubeconfig and configuration under <state>/addons/<name>."""
    folder = state.root / "addons" / addon.name
    certs = folder / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    serving, client = f"{addon.name}-serving", f"{addon.name}-client"
    pki_mod.issue_certificate(p, serving, cn=f"{addon.name}-webhook", server=True,
                              ips=("127.0.0.1",))
    pki_mod.issue_certificate(
        p, client, cn=addon.user, client=True,
        orgs=("system:serviceaccounts", f"system:serviceaccounts:{addon.namespace}"))
    # controller-runtime's default file names, for the webhook and the metrics server alike
    shutil.copyfile(p.cert(serving), certs / "tls.crt")
    shutil.copyfile(p.key(serving), certs / "tls.key")
    (certs / "tls.key").chmod(0o600)
    cluster_mod.write_kubeconfig(folder / "kubeconfig", state.server, p.ca, p.cert(client),
                                 p.key(client), addon.user)
    config = manager_config(addon, ports, certs)
    (folder / "config.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    return folder


def _kubectl(state: cluster_mod.ClusterState, bins: Path, *args: str,
             input: str | None = None) -> str:
    proc = subprocess.run(
        [str(bins / "kubectl"), f"--kubeconfig={state.kubeconfig}", *args], input=input,
        capture_output=True, text=True, timeout=120, env=cluster_mod._component_env("kubectl"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"devcluster: kubectl {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()}")
    return proc.stdout


def _apply(state: cluster_mod.ClusterState, bins: Path, objects: list[dict[str, Any]]) -> None:
    if objects:
        _kubectl(state, bins, "apply", "--server-side", "--force-conflicts",
                 "--field-manager=devcluster", "-f", "-",
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def _probe(state: cluster_mod.ClusterState, bins: Path, addon: Addon) -> tuple[bool, str]:
    try:
        out = _kubectl(state, bins, "create", "--dry-run=server", "-o", "json", "-f", "-",
                       input=json.dumps(addon.probe))
    except RuntimeError as e:
        return False, str(e)
    return addon.probe_mutated(json.loads(out)), "a dry run it did not mutate (not called yet)"


def _answers(url: str, ctx: ssl.SSLContext) -> tuple[bool, str]:
    """Whether ``url`` answers HTTPS (any status) with a certificate from devcluster's CA."""
    return cluster_mod._get(url, ctx)[0] > 0, url


def _healthy(base: str) -> tuple[bool, str]:
    for path in ("/healthz", "/readyz"):
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=2) as r:
                if r.status != 200:
                    return False, f"{path}: {r.status}"
        except urllib.error.HTTPError as e:
            return False, f"{path}: {e.code} {e.read().decode(errors='replace')[-200:]}"
    return True, ""


def _wait(state: cluster_mod.ClusterState, addon: Addon, what: str,
          check: Callable[[], tuple[bool, str]], timeout: float) -> None:
    try:
        cluster_mod._wait(f"{addon.name}: {what}", check, timeout, state, [addon.name])
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{addon.name}'s log ({state.log_dir / addon.name}.log):\n"
                           f"{cluster_mod.tail_log(state, addon.name)}") from None
