"""Reading studies from the cluster: a few synchronous GETs with the credentials that the
``kubernetes`` package's configuration loader reads (``kubetune.kube.credentials``: KUBECONFIG
with any kind of user, exec and auth-provider plugins included, the in-cluster service account
or ~/.kube/config). The command only reads, so it needs get/list on tuningstudies, jobs, pods
and events, nothing more.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from kubetune._cli import views
from kubetune._cli.errors import CommandError
from kubetune.core import workloads
from kubetune.kube import conventions as names
from kubetune.kube import credentials as logins
from kubetune.kube import errors

__all__ = ["ClusterError", "ClusterReader", "NotFoundError"]


class ClusterError(CommandError):
    """The API server could not be reached or refused a request; the message says which."""


class NotFoundError(ClusterError):
    """No such object."""


def _studies_path(namespace: str | None) -> str:
    base = f"/apis/{names.GROUP}/{names.VERSION}"
    return f"{base}/namespaces/{namespace}/{names.PLURAL}" if namespace else \
        f"{base}/{names.PLURAL}"


class ClusterReader:
    """GETs against the API server of ``credentials`` (default: ``credentials.load()``) over
    one kept-alive HTTPS connection. Refused credentials (401) are loaded again once, so an exec
    plugin can renew an expired token; refused again, the error names the context and the fix.
    """

    def __init__(self, credentials: logins.Credentials | None = None, *,
                 timeout: float = 30.0):
        self.login = logins.Login(credentials)
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._conn_for: tuple[Any, ...] | None = None
        self._check(self.credentials)  # a kubeconfig that cannot be used fails here, at once

    @property
    def credentials(self) -> logins.Credentials:
        try:
            return self.login.current()
        except logins.CredentialsError as e:
            raise ClusterError(str(e)) from None

    @property
    def namespace(self) -> str:
        """The kubeconfig context's namespace (or the pod's, in a cluster)."""
        return self.credentials.namespace

    @staticmethod
    def _check(credentials: logins.Credentials) -> urllib.parse.SplitResult:
        url = urllib.parse.urlsplit(credentials.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ClusterError(f"server {credentials.server!r} of {credentials.where()} is not "
                               "an http(s) URL; fix the cluster's server field")
        return url

    def _connection(self, credentials: logins.Credentials) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn_for != credentials.tls_material():
            self.close()
        if self._conn is None:
            url = self._check(credentials)
            if url.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    url.hostname, url.port or 443, timeout=self._timeout,
                    context=logins.ssl_context(credentials))
            else:
                self._conn = http.client.HTTPConnection(url.hostname, url.port or 80,
                                                        timeout=self._timeout)
            self._conn_for = credentials.tls_material()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, credentials: logins.Credentials, target: str) -> tuple[int, bytes]:
        """One GET; one retry on a connection the server closed meanwhile."""
        headers = {"Accept": "application/json", "User-Agent": "kubetune-cli",
                   **credentials.headers()}
        for attempt in (1, 2):
            try:
                conn = self._connection(credentials)
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2:
                    raise ClusterError(f"GET {credentials.server}{target}: {e}") from None
        raise AssertionError("unreachable")

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path`` as JSON."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        for attempt in (1, 2):
            credentials = self.credentials
            target = urllib.parse.urlsplit(credentials.server).path.rstrip("/") + path + query
            status, body = self._send(credentials, target)
            if status < 400:
                return json.loads(body)
            error = errors.api_error(status, body, method="GET", path=path)
            if isinstance(error, errors.Unauthorized) and attempt == 1:
                self.login.invalidate(credentials)  # an exec plugin may renew the token
                continue
            raise _cluster_error(error, credentials) from None
        raise AssertionError("unreachable")

    # --- what the command reads ---------------------------------------------------------------

    def studies(self, namespace: str | None) -> list[dict]:
        """The TuningStudies of ``namespace`` (None: of every namespace), by namespace and name."""
        try:
            items = self.get(_studies_path(namespace)).get("items") or []
        except NotFoundError:
            raise NotFoundError(
                f"the API server at {self.credentials.server} does not serve "
                f"{names.PLURAL}.{names.GROUP}: install kubetune's CRD (the Helm chart, or "
                "`kubectl apply -f crds/tuningstudy.yaml`)") from None
        return sorted(items, key=lambda s: (s["metadata"].get("namespace", ""),
                                            s["metadata"]["name"]))

    def study(self, namespace: str, name: str) -> dict:
        try:
            return self.get(f"{_studies_path(namespace)}/{name}")
        except NotFoundError:
            raise NotFoundError(f"TuningStudy {name!r} not found in namespace {namespace!r}; "
                           "`kubetune get -A` lists the studies of every namespace") from None

    def trial_objects(self, study: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
        """The study's trial objects (Jobs, or its trialTemplate's kind) and pods, selected by
        its UID label as the operator does."""
        meta = study["metadata"]
        selector = {"labelSelector": f"{names.STUDY_UID_LABEL}={meta['uid']}"}
        ns = meta["namespace"]
        template = (study.get("spec") or {}).get("trialTemplate")
        kind = None if template is None else workloads.kind_of(template)
        where = f"/apis/batch/v1/namespaces/{ns}/jobs" if kind is None else kind.collection(ns)
        jobs = self.get(where, selector).get("items") or []
        pods = self.get(f"/api/v1/namespaces/{ns}/pods", selector).get("items") or []
        return jobs, pods

    def events(self, study: Mapping[str, Any]) -> list[dict]:
        """The Events the operator posted about the study."""
        meta = study["metadata"]
        selector = {"fieldSelector": f"involvedObject.uid={meta['uid']}"}
        return self.get(f"/api/v1/namespaces/{meta['namespace']}/events", selector).get(
            "items") or []

    def view(self, namespace: str, name: str, *, with_events: bool = True) -> views.StudyView:
        """A study with its trials (and Events), read now."""
        study = self.study(namespace, name)
        jobs, pods = self.trial_objects(study)
        events = self.events(study) if with_events else []
        return views.view_of(study, jobs, pods, events)


def _cluster_error(error: errors.ApiError, credentials: logins.Credentials) -> ClusterError:
    """An API error as the command's user reads it: what was refused, for whom, and the fix."""
    if isinstance(error, errors.NotFound):
        return NotFoundError(error.message or f"{error.path} not found")
    if isinstance(error, errors.Unauthorized):
        return ClusterError(
            f"the API server at {credentials.server} refused the credentials of "
            f"{credentials.where()} (401 Unauthorized): the token has expired or was revoked. "
            "Log in again (run the user's exec or auth-provider login, or put a fresh token "
            "in the kubeconfig), or pick another context with `kubectl config use-context`")
    if isinstance(error, errors.Forbidden):
        return ClusterError(
            f"GET {error.path}: forbidden for the user of {credentials.where()} "
            f"({error.message}); kubetune get/watch need get and list on tuningstudies, jobs, "
            "pods and events in the study's namespace")
    return ClusterError(f"GET {error.path}: HTTP {error.status}: {error.message}")
