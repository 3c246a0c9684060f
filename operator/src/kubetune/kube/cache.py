"""An in-memory cache of trial Jobs and pods, fed by watches with a server-side label selector
(``kubetune.dev/study-uid``), so the operator never watches every pod of the cluster and a
reconcile reads what changed instead of listing history. It can always be rebuilt: a restart
lists again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kubetune.kube import conventions as names
from kubetune.kube import errors
from kubetune.kube.client import Client

__all__ = ["TrialCache"]

log = logging.getLogger("kubetune.cache")

KINDS = {"jobs": "/apis/batch/v1", "pods": "/api/v1"}


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class TrialCache:
    """Jobs and pods of every study, by study UID; ``on_change(uid)`` after each change."""

    def __init__(self, client: Client, namespaces: Iterable[str] | None,
                 on_change: Callable[[str], Any]):
        self.client = client
        self.namespaces = list(namespaces) if namespaces else [None]
        self.on_change = on_change
        self.store: dict[str, dict[str, dict[str, dict[str, Any]]]] = {k: {} for k in KINDS}
        self._synced: dict[tuple[str, str | None], asyncio.Event] = {
            (k, ns): asyncio.Event() for k in KINDS for ns in self.namespaces
        }

    async def wait_synced(self) -> None:
        await asyncio.gather(*(e.wait() for e in self._synced.values()))

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        return list(self.store["jobs"].get(uid, {}).values())

    def pods_of(self, uid: str) -> list[dict[str, Any]]:
        return list(self.store["pods"].get(uid, {}).values())

    def upsert(self, kind: str, obj: dict[str, Any]) -> None:
        """Take an object we wrote (or read) if it is newer than the cached one."""
        uid = (obj["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)
        if not uid:
            return
        # managedFields are most of an object's bytes and nothing the operator reads.
        obj["metadata"].pop("managedFields", None)
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        bucket = self.store[kind].setdefault(uid, {})
        old = bucket.get(key)
        if old is None or _rv(obj) >= _rv(old):
            bucket[key] = obj

    def _remove(self, kind: str, obj: dict[str, Any]) -> str | None:
        uid = (obj["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        bucket = self.store[kind].get(uid or "", {})
        old = bucket.get(key)
        if old is not None and old["metadata"].get("uid") == obj["metadata"].get("uid"):
            del bucket[key]
        return uid

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(kind, ns) for kind in KINDS for ns in self.namespaces))

    def _path(self, kind: str, namespace: str | None) -> str:
        base = KINDS[kind]
        return f"{base}/namespaces/{namespace}/{kind}" if namespace else f"{base}/{kind}"

    async def _loop(self, kind: str, namespace: str | None) -> None:
        path = self._path(kind, namespace)
        selector = names.STUDY_UID_LABEL
        delay = 0.5
        while True:
            try:
                listing = await self.client.get(path, labelSelector=selector)
                rv = listing["metadata"]["resourceVersion"]
                self._replace(kind, namespace, listing.get("items") or [], _rv(listing))
                self._synced[(kind, namespace)].set()
                delay = 0.5
                while True:
                    seen = 0
                    async for event in self.client.watch(path, rv, labelSelector=selector):
                        seen += 1
                        if seen % 50 == 0:
                            # Buffered events arrive without a pause: let the rest of the
                            # loop (other watches, reconciles) run between them.
                            await asyncio.sleep(0)
                        kind_of_event, obj = event.get("type"), event.get("object") or {}
                        if kind_of_event == "ERROR":
                            raise errors.from_status(obj, method="WATCH", path=path)
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if kind_of_event == "BOOKMARK":
                            continue
                        if kind_of_event == "DELETED":
                            uid = self._remove(kind, obj)
                        else:
                            self.upsert(kind, obj)
                            uid = (obj["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)
                        if uid:
                            self.on_change(uid)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # 410 Gone, apiserver restarts, network: list again
                log.info("watch of %s restarting: %s", path, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _replace(self, kind: str, namespace: str | None, items: list[dict[str, Any]],
                 listed_at: int) -> None:
        """A fresh listing replaces what this scope held; studies that changed are told.

        Objects newer than the listing stay: the operator wrote them (a Job it created) while
        the list was on its way, and the watch from the listing's version brings their fate.
        Dropping them would show a just-created trial as Lost and start another in its place.
        """
        touched: set[str] = set()
        for uid, bucket in self.store[kind].items():
            for key in [k for k in bucket if namespace is None or k.startswith(f"{namespace}/")]:
                if _rv(bucket[key]) > listed_at:
                    continue
                del bucket[key]
                touched.add(uid)
        for obj in items:
            self.upsert(kind, obj)
            labelled = (obj["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)
            if labelled:
                touched.add(labelled)
        for uid in touched:
            self.on_change(uid)
