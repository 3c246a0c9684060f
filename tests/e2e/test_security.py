"""Security: what a trial's code may do with its pod's token (report on its own pod, and nothing
else), and what the operator reads (only its trials' objects, and of Secrets only its key).

That the chart's RBAC is exactly what the operator calls (audit log against rules, both ways)
is tests/e2e/test_chart.py::test_every_call_was_allowed_and_every_rule_was_used.
"""

from __future__ import annotations

import json
import textwrap
from urllib.parse import parse_qs, urlsplit

from conftest import POD_LOGIN, PYTHON_IMAGE, Cluster, wait_for
from kubetune.kube import conventions as names
from kubetune.kube import signing
from studies import study
from test_operator import results, trial_jobs, wait_condition

# Runs as the trial: each attempt prints {"case", "code"}; then it reports and succeeds.
PROBE = POD_LOGIN + textwrap.dedent("""
    import sys, urllib.request, urllib.error
    ns, me = os.environ["POD_NAMESPACE"], os.environ["POD_NAME"]
    study = os.environ["KUBETUNE_STUDY"]
    victim, key_ns = sys.argv[1], sys.argv[2]
    def call(case, method, path, body=None):
        req = urllib.request.Request(server + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + token,
                     "Content-Type": "application/merge-patch+json"})
        try:
            with urllib.request.urlopen(req, context=ctx) as r:
                answer, code = json.loads(r.read() or b"{}"), 200
        except urllib.error.HTTPError as e:
            answer, code = {}, e.code
        print(json.dumps({"case": case, "code": code}), flush=True)
        return answer
    pods = f"/api/v1/namespaces/{ns}/pods"
    mark = {"metadata": {"annotations": {"kubetune.dev/metrics": "{}"}}}
    job = call("get-own-pod", "GET", f"{pods}/{me}")["metadata"]["ownerReferences"][0]["name"]
    call("annotate-own-pod", "PATCH", f"{pods}/{me}", mark)
    call("annotate-other-pod", "PATCH", f"{pods}/{victim}", mark)
    call("list-pods", "GET", pods)
    call("delete-own-pod", "DELETE", f"{pods}/{me}")
    call("read-secrets", "GET", f"/api/v1/namespaces/{ns}/secrets")
    call("read-the-signing-key", "GET", f"/api/v1/namespaces/{key_ns}/secrets/kubetune-result-key")
    studies = f"/apis/kubetune.dev/v1alpha1/namespaces/{ns}/tuningstudies/{study}"
    call("patch-study", "PATCH", studies, {"spec": {"budget": {"maxTrials": 100}}})
    call("patch-study-status", "PATCH", studies + "/status", {"status": {"nextTrial": 0}})
    jobs = f"/apis/batch/v1/namespaces/{ns}/jobs"
    call("edit-own-result", "PATCH", f"{jobs}/{job}",
         {"metadata": {"annotations": {"kubetune.dev/result": "{}"}}})
    call("create-job", "POST", jobs, {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": "forged"}, "spec": {"template": {"spec": {
         "restartPolicy": "Never", "containers": [{"name": "x", "image": "x"}]}}}})
    from kubetune import sdk
    sdk.report(step=1, final=True, loss=0.5)
""")

# Where the e2e operator (admin kubeconfig, no POD_NAMESPACE) keeps its signing key.
KEY_NAMESPACE = "default"

EXPECTED = {
    "get-own-pod": 200, "annotate-own-pod": 200, "annotate-other-pod": 403, "list-pods": 403,
    "delete-own-pod": 403, "read-secrets": 403, "read-the-signing-key": 403, "patch-study": 403,
    "patch-study-status": 403, "edit-own-result": 403, "create-job": 403,
}


def test_a_trial_may_report_on_its_own_pod_and_do_nothing_else(cluster: Cluster,
                                                                running_operator, namespace):
    victim = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
              "spec": {"restartPolicy": "Never", "containers": [
                  {"name": "main", "image": PYTHON_IMAGE,
                   "command": ["python", "-c", "import time; time.sleep(120)"]}]}}
    cluster.apply(victim, namespace)
    manifest = study("probe", budget={"maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0},
                     container={"command": ["python", "-c", PROBE, "victim", KEY_NAMESPACE]})
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "probe", "Succeeded", timeout=120)
    assert obj["status"]["bestTrial"]["value"] == 0.5
    pod = cluster.get("pods", "-n", namespace, "-l", f"{names.TRIAL_LABEL}=0")["items"][0]
    lines = cluster.kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
    codes = {d["case"]: d["code"] for d in map(json.loads, (
        line for line in lines.splitlines() if line.startswith('{"case"')))}
    assert codes == EXPECTED
    victim_now = cluster.get("pod", "-n", namespace, "victim")
    assert "kubetune.dev/metrics" not in (victim_now["metadata"].get("annotations") or {})
    (result,) = results(trial_jobs(cluster, namespace, "probe")).values()
    assert result.state.value == "Succeeded"


def _operator_requests(cluster: Cluster) -> list[dict]:
    """The audit events of the e2e operator's own client (kopf's study watch apart)."""
    out = {}
    with (cluster.state.root / "audit.log").open() as f:
        for line in f:
            if "aiohttp" not in line:
                continue
            e = json.loads(line)
            # The e2e operator runs with the admin kubeconfig; an operator the chart test
            # installed earlier in the session runs as its own ServiceAccount.
            user = e.get("user", {}).get("username")
            if (e.get("userAgent", "").startswith("Python/") and e.get("objectRef")
                    and user == "kubetune-admin"):
                out[e["auditID"]] = e
    return list(out.values())


def test_the_operator_reads_only_its_trials_and_its_key(cluster: Cluster, running_operator):
    key = wait_for(lambda: cluster.kubectl("get", "secret", "-n", "default", signing.KEY_SECRET,
                                           check=False).returncode == 0,
                   what="the signing key's Secret")
    assert key
    events = _operator_requests(cluster)
    assert events, "no request of the operator in the audit log"
    for e in events:
        ref = e["objectRef"]
        if ref["resource"] in ("pods", "jobs") and e["verb"] in ("list", "watch"):
            query = parse_qs(urlsplit(e["requestURI"]).query)
            assert query.get("labelSelector") == [names.STUDY_UID_LABEL], e["requestURI"]
        if ref["resource"] == "secrets":
            assert e["verb"] in ("create", "get"), e["requestURI"]
            assert ref.get("name", signing.KEY_SECRET) == signing.KEY_SECRET
            assert ref["namespace"] == KEY_NAMESPACE
