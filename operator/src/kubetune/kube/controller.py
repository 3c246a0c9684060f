"""The operator process's moving parts, wired together: the latest study objects (from kopf's
watch), the trial cache (``kube.cache``), the per-study work queue (``kube.workqueue``), the
reconcile (``kube.reconcile``), the result-signing key and the resync safety net.

Everything here can be rebuilt from the cluster: a restart loses and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from kubetune.core.workloads import Resource
from kubetune.kube import looplag, signing
from kubetune.kube.api import Api
from kubetune.kube.cache import TrialCache
from kubetune.kube.failures import Backoff, FailureLog
from kubetune.kube.metrics import Metrics
from kubetune.kube.rbac import TrialAccess
from kubetune.kube.reconcile import Reconciler, finished
from kubetune.kube.sampling import SamplerProcesses
from kubetune.kube.workqueue import StudyQueue

__all__ = ["RESYNC_SECONDS", "Operator"]

log = logging.getLogger("kubetune.controller")

RESYNC_SECONDS = 30.0


class Operator:
    """``study_event`` for every study event; ``run`` for the watches and helpers."""

    def __init__(self, api: Api, namespaces: Iterable[str] | None = None, *,
                 key_namespace: str, metrics: Metrics | None = None,
                 workloads: Iterable[Resource] = (),
                 samplers: SamplerProcesses | None = None):
        self.api = api
        self.metrics = metrics or Metrics()
        self.metrics.active_studies.set_function(
            lambda: sum(1 for s in self.studies.values() if not finished(s)))
        self.studies: dict[str, dict[str, Any]] = {}
        self.queue = StudyQueue(self._work, name=self._name, resync=RESYNC_SECONDS,
                                known=self.studies.__contains__)
        workloads = tuple(workloads)
        self.cache = TrialCache(api, namespaces, self.queue.trigger, workloads)
        self.reconciler = Reconciler(api, self.cache, metrics=self.metrics,
                                     access=TrialAccess(api), workloads=workloads,
                                     samplers=samplers)
        self.key_namespace = key_namespace
        self._key_loaded = asyncio.Event()

    def study_event(self, kind: str, body: dict[str, Any]) -> None:
        """A study from kopf's watch, which delivers each study's versions in order: the
        latest body is the one to act on (versions are opaque, never compared)."""
        uid = body["metadata"]["uid"]
        if kind == "DELETED":
            # Its Jobs and pods go with it (owner references); their cache entries leave as
            # the deletions arrive, and their result finalizers are released meanwhile.
            self.studies.pop(uid, None)
            self.queue.forget(uid)
            self.queue.trigger(uid)
            return
        self.studies[uid] = body
        self.queue.trigger(uid)

    def _name(self, uid: str) -> str:
        study = self.studies.get(uid)
        if study is None:
            return uid
        return f"{study['metadata']['namespace']}/{study['metadata']['name']}"

    async def _work(self, uid: str) -> float | None:
        await self.cache.wait_synced()
        await self._key_loaded.wait()
        study = self.studies.get(uid)
        with self.metrics.reconciling():
            if study is None or study["metadata"].get("deletionTimestamp"):
                await self.reconciler.release_only(uid)
                return None
            outcome = await self.reconciler.reconcile(study)
        return outcome.requeue_after

    async def run(self) -> None:
        """The cache's watches, the loop-lag monitor and the key's loading, until
        cancelled."""
        helpers = [asyncio.create_task(looplag.monitor()), asyncio.create_task(self._load_key())]
        try:
            await self.cache.run()
        finally:
            for task in helpers:
                task.cancel()

    async def _load_key(self) -> None:
        backoff = Backoff(cap=30.0)
        failures = FailureLog(log)
        while True:
            try:
                self.reconciler.key = await signing.ensure_key(self.api,  # type: ignore[arg-type]
                                                               self.key_namespace)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # The apiserver not there yet, or a missing grant (ensure_key names it): said
                # once, retried with backoff; a bug shows its traceback (FailureLog).
                failures.failed("key", "loading the result-signing key (no study is "
                                       "reconciled until it loads)", e)
                await asyncio.sleep(backoff.next())
                continue
            failures.succeeded("key", "loading the result-signing key")
            self._key_loaded.set()
            return
