"""A plan -> API calls. Each call says what to do when the cluster moved on meanwhile (a Job
deleted, a pod gone, a name taken); every other failure propagates to the work queue, which
retries the reconcile with backoff.

The calls: record a trial's result on its Job (signed), end a stopped trial's pod (or its Job,
when no pod started), release a pod's result finalizer, and create trial Jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState
from kubetune.kube import api as paths
from kubetune.kube import conventions as names
from kubetune.kube import errors, signing
from kubetune.kube import jobs as builders
from kubetune.kube import observe as observing
from kubetune.kube.api import Api
from kubetune.kube.events import EventPoster
from kubetune.kube.metrics import Metrics

__all__ = ["Applier", "TrialStore"]

log = logging.getLogger("kubetune.apply")

# A study's Events say what a person should notice; a trial that simply ran and succeeded
# is on its Job and in the status (the reconcile posts NewBestTrial when it leads).
_RESULT_EVENTS = {
    TrialState.FAILED: ("TrialFailed", "Warning"),
    TrialState.PRUNED: ("TrialPruned", "Normal"),
    TrialState.STOPPED: ("TrialStopped", "Normal"),
}


def _collection(manifest: Mapping[str, Any]) -> str:
    return builders.trial_path(manifest).rsplit("/", 1)[0]


def _store_kind(obj: Mapping[str, Any]) -> str:
    """Where the store keeps a trial object: jobs, or its kind's resource."""
    kind = builders.trial_kind(obj)
    return "jobs" if kind is None else kind.resource


class TrialStore(Protocol):
    """Where a reconcile reads a study's Jobs and pods, and puts back what it wrote."""

    def jobs_of(self, uid: str) -> list[dict[str, Any]]: ...

    def pods_of(self, uid: str, settled: bool = False) -> list[dict[str, Any]]:
        """The study's pods; ``settled``: also those a store keeps aside once their trial's
        result is recorded (``kube.cache``)."""
        ...

    def jobs_named(self, namespace: str, name: str) -> list[dict[str, Any]]: ...

    def wrote(self, kind: str, obj: dict[str, Any]) -> None: ...

    def ended_seen(self, uid: str) -> float | None:
        """When (``time.monotonic``) the store learned of the end of the study's oldest trial
        that no new trial has followed, taken off by this call; None if it does not know."""
        ...


# How often a study's workers Service is created again if it was deleted.
SERVICE_RECHECK_SECONDS = 60.0


