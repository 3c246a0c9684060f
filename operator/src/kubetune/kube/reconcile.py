"""One reconcile of one study: observe, decide, apply, write the status; then say when to
look again. The whole operator's work, in the order it happens:

1. observe: the study's Jobs and pods (from the store), with the logs ``metricsFrom.log``
   reads (``kube.logs``) -> trial records (``kube.observe``); the Jobs of the earlier studies
   ``warmStart`` names -> prior history (``core.warm_start``);
2. decide: ``core.plan.decide`` (pure) says what to create, stop and record;
3. apply (``kube.apply``): results first (so a trial never ends unrecorded), then stops, then
   finalizers of pods whose result is safe, then the trial RBAC (``kube.rbac``) and new Jobs;
4. write the status (``kube.status`` says what, ``kube.status_writer`` writes it if changed).

It decides nothing itself and holds no state across calls but what can be rebuilt (which
edited results it already warned about, the last log read of each running trial, the prior
history of a warm start).
Observing and deciding run in a worker thread, so a large study or a slow sampler never stalls
the event loop. Serialising reconciles per study (``kube.workqueue``) and feeding the store
(``kube.cache``) are not its job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import kubetune.core as core
from kubetune.core import plan as plans
from kubetune.core import spec as specs
from kubetune.core import warm_start as warm
from kubetune.core import workloads
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import Trial, TrialState
from kubetune.core.workloads import Resource
from kubetune.kube import conventions as names
from kubetune.kube import errors, signing
from kubetune.kube import jobs as builders
from kubetune.kube import observe as observing
from kubetune.kube import status as statuses
from kubetune.kube.api import Api
from kubetune.kube.apply import Applier, TrialStore
from kubetune.kube.events import EventPoster
from kubetune.kube.logs import LogReader
from kubetune.kube.metrics import Metrics
from kubetune.kube.rbac import TrialAccess
from kubetune.kube.sampling import SamplerProcesses
from kubetune.kube.status_writer import StatusWriter

__all__ = ["LOOK_THREADS", "Outcome", "Reconciler", "finished", "next_look", "prior_study",
           "trial_account"]

log = logging.getLogger("kubetune.reconcile")

T = TypeVar("T")
U = TypeVar("U")

# A look past a trial's deadline, in case its pod outlived it (plan.decide times it out).
_DEADLINE_SLACK = 1.0
# Reconciles whose pure part (observe, decide, a sampler that fits no model) runs at once;
# more wait their turn. No thread waits for a sampler process (``_Apart``).
LOOK_THREADS = 4
# Passes of ``decide`` for one reconcile whose sampler runs apart: the history it asks about
# can change only if the store did between passes.
_PASSES = 3


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did and when to look again (``requeue_after`` seconds, or only on
    the next change when None)."""

    requeue_after: float | None = None
    plan: plans.Plan | None = None


