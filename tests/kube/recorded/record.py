"""Records how a real apiserver answers the calls the operator makes, for the fake API of the
unit tests (tests/kube/fakeapi.py), which serves and checks itself against these answers.

Re-record (after a Kubernetes upgrade, or to add a case) against devcluster:

    .venv/bin/python -m kubetune_devcluster up
    .venv/bin/python tests/kube/recorded/record.py [--state-dir .devcluster]
    .venv/bin/python -m kubetune_devcluster down

It speaks plain HTTPS (httpx) with devcluster's admin certificate, so the bodies are the
server's own bytes, not what a client made of them.
It writes tests/kube/recorded/answers.json: one entry per call, in order, with the request
(method, path, params, body) and the answer (status code, body). Names are fixed and
timestamps, uids and resourceVersions are kept as the server wrote them: the fake compares
only what the operator reads (status codes, Status reason, details, causes, and the fields
it sends).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubetune.kube import conventions as names
from kubetune_devcluster import cluster

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
NS = "kubetune-recorded"
GONE_NS = "kubetune-recorded-gone"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
STUDIES = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{NS}/{names.PLURAL}"
ROLES = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles"
UID_LABEL = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def job(name: str, **template_spec: Any) -> dict[str, Any]:
    spec = {"restartPolicy": "Never",
            "containers": [{"name": "trainer", "image": "kubetune/trainer:0.1.0"}],
            **template_spec}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {names.STUDY_UID_LABEL: UID_LABEL, names.TRIAL_LABEL: "0"}},
            "spec": {"backoffLimit": 0, "suspend": True, "template": {"spec": spec}}}


class Recorder:
    def __init__(self, http: httpx.AsyncClient):
        self.http = http
        self.answers: list[dict[str, Any]] = []

    async def send(self, method: str, path: str, *, body: Any = None,
                   params: dict[str, str] | None = None,
                   content_type: str = "application/json") -> httpx.Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        return await self.http.request(
            method, path, params=params, headers=headers,
            content=None if body is None else json.dumps(body))

    async def call(self, name: str, method: str, path: str, *, body: Any = None,
                   params: dict[str, str] | None = None,
                   content_type: str = "application/json") -> dict[str, Any]:
        answer = await self.send(method, path, body=body, params=params,
                                 content_type=content_type)
        entry: dict[str, Any] = {"name": name, "method": method, "path": path,
                                 "params": params or {}, "contentType": content_type,
                                 "body": copy.deepcopy(body), "status": answer.status_code,
                                 "response": answer.json()}
        self.answers.append(entry)
        return entry

    async def watch_error(self, name: str, path: str, version: str) -> None:
        """What a watch from a compacted version gets: 410, or an ERROR event with it."""
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "5"}
        async with self.http.stream("GET", path, params=params) as answer:
            if answer.status_code >= 400:
                await answer.aread()
                self.answers.append({"name": name, "method": "WATCH", "path": path,
                                     "params": params, "contentType": "", "body": None,
                                     "status": answer.status_code, "response": answer.json()})
                return
            async for line in answer.aiter_lines():
                event = json.loads(line) if line.strip() else {}
                if event.get("type") == "ERROR":
                    self.answers.append({"name": name, "method": "WATCH", "path": path,
                                         "params": params, "contentType": "", "body": None,
                                         "status": answer.status_code, "response": event})
                    return
        raise RuntimeError(f"a watch of {path} from {version} ended without an ERROR event")


async def install_crd(r: Recorder) -> None:
    crd = yaml.safe_load((ROOT / "crds" / "tuningstudy.yaml").read_text())
    made = await r.send("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                        body=crd)
    if made.status_code not in (201, 409):
        raise SystemExit(f"installing the CRD: {made.status_code} {made.text}")
    for _ in range(100):
        if (await r.send("GET", STUDIES)).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the TuningStudy CRD did not become served in 10 s")


async def compact_etcd(etcd: str) -> None:
    """Compact etcd's history up to now, as a long-running cluster does every 5 minutes, so
    that a watch from an old version is refused."""
    async with httpx.AsyncClient(base_url=etcd, timeout=10) as http:
        head = (await http.post("/v3/kv/range", json={"key": "AA=="})).json()
        revision = head["header"]["revision"]
        (await http.post("/v3/kv/compaction",
                         json={"revision": revision, "physical": True})).raise_for_status()


async def record(http: httpx.AsyncClient, etcd: str) -> list[dict[str, Any]]:
    r = Recorder(http)
    for ns in (NS, GONE_NS):
        made = await r.send("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if made.status_code != 201:
            raise SystemExit(f"creating namespace {ns}: {made.status_code} {made.text}; "
                             f"delete it first (kubectl delete ns {ns}) so the answers start "
                             "from nothing")
    await install_crd(r)
    # Jobs: create, a taken name, a read, a patch, a missing one, a failed test op, a stale
    # replace, a dry run the server refuses.
    await r.call("create job", "POST", JOBS, body=job("trial-0"))
    await r.call("create job again", "POST", JOBS, body=job("trial-0"))
    got = await r.call("get job", "GET", f"{JOBS}/trial-0")
    await r.call("annotate job", "PATCH", f"{JOBS}/trial-0",
                 body={"metadata": {"annotations": {names.RESULT_ANNOTATION: "{}"}}},
                 content_type="application/merge-patch+json")
    await r.call("patch missing job", "PATCH", f"{JOBS}/trial-9",
                 body={"metadata": {"annotations": {"a": "b"}}},
                 content_type="application/merge-patch+json")
    await r.call("json patch failed test", "PATCH", f"{JOBS}/trial-0",
                 body=[{"op": "test", "path": "/metadata/labels/absent", "value": "x"},
                       {"op": "remove", "path": "/metadata/labels/absent"}],
                 content_type="application/json-patch+json")
    stale = copy.deepcopy(got["response"])
    await r.call("replace job with a stale version", "PUT", f"{JOBS}/trial-0", body=stale)
    await r.call("dry run of an invalid job", "POST", JOBS,
                 body=job("trial-1", restartPolicy="Always"), params={"dryRun": "All"})
    await r.call("dry run of a valid job", "POST", JOBS, body=job("trial-1"),
                 params={"dryRun": "All"})
    listing = await r.call("list jobs", "GET", JOBS,
                           params={"labelSelector": names.STUDY_UID_LABEL})
    # Events have no watch cache in the apiserver, so their watch reaches etcd and meets the
    # compaction as a watch of any kind does once the cache's window has moved past it.
    await compact_etcd(etcd)
    await r.watch_error("watch from a compacted version", f"/api/v1/namespaces/{NS}/events",
                        "1")
    del listing
    # Leases: create, a taken name, a stale replace.
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "kubetune-operator", "namespace": NS},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "renewTime": "2026-01-01T00:00:00.000000Z"}}
    await r.call("create lease", "POST", LEASES, body=lease)
    await r.call("create lease again", "POST", LEASES, body=lease)
    current = await r.call("get lease", "GET", f"{LEASES}/kubetune-operator")
    await r.call("get missing lease", "GET", f"{LEASES}/other")
    renewed = copy.deepcopy(current["response"])
    renewed["spec"]["holderIdentity"] = "b"
    await r.call("replace lease", "PUT", f"{LEASES}/kubetune-operator", body=renewed)
    await r.call("replace lease with a stale version", "PUT", f"{LEASES}/kubetune-operator",
                 body=current["response"])
    # Trial RBAC: a Role, and the same again.
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": names.TRIAL_ROLE, "namespace": NS},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]}
    await r.call("create role", "POST", ROLES, body=role)
    await r.call("create role again", "POST", ROLES, body=role)
    # A study's status: written, and for a study that is gone.
    study = {"apiVersion": names.API_VERSION, "kind": names.KIND,
             "metadata": {"name": "demo", "namespace": NS},
             "spec": json.loads((HERE / "study-spec.json").read_text())}
    await r.call("create study", "POST", STUDIES, body=study)
    await r.call("write study status", "PATCH", f"{STUDIES}/demo/status",
                 body={"status": {"nextTrial": 1, "conditions": []}},
                 content_type="application/merge-patch+json")
    await r.call("write status of a missing study", "PATCH", f"{STUDIES}/gone/status",
                 body={"status": {"nextTrial": 1}},
                 content_type="application/merge-patch+json")
    # A namespace that is gone, and one being deleted, refuse new objects.
    await r.call("create job in a missing namespace", "POST",
                 "/apis/batch/v1/namespaces/kubetune-recorded-none/jobs",
                 body={**job("trial-0"), "metadata": {**job("trial-0")["metadata"],
                                                      "namespace": "kubetune-recorded-none"}})
    await r.send("DELETE", f"/api/v1/namespaces/{GONE_NS}")
    await r.call("create job in a terminating namespace", "POST",
                 f"/apis/batch/v1/namespaces/{GONE_NS}/jobs",
                 body={**job("trial-0"), "metadata": {**job("trial-0")["metadata"],
                                                      "namespace": GONE_NS}})
    await r.send("DELETE", f"/api/v1/namespaces/{NS}")
    return r.answers


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".devcluster")
    args = parser.parse_args()
    state = cluster.load_state(args.state_dir.resolve())
    if state is None:
        raise SystemExit(f"no devcluster in {args.state_dir}: start one with "
                         "`.venv/bin/python -m kubetune_devcluster up`")
    pki = state.root / "pki"
    tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    async with httpx.AsyncClient(base_url=state.server, verify=tls, timeout=30) as http:
        answers = await record(http, f"http://127.0.0.1:{state.etcd_port}")
    out = HERE / "answers.json"
    out.write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(answers)} answers to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