class Applier:
    def __init__(self, api: Api, store: TrialStore, events: EventPoster, metrics: Metrics, *,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.store = store
        self.events = events
        self.metrics = metrics
        self.clock = clock
        # study uid -> when its workers Service was last known to exist.
        self._services: dict[str, float] = {}

    async def ensure_workers_service(self, study: Mapping[str, Any],
                                     manifest: dict[str, Any]) -> None:
        """Create the headless Service that names a study's workers, unless it was created
        or found less than SERVICE_RECHECK_SECONDS ago (AlreadyExists means it is there)."""
        uid = study["metadata"]["uid"]
        seen = self._services.get(uid)
        if seen is not None and self.clock() - seen < SERVICE_RECHECK_SECONDS:
            return
        ns = manifest["metadata"]["namespace"]
        try:
            await self.api.create(paths.services_path(ns), manifest)
            log.info("created Service %s/%s for the workers of %s", ns,
                     manifest["metadata"]["name"], study["metadata"]["name"])
        except errors.AlreadyExists:
            pass
        self._services[uid] = self.clock()

    def forget(self, uid: str) -> None:
        """Drop what is kept for a study that is gone."""
        self._services.pop(uid, None)

    async def record(self, study: Mapping[str, Any], job: dict[str, Any] | None,
                     result: TrialResult, key: signing.Keyring | None, *,
                     stop: bool = False) -> bool:
        """Write ``result`` on ``job`` (``stop``: the operator ends the trial, see
        ``jobs.result_patch``); False when the Job is gone (the trial is Lost)."""
        if job is None:
            return False
        meta = job["metadata"]
        try:
            updated = await self.api.merge_patch(
                builders.trial_path(job), builders.result_patch(result, job=job, key=key,
                                                                stop=stop))
        except errors.NotFound:
            return False
        self.store.wrote(_store_kind(updated), updated)
        self.metrics.trials_finished.labels(result.state.value).inc()
        if result.state not in _RESULT_EVENTS:
            return True
        reason, kind = _RESULT_EVENTS[result.state]
        text = f"trial {meta['labels'].get(names.TRIAL_LABEL)}: {result.state.value}"
        if result.value is not None:
            text += f", value {result.value:.6g}"
        if result.reason:
            text += f" ({result.reason}{': ' + result.message if result.message else ''})"
        await self.events.post(study, reason, text, kind)
        return True

    async def end(self, objs: observing.TrialObjects, now: float) -> None:
        """End a stopped trial: lower its pods' activeDeadlineSeconds, or, when no pod runs
        yet, give its Job a deadline that has passed.
        """
        started = False
        for pod in objs.pods:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            patch = builders.end_pod_patch(pod, now)
            if patch is None:
                started = started or bool(pod.get("status", {}).get("startTime"))
                continue
            started = True
            meta = pod["metadata"]
            try:
                await self.api.merge_patch(paths.pod_path(meta["namespace"], meta["name"]),
                                           patch)
            except errors.NotFound:
                continue  # the pod is gone: nothing left to end
            except errors.Invalid:
                continue  # it already has a shorter deadline than our cached copy showed
        if started or objs.job is None or builders.trial_kind(objs.job) is not None:
            # Another kind than a Job has no deadline of its own: its pods are ended when
            # they start (``end_recorded``).
            return
        patch = builders.end_job_patch(objs.job)
        if patch is None:
            return
        meta = objs.job["metadata"]
        try:
            await self.api.merge_patch(paths.job_path(meta["namespace"], meta["name"]), patch)
        except errors.NotFound:
            return

    async def release(self, pod: dict[str, Any]) -> None:
        """Remove the result finalizer, guarded by a test of its position."""
        meta = pod["metadata"]
        finalizers = meta.get("finalizers") or []
        i = finalizers.index(names.FINALIZER)
        ops = [{"op": "test", "path": f"/metadata/finalizers/{i}", "value": names.FINALIZER},
               {"op": "remove", "path": f"/metadata/finalizers/{i}"}]
        try:
            updated = await self.api.json_patch(
                paths.pod_path(meta["namespace"], meta["name"]), ops)
        except (errors.NotFound, errors.Conflict, errors.Invalid):
            # Gone, or its finalizers changed under us (the test failed): the watch brings
            # the pod as it is now and the next reconcile releases it.
            return
        self.store.wrote("pods", updated)

    async def end_recorded(self, objs: observing.TrialObjects, now: float) -> None:
        """End the pods that still run of a trial whose result is recorded as stopped (the
        operator ended it before they started, or stopped before it could end them)."""
        if any(p.get("status", {}).get("phase") == "Running"
               and builders.end_pod_patch(p, now) is not None for p in objs.pods):
            await self.end(objs, now)

    async def dry_run(self, manifest: dict[str, Any]) -> None:
        """Let the API server judge a trial object without creating it; raises its ApiError."""
        await self.api.create(_collection(manifest), manifest, dry_run=True)

    async def create(self, study: Mapping[str, Any], number: int,
                     manifest: dict[str, Any]) -> bool:
        """Create one trial object; False when its name is taken (created before: it stands)."""
        ns = manifest["metadata"]["namespace"]
        try:
            created = await self.api.create(_collection(manifest), manifest)
        except errors.AlreadyExists:
            log.info("trial %d of %s/%s: %s %s exists already", number, ns,
                     study["metadata"]["name"], manifest.get("kind", "Job"),
                     manifest["metadata"]["name"])
            return False
        self.store.wrote(_store_kind(created), created)
        self.metrics.trials_created.inc()
        return True
