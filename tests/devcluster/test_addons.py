"""What devcluster makes of Kueue's and JobSet's own install manifests and configuration: every
webhook at a loopback URL, nothing of a Deployment's install, manager ports on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune_devcluster import addons, cluster

WEBHOOK = "https://127.0.0.1:30443"


def service_config(path: str) -> dict[str, Any]:
    return {"service": {"name": "webhook-service", "namespace": "kueue-system", "path": path}}


UPSTREAM: list[Any] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "workloads.kueue.x-k8s.io"},
     "spec": {"conversion": {"strategy": "Webhook", "webhook": {
         "clientConfig": service_config("/convert"), "conversionReviewVersions": ["v1"]}}}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "kueue-controller-manager"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kueue-webhook-service"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kueue-webhook-server-cert"}},
    {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
     "metadata": {"name": "v1beta2.visibility.kueue.x-k8s.io"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "kueue-manager-rolebinding"}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
     "metadata": {"name": "kueue-mutating-webhook-configuration"},
     "webhooks": [{"name": "mjob.kb.io", "failurePolicy": "Fail",
                   "clientConfig": service_config("/mutate-batch-v1-job"),
                   "rules": [{"apiGroups": ["batch"], "resources": ["jobs"]}]}]},
    None,  # an empty YAML document
]


def test_upstream_manifests_are_pointed_at_loopback() -> None:
    before, webhooks = addons.loopback_manifests(UPSTREAM, WEBHOOK, "Q0E=")
    assert [o["kind"] for o in before] == ["Namespace", "CustomResourceDefinition",
                                           "ClusterRoleBinding"]
    conversion = before[1]["spec"]["conversion"]["webhook"]
    assert conversion["clientConfig"] == {"url": f"{WEBHOOK}/convert", "caBundle": "Q0E="}
    assert conversion["conversionReviewVersions"] == ["v1"]
    [mutating] = webhooks
    hook = mutating["webhooks"][0]
    assert hook["clientConfig"] == {"url": f"{WEBHOOK}/mutate-batch-v1-job", "caBundle": "Q0E="}
    assert hook["failurePolicy"] == "Fail"
    assert hook["rules"] == UPSTREAM[7]["webhooks"][0]["rules"]
    assert UPSTREAM[7]["webhooks"][0]["clientConfig"] == service_config("/mutate-batch-v1-job")


def client_configs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("clientConfig"), dict):
            yield node["clientConfig"]
        for value in node.values():
            yield from client_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from client_configs(value)


def test_no_rendered_manifest_keeps_a_service_reference() -> None:
    """The manifests build.sh rendered from the projects' own config/default (it builds them
    first if they are missing, as the e2e tests do)."""
    bins = cluster.binaries_dir()
    for addon in addons.ADDONS.values():
        objects = list(yaml.safe_load_all(addons.manifests_path(addon, bins).read_text()))
        before, webhooks = addons.loopback_manifests(objects, WEBHOOK, "Q0E=")
        configs = list(client_configs(before + webhooks))
        assert configs, f"{addon.name}: no webhook at all"
        assert all(set(c) == {"url", "caBundle"} for c in configs), addon.name
        assert all(c["url"].startswith(f"{WEBHOOK}/") for c in configs)
        assert {w["kind"] for w in webhooks} == {"MutatingWebhookConfiguration",
                                                 "ValidatingWebhookConfiguration"}
        kinds = {o["kind"] for o in before}
        assert {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"} <= kinds
        assert not kinds & {"Deployment", "Service", "APIService", "Secret"}


@pytest.mark.parametrize("name", sorted(addons.ADDONS))
def test_managers_serve_on_loopback_without_their_own_certificates(name: str) -> None:
    addon = addons.ADDONS[name]
    config = addons.manager_config(addon, addons.Ports(webhook=1, health=2, metrics=3),
                                   Path("/state/certs"))
    assert config["webhook"] == {"host": "127.0.0.1", "port": 1, "certDir": "/state/certs"}
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:2"
    assert config["metrics"]["bindAddress"] == "127.0.0.1:3"
    assert config["internalCertManagement"] == {"enable": False}
    assert config["leaderElection"] == {"leaderElect": False}


def test_kueue_manages_only_labelled_jobs_and_jobsets() -> None:
    config = addons.manager_config(addons.ADDONS["kueue"], addons.Ports(1, 2, 3), Path("/c"))
    assert config["manageJobsWithoutQueueName"] is False
    assert config["integrations"]["frameworks"] == ["batch/job", "jobset.x-k8s.io/jobset"]


def test_an_unknown_addon_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown addon\(s\) \['kueu'\].*'jobset', 'kueue'"):
        cluster.ClusterConfig(state_dir=tmp_path, addons=("kueu",))


def test_addons_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVCLUSTER_ADDONS", "kueue,jobset")
    assert cluster.ClusterConfig.from_env(tmp_path).addons == ("kueue", "jobset")
    monkeypatch.delenv("DEVCLUSTER_ADDONS")
    assert cluster.ClusterConfig.from_env(tmp_path).addons == ()