class _Stopwatch:
    """A sampler entry point that adds up the seconds its calls take; it also keeps when
    (``time.monotonic``) its reconcile began and when the reconcile's look ended, which the
    log of each trial created reports."""

    def __init__(self, suggest: Callable[..., Any]):
        self.suggest = suggest
        self.seconds = 0.0
        self.began = time.monotonic()
        self.looked = self.began

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.suggest(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


class _AskedApartError(Exception):
    """``decide`` asked a sampler that runs apart (``_Apart``) for proposals."""

    def __init__(self, spec: Any, trials: list[Any], n: int):
        super().__init__("proposals asked of the sampler processes")
        self.spec, self.trials, self.n = spec, trials, n


class _Apart:
    """The sampler entry point of a study whose sampler runs in the sampler processes. In a
    first pass of ``decide`` it raises ``_AskedApartError``; the reconcile awaits the
    processes' answer on the event loop (no thread waits for it) and decides again, when it
    answers with those proposals for the same question. ``decide`` is pure, so both passes
    ask the same."""

    def __init__(self) -> None:
        self.answer: tuple[tuple[int, tuple[Any, ...]], list[dict[str, Any]]] | None = None

    def __call__(self, spec: Any, trials: Sequence[Any], n: int) -> list[dict[str, Any]]:
        if self.answer is not None and self.answer[0] == (n, tuple(trials)):
            return self.answer[1]
        raise _AskedApartError(spec, list(trials), n)


class Reconciler:
    """The reconcile, bound to its client and store. ``key`` signs and verifies results
    (None: taken as written, as ``run --local`` does); ``access`` sets up trial RBAC (None
    where there is none, as in ``run --local``); ``hold_status`` False writes every status
    change at once (``run --local``: no API server to spare). ``samplers``: the processes
    that run the samplers which fit a model (``kube.sampling``); without them every sampler
    runs in the reconcile's thread."""

    def __init__(self, api: Api, store: TrialStore, *, key: signing.Keyring | None = None,
                 metrics: Metrics | None = None, access: TrialAccess | None = None,
                 samplers: SamplerProcesses | None = None,
                 clock: Callable[[], float] = time.time,
                 hold_status: bool = True,
                 workloads: Iterable[Resource] = ()):
        self.metrics = metrics or Metrics()
        self.store = store
        self.key = key
        self.access = access
        self.clock = clock
        self.events = EventPoster(api)
        self.apply = Applier(api, store, self.events, self.metrics)
        self.status = (StatusWriter(api, clock=clock) if hold_status else
                       StatusWriter(api, interval=0.0, starting=0.0, rate=None, clock=clock))
        self.logs = LogReader(api, clock)
        self.suggest = self.metrics.timed_suggest(core.suggest)
        self.samplers = samplers
        # The pure part of a reconcile (observe, decide) runs in these threads.
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=LOOK_THREADS, thread_name_prefix="reconcile")
        # The trial kinds other than Job whose resources the store holds (--workload).
        self.workloads = frozenset(workloads)
        self._warned: set[tuple[str, str]] = set()
        # study uid -> (what the prior history was computed from, that history): an earlier
        # study of thousands of trials is read again only when one of its Jobs changed.
        self._priors: dict[str, tuple[Any, warm.Prior]] = {}
        # study uid -> one past the highest trial number this process created: the numbering
        # holds while a status that says so waits to be written (kube.status_writer).
        self._numbered: dict[str, int] = {}

    async def release_only(self, uid: str) -> None:
        """For a study that is gone, being deleted or not seen yet: release what is safe
        (pods of Jobs the garbage collector removed) and nothing else. A foreground deletion
        removes the Jobs first, which must not be taken for Lost trials to replace."""
        self._priors.pop(uid, None)
        self._numbered.pop(uid, None)
        self.apply.forget(uid)
        for pod in observing.releasable_pods(self.store.jobs_of(uid), self.store.pods_of(uid),
                                             set()):
            await self.apply.release(pod)

    async def reconcile(self, study: dict[str, Any]) -> Outcome:
        sampling = _Stopwatch(self.suggest)
        meta = study["metadata"]
        uid = meta["uid"]
        generation = int(meta.get("generation") or 1)
        previous = study.get("status") or {}
        now = self.clock()
        try:
            spec = specs.parse_spec(study.get("spec") or {})
        except specs.SpecError as e:
            await self.status.write(study, statuses.invalid_status(
                str(e), previous, generation=generation, now=now))
            return Outcome()
        if spec.algorithm.seed is None:
            spec = spec.model_copy(update={"algorithm": spec.algorithm.model_copy(
                update={"seed": names.study_seed(uid)})})
        if previous.get("observedGeneration") != generation:
            await self.status.write(study, statuses.reconciling_status(
                previous, generation=generation, now=now))

        jobs, pods = self.store.jobs_of(uid), self.store.pods_of(uid)
        next_trial = max(int(previous.get("nextTrial") or 0), self._numbered.get(uid, 0))
        key = self.key
        by_number = observing.group_by_trial(jobs, pods)
        logs, log_due = await self._read_logs(uid, spec, by_number)

        earlier = self._earlier_jobs(study, spec)
        apart = _Apart() if self.samplers is not None and self.samplers.fits(spec) else None

        def look() -> tuple[observing.Observation, plans.Plan]:
            # On lists of cached objects, which the store replaces, never mutates.
            reader = observing.Reader.of(spec, logs)
            seen = observing.observe(jobs, pods, reader, next_trial=next_trial, key=key)
            if seen.unverified and len(all_pods := self.store.pods_of(uid, settled=True)) \
                    > len(pods):
                # A result edited by hand is re-derived from its pod, which the store may
                # keep aside once the trial was recorded.
                seen = observing.observe(jobs, all_pods, reader, next_trial=next_trial,
                                         key=key)
            prior = None if earlier is None else self._prior(uid, spec, earlier)
            plan = plans.decide(spec, seen.trials, now, next_trial=next_trial,
                                suggest=apart or sampling, prior=prior)
            return seen, plan

        seen, plan = await self._look(look, apart, sampling)
        sampling.looked = time.monotonic()

        for number in seen.unverified:
            await self._warn_unverified(study, by_number[number].job,
                                        restored=number in seen.to_record)
        # The next trials and the finished trials' results at the same time: a finished
        # trial's place does not wait for its result to be written (its pod keeps the result
        # until it is, and a restart records it again), so the study waits for one API call
        # between a trial and the next, and a reconcile for the longest of them, not their sum.
        async def create() -> tuple[bool, errors.ApiError | None]:
            if not plan.create:
                return True, None
            try:
                await self._trial_needs(study, spec)
                return await self._create_trials(study, spec, plan, jobs, previous,
                                                 generation, now, sampling), None
            except errors.ApiError as e:
                # Results are recorded all the same: a refused create (a quota, an outage)
                # must not keep finished trials' pods waiting.
                return False, (None if _namespace_going(e, study) else e)

        async def record(number: int, result: TrialResult) -> int | None:
            done = await self.apply.record(study, by_number[number].job, result, key)
            return number if done else None

        (created, refused), records = await _both(
            create(), _all([record(n, r) for n, r in seen.to_record.items()]))
        recorded = {n for n in records if n is not None}
        trials = {t.number: t for t in seen.trials}
        for stop in plan.stop:
            objs = by_number.get(stop.number)
            if objs is None or objs.job is None:
                continue
            result = plans.stop_result(trials[stop.number], stop)
            if await self.apply.record(study, objs.job, result, key, stop=True):
                recorded.add(stop.number)
                await self.apply.end(objs, now)
        stopping_now = {stop.number for stop in plan.stop}
        for t in seen.trials:
            if t.state in (TrialState.PRUNED, TrialState.STOPPED) and \
                    t.number not in stopping_now and t.number in by_number:
                await self.apply.end_recorded(by_number[t.number], now)
        await _all([self.apply.release(pod) for pod in await asyncio.to_thread(
            observing.releasable_pods, self.store.jobs_of(uid), pods, recorded)])
        if not plan.create and any(t.state.is_active for t in seen.trials):
            # While trials run, too: a Role deleted meanwhile would silence their reports, a
            # Service deleted would leave workers unable to find worker 0.
            await self._trial_needs(study, spec)
        if refused is not None:
            raise refused
        if not created:
            return Outcome(plan=plan)
        was_finished = finished(study)
        written_best = (study.get("status") or {}).get("bestTrial")
        status = statuses.study_status(plan, previous, generation=generation, now=now,
                                       pending_reasons=seen.pending_reasons)
        # A pending trial that says why it waits (no node, no GPU, a queue) is no start.
        hold = self.status.hold(study, status, starting=not seen.pending_reasons)
        if not hold and await self.status.write(study, status):
            await self._post_new_best(study, written_best)
        if plan.finished is not None and not was_finished:
            kind = "Normal" if plan.finished.condition == "Succeeded" else "Warning"
            await self.events.post(study, f"Study{plan.finished.condition}",
                                   plan.finished.message, kind)
        stopped = {stop.number for stop in plan.stop}
        look_again = next_look([t for t in seen.trials if t.number not in stopped], spec, now)
        for due in (hold, log_due):
            if due:
                look_again = due if look_again is None else min(look_again, due)
        return Outcome(plan=plan, requeue_after=look_again)

    async def _look(self, look: Callable[[], tuple[observing.Observation, plans.Plan]],
                    apart: _Apart | None, sampling: _Stopwatch
                    ) -> tuple[observing.Observation, plans.Plan]:
        """``look`` in a reconcile thread; where it asks a sampler that runs apart, the
        answer is awaited from the sampler processes and ``look`` runs again with it."""
        loop = asyncio.get_running_loop()
        for _ in range(_PASSES):
            try:
                return await loop.run_in_executor(self._threads, look)
            except _AskedApartError as asked:
                assert apart is not None and self.samplers is not None
                start = time.perf_counter()
                proposals = await self.samplers.suggest(asked.spec, asked.trials, asked.n)
                took = time.perf_counter() - start
                sampling.seconds += took
                self.metrics.suggestion_seconds.observe(took)
                apart.answer = ((asked.n, tuple(asked.trials)), proposals)
        raise RuntimeError(f"the study's trials changed under its sampler {_PASSES} times in a "
                           "row; the study is reconciled again")

    def _earlier_jobs(self, study: dict[str, Any], spec: specs.StudySpec
                      ) -> list[tuple[str, list[dict[str, Any]]]] | None:
        """The trial Jobs of each study ``spec.warmStart`` names (not this one's), from the
        store; None without a warm start."""
        if spec.warm_start is None:
            return None
        meta = study["metadata"]
        return [(name, [j for j in self.store.jobs_named(meta["namespace"], name)
                        if (j["metadata"].get("labels") or {}).get(names.STUDY_UID_LABEL)
                        != meta["uid"]])
                for name in spec.warm_start.studies]

    def _prior(self, uid: str, spec: specs.StudySpec,
               earlier: list[tuple[str, list[dict[str, Any]]]]) -> warm.Prior:
        """``warm.prior_history`` of the earlier studies' Jobs, computed again only when they
        or this study's objective or space changed."""
        basis = (spec.objective, spec.search_space, tuple(
            (name, tuple(sorted((j["metadata"].get("uid"), j["metadata"].get("resourceVersion"))
                                for j in found)))
            for name, found in earlier))
        cached = self._priors.get(uid)
        if cached is not None and cached[0] == basis:
            return cached[1]
        prior = warm.prior_history(spec, [prior_study(name, found, self.key)
                                          for name, found in earlier])
        self._priors[uid] = (basis, prior)
        return prior

    async def _read_logs(self, uid: str, spec: specs.StudySpec,
                         by_number: Mapping[int, observing.TrialObjects]
                         ) -> tuple[dict[int, str], float | None]:
        """The logs the trials' metrics come from, where ``metricsFrom.log`` says so, and when
        running trials' logs are due again (``kube.logs``)."""
        source = spec.metrics_from
        if source is None or source.log is None:
            return {}, None
        container = observing.source_container(spec, source.log)
        return await self.logs.read(uid, by_number, container,
                                    source.log.pattern,
                                    running_too=spec.early_stopping is not None)

    async def _post_new_best(self, study: dict[str, Any],
                             before: Mapping[str, Any] | None) -> None:
        """A NewBestTrial event when the written status names a better trial than before."""
        best = (study.get("status") or {}).get("bestTrial")
        if not best or (before and before.get("number") == best.get("number")):
            return
        text = f"trial {best['number']}: value {best['value']:.6g}"
        if before:
            text += f" (was {before['value']:.6g}, trial {before['number']})"
        await self.events.post(study, "NewBestTrial", text)

    async def _trial_needs(self, study: dict[str, Any], spec: specs.StudySpec) -> None:
        """What trials need besides their Jobs: their RBAC, and the workers' Service."""
        if self.access is not None:
            await self.access.ensure(study["metadata"]["namespace"], trial_account(spec))
        if spec.trial.workers > 1:
            # Before the Jobs, so that worker 0's name resolves as soon as its pod runs.
            await self.apply.ensure_workers_service(study, builders.workers_service(study, spec))

    async def _create_trials(self, study: dict[str, Any], spec: specs.StudySpec,
                             plan: plans.Plan, jobs: list[dict[str, Any]],
                             previous: dict[str, Any], generation: int, now: float,
                             sampling: _Stopwatch) -> bool:
        """Create the plan's trials; False when the spec turned out invalid (status written).
        ``sampling``: the sampler's seconds for them and the reconcile's times, logged with
        each."""
        unwatched = _unwatched(spec, self.workloads)
        if unwatched is not None:
            await self.status.write(study, statuses.invalid_status(
                unwatched, previous, generation=generation, now=now))
            return False
        manifests = [builders.build_trial(study, spec, c.number, c.params)
                     for c in plan.create]
        if not jobs:
            # The first trial: let the API server judge the template before anything exists.
            try:
                await self.apply.dry_run(manifests[0])
            except (errors.BadRequest, errors.Forbidden, errors.Invalid) as e:
                if _namespace_going(e, study):
                    return False
                field = "jobTemplate" if spec.job_template is not None else "trialTemplate"
                message = (f"spec.{field}: the API server refuses the trial "
                           f"{manifests[0].get('kind', 'Job')}: {e.message}")
                await self.status.write(study, statuses.invalid_status(
                    message, previous, generation=generation, now=now))
                return False
        meta = study["metadata"]
        for creation, manifest in zip(plan.create, manifests, strict=True):
            made = await self.apply.create(study, creation.number, manifest)
            # Once the server has the Job: a create that failed made nothing, and its number is
            # free again (a Job made whose answer was lost comes back through the watch).
            self._numbered[meta["uid"]] = max(self._numbered.get(meta["uid"], 0),
                                              creation.number + 1)
            if made:
                # How long after the end it replaces reached the operator (its watch, the work
                # queue, this reconcile, the sampler and the create), where one ended. The
                # study's first ``parallelism`` trials fill empty places and replace no end,
                # even where earlier ones ended while they were being created.
                seen_at = (self.store.ended_seen(meta["uid"])
                           if creation.number >= spec.budget.parallelism else None)
                # Its parts: the end waiting for this reconcile to begin (a reconcile of the
                # study already running, the loop busy), the look (a reconcile thread, the
                # sampler), and the creates up to this one.
                made_at = time.monotonic()
                turnaround = "" if seen_at is None else (
                    f"; {(made_at - seen_at) * 1000:.1f} ms after a trial's end "
                    f"reached the operator: {_ms(sampling.began - seen_at)} ms to begin, "
                    f"{_ms(sampling.looked - sampling.began)} ms to look, "
                    f"{_ms(made_at - sampling.looked)} ms to create")
                if seen_at is not None:
                    self.metrics.trial_turnaround.observe(made_at - seen_at)
                log.info("trial %d of %s/%s: created %s %s (sampler %s: %.1f ms for %d%s)",
                         creation.number, meta["namespace"], meta["name"],
                         manifest.get("kind", "Job"), manifest["metadata"]["name"],
                         spec.algorithm.name, sampling.seconds * 1000, len(plan.create),
                         turnaround)
        return True

    async def _warn_unverified(self, study: dict[str, Any], job: dict[str, Any] | None, *,
                               restored: bool) -> None:
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
        await self.events.post(
            study, "ResultUnverified",
            f"trial {meta['labels'].get(names.TRIAL_LABEL)} (Job {meta['name']}): its "
            f"{names.RESULT_ANNOTATION} annotation is not the operator's (edited by hand?), so "
            f"it is not used; {what}", "Warning")


