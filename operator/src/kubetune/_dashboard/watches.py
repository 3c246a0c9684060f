"""The dashboard's one set of watches: TuningStudies, their trial Jobs and pods (selected by
the study-UID label, never every pod), and the Events about studies, each listed once and then
watched, per namespace or across all of them. A study whose trials are another kind
(``spec.trialTemplate``, e.g. JobSet) starts one more watch, of that kind, the first time a
study of it is seen (at most ``MAX_TRIAL_KINDS`` kinds). Every viewer is served from the
``Store`` these feed, so the API server's cost does not grow with the viewers.

Reads only, through the ``kubernetes`` package (its kubeconfig and in-cluster loading). A
watch that expires (Gone) lists again; any other failure is reported to the store (the page
shows it) and retried with a backoff capped at ``MAX_BACKOFF`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kubetune._dashboard.store import KINDS, Store
from kubetune.core import workloads
from kubetune.kube import conventions as names
from kubetune.kube import errors

__all__ = ["MAX_BACKOFF", "MAX_TRIAL_KINDS", "WATCH_SECONDS", "Watches", "api_client",
           "pod_log", "trial_kind"]

log = logging.getLogger("kubetune.dashboard")

MAX_BACKOFF = 30.0
WATCH_SECONDS = 300  # the server ends each watch after this; it resumes from the last version
MAX_TRIAL_KINDS = 16  # kinds of trial object other than Job watched at once
_EVENT_SELECTOR = f"involvedObject.kind={names.KIND}"


def api_client() -> Any:
    """A ``kubernetes`` ApiClient from KUBECONFIG or ~/.kube/config, else the in-cluster
    service account."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def _typed(e: Exception) -> errors.ApiError | None:
    from kubernetes.client.exceptions import ApiException

    if isinstance(e, ApiException):
        return errors.api_error(int(e.status or 500), e.body or e.reason or "")
    return None


def trial_kind(study: dict[str, Any]) -> workloads.Resource | None:
    """The kind the study's trials are when they are not Jobs (its trialTemplate's), else
    None."""
    template = (study.get("spec") or {}).get("trialTemplate")
    if not isinstance(template, dict):
        return None
    kind = workloads.kind_of(template)
    return None if kind is None else kind.watched_as


