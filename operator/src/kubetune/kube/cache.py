"""An in-memory cache of trial Jobs and pods, fed by watches with a server-side label selector
(``kubetune.dev/study-uid``), so the operator never watches every pod of the cluster and a
reconcile reads what changed instead of listing history. It can always be rebuilt: a restart
lists again.

resourceVersions are opaque (Kubernetes promises no order between them), so the cache never
compares them except for equality. A watch delivers one collection's changes in order; what
the operator itself wrote (``wrote``) is kept until the watch brings that very version, and
the older events before it are passed over, so a reconcile never sees its own write undone.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubetune.core import workloads as workloads_
from kubetune.kube import conventions as names
from kubetune.kube import errors
from kubetune.kube.api import Api
from kubetune.kube.failures import Backoff, FailureLog
from kubetune.kube.observe import as_job

__all__ = ["KINDS", "TrialCache", "slim"]

log = logging.getLogger("kubetune.cache")

KINDS = {"jobs": "/apis/batch/v1", "pods": "/api/v1"}
_YIELD_EVERY = 50
# Versions remembered per object, and uids of deleted objects: enough to tell that a write's
# answer is older than events that overtook it on the way back.
_SEEN_VERSIONS = 4
_GONE_UIDS = 4096
# Trial ends remembered per study until a new trial follows each (``ended_seen``).
_ENDS = 64


@dataclass
class _Written:
    """A version the operator wrote. ``strict``: events of other versions are older and
    passed over until this one arrives; once a re-list could not tell which is newer, the
    next event is taken, whatever it is."""

    version: str
    strict: bool = True


# What the operator reads of a cached object's spec besides its metadata and status: of a
# Job, its own fields and the objective its containers were told (``observe.objective_of``);
# of a pod, the fields below and its containers' names. The rest (the pod template, volumes,
# commands, env) is most of what is left of a trial's bytes, times 20,000 trials.
_JOB_ENV = frozenset({"KUBETUNE_METRIC", "KUBETUNE_DIRECTION"})
_SHORT = 64  # strings up to this long are interned
_SPECS = 4096  # distinct Job specs shared before the table starts again
_POD_SPEC = frozenset({"activeDeadlineSeconds", "nodeName", "hostname", "subdomain",
                       "restartPolicy", "serviceAccountName", "schedulingGates"})


def slim(kind: str, obj: dict[str, Any],
         specs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``obj`` with only the parts of its spec the operator reads (Jobs and pods; other
    kinds as they are), its keys and short strings shared with every other object's
    (``sys.intern``: a third of a small dict's bytes). A new mapping: ``obj`` itself is left as
    it was.

    A Job's spec so slimmed (without its selector, which holds its own UID) is the same for
    every trial of a study: with ``specs`` (canonical JSON -> spec) equal specs are one object,
    shared by every Job that has it. Cached objects are read, never changed, so sharing is
    safe."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    if kind == "jobs":
        pod = (spec.get("template") or {}).get("spec") or {}
        containers = [{"name": c.get("name"),
                       "env": [e for e in c.get("env") or [] if e.get("name") in _JOB_ENV]}
                      for c in pod.get("containers") or []]
        kept = _shared_keys({**{k: v for k, v in spec.items() if k != "selector"},
                             "template": {"spec": {"containers": containers}}})
        if specs is not None:
            if len(specs) > _SPECS:
                specs.clear()  # the objects that share one keep it; later ones share anew
            kept = specs.setdefault(json.dumps(kept, sort_keys=True), kept)
        return {**_shared_keys({k: v for k, v in obj.items() if k != "spec"}), "spec": kept}
    if kind == "pods":
        kept = {k: v for k, v in spec.items() if k in _POD_SPEC}
        kept["containers"] = [{"name": c.get("name")} for c in spec.get("containers") or []]
        return _shared_keys({**obj, "spec": kept})
    return obj


def _shared_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {sys.intern(k): _shared(v) for k, v in obj.items()}


def _shared(value: Any) -> Any:
    if isinstance(value, dict):
        return _shared_keys(value)
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHORT:
        # Condition types, reasons and messages, phases, label values, timestamps: most
        # repeat across thousands of trials.
        return sys.intern(value)
    return value


def _ended(obj: dict[str, Any] | None) -> bool:
    """Whether a trial object (a Job, or another kind as ``observe.as_job`` reads it) has
    ended."""
    if obj is None:
        return False
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (as_job(obj).get("status") or {}).get("conditions") or [])


def _version(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion") or "")


def _study(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


class TrialCache:
    """Jobs and pods of every study, by study UID; ``on_change(uid)`` after each change."""

    def __init__(self, api: Api, namespaces: Iterable[str] | None,
                 on_change: Callable[[str], Any],
                 workloads: Iterable[workloads_.Resource] = ()):
        self.api = api
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.on_change = on_change
        # Jobs, pods, and the trial kinds other than Job the operator was told to watch.
        self.kinds = {**KINDS, **{w.resource: f"/apis/{w.group}/{w.version}" for w in workloads}}
        self.trial_kinds = ["jobs", *(k for k in self.kinds if k not in KINDS)]
        self.store: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
            k: {} for k in self.kinds}
        # Pods done with: ended, their result finalizer released, their trial's result on its
        # Job. Nothing reads them but the re-derivation of a result edited by hand, so they
        # are kept as compact JSON (a fifth of the memory) and out of ``pods_of``.
        self.settled: dict[str, dict[str, bytes]] = {}
        self._recorded: dict[str, set[str]] = {}  # study UID -> trial numbers with a result
        self._ends: dict[str, collections.deque[float]] = {}  # see ended_seen
        self._written: dict[tuple[str, str], _Written] = {}
        self._seen: dict[tuple[str, str], tuple[str, ...]] = {}
        self._gone: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._synced: dict[tuple[str, str | None], asyncio.Event] = {
            (k, ns): asyncio.Event() for k in self.kinds for ns in self.namespaces
        }
        self._failures = FailureLog(log)
        self._specs: dict[str, dict[str, Any]] = {}  # see ``slim``

    async def wait_synced(self) -> None:
        await asyncio.gather(*(e.wait() for e in self._synced.values()))

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        """The study's trial objects: its Jobs, or its trialTemplate resources."""
        return [obj for kind in self.trial_kinds
                for obj in self.store[kind].get(uid, {}).values()]

    def pods_of(self, uid: str, settled: bool = False) -> list[dict[str, Any]]:
        """The study's pods; with ``settled`` also those done with (see ``settled``)."""
        pods = list(self.store["pods"].get(uid, {}).values())
        if settled:
            pods += [json.loads(b) for b in self.settled.get(uid, {}).values()]
        return pods

    def jobs_named(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The trial Jobs of the study called ``name`` in ``namespace`` (of each study that
        had the name, while the garbage collector removes a deleted one's)."""
        label = names.label_value(name)
        out: list[dict[str, Any]] = []
        for jobs in self.store["jobs"].values():
            first = next(iter(jobs.values()), None)
            if first is not None and first["metadata"].get("namespace") == namespace and (
                    first["metadata"].get("labels") or {}).get(names.STUDY_LABEL) == label:
                out += jobs.values()
        return out

    def ended_seen(self, uid: str) -> float | None:
        """When (``time.monotonic``) the watch brought the end of the study's oldest trial that
        no new trial has followed yet, taken off as a new trial follows it; None when there is
        none (ends that came with a listing, as after a restart, are not counted)."""
        ends = self._ends.get(uid)
        return ends.popleft() if ends else None

    def wrote(self, kind: str, obj: dict[str, Any]) -> None:
        """Take an object as the operator's write returned it: it stands until the watch
        brings this version (or a deletion, or a re-list). An answer that the watch
        overtook (its version, or the object's deletion, already arrived) changes nothing."""
        key = (kind, _key(obj))
        if obj["metadata"].get("uid") in self._gone or _version(obj) in self._seen.get(key, ()):
            return
        if self._put(kind, obj) is not None:
            self._written[key] = _Written(_version(obj))

    def _put(self, kind: str, obj: dict[str, Any]) -> str | None:
        uid = _study(obj)
        if not uid:
            return None
        # managedFields are most of an object's bytes and nothing the operator reads.
        obj["metadata"].pop("managedFields", None)
        key = _key(obj)
        if kind == "pods":
            settled = self.settled.setdefault(uid, {})
            settled.pop(key, None)
            if self._done_with(uid, obj):
                self.store[kind].get(uid, {}).pop(key, None)
                settled[key] = json.dumps(slim(kind, obj), separators=(",", ":")).encode()
                return uid
        elif kind in self.trial_kinds:
            numbers = self._recorded.setdefault(uid, set())
            number = (obj["metadata"].get("labels") or {}).get(names.TRIAL_LABEL, "")
            if names.RESULT_ANNOTATION in (obj["metadata"].get("annotations") or {}):
                numbers.add(number)
            else:
                numbers.discard(number)
        self.store[kind].setdefault(uid, {})[key] = slim(kind, obj, self._specs)
        return uid

    def _done_with(self, uid: str, pod: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        return ((pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                and not meta.get("deletionTimestamp")
                and names.FINALIZER not in (meta.get("finalizers") or [])
                and (meta.get("labels") or {}).get(names.TRIAL_LABEL)
                in self._recorded.get(uid, ()))

    def _saw(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        self._seen[key] = (*self._seen.get(key, ())[1 - _SEEN_VERSIONS:], _version(obj))

    def _remove(self, kind: str, obj: dict[str, Any]) -> str | None:
        uid = _study(obj)
        key = _key(obj)
        self._written.pop((kind, key), None)
        self._seen.pop((kind, key), None)
        if obj["metadata"].get("uid"):
            self._gone[obj["metadata"]["uid"]] = None
            while len(self._gone) > _GONE_UIDS:
                self._gone.popitem(last=False)
        bucket = self.store[kind].get(uid or "", {})
        old = bucket.get(key)
        if old is not None and old["metadata"].get("uid") == obj["metadata"].get("uid"):
            del bucket[key]
            if not bucket:
                self._ends.pop(uid or "", None)
            if kind in self.trial_kinds:
                number = (obj["metadata"].get("labels") or {}).get(names.TRIAL_LABEL, "")
                self._recorded.get(uid or "", set()).discard(number)
        if kind == "pods":
            self.settled.get(uid or "", {}).pop(key, None)
        return uid

    def apply_event(self, kind: str, event_type: str, obj: dict[str, Any]) -> str | None:
        """One watch event (ADDED, MODIFIED, DELETED) -> the study it concerns, if it changed
        the cache."""
        if event_type == "DELETED":
            return self._remove(kind, obj)
        key = (kind, _key(obj))
        self._saw(key, obj)
        written = self._written.get(key)
        if written is not None:
            if written.strict and _version(obj) != written.version:
                return None  # older than what the operator wrote, which is still coming
            del self._written[key]
            if _version(obj) == written.version:
                return None  # the operator's own write, already in the cache
        if kind in self.trial_kinds and _ended(obj):
            uid = _study(obj)
            if uid and not _ended(self.store[kind].get(uid, {}).get(key[1])):
                self._ends.setdefault(uid, collections.deque(maxlen=_ENDS)).append(
                    time.monotonic())
        return self._put(kind, obj)

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(kind, ns) for kind in self.kinds
                               for ns in self.namespaces))

    def _path(self, kind: str, namespace: str | None) -> str:
        base = self.kinds[kind]
        return f"{base}/namespaces/{namespace}/{kind}" if namespace else f"{base}/{kind}"

    def _in_scope(self, key: str, namespace: str | None) -> bool:
        return namespace is None or key.startswith(f"{namespace}/")

    async def _loop(self, kind: str, namespace: str | None) -> None:
        path = self._path(kind, namespace)
        backoff = Backoff(first=0.5, cap=10.0)
        while True:
            try:
                before = {k for (w_kind, k) in self._written
                          if w_kind == kind and self._in_scope(k, namespace)}
                listing = await self.api.get(path, labelSelector=names.STUDY_UID_LABEL)
                version = listing["metadata"]["resourceVersion"]
                self._replace(kind, namespace, listing.get("items") or [], before)
                self._synced[(kind, namespace)].set()
                self._failures.succeeded(path, f"watching {path}")
                backoff.reset()
                while True:
                    version = await self._follow(kind, path, version)
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                # The version we watched from is compacted away: list again, at once.
                log.debug("watch of %s: version expired; listing again", path)
                continue
            except Exception as e:
                # An outage, a restart, a refusal: said once (with what it means), then
                # retried with backoff; the cache keeps serving what it had meanwhile.
                self._failures.failed(path, f"watching {path} (reconciles read the last "
                                            "known trials until it works again)", e,
                                      level=logging.WARNING)
                await asyncio.sleep(backoff.next())

    async def _follow(self, kind: str, path: str, version: str) -> str:
        """One watch request, until the server ends it; the version to go on from."""
        seen = 0
        async for event in self.api.watch(path, version, labelSelector=names.STUDY_UID_LABEL):
            seen += 1
            if seen % _YIELD_EVERY == 0:
                # Buffered events arrive without a pause: let the rest of the loop (other
                # watches, reconciles) run between them.
                await asyncio.sleep(0)
            event_type, obj = event.get("type"), event.get("object") or {}
            if event_type == "ERROR":
                raise errors.from_status(obj, method="WATCH", path=path)
            version = _version(obj) or version
            if event_type == "BOOKMARK":
                continue
            uid = self.apply_event(kind, str(event_type), obj)
            if uid:
                self.on_change(uid)
        return version

    def _replace(self, kind: str, namespace: str | None, items: list[dict[str, Any]],
                 written_before: set[str]) -> None:
        """A fresh listing replaces what this scope held; studies that changed are told.

        Writes that returned before the list was sent are in it (it is newer). A write that
        returned while the list was on its way may be newer than the listing or not (versions
        do not say): the written object stays, and the next event of it is taken whatever it
        is. Dropping it would show a just-created trial as Lost and start another in its place.
        """
        listed = {_key(obj): obj for obj in items}
        touched: set[str] = set()
        if kind == "pods":  # judged with the others below; the listing settles them again
            for uid, packed in self.settled.items():
                for key in [k for k in packed if self._in_scope(k, namespace)]:
                    self.store[kind].setdefault(uid, {})[key] = json.loads(packed.pop(key))
        for uid, bucket in self.store[kind].items():
            for key in [k for k in bucket if self._in_scope(k, namespace)]:
                written = self._written.get((kind, key))
                if written is not None and key not in written_before:
                    same = key in listed and _version(listed[key]) == written.version
                    if same:
                        del self._written[(kind, key)]
                    else:
                        written.strict = False
                        listed.pop(key, None)
                    continue
                self._written.pop((kind, key), None)
                self._seen.pop((kind, key), None)
                del bucket[key]
                touched.add(uid)
        for obj in listed.values():
            self._saw((kind, _key(obj)), obj)
            study = self._put(kind, obj)
            if study:
                touched.add(study)
        for uid in touched:
            self.on_change(uid)
