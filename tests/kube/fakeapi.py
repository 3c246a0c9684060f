"""An in-memory apiserver for unit tests of the operator's I/O, answering as the real one did
in tests/kube/recorded/answers.json (recorded from devcluster by record.py there).

It keeps objects by path, gives each write a new resourceVersion (random tokens, so code that
orders them as numbers fails here), applies merge and JSON patches, checks a PUT's
resourceVersion, and answers failures with the recorded Status bodies (names swapped in),
turned into typed errors by the same ``kube.errors.api_error`` as the real client. What the
real server would judge and a fake cannot (a Job template's validity) is primed with
``refuse``; a namespace being deleted with ``terminating``. ``test_fakeapi.py`` replays the
recording against it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from kubetune.core import times
from kubetune.kube import api as paths
from kubetune.kube import errors

ANSWERS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "recorded" / "answers.json").read_text())


def recorded(name: str) -> dict[str, Any]:
    """The recorded call named ``name``."""
    for entry in ANSWERS:
        if entry["name"] == name:
            return entry
    raise KeyError(f"no recorded answer named {name!r}: re-record with record.py")


def _parts(path: str) -> tuple[str, str, str | None, str | None]:
    """(group, plural, namespace, name) of an API path."""
    bits = path.strip("/").split("/")
    group, rest = ("", bits[2:]) if bits[0] == "api" else (bits[1], bits[3:])
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    return group, rest[0], namespace, rest[1] if len(rest) > 1 else None


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def error_like(template: str, path: str, name: str, method: str) -> errors.ApiError:
    """The recorded failure ``template``, about ``name`` at ``path`` instead."""
    entry = recorded(template)
    body = copy.deepcopy(entry["response"])
    details = body.get("details") or {}
    group, plural, _, _ = _parts(path)
    if "name" in details and details.get("kind") != "namespaces":
        was = details["name"]
        body["message"] = body["message"].replace(f'"{was}"', f'"{name}"')
        details["name"] = name
        if details.get("kind") == _parts(entry["path"])[1]:  # a resource, not a Kind: swap it
            body["message"] = body["message"].replace(
                _resource(details.get("group", ""), details["kind"]), _resource(group, plural), 1)
            details["kind"] = plural
            if group:
                details["group"] = group
            else:
                details.pop("group", None)
    return errors.api_error(entry["status"], json.dumps(body), method=method, path=path)


class FakeApi:
    """The ``kube.api.Api`` protocol over a dict of objects. ``calls`` lists (method, path)
    of every call, ``writes`` counts the successful writes."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.writes = 0
        self.terminating: set[str] = set()
        self.missing_namespaces: set[str] = set()
        self.refuse: dict[str, str] = {}  # collection path -> recorded failure for a dry run
        self.failures: list[tuple[str, str, BaseException]] = []  # (method, path prefix, error)
        self.log: list[tuple[str, str, str, dict[str, Any]]] = []  # version, type, path, obj
        self.compacted: set[str] = set()
        self.logs: dict[str, str] = {}  # pod path -> its container's log, as the kubelet serves it

    # --- helpers for tests -------------------------------------------------------------------

    def fail(self, method: str, prefix: str, error: BaseException) -> None:
        """The next ``method`` call on a path starting with ``prefix`` raises ``error``."""
        self.failures.append((method, prefix, error))

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` at ``path`` as another controller (Job controller, kubelet) would."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", times.rfc3339(self.clock()))
        event = "MODIFIED" if path in self.objects else "ADDED"
        self._store(path, obj, event)
        return copy.deepcopy(obj)

    def delete(self, path: str) -> None:
        obj = self.objects.pop(path)
        self.log.append((self._version(), "DELETED", path, copy.deepcopy(obj)))

    def compact(self) -> None:
        """Forget history, as etcd's compaction does: a watch from any version seen so far
        gets 410 Expired."""
        self.compacted.update(v for v, _, _, _ in self.log)

    def under(self, collection: str) -> list[dict[str, Any]]:
        """The objects of a collection (namespaced, or of all namespaces)."""
        group, plural, namespace, _ = _parts(collection)
        out = []
        for path, obj in sorted(self.objects.items()):
            g, p, ns, name = _parts(path)
            if (g, p) == (group, plural) and namespace in (None, ns) and name is not None \
                    and not path.endswith("/status"):
                out.append(copy.deepcopy(obj))
        return out

    def labelled(self, collection_suffix: str, label: str, value: str) -> list[dict[str, Any]]:
        """Objects whose path has ``/<collection_suffix>/`` and whose ``label`` is ``value``."""
        return [copy.deepcopy(o) for p, o in sorted(self.objects.items())
                if f"/{collection_suffix}/" in p
                and (o["metadata"].get("labels") or {}).get(label) == value]

    # --- internals ---------------------------------------------------------------------------

    def _version(self) -> str:
        return uuid.uuid4().hex[:10]

    def _store(self, path: str, obj: dict[str, Any], event: str) -> None:
        version = self._version()
        obj["metadata"]["resourceVersion"] = version
        self.objects[path] = obj
        self.log.append((version, event, path, copy.deepcopy(obj)))

    def _enter(self, method: str, path: str) -> None:
        self.calls.append((method, path))
        for i, (m, prefix, error) in enumerate(self.failures):
            if m == method and path.startswith(prefix):
                del self.failures[i]
                raise error

    def _existing(self, path: str, method: str) -> tuple[str, dict[str, Any]]:
        base = path.removesuffix("/status")
        if base not in self.objects:
            raise error_like("patch missing job", base, _parts(base)[3] or "", method)
        return base, self.objects[base]

    # --- the protocol ------------------------------------------------------------------------

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        self._enter("GET", path)
        name = _parts(path)[3]
        if name is None:
            items = self.under(path)
            selector = params.get("labelSelector")
            if selector:
                key, _, value = selector.partition("=")
                items = [o for o in items if key in (o["metadata"].get("labels") or {})
                         and (not value or o["metadata"]["labels"][key] == value)]
            return {"kind": "List", "apiVersion": "v1",
                    "metadata": {"resourceVersion": self._version()}, "items": items}
        if path not in self.objects:
            raise error_like("get missing lease", path, name, "GET")
        return copy.deepcopy(self.objects[path])

    async def text(self, path: str, **params: str) -> str:
        """A pod's log: the last ``tailLines`` lines of ``logs[pod path]``."""
        self._enter("GET", path)
        pod = path.removesuffix("/log")
        if pod not in self.objects:
            raise error_like("get missing lease", pod, _parts(pod)[3] or "", "GET")
        lines = self.logs.get(pod, "").splitlines()
        tail = int(params.get("tailLines") or len(lines))
        return "\n".join(lines[-tail:]) if tail else ""

    async def create(self, path: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        self._enter("POST", path)
        _, _, namespace, _ = _parts(path)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or f"{meta.get('generateName', '')}{uuid.uuid4().hex[:5]}"
        if namespace in self.missing_namespaces:
            raise error_like("create job in a missing namespace", path, name, "POST")
        if namespace in self.terminating:
            raise error_like("create job in a terminating namespace", path, name, "POST")
        if dry_run and path in self.refuse:
            raise error_like(self.refuse[path], path, name, "POST")
        target = f"{path}/{name}"
        if target in self.objects:
            raise error_like("create job again", path, name, "POST")
        meta.update(name=name, uid=str(uuid.uuid4()), generation=1,
                    creationTimestamp=times.rfc3339(self.clock()))
        if namespace:
            meta["namespace"] = namespace
        if dry_run:
            return obj
        self.writes += 1
        self._store(target, obj, "ADDED")
        return copy.deepcopy(obj)

    async def merge_patch(self, path: str, body: Any) -> dict[str, Any]:
        self._enter("PATCH", path)
        base, obj = self._existing(path, "PATCH")
        if path.endswith("/status"):
            body = {"status": body.get("status")}
        updated = paths.merged(obj, body)
        self.writes += 1
        self._store(base, updated, "MODIFIED")
        return copy.deepcopy(updated)

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        self._enter("PATCH", path)
        base, obj = self._existing(path, "PATCH")
        updated = copy.deepcopy(obj)
        for op in ops:
            *parents, last = [p.replace("~1", "/").replace("~0", "~")
                              for p in op["path"].strip("/").split("/")]
            node: Any = updated
            try:
                for p in parents:
                    node = node[int(p)] if isinstance(node, list) else node[p]
                key: Any = int(last) if isinstance(node, list) else last
                if op["op"] == "test":
                    if node[key] != op["value"]:
                        raise LookupError
                elif op["op"] == "remove":
                    del node[key]
                elif op["op"] in ("add", "replace"):
                    node[key] = copy.deepcopy(op["value"])
            except (LookupError, ValueError, TypeError):
                raise error_like("json patch failed test", base, _parts(base)[3] or "",
                                 "PATCH") from None
        self.writes += 1
        self._store(base, updated, "MODIFIED")
        return copy.deepcopy(updated)

    async def replace(self, path: str, body: Any) -> dict[str, Any]:
        self._enter("PUT", path)
        base, obj = self._existing(path, "PUT")
        if body["metadata"].get("resourceVersion") != obj["metadata"]["resourceVersion"]:
            raise error_like("replace lease with a stale version", base, _parts(base)[3] or "",
                             "PUT")
        updated = copy.deepcopy(body)
        self.writes += 1
        self._store(base, updated, "MODIFIED")
        return copy.deepcopy(updated)

    async def watch(self, path: str, resource_version: str, *, timeout_seconds: int = 290,
                    **params: str) -> AsyncIterator[dict[str, Any]]:
        """The logged events of ``path``'s collection after ``resource_version``, then the end
        (as a server ends a watch at its timeout); a compacted version gets the recorded
        410 ERROR event."""
        self.calls.append(("WATCH", path))
        if resource_version in self.compacted:
            yield copy.deepcopy(recorded("watch from a compacted version")["response"])
            return
        versions = [v for v, _, _, _ in self.log]
        start = versions.index(resource_version) + 1 if resource_version in versions else 0
        group, plural, namespace, _ = _parts(path)
        for _, kind, where, obj in self.log[start:]:
            g, p, ns, _ = _parts(where)
            if (g, p) == (group, plural) and namespace in (None, ns):
                yield {"type": kind, "object": copy.deepcopy(obj)}
        await asyncio.sleep(0.01)  # the server holds the request a moment before it ends it

    async def close(self) -> None:
        return None
