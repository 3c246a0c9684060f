"""ClusterReader against a small fake API server on loopback: paths, selectors, credentials,
errors, and the view it builds through kube.observe."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cli_cases import SPEC
from kubetune._cli.cluster import ClusterError, ClusterReader, NotFoundError
from kubetune.core import protocol
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState
from kubetune.kube.credentials import Credentials

UID = "9f1c2d3e-0000-4000-8000-000000000001"
STUDY = {"metadata": {"name": "demo", "namespace": "ns1", "uid": UID,
                      "creationTimestamp": "2025-01-01T00:00:00Z"},
         "spec": SPEC, "status": {"nextTrial": 2}}
JOB = {"metadata": {"name": "demo-9f1c2-0", "namespace": "ns1",
                    "labels": {"kubetune.dev/trial": "0", "kubetune.dev/study-uid": UID},
                    "annotations": {
                        "kubetune.dev/params": '{"x": 0.5, "lr": 0.01, "opt": "adam"}',
                        "kubetune.dev/result": protocol.encode_result(TrialResult(
                            TrialState.SUCCEEDED, None, 0.25, 2, ((1, 0.5), (2, 0.25))))}},
       "status": {"startTime": "2025-01-01T00:00:05Z",
                  "completionTime": "2025-01-01T00:00:09Z"}}


class FakeApi:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, str | None]] = []
        self.routes: dict[str, tuple[int, dict]] = {}

    def answer(self, path: str, query: dict, auth: str | None) -> tuple[int, dict]:
        self.requests.append((path, query, auth))
        return self.routes.get(path, (404, {"kind": "Status", "message": f"{path} not found"}))


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, ClusterReader]]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            code, body = fake.answer(url.path, query, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reader = ClusterReader(Credentials(server=f"http://127.0.0.1:{server.server_port}",
                                       authorization="Bearer secret", namespace="team",
                                       context="dev", source="KUBECONFIG=/home/me/kubeconfig"))
    try:
        yield fake, reader
    finally:
        reader.close()
        server.shutdown()
        server.server_close()


def test_lists_studies_of_one_namespace_or_all(api):
    fake, reader = api
    items = [{"metadata": {"name": n, "namespace": ns}} for ns, n in
             (("b", "z"), ("a", "y"), ("a", "x"))]
    fake.routes["/apis/kubetune.dev/v1alpha1/tuningstudies"] = (200, {"items": items})
    fake.routes["/apis/kubetune.dev/v1alpha1/namespaces/a/tuningstudies"] = (200, {"items": []})
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in reader.studies(None)] \
        == [("a", "x"), ("a", "y"), ("b", "z")]
    assert reader.studies("a") == []
    assert reader.namespace == "team"
    assert all(auth == "Bearer secret" for _, _, auth in fake.requests)


def test_a_missing_study_names_itself_and_the_fix(api):
    _, reader = api
    with pytest.raises(NotFoundError, match="TuningStudy 'nope' not found in namespace 'ns1'"):
        reader.study("ns1", "nope")


def test_a_cluster_without_the_crd_says_how_to_install_it(api):
    _, reader = api
    with pytest.raises(NotFoundError, match=r"install kubetune's CRD"):
        reader.studies(None)


def test_server_errors_are_cluster_errors(api):
    fake, reader = api
    fake.routes["/apis/kubetune.dev/v1alpha1/tuningstudies"] = (
        403, {"message": "tuningstudies is forbidden: User cannot list"})
    with pytest.raises(ClusterError, match=r"forbidden for the user of context 'dev'.*"
                       r"tuningstudies is forbidden.*need get and list"):
        reader.studies(None)
    fake.routes["/apis/kubetune.dev/v1alpha1/tuningstudies"] = (
        500, {"message": "etcdserver: request timed out"})
    with pytest.raises(ClusterError, match="HTTP 500: etcdserver: request timed out"):
        reader.studies(None)


def test_refused_credentials_name_the_context_and_the_fix(api):
    fake, reader = api
    fake.routes["/apis/kubetune.dev/v1alpha1/tuningstudies"] = (
        401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"})
    with pytest.raises(ClusterError) as info:
        reader.studies(None)
    message = str(info.value)
    assert "context 'dev' of KUBECONFIG=/home/me/kubeconfig" in message
    assert "expired or was revoked" in message
    assert "Log in again" in message
    # Refused once, the credentials were loaded again and the call made once more.
    assert len(fake.requests) == 2


def test_view_reads_trials_by_uid_label_and_events_by_uid(api):
    fake, reader = api
    base = "/apis/kubetune.dev/v1alpha1/namespaces/ns1/tuningstudies/demo"
    fake.routes[base] = (200, STUDY)
    fake.routes["/apis/batch/v1/namespaces/ns1/jobs"] = (200, {"items": [JOB]})
    fake.routes["/api/v1/namespaces/ns1/pods"] = (200, {"items": []})
    fake.routes["/api/v1/namespaces/ns1/events"] = (200, {"items": [
        {"metadata": {"resourceVersion": "12"}, "reason": "TrialSucceeded", "message": "b",
         "lastTimestamp": "2025-01-01T00:00:09Z"},
        {"metadata": {"resourceVersion": "11"}, "reason": "TrialCreated", "message": "a",
         "lastTimestamp": "2025-01-01T00:00:09Z"}]})
    view = reader.view("ns1", "demo")
    queries = {path: query for path, query, _ in fake.requests}
    assert queries["/apis/batch/v1/namespaces/ns1/jobs"] == {
        "labelSelector": f"kubetune.dev/study-uid={UID}"}
    assert queries["/api/v1/namespaces/ns1/pods"] == {
        "labelSelector": f"kubetune.dev/study-uid={UID}"}
    assert queries["/api/v1/namespaces/ns1/events"] == {
        "fieldSelector": f"involvedObject.uid={UID}"}
    # Trial 0 from its Job's result; trial 1 (below nextTrial 2, no Job) is Lost.
    assert [(t.number, t.state, t.value) for t in view.trials] == [
        (0, TrialState.SUCCEEDED, 0.25), (1, TrialState.LOST, None)]
    assert view.trials[0].end_time - view.trials[0].start_time == 4.0
    assert [e.reason for e in view.events] == ["TrialCreated", "TrialSucceeded"]
    assert view.best().number == 0