async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``calls`` together; each runs to its end, and the first error among them is
    raised once all have ended (none is left running, none is retried here)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """``_all`` of two calls that answer different things."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


def _ms(seconds: float) -> str:
    return f"{max(0.0, seconds) * 1000:.1f}"


def prior_study(name: str, jobs: Sequence[dict[str, Any]],
                key: signing.Keyring | None) -> warm.PriorStudy:
    """An earlier study as its trial Jobs tell it: the objective its trials were given and
    its trials, each result verified with ``key`` as this study's are. Pure."""
    if not jobs:
        return warm.PriorStudy(name)
    metric, direction = observing.objective_of(jobs[0])
    reader = observing.Reader(metric or "", direction != "maximize")
    seen = observing.observe(list(jobs), [], reader, key=key)
    return warm.PriorStudy(name, metric, direction, seen.trials)


def _unwatched(spec: specs.StudySpec, watched: frozenset[Resource]) -> str | None:
    """Why the operator cannot run the trials of ``spec``: a trialTemplate of a kind it does
    not watch (so it would never see the trials end); None when it can. Pure."""
    if spec.trial_template is None:
        return None
    kind = workloads.kind_of(spec.trial_template)
    if kind is None or kind.watched_as in watched:
        return None
    name = kind.watched_as.name
    return (f"spec.trialTemplate: the operator does not watch {spec.trial_template['kind']} "
            f"resources ({name}); run it with --workload {name} (the Helm chart's value "
            f"workloads: [{name}], which also grants it access), or use jobTemplate")


