"""The objects the dashboard's watches keep: TuningStudies, their trial objects (Jobs, or the
kind of a study's trialTemplate, e.g. JobSets) and pods, and their Events, in memory, grouped by
study. Fed from watch threads, read by the web server;
one lock guards it. It holds nothing it cannot rebuild from a fresh list.

Memory per study is bounded by what the cluster holds for it (its Jobs and their current
pods, which the operator keeps) plus at most ``MAX_EVENTS`` Events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubetune.kube import conventions as names

__all__ = ["KINDS", "MAX_EVENTS", "Snapshot", "Store", "StudyKey"]

MAX_EVENTS = 100
# The kinds every dashboard watches. Trial objects of other kinds are kept under the name of
# their resource (``workloads.Resource.name``, e.g. jobsets.jobset.x-k8s.io/v1alpha2).
KINDS = ("studies", "jobs", "pods", "events")
_NOT_TRIALS = ("studies", "pods", "events")

StudyKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Snapshot:
    """One study's objects at one moment, with the store's version of that study."""

    study: dict[str, Any]
    jobs: list[dict[str, Any]]  # its trial objects: Jobs, or its trialTemplate's kind
    pods: list[dict[str, Any]]
    events: list[dict[str, Any]]
    version: int


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _owner_uid(kind: str, obj: Mapping[str, Any]) -> str:
    """The UID of the study an object belongs to: its label, or for an Event its subject."""
    if kind == "events":
        return str((obj.get("involvedObject") or {}).get("uid") or "")
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get(names.STUDY_UID_LABEL) or "")


class Store:
    """Thread-safe; ``on_change(keys)`` is called (outside the lock) with the studies that
    changed, from whichever thread applied the change."""

    def __init__(self, on_change: Callable[[set[StudyKey]], None] | None = None):
        self._lock = threading.Lock()
        self._studies: dict[str, dict[str, Any]] = {}  # uid -> object
        self._keys: dict[StudyKey, str] = {}  # (namespace, name) -> uid
        self._children: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
            k: {} for k in KINDS[1:]}  # kind -> study uid -> object uid -> object
        self._versions: dict[str, int] = {}
        self._version = 0
        self.on_change = on_change
        self.problems: dict[str, str] = {}  # "kind namespace" -> what the watch could not do

    @property
    def version(self) -> int:
        return self._version

    def _bump(self, study_uid: str, changed: set[StudyKey]) -> None:
        self._version += 1
        self._versions[study_uid] = self._version
        obj = self._studies.get(study_uid)
        if obj is not None:
            meta = obj["metadata"]
            changed.add((str(meta.get("namespace") or ""), str(meta["name"])))

    def _notify(self, changed: set[StudyKey]) -> None:
        if changed and self.on_change is not None:
            self.on_change(changed)

    def _put(self, kind: str, obj: dict[str, Any], deleted: bool, changed: set[StudyKey]
             ) -> None:
        uid = _uid(obj)
        if not uid:
            return
        if kind == "studies":
            meta = obj["metadata"]
            key = (str(meta.get("namespace") or ""), str(meta["name"]))
            if deleted:
                self._studies.pop(uid, None)
                self._keys.pop(key, None)
                self._versions.pop(uid, None)
                for children in self._children.values():
                    children.pop(uid, None)
                self._version += 1
                changed.add(key)
                return
            self._studies[uid] = obj
            self._keys[key] = uid
            self._bump(uid, changed)
            return
        owner = _owner_uid(kind, obj)
        if not owner:
            return
        group = self._children.setdefault(kind, {}).setdefault(owner, {})
        if deleted:
            group.pop(uid, None)
        else:
            group[uid] = obj
            if kind == "events" and len(group) > MAX_EVENTS:
                oldest = min(group, key=lambda u: int(
                    str(group[u]["metadata"].get("resourceVersion") or "0") or 0))
                group.pop(oldest)
        self._bump(owner, changed)

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        changed: set[StudyKey] = set()
        with self._lock:
            self._put(kind, obj, event_type == "DELETED", changed)
        self._notify(changed)

    def replace(self, kind: str, namespace: str | None, items: Iterable[dict[str, Any]]
                ) -> None:
        """A fresh list of ``kind`` in ``namespace`` (None: every namespace) replaces what was
        held of it, as after a watch that expired."""
        changed: set[StudyKey] = set()
        items = list(items)
        with self._lock:
            held = self._held(kind, namespace)
            fresh = {_uid(o) for o in items}
            for obj in held:
                if _uid(obj) not in fresh:
                    self._put(kind, obj, True, changed)
            for obj in items:
                self._put(kind, obj, False, changed)
            self.problems.pop(f"{kind} {namespace or '*'}", None)
        self._notify(changed)

    def _held(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        if kind == "studies":
            objs = list(self._studies.values())
        else:
            objs = [o for group in self._children.get(kind, {}).values()
                    for o in group.values()]
        return [o for o in objs
                if namespace is None or o["metadata"].get("namespace") == namespace]

    def studies(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._studies.values(), key=lambda s: (
                s["metadata"].get("namespace") or "", s["metadata"]["name"]))

    def snapshot(self, key: StudyKey) -> Snapshot | None:
        """The study's objects now, or None when no such study is held."""
        with self._lock:
            uid = self._keys.get(key)
            if uid is None:
                return None
            def held(kind: str) -> list[dict[str, Any]]:
                return list(self._children.get(kind, {}).get(uid, {}).values())

            trials = [o for kind in self._children if kind not in _NOT_TRIALS
                      for o in held(kind)]
            return Snapshot(self._studies[uid], trials, held("pods"), held("events"),
                            version=self._versions.get(uid, 0))

    def report(self, kind: str, namespace: str | None, problem: str | None) -> None:
        """What a watch could not do (None: it works again), for the page to show."""
        where = f"{kind} {namespace or '*'}"
        with self._lock:
            if problem is None:
                self.problems.pop(where, None)
            else:
                self.problems[where] = problem
