"""One idempotent reconcile per study, and the machinery that serialises them.

Every trigger (a study event, a Job or pod change, the resync loop) funnels into
``Operator.trigger(uid)``. Reconciles of one study never overlap: a trigger during a reconcile
marks the study dirty and it runs once more afterwards. A reconcile gathers the study's Jobs
and pods from the cache, asks ``plan.decide`` (in a worker thread, so the sampler never stalls
the event loop) what to do, applies it in a safe order (results first, then stops, then
finalizers, then new Jobs), and writes the status only when it changed.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import kubetune.core as core
from kubetune.core import plan as plans
from kubetune.core import spec as specs
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import jobs as builders
from kubetune.kube import looplag, signing
from kubetune.kube import observe as observing
from kubetune.kube import status as statuses
from kubetune.kube.cache import TrialCache
from kubetune.kube.client import ApiError, Client
from kubetune.kube.metrics import Metrics

__all__ = ["Operator"]

log = logging.getLogger("kubetune.reconcile")

RESYNC_SECONDS = 30.0
_RESULT_EVENTS = {
    TrialState.SUCCEEDED: ("TrialSucceeded", "Normal"),
    TrialState.FAILED: ("TrialFailed", "Warning"),
    TrialState.PRUNED: ("TrialPruned", "Normal"),
    TrialState.STOPPED: ("TrialStopped", "Normal"),
}


def _study_path(ns: str, name: str) -> str:
    return f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{ns}/{names.PLURAL}/{name}"


def _rfc3339(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Operator:
    """The operator's state, all of it rebuildable from the cluster: the latest study objects,
    the trial cache, and which reconciles are running or wanted.
    """

    def __init__(self, client: Client, namespaces: Iterable[str] | None = None, *,
                 key_namespace: str | None = None, metrics: Metrics | None = None):
        self.client = client
        self.metrics = metrics or Metrics()
        self._suggest = self.metrics.timed_suggest(core.suggest)
        self.metrics.active_studies.set_function(
            lambda: sum(1 for s in self.studies.values() if not _finished(s)))
        self.cache = TrialCache(client, namespaces, self.trigger)
        self.studies: dict[str, dict[str, Any]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._rbac_done: set[tuple[str, str]] = set()
        self.reconciles = 0
        # The result-signing key lives in a Secret of the operator's own namespace.
        self.key_namespace = (key_namespace or os.environ.get("POD_NAMESPACE")
                              or client.credentials.namespace)
        self.key: bytes | None = None
        self._key_loaded = asyncio.Event()
        self._warned: set[tuple[str, str]] = set()  # unverified results already reported

    # --- triggers -----------------------------------------------------------------------------

    def study_event(self, kind: str, body: dict[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        if kind == "DELETED":
            # Its Jobs and pods go with it (owner references); their cache entries leave as
            # the deletions arrive, and their result finalizers are released meanwhile.
            self.studies.pop(uid, None)
            return
        old = self.studies.get(uid)
        if old is None or _rv(body) >= _rv(old):
            self.studies[uid] = body
        self.trigger(uid)

    def trigger(self, uid: str) -> None:
        self._dirty.add(uid)
        if uid not in self._running:
            self._running[uid] = asyncio.get_running_loop().create_task(self._drain(uid))

    async def _drain(self, uid: str) -> None:
        delay = 1.0
        try:
            while uid in self._dirty:
                self._dirty.discard(uid)
                try:
                    with self.metrics.reconciling():
                        await self.reconcile(uid)
                    delay = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Back off, so that a lasting error (RBAC, quota) is not retried at full
                    # rate; to 10 s at most, so that work resumes soon after an apiserver outage.
                    log.exception("reconcile of study %s failed; retrying in %.0f s", uid, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    self._dirty.add(uid)
        finally:
            self._running.pop(uid, None)

    async def run(self) -> None:
        """The cache's watches, the resync safety net and the loop-lag monitor, until cancelled."""
        helpers = [asyncio.create_task(self._resync()), asyncio.create_task(looplag.monitor()),
                   asyncio.create_task(self._load_key())]
        try:
            await self.cache.run()
        finally:
            for task in helpers:
                task.cancel()

    async def _load_key(self) -> None:
        delay = 1.0
        while True:
            try:
                self.key = await signing.ensure_key(self.client, self.key_namespace)
                self._key_loaded.set()
                return
            except Exception as e:  # apiserver not there yet, or RBAC missing: say so, retry
                log.error("no result-signing key yet, so no reconcile: %s; retrying in %.0f s",
                          e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            for uid in list(self.studies):
                self.trigger(uid)

    # --- one reconcile ------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        await self.cache.wait_synced()
        await self._key_loaded.wait()
        study = self.studies.get(uid)
        if study is None or study["metadata"].get("deletionTimestamp"):
            # A deleted study, one being deleted (its Jobs go first in a foreground deletion,
            # and must not be taken for Lost trials to replace), or one not seen yet: only
            # release what is safe, e.g. the pods of Jobs the garbage collector removed.
            for pod in observing.releasable_pods(self.cache.jobs_of(uid),
                                                 self.cache.pods_of(uid), set()):
                await self._release(pod)
            return
        self.reconciles += 1
        meta = study["metadata"]
        generation = int(meta.get("generation") or 1)
        previous = study.get("status") or {}
        now = time.time()
        try:
            spec = specs.parse_spec(study.get("spec") or {})
        except specs.SpecError as e:
            await self._write_status(study, statuses.invalid_status(
                str(e), previous, generation=generation, now=now))
            return
        if spec.algorithm.seed is None:
            spec = spec.model_copy(update={"algorithm": spec.algorithm.model_copy(
                update={"seed": names.study_seed(uid)})})
        if previous.get("observedGeneration") != generation:
            await self._write_status(study, statuses.reconciling_status(
                previous, generation=generation, now=now))

        jobs, pods = self.cache.jobs_of(uid), self.cache.pods_of(uid)
        next_trial = int(previous.get("nextTrial") or 0)

        def look() -> tuple[observing.Observation, plans.Plan, dict[int, observing.TrialObjects]]:
            # Reading every Job of a large study costs as much as deciding: both run off the
            # event loop (on lists of cached objects, which the loop replaces, never mutates).
            seen = observing.observe(jobs, pods, metric=spec.objective.metric,
                                     minimize=specs.minimize(spec), next_trial=next_trial,
                                     key=self.key)
            plan = plans.decide(spec, seen.trials, now, next_trial=next_trial,
                                suggest=self._suggest)
            return seen, plan, observing.group_by_trial(jobs, pods)

        seen, plan, by_number = await asyncio.to_thread(look)
        for number in seen.unverified:
            await self._warn_unverified(study, by_number[number].job,
                                        restored=number in seen.to_record)
        recorded: set[int] = set()
        for number, result in seen.to_record.items():
            if await self._record(study, by_number[number].job, result):
                recorded.add(number)
        trials = {t.number: t for t in seen.trials}
        for stop in plan.stop:
            objs = by_number.get(stop.number)
            if objs is None or objs.job is None:
                continue
            result = plans.stop_result(trials[stop.number], stop)
            if await self._record(study, objs.job, result):
                recorded.add(stop.number)
                await self._end(objs, now)
        for pod in await asyncio.to_thread(observing.releasable_pods, self.cache.jobs_of(uid),
                                           pods, recorded):
            await self._release(pod)

        if plan.create:
            try:
                if not await self._create_trials(study, spec, plan, jobs, previous,
                                                 generation, now):
                    return
            except ApiError as e:
                if _namespace_going(e, study):
                    return
                raise
        new_status = statuses.study_status(plan, previous, generation=generation, now=now,
                                           pending_reasons=seen.pending_reasons)
        was_finished = _finished(study)
        await self._write_status(study, new_status)
        if plan.finished is not None and not was_finished:
            kind = "Normal" if plan.finished.condition == "Succeeded" else "Warning"
            await self._event(study, f"Study{plan.finished.condition}", plan.finished.message,
                              kind)

    async def _create_trials(self, study: dict[str, Any], spec: specs.StudySpec, plan: plans.Plan,
                             jobs: list[dict[str, Any]], previous: dict[str, Any], generation: int,
                             now: float) -> bool:
        ns = study["metadata"]["namespace"]
        manifests = [builders.build_trial_job(study, spec, c.number, c.params)
                     for c in plan.create]
        sa = manifests[0]["spec"]["template"]["spec"].get("serviceAccountName")
        await self._ensure_trial_rbac(ns, sa)
        path = f"/apis/batch/v1/namespaces/{ns}/jobs"
        if not jobs:
            # The first trial: let the API server judge the template before anything exists.
            try:
                await self.client.create(path, manifests[0], dry_run=True)
            except ApiError as e:
                if _namespace_going(e, study):
                    return False
                if e.status in (400, 403, 422):
                    message = f"spec.jobTemplate: the API server refuses the trial Job: {e.message}"
                    await self._write_status(study, statuses.invalid_status(
                        message, previous, generation=generation, now=now))
                    return False
                raise
        for creation, manifest in zip(plan.create, manifests, strict=True):
            try:
                created = await self.client.create(path, manifest)
            except ApiError as e:
                if e.status != 409:
                    raise
                continue
            self.cache.upsert("jobs", created)
            self.metrics.trials_created.inc()
            await self._event(study, "TrialCreated",
                              f"trial {creation.number} (Job {manifest['metadata']['name']}): "
                              f"{_params_text(creation.params)}")
        return True

    async def _record(
        self, study: dict[str, Any], job: dict[str, Any] | None, result: TrialResult
    ) -> bool:
        if job is None:
            return False
        meta = job["metadata"]
        path = f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}"
        try:
            updated = await self.client.merge_patch(
                path, builders.result_patch(result, job=job, key=self.key))
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        self.cache.upsert("jobs", updated)
        self.metrics.trials_finished.labels(result.state.value).inc()
        reason, kind = _RESULT_EVENTS[result.state]
        text = f"trial {meta['labels'].get(names.TRIAL_LABEL)}: {result.state.value}"
        if result.value is not None:
            text += f", value {result.value:.6g}"
        if result.reason:
            text += f" ({result.reason}{': ' + result.message if result.message else ''})"
        await self._event(study, reason, text, kind)
        return True

    async def _warn_unverified(
        self, study: dict[str, Any], job: dict[str, Any] | None, *, restored: bool
    ) -> None:
        """One Warning event per edited result: the trial's result is re-derived, or Lost."""
        if job is None:
            return
        meta = job["metadata"]
        text = (meta.get("annotations") or {}).get(names.RESULT_ANNOTATION) or ""
        seen = (meta.get("uid", ""), hashlib.sha256(text.encode()).hexdigest())
        if seen in self._warned:
            return
        self._warned.add(seen)
        what = ("re-derived from its pod and recorded again" if restored else
                "its pod cannot tell the result again, so the trial is Lost and a new one "
                "takes its place")
        await self._event(study, "ResultUnverified",
                          f"trial {meta['labels'].get(names.TRIAL_LABEL)} (Job {meta['name']}): "
                          f"its {names.RESULT_ANNOTATION} annotation is not the operator's "
                          f"(edited by hand?), so it is not used; {what}", "Warning")

    async def _end(self, objs: observing.TrialObjects, now: float) -> None:
        """End a stopped trial: lower its pods' activeDeadlineSeconds, or, when no pod runs
        yet, give its Job a deadline that has passed.
        """
        started = False
        for pod in objs.pods:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            patch = builders.end_pod_patch(pod, now)
            meta = pod["metadata"]
            if patch is None:
                started = started or bool(pod.get("status", {}).get("startTime"))
                continue
            started = True
            await self._ignore_missing(self.client.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", patch))
        if not started and objs.job is not None:
            patch = builders.end_job_patch(objs.job)
            meta = objs.job["metadata"]
            if patch is not None:
                await self._ignore_missing(self.client.merge_patch(
                    f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}", patch))

    async def _release(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        finalizers = meta.get("finalizers") or []
        i = finalizers.index(names.FINALIZER)
        ops = [{"op": "test", "path": f"/metadata/finalizers/{i}", "value": names.FINALIZER},
               {"op": "remove", "path": f"/metadata/finalizers/{i}"}]
        try:
            updated = await self.client.json_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", ops)
        except ApiError as e:
            if e.status in (404, 409, 422):  # gone, or changed under us: next reconcile
                return
            raise
        self.cache.upsert("pods", updated)

    async def _ensure_trial_rbac(self, ns: str, service_account: str | None) -> None:
        account = service_account or names.TRIAL_SERVICE_ACCOUNT
        if (ns, account) in self._rbac_done:
            return
        objects = [
            (f"/api/v1/namespaces/{ns}/serviceaccounts", builders.trial_service_account(ns)),
            (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
             builders.trial_role(ns)),
            (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
             builders.trial_role_binding(ns, account)),
        ]
        if account != names.TRIAL_SERVICE_ACCOUNT:
            objects = objects[1:]
        for path, body in objects:
            try:
                await self.client.create(path, body)
            except ApiError as e:
                if e.status != 409:
                    raise
        self._rbac_done.add((ns, account))

    async def _write_status(self, study: dict[str, Any], status: dict[str, Any]) -> None:
        previous = study.get("status") or {}
        merged = {**previous, **status}
        if not statuses.conditions_changed(previous, merged):
            return
        meta = study["metadata"]
        try:
            updated = await self.client.merge_patch(
                _study_path(meta["namespace"], meta["name"]) + "/status", {"status": status})
        except ApiError as e:
            if e.status == 404:
                return
            raise
        uid = meta["uid"]
        if uid in self.studies and _rv(updated) >= _rv(self.studies[uid]):
            self.studies[uid] = updated
        study["status"] = updated.get("status") or merged

    async def _event(
        self, study: dict[str, Any], reason: str, message: str, kind: str = "Normal"
    ) -> None:
        meta = study["metadata"]
        now = _rfc3339(time.time())
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": names.API_VERSION, "kind": names.KIND,
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"]},
            "reason": reason, "message": message[:1024], "type": kind,
            "source": {"component": "kubetune-operator"},
            "reportingComponent": "kubetune.dev/operator", "reportingInstance": "kubetune",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await self.client.create(f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except ApiError as e:
            log.warning("posting event %s: %s", reason, e)

    @staticmethod
    async def _ignore_missing(call: Any) -> None:
        try:
            await call
        except ApiError as e:
            if e.status not in (404, 409, 422):
                raise


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _namespace_going(e: ApiError, study: dict[str, Any]) -> bool:
    """Whether ``e`` says the study's namespace is being deleted, or is gone (a study left
    behind by an interrupted namespace deletion): its Jobs, maybe gone already, are no reason
    to start new trials.
    """
    gone = e.status == 404 and e.kind == "namespaces"
    if "NamespaceTerminating" not in e.causes and not gone:
        return False
    log.info("not creating trials of %s/%s: %s", study["metadata"]["namespace"],
             study["metadata"]["name"], e.message)
    return True


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())[:900]


def _finished(study: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True"
               for c in (study.get("status") or {}).get("conditions") or [])