def trial_account(spec: specs.StudySpec) -> str | None:
    """The ServiceAccount the template's pods run as, None for kubetune-trial. Pure."""
    pod = specs.pod_template_of(spec).get("spec") or {}
    return pod.get("serviceAccountName") or pod.get("serviceAccount") or None


def next_look(trials: Sequence[Trial], spec: specs.StudySpec, now: float) -> float | None:
    """Seconds until the earliest running trial passes trialTimeoutSeconds (its pod's own
    deadline normally ends it first, and its end is a change that triggers a reconcile), or
    None when no trial has a deadline to watch. Pure."""
    limit = spec.budget.trial_timeout_seconds
    if limit is None:
        return None
    due = [t.start_time + limit - now for t in trials
           if t.state.is_active and t.start_time is not None]
    if not due:
        return None
    return max(min(due), 0.0) + _DEADLINE_SLACK


def _namespace_going(e: errors.ApiError, study: dict[str, Any]) -> bool:
    """Whether ``e`` says the study's namespace is being deleted, or is gone (a study left
    behind by an interrupted namespace deletion): its Jobs, maybe gone already, are no reason
    to start new trials.
    """
    gone = isinstance(e, errors.NotFound) and e.kind == "namespaces"
    if "NamespaceTerminating" not in e.causes and not gone:
        return False
    log.info("not creating trials of %s/%s: %s", study["metadata"]["namespace"],
             study["metadata"]["name"], e.message)
    return True


def finished(study: dict[str, Any]) -> bool:
    """Whether the study's status says Succeeded or Failed."""
    return any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True"
               for c in (study.get("status") or {}).get("conditions") or [])
