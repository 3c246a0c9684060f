"""The calls the operator makes, as a protocol, and the paths it makes them on.

``Api`` is all that the reconcile, the trial RBAC set-up, the status writer, the Lease and
the watch cache need from a client: ``kube.client.Client`` satisfies it against a real
apiserver, ``run --local`` against trial processes, and the unit tests against recorded
answers. Every failure is raised as a class of ``kube.errors``.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from kubetune.kube import conventions as names

__all__ = [
    "Api",
    "events_path",
    "job_path",
    "jobs_path",
    "merged",
    "pod_log_path",
    "pod_path",
    "services_path",
    "study_path",
]


class Api(Protocol):
    """JSON calls on API paths; each returns the object as the server answered it."""

    async def get(self, path: str, **params: str) -> dict[str, Any]: ...

    async def text(self, path: str, **params: str) -> str: ...

    async def create(self, path: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]: ...

    async def merge_patch(self, path: str, body: Any) -> dict[str, Any]: ...

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]: ...

    async def replace(self, path: str, body: Any) -> dict[str, Any]: ...

    def watch(self, path: str, resource_version: str, *, timeout_seconds: int = 290,
              **params: str) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def job_path(namespace: str, name: str) -> str:
    return f"{jobs_path(namespace)}/{name}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def pod_log_path(namespace: str, name: str) -> str:
    return f"{pod_path(namespace, name)}/log"


def services_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services"


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


def study_path(namespace: str, name: str) -> str:
    return (f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}/"
            f"{name}")


def merged(target: Any, patch: Any) -> Any:
    """``target`` with a JSON merge patch (RFC 7386) applied, as the apiserver applies it:
    objects merge key by key, null deletes a key, anything else (lists too) replaces. Pure."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out
