"""The Helm chart without a cluster: `helm lint` and `helm template` with the chart's own helm
binary (devcluster/build.sh), the strict values schema, the restricted security context, the
least-privilege RBAC, the CRD copy in sync with crds/, the `helm test` pod's script, the Argo CD
health check, kubernetes-validate on every rendered manifest, and examples/digits.yaml against
the trainer it runs."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune_devcluster import cluster as devcluster

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "kubetune"
CRD_FILE = ROOT / "crds" / "tuningstudy.yaml"
CRD_COPY = CHART / "files" / "tuningstudy.yaml"

# What the operator calls in a watched namespace (kube/reconcile.py, kube/cache.py and kopf's
# study watch), as (apiGroup, resource, verb); pods get is there only because the operator
# grants it to kubetune-trial, pods/log get for studies whose metrics come from the log,
# services create for the headless Service of studies whose trials have several workers.
# tests/e2e/test_chart.py checks the same table against the audit log of a real run.
OPERATOR_RULES = {
    ("kubetune.dev", "tuningstudies", "list"), ("kubetune.dev", "tuningstudies", "watch"),
    ("kubetune.dev", "tuningstudies/status", "patch"),
    ("batch", "jobs", "list"), ("batch", "jobs", "watch"), ("batch", "jobs", "create"),
    ("batch", "jobs", "patch"),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"), ("", "pods", "patch"),
    ("", "pods/log", "get"),
    ("", "events", "create"),
    ("", "serviceaccounts", "create"),
    ("", "services", "create"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
}


@cache
def helm_binary() -> Path:
    return devcluster.binaries_dir() / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # No cluster is consulted: KUBECONFIG points nowhere.
    env = {**os.environ, "KUBECONFIG": os.devnull}
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=env,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@cache
def _render(*values: str) -> tuple[dict, ...]:
    sets = [a for v in values for a in ("--set", v)]
    out = helm("template", "rel", str(CHART), "--namespace", "kt", *sets).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(*values: str) -> list[dict]:
    return [json.loads(json.dumps(d)) for d in _render(*values)]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(docs: list[dict], kind: str) -> dict:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def rule_set(role: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def test_helm_lint_is_clean() -> None:
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


def test_chart_and_app_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == project["version"] == "0.1.0"
    deployment = one(render(), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "kubetune/operator:0.1.0"


# --- the CRD ---------------------------------------------------------------------------------

def test_crd_copy_is_in_sync_with_crds() -> None:
    assert CRD_COPY.read_bytes() == CRD_FILE.read_bytes(), (
        "helm/kubetune/files/tuningstudy.yaml differs from crds/tuningstudy.yaml: "
        "cp crds/tuningstudy.yaml helm/kubetune/files/tuningstudy.yaml")


def test_rendered_crd_is_the_generated_one_and_kept() -> None:
    crd = one(render(), "CustomResourceDefinition")
    generated = yaml.safe_load(CRD_FILE.read_text())
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["name"] == generated["metadata"]["name"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crd_flags() -> None:
    assert find(render("crds.install=false"), "CustomResourceDefinition") == []
    crd = one(render("crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]


# --- values.schema.json ------------------------------------------------------------------------

def _objects(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    out = []
    if "properties" in schema:
        out.append((path or "<root>", schema))
        for key, sub in schema["properties"].items():
            out += _objects(sub, f"{path}.{key}" if path else key)
    return out


def test_values_schema_is_strict() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _objects(schema)
    assert len(objects) >= 10
    for path, obj in objects:
        assert obj.get("additionalProperties") is False, f"{path}: additionalProperties false"


def _keys(values: Any, schema: dict, root: dict, path: str = "") -> None:
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if not isinstance(values, dict) or "properties" not in schema:
        return
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        assert key in schema["properties"], f"values.yaml {where} is missing from the schema"
        _keys(value, schema["properties"][key], root, where)


def test_every_value_is_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    _keys(values, schema, schema)
    assert set(values) | {"global"} == set(schema["properties"])


@pytest.mark.parametrize(("value", "complaint"), [
    ("bogus=1", "bogus"),
    ("image.bogus=1", "bogus"),
    ("logFormat=xml", "logFormat"),
    ("liveness.port=0", "port"),
    ("watchNamespaces[0]=Not_A_Name", "watchNamespaces"),
])
def test_values_schema_refuses(value: str, complaint: str) -> None:
    proc = helm("template", "rel", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0
    assert complaint in proc.stderr


# --- the operator's pod ------------------------------------------------------------------------

def _assert_restricted(pod: dict) -> None:
    pod_ctx = pod["securityContext"]
    assert pod_ctx["runAsNonRoot"] is True
    assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["runAsNonRoot"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": pod["volumes"][0]["emptyDir"]["sizeLimit"]}} \
        in pod["volumes"]


def test_operator_pod_is_restricted_and_probed() -> None:
    deployment = one(render(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    _assert_restricted(pod)
    (c,) = pod["containers"]
    assert c["args"] == ["--leader-elect", "--lease-name=rel-kubetune",
                         "--liveness=http://0.0.0.0:8080/healthz",
                         "--metrics=http://0.0.0.0:8081/metrics", "--log-format=json",
                         "--sampler-processes=1"]
    assert {"name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Ready: the leader, or a standby waiting for the Lease (both answer /healthz).
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["serviceAccountName"] == "rel-kubetune"


def test_cluster_scoped_names_are_the_releases() -> None:
    # Releases side by side (one per team) must not collide on a cluster-scoped name; the CRD
    # is one per cluster by nature (a release that finds it elsewhere leaves it alone).
    def cluster_scoped(release: str) -> set[tuple[str, str]]:
        proc = helm("template", release, str(CHART), "-n", f"ns-{release}",
                    "--set", f"watchNamespaces={{team-{release}}}")
        return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(proc.stdout)
                if d and "namespace" not in d["metadata"]
                and d["kind"] != "CustomResourceDefinition"}

    a, b = cluster_scoped("a"), cluster_scoped("b")
    assert {k for k, _ in a} >= {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert a & b == set()
    policy = one(render(), "ValidatingAdmissionPolicy")
    assert policy["metadata"]["name"] == "rel-kubetune-trial-pods"
    assert one(render(), "ValidatingAdmissionPolicyBinding")["spec"]["policyName"] == \
        "rel-kubetune-trial-pods"


def test_operator_args_follow_values() -> None:
    deployment = one(render("watchNamespaces={a,b}", "leaderElection.enabled=false",
                            "liveness.port=9000", "logFormat=plain", "verbose=true",
                            "replicas=2", "metrics.port=9100", "samplerProcesses=2"),
                     "Deployment")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["--namespace=a", "--namespace=b",
                         "--liveness=http://0.0.0.0:9000/healthz",
                         "--metrics=http://0.0.0.0:9100/metrics", "--log-format=plain",
                         "--sampler-processes=2", "--verbose"]
    assert [p["containerPort"] for p in c["ports"]] == [9000, 9100]
    off = one(render("metrics.enabled=false"), "Deployment")["spec"]["template"]["spec"]
    assert not any(a.startswith("--metrics") for a in off["containers"][0]["args"])
    assert deployment["spec"]["replicas"] == 2


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    deployment = one(render("image.tag=9.9.9", f"image.digest={digest}",
                            "image.repository=registry.example/kt/operator"), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"registry.example/kt/operator@{digest}"


def test_deployment_selects_only_operator_pods() -> None:
    docs = render("serviceMonitor.enabled=true")
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "operator"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    test_pod = one(docs, "Pod")
    assert not selector.items() <= test_pod["metadata"]["labels"].items()


# --- RBAC ----------------------------------------------------------------------------------------

def test_cluster_wide_rbac_is_exactly_what_the_operator_calls() -> None:
    docs = render()
    role = one(docs, "ClusterRole")
    assert rule_set(role) == OPERATOR_RULES
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-kubetune",
                                    "namespace": "kt"}]
    text = json.dumps([d for d in docs if d["kind"] in ("ClusterRole", "Role")])
    assert '"*"' not in text


def test_own_namespace_role_names_the_lease_and_the_key() -> None:
    from kubetune.kube import signing

    docs = render("leaderElection.leaseName=my-lease")
    (own,) = [d for d in find(docs, "Role") if d["metadata"]["name"] == "rel-kubetune-self"]
    assert own["metadata"]["namespace"] == "kt"
    assert own["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [signing.KEY_SECRET],
         "verbs": ["get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["my-lease"], "verbs": ["get", "update"]},
    ]
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--lease-name=my-lease" in args
    (binding,) = find(docs, "RoleBinding", "rel-kubetune-self")
    assert binding["roleRef"]["name"] == "rel-kubetune-self"
    (own,) = find(render("leaderElection.enabled=false"), "Role", "rel-kubetune-self")
    assert {r for rule in own["rules"] for r in rule["resources"]} == {"secrets"}


def test_watch_namespaces_use_roles_only() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    assert find(docs, "ClusterRole") == [] and find(docs, "ClusterRoleBinding") == []
    roles = {d["metadata"]["namespace"]: d for d in find(docs, "Role", "rel-kubetune")}
    assert set(roles) == {"team-a", "team-b"}
    assert all(rule_set(r) == OPERATOR_RULES for r in roles.values())
    bindings = find(docs, "RoleBinding", "rel-kubetune")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    assert all(b["subjects"][0]["namespace"] == "kt" for b in bindings)


def test_rbac_and_service_account_can_be_left_out() -> None:
    docs = render("rbac.create=false", "serviceAccount.create=false",
                  "serviceAccount.name=existing")
    kinds = {d["kind"] for d in docs if "helm.sh/hook" not in
             (d["metadata"].get("annotations") or {})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                        "ServiceAccount"}
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing"
    proc = helm("template", "rel", str(CHART), "--set", "serviceAccount.create=false",
                check=False)
    assert proc.returncode != 0 and "serviceAccount.name" in proc.stderr


# --- the rest ------------------------------------------------------------------------------------

def test_helm_test_pod_runs_the_smoke_script() -> None:
    docs = render()
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    _assert_restricted(pod["spec"])
    (c,) = pod["spec"]["containers"]
    assert c["command"][:2] == ["python", "-c"]
    script = c["command"][2]
    assert script == (CHART / "files" / "smoke_test.py").read_text()
    compile(script, "smoke_test.py", "exec")
    account = pod["spec"]["serviceAccountName"]
    (role,) = [r for r in find(docs, "Role", account)]
    assert rule_set(role) == {("kubetune.dev", "tuningstudies", v)
                              for v in ("get", "create", "delete")}
    # Only the pod is a test hook: Helm reports each test hook as a test (`helm test --logs`
    # printed its block once per hook); its account and Role are the release's own objects.
    hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    assert [d["kind"] for d in hooks] == ["Pod"]
    assert {d["kind"] for d in docs if d["metadata"]["name"] == account} == {
        "ServiceAccount", "Role", "RoleBinding", "Pod"}
    # Without the chart's RBAC the pod runs as the operator's existing account.
    docs = render("rbac.create=false", "serviceAccount.create=false",
                  "serviceAccount.name=existing")
    assert one(docs, "Pod")["spec"]["serviceAccountName"] == "existing"


def test_service_monitor_is_optional_and_selects_the_operator() -> None:
    assert find(render(), "ServiceMonitor") == [] and find(render(), "Service") == []
    docs = render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom")
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_notes_name_the_next_steps_and_the_argocd_check() -> None:
    proc = helm("install", "rel", str(CHART), "--dry-run=client", "--namespace", "kt",
                "--set", "watchNamespaces={team-a}")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "the namespaces team-a" in notes
    assert "helm test rel -n kt --logs" in notes
    assert "resource.customizations.health.kubetune.dev_TuningStudy: |" in notes
    assert "    if obj.status == nil" in notes
    assert "add\n   it to watchNamespaces first" in notes
    proc = helm("install", "rel", str(CHART), "--dry-run=client", "--namespace", "kt")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "every namespace" in notes and "watchNamespaces" not in notes


def test_rendered_manifests_pass_kubernetes_validate() -> None:
    validate = pytest.importorskip("kubernetes_validate")
    docs = render("serviceMonitor.enabled=true", "watchNamespaces={a}")
    checked = 0
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a Prometheus Operator CRD: no schema there
            continue
        validate.validate(doc, "1.33", strict=True)
        checked += 1
    assert checked >= 10


def _argocd_health(obj: dict) -> dict:
    lupa = pytest.importorskip("lupa")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (CHART / "files" / "argocd-health.lua").read_text()
    check = lua.eval(f"function(obj)\n{script}\nend")
    table = check(lua.table_from(obj, recursive=True))
    return {"status": table["status"], "message": table["message"]}


@pytest.mark.parametrize(("conditions", "generation", "health"), [
    (None, 1, "Progressing"),
    ([("Ready", "True"), ("Reconciling", "False")], 1, "Healthy"),
    ([("Ready", "True")], 2, "Progressing"),
    ([("Ready", "False"), ("Succeeded", "True")], 1, "Healthy"),
    ([("Ready", "False"), ("Stalled", "True")], 1, "Degraded"),
    ([("Ready", "False"), ("Failed", "True")], 1, "Degraded"),
    ([("Ready", "False"), ("Reconciling", "True")], 1, "Progressing"),
])
def test_argocd_health_check(conditions: list | None, generation: int, health: str) -> None:
    obj: dict[str, Any] = {"metadata": {"generation": generation}}
    if conditions is not None:
        obj["status"] = {"observedGeneration": 1, "conditions": [
            {"type": t, "status": s, "reason": f"{t}Reason", "message": f"{t} message"}
            for t, s in conditions]}
    assert _argocd_health(obj)["status"] == health


# --- examples/digits.yaml ------------------------------------------------------------------------

def test_digits_example_fits_the_trainer() -> None:
    from kubetune.core.spec import parse_spec
    from kubetune_trainer import params as trainer

    study = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    spec = parse_spec(study["spec"])
    assert (spec.budget.max_trials, spec.budget.parallelism) == (12, 4)
    assert spec.early_stopping is not None and spec.early_stopping.name == "asha"
    assert spec.objective.metric in trainer.REPORTED_METRICS
    (c,) = study["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "kubetune/trainer:0.1.0"
    flags = trainer.parse_params(trainer.parse_flags(c["args"]), from_text=True)
    assert flags["epochs"] == spec.early_stopping.max_step
    assert flags["threads"] == 1
    # Every corner of the search space is a run the trainer accepts.
    for name, p in spec.search_space.items():
        corners = p.values if p.values is not None else [p.low, p.high]
        for value in corners:
            trainer.parse_params({name: value})


def test_workloads_grant_and_watch_each_kind_of_trial_resource() -> None:
    docs = render("workloads={jobsets.jobset.x-k8s.io/v1alpha2}")
    rules = one(docs, "ClusterRole")["rules"]
    assert {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"],
            "verbs": ["list", "watch", "create", "patch"]} in rules
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--workload=jobsets.jobset.x-k8s.io/v1alpha2" in args
    # Per-namespace Roles get the same grant.
    scoped = render("workloads={jobsets.jobset.x-k8s.io/v1alpha2}", "watchNamespaces={a,b}")
    for role in find(scoped, "Role"):
        if role["metadata"]["name"] == "rel-kubetune":
            assert any(r["resources"] == ["jobsets"] for r in role["rules"])
    # Without workloads the operator is granted no other kind.
    plain = one(render(), "ClusterRole")["rules"]
    assert not any(r["apiGroups"] == ["jobset.x-k8s.io"] for r in plain)


def test_a_workload_that_is_not_resource_group_version_is_refused() -> None:
    proc = helm("template", "rel", str(CHART), "--set", "workloads={jobsets}", check=False)
    assert proc.returncode != 0 and "workloads" in proc.stderr


def test_the_dashboard_may_read_the_trial_kinds_of_workloads() -> None:
    dashboard = "rel-kubetune-dashboard"
    docs = render("dashboard.enabled=true", "workloads={jobsets.jobset.x-k8s.io/v1alpha2}")
    role = find(docs, "ClusterRole", dashboard)[0]
    assert ("jobset.x-k8s.io", "jobsets", "list") in rule_set(role)
    assert {v for g, r, v in rule_set(role)
            if r == "jobsets"} == {"list", "watch"}  # reads only
    scoped = render("dashboard.enabled=true", "dashboard.namespaces={a}",
                    "workloads={jobsets.jobset.x-k8s.io/v1alpha2}")
    assert ("jobset.x-k8s.io", "jobsets", "watch") in rule_set(find(scoped, "Role", dashboard)[0])
    plain = find(render("dashboard.enabled=true"), "ClusterRole", dashboard)[0]
    assert not any(g == "jobset.x-k8s.io" for g, _, _ in rule_set(plain))