class Watches:
    """Threads that keep ``store`` current for ``namespaces`` (None: every namespace)."""

    def __init__(self, api: Any, store: Store, namespaces: Sequence[str] | None = None):
        from kubernetes import client

        self.api = api
        self.store = store
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._core = client.CoreV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._lock = threading.Lock()
        self._trial_kinds: dict[str, workloads.Resource] = {}  # watched, by name

    def _lister(self, kind: str, namespace: str | None) -> Callable[..., Any]:
        """The list call of ``kind``; with watch=True it streams watch events."""
        label = {"label_selector": names.STUDY_UID_LABEL}
        resource = self._trial_kinds.get(kind)
        if resource is not None:
            if namespace is None:
                return lambda **kw: self._custom.list_cluster_custom_object(
                    resource.group, resource.version, resource.resource, **label, **kw)
            return lambda **kw: self._custom.list_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.resource, **label, **kw)
        if kind == "studies":
            if namespace is None:
                return lambda **kw: self._custom.list_cluster_custom_object(
                    names.GROUP, names.VERSION, names.PLURAL, **kw)
            return lambda **kw: self._custom.list_namespaced_custom_object(
                names.GROUP, names.VERSION, namespace, names.PLURAL, **kw)
        if kind == "jobs":
            if namespace is None:
                return lambda **kw: self._batch.list_job_for_all_namespaces(**label, **kw)
            return lambda **kw: self._batch.list_namespaced_job(namespace, **label, **kw)
        if kind == "pods":
            if namespace is None:
                return lambda **kw: self._core.list_pod_for_all_namespaces(**label, **kw)
            return lambda **kw: self._core.list_namespaced_pod(namespace, **label, **kw)
        selector = {"field_selector": _EVENT_SELECTOR}
        if namespace is None:
            return lambda **kw: self._core.list_event_for_all_namespaces(**selector, **kw)
        return lambda **kw: self._core.list_namespaced_event(namespace, **selector, **kw)

    def start(self) -> None:
        for namespace in self.namespaces:
            for kind in KINDS:
                self._start(kind, namespace)

    def _start(self, kind: str, namespace: str | None) -> None:
        t = threading.Thread(target=self._run, args=(kind, namespace), daemon=True,
                             name=f"watch-{kind}-{namespace or 'all'}")
        t.start()
        self._threads.append(t)

    def _follow(self, studies: Sequence[dict[str, Any]]) -> None:
        """Starts watching the trial kinds of ``studies`` not watched yet, in every namespace
        this dashboard reads."""
        for study in studies:
            resource = trial_kind(study)
            if resource is None:
                continue
            with self._lock:
                if resource.name in self._trial_kinds or self._stop.is_set():
                    continue
                if len(self._trial_kinds) >= MAX_TRIAL_KINDS:
                    meta = study.get("metadata") or {}
                    self.store.report(
                        resource.name, None,
                        f"the trials of {meta.get('namespace')}/{meta.get('name')} are "
                        f"{resource.name}, and this dashboard already watches "
                        f"{MAX_TRIAL_KINDS} kinds of trial object; its trials are not shown")
                    continue
                self._trial_kinds[resource.name] = resource
                log.info("watching %s, the trials of %s/%s", resource.name,
                         (study.get("metadata") or {}).get("namespace"),
                         (study.get("metadata") or {}).get("name"))
                for namespace in self.namespaces:
                    self._start(resource.name, namespace)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for resp in list(self._responses):
                resp.close()  # ends a blocked read at once
        for t in self._threads:
            t.join(timeout=5)

    def _run(self, kind: str, namespace: str | None) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                version = self._list(kind, namespace)
                backoff = 1.0
                while not self._stop.is_set():
                    version = self._watch(kind, namespace, version)
            except errors.Gone:
                continue  # the version expired: list again
            except Exception as e:  # reported on the page and retried with a capped backoff
                if self._stop.is_set():
                    return
                typed = _typed(e)
                problem = str(typed) if typed is not None else f"{type(e).__name__}: {e}"
                if isinstance(typed, errors.Forbidden | errors.Unauthorized):
                    problem = (f"cannot list {kind} in "
                               f"{'any namespace' if namespace is None else namespace}: "
                               f"{typed}; grant list and watch on {kind}, or pass "
                               "--namespace NS for the namespaces you can read")
                if self.store.problems.get(f"{kind} {namespace or '*'}") != problem:
                    log.warning("watch of %s in %s: %s", kind, namespace or "all namespaces",
                                problem)
                self.store.report(kind, namespace, problem)
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    def _list(self, kind: str, namespace: str | None) -> str:
        resp = self._lister(kind, namespace)(_preload_content=False, _request_timeout=60)
        body = json.loads(resp.data)
        items = body.get("items") or []
        self.store.replace(kind, namespace, items)
        if kind == "studies":
            self._follow(items)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, kind: str, namespace: str | None, version: str) -> str:
        resp = self._lister(kind, namespace)(
            watch=True, resource_version=version, allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS, _preload_content=False,
            _request_timeout=(30, WATCH_SECONDS + 30))
        with self._lock:
            self._responses.add(resp)
        try:
            for event in _events(resp):
                kind_of_event = event.get("type")
                obj = event.get("object") or {}
                if kind_of_event == "ERROR":
                    raise errors.from_status(obj)
                meta = obj.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                    self.store.apply(kind, kind_of_event, obj)
                    if kind == "studies" and kind_of_event != "DELETED":
                        self._follow([obj])
        finally:
            with self._lock:
                self._responses.discard(resp)
            resp.release_conn()
        return version


def _events(resp: Any) -> Iterator[dict[str, Any]]:
    from kubernetes.watch.watch import iter_resp_lines

    for line in iter_resp_lines(resp):
        if line:
            yield json.loads(line)


def pod_log(api: Any, namespace: str, pod: str, *, tail_lines: int = 2000,
            limit_bytes: int = 1 << 20) -> str:
    """The pod's output (its last ``tail_lines`` lines, at most ``limit_bytes``)."""
    from kubernetes import client

    try:
        return str(client.CoreV1Api(api).read_namespaced_pod_log(
            pod, namespace, tail_lines=tail_lines, limit_bytes=limit_bytes,
            _request_timeout=30))
    except Exception as e:
        typed = _typed(e)
        if typed is None:
            raise
        raise typed from None
