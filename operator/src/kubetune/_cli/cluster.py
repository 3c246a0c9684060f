"""Reading studies from the cluster: a few synchronous GETs with the credentials the operator
uses (``kubetune.kube.client.load_credentials``: KUBECONFIG, the in-cluster service account or
~/.kube/config). The command only reads, so it needs get/list on tuningstudies, jobs, pods and
events, nothing more.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from kubetune._cli import views
from kubetune._cli.errors import CommandError
from kubetune.kube import conventions as names
from kubetune.kube.client import Credentials, load_credentials

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
    """GETs against the API server of ``credentials`` over one kept-alive HTTPS connection."""

    def __init__(self, credentials: Credentials | None = None, *, timeout: float = 30.0):
        if credentials is None:
            try:
                credentials = load_credentials()
            except RuntimeError as e:
                raise ClusterError(str(e)) from None
            except OSError as e:
                where = e.filename or os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise ClusterError(f"cannot read the kubeconfig {where}: {e.strerror}; point "
                                   "KUBECONFIG at a readable one") from None
            except (KeyError, TypeError, ValueError, StopIteration, yaml.YAMLError) as e:
                where = os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise ClusterError(f"the kubeconfig {where} is not usable ({type(e).__name__}: "
                                   f"{e}); check its current-context, clusters and users"
                                   ) from None
        self.credentials = credentials
        url = urllib.parse.urlsplit(self.credentials.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ClusterError(f"server {self.credentials.server!r} in the kubeconfig is not an "
                               "http(s) URL; fix the cluster's server field")
        self._url = url
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    @property
    def namespace(self) -> str:
        """The kubeconfig context's namespace (or the pod's, in a cluster)."""
        return self.credentials.namespace

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            port = self._url.port
            if self._url.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._url.hostname, port or 443, timeout=self._timeout,
                    context=self.credentials.ssl_context())
            else:
                self._conn = http.client.HTTPConnection(self._url.hostname, port or 80,
                                                        timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path`` as JSON; one retry on a connection the server closed meanwhile."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        target = self._url.path.rstrip("/") + path + query
        headers = {"Accept": "application/json", "User-Agent": "kubetune-cli"}
        token = self.credentials.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            try:
                conn = self._connection()
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                body = response.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 2:
                    raise ClusterError(f"GET {self.credentials.server}{path}: {e}") from None
        if response.status == 404:
            raise NotFoundError(_message(body) or f"{path} not found")
        if response.status >= 400:
            raise ClusterError(f"GET {path}: HTTP {response.status}: {_message(body)}")
        return json.loads(body)

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
        """The study's trial Jobs and pods, selected by its UID label as the operator does."""
        meta = study["metadata"]
        selector = {"labelSelector": f"{names.STUDY_UID_LABEL}={meta['uid']}"}
        ns = meta["namespace"]
        jobs = self.get(f"/apis/batch/v1/namespaces/{ns}/jobs", selector).get("items") or []
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


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        return body[:300].decode(errors="replace")
