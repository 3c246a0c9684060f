"""Jobs and pods -> trial records. Pure: the reconcile gathers the objects, this reads them.

A trial whose result is on its Job is read from that result alone. Otherwise its state comes
from the Job's conditions and its pods: the metrics and curve annotations of the pod that ran
it, the Job's Complete/Failed condition, the pod's phase. Numbers below the study's high-water
mark without a Job are Lost.

Given the operator's keyring, a result is believed only with a valid signature
(``kube.signing``). One that a key of the ring shows edited (or that has no signature) is
re-derived from its pod when the trial ended on its own and its pod is still there, and
recorded again; otherwise the trial is Lost (reason ResultUnverified). One signed with a key
the ring does not hold is never rewritten: the trial is Lost (reason ResultKeyUnknown) until
that key is added to the ring. A Lost trial's number is not reused, it does not count toward
maxTrials, and a new trial takes its place.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.core import metric_sources, objectives, protocol, stopping
from kubetune.core import spec as specs
from kubetune.core.objectives import Constraint
from kubetune.core.protocol import ProtocolError, TrialResult
from kubetune.core.trials import QUEUE_LABEL, QUEUED, Trial, TrialState
from kubetune.kube import conventions as names
from kubetune.kube import jobs as builders
from kubetune.kube import signing

Keys = bytes | signing.Keyring

__all__ = [
    "Observation",
    "Reader",
    "TrialObjects",
    "as_job",
    "group_by_trial",
    "has_result",
    "job_condition",
    "job_ended",
    "objective_of",
    "observe",
    "parse_time",
    "releasable_pods",
    "retries",
    "source_container",
]


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def job_condition(job: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for c in job.get("status", {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return dict(c)
    return None


def job_ended(job: Mapping[str, Any]) -> bool:
    """Whether the Job has finished, Complete or Failed."""
    return job_condition(job, "Complete") is not None or job_condition(job, "Failed") is not None


def has_result(job: Mapping[str, Any]) -> bool:
    """Whether the trial's result is recorded on its Job (signed or not)."""
    return names.RESULT_ANNOTATION in (job["metadata"].get("annotations") or {})


def worker_index(pod: Mapping[str, Any]) -> int:
    """Which worker of its trial ``pod`` is: its Indexed Job's completion index (0 for the pod
    of a one-worker trial)."""
    labels = pod["metadata"].get("labels") or {}
    try:
        return int(labels.get(names.COMPLETION_INDEX) or 0)
    except ValueError:
        return 0


@dataclass
class TrialObjects:
    """One trial's Job (None when it was deleted) and its pods, oldest first."""

    number: int
    job: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reporting_pods(self) -> list[dict[str, Any]]:
        """The pods of worker 0, which report the trial's metrics, oldest first (every pod
        of a one-worker trial); of a trial that is not a Job, those its kind's metrics-pod
        labels select."""
        kind = None if self.job is None else builders.trial_kind(self.job)
        selector = {} if kind is None else kind.metrics_pod
        return [p for p in self.pods if worker_index(p) == 0 and all(
            (p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]

    @property
    def current_pod(self) -> dict[str, Any] | None:
        """The newest pod of worker 0: where the trial's metrics and log are read."""
        pods = self.reporting_pods
        return pods[-1] if pods else None

    @property
    def workers(self) -> int:
        """Pods that train the trial together: the Job's completions in Indexed mode."""
        spec = (self.job or {}).get("spec") or {}
        if spec.get("completionMode") != "Indexed":
            return 1
        return int(spec.get("completions") or 1)


def _trial_number(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(obj["metadata"]["labels"][names.TRIAL_LABEL])
    except (KeyError, TypeError, ValueError):
        return None


def as_job(obj: dict[str, Any]) -> dict[str, Any]:
    """A trial object as a Job reads: a Job as it is; another kind (``spec.trialTemplate``)
    with its success and failure conditions as Complete and Failed, its suspension, and its
    own metadata (the same mapping, so its name, annotations and signature stay its own)."""
    kind = builders.trial_kind(obj)
    if kind is None:
        return obj
    conditions = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") in (kind.success, "Complete"):
            conditions.append({**c, "type": "Complete"})
        elif c.get("type") in (kind.failure, "Failed"):
            conditions.append({**c, "type": "Failed"})
    return {"metadata": obj["metadata"],
            "spec": {"suspend": bool((obj.get("spec") or {}).get("suspend"))},
            "status": {"conditions": conditions}}


def group_by_trial(
    jobs: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]
) -> dict[int, TrialObjects]:
    """Pair each trial object (``as_job``) with its pods by the trial label."""
    out: dict[int, TrialObjects] = {}
    for job in jobs:
        n = _trial_number(job)
        if n is not None:
            out.setdefault(n, TrialObjects(n)).job = as_job(job)
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                            p["metadata"]["name"])):
        n = _trial_number(pod)
        if n is not None:
            out.setdefault(n, TrialObjects(n)).pods.append(pod)
    return out


@dataclass(frozen=True)
class Observation:
    """What the cluster says: the trials, results to record, pods waiting for a reason."""

    trials: tuple[Trial, ...]
    # Trials that ended on their own (the Job finished) and whose result is not on the Job yet.
    to_record: dict[int, TrialResult]
    # Why Pending trials wait, e.g. the scheduler's "Insufficient nvidia.com/gpu".
    pending_reasons: tuple[str, ...]
    # Trials whose recorded result failed verification (see the module docstring).
    unverified: tuple[int, ...] = ()


def _curve(pod: Mapping[str, Any] | None) -> tuple[tuple[int, float], ...]:
    if pod is None:
        return ()
    text = (pod["metadata"].get("annotations") or {}).get(names.CURVE_ANNOTATION)
    if not text:
        return ()
    try:
        return tuple(protocol.parse_curve(text))
    except ProtocolError:
        return ()


def _report(pod: Mapping[str, Any] | None, metric: str) -> protocol.MetricsReport:
    text = None if pod is None else (pod["metadata"].get("annotations") or {}).get(
        names.METRICS_ANNOTATION)
    return protocol.parse_metrics(text, metric)


def _with_last(curve: tuple[tuple[int, float], ...], report: protocol.MetricsReport | None,
               metric: str, minimize: bool) -> tuple[tuple[int, float], ...]:
    """The curve with the latest report's point, in case the curve annotation lags behind it."""
    if report is None or metric not in report.metrics:
        return curve
    point = (report.step, float(report.metrics[metric]))
    if curve and curve[-1][0] >= point[0]:
        return curve
    return tuple(protocol.append_point(list(curve), point[0], point[1], minimize=minimize))


def source_container(spec: specs.StudySpec, source: Any) -> str:
    """The container ``source`` (a metricsFrom entry) reads: the one it names, or the
    trial pod template's first. Pure."""
    if source.container:
        return str(source.container)
    pod = specs.pod_template_of(spec).get("spec") or {}
    return str((pod.get("containers") or [{}])[0].get("name") or "")


def objective_of(job: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(metric, direction) a trial Job's containers were told (KUBETUNE_METRIC,
    KUBETUNE_DIRECTION), or Nones. Pure."""
    pod = job.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers") or []:
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        if "KUBETUNE_METRIC" in env:
            return env["KUBETUNE_METRIC"], env.get("KUBETUNE_DIRECTION")
    return None, None


def _termination_message(pod: Mapping[str, Any] | None, container: str) -> str | None:
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            terminated = status.get("state", {}).get("terminated") or {}
            return terminated.get("message")
    return None


@dataclass(frozen=True)
class Reader:
    """Where a study's trials report: the SDK's pod annotations (``source`` None), the
    container's termination message, or its log (``logs``: the text read per trial number;
    a trial without one has not been read, and is not judged yet)."""

    metric: str
    minimize: bool
    source: specs.MetricsFromSpec | None = None
    container: str = ""
    logs: Mapping[int, str] = field(default_factory=dict)
    keep_steps: tuple[int, ...] = ()
    reported: tuple[str, ...] = ()
    """Every metric a final report must hold, where a study has several (objectives and
    constraints); empty with one objective and no constraint."""
    constraints: tuple[Constraint, ...] = ()

    @property
    def reads_log(self) -> bool:
        return self.source is not None and self.source.log is not None

    @classmethod
    def of(cls, spec: specs.StudySpec, logs: Mapping[int, str] | None = None) -> Reader:
        """The reader of ``spec``'s trials, with the logs read for them (if any)."""
        source = spec.metrics_from
        chosen = None if source is None else (source.log or source.termination_message)
        reported = specs.reported(spec)
        return cls(specs.watched(spec).metric, specs.minimize(spec), source,
                   "" if chosen is None else source_container(spec, chosen),
                   logs or {}, stopping.keep_steps(spec.early_stopping),
                   reported if len(reported) > 1 else (), specs.constraints_of(spec))

    def succeeded(self, report: protocol.MetricsReport, curve: tuple[tuple[int, float], ...]
                  ) -> TrialResult:
        """The result of a trial whose final report is ``report``: Succeeded, with reason
        Infeasible when it breaks a constraint; Failed (MetricMissing, MetricNotFinite) when
        a metric the study needs is missing or not a finite number."""
        value = float(report.metrics[self.metric])
        step = curve[-1][0] if curve else None
        values = {}
        for name in self.reported:
            v = report.metrics.get(name)
            if v is None:
                return TrialResult(TrialState.FAILED, protocol.METRIC_MISSING, None, step, curve,
                                   f"the final report has no {name!r}, which the study's "
                                   f"objectives or constraints need (got "
                                   f"{sorted(report.metrics)[:20]})")
            if not math.isfinite(v):
                return TrialResult(TrialState.FAILED, protocol.METRIC_NOT_FINITE, None, step,
                                   curve, f"the final report's {name!r} is {v}")
            values[name] = float(v)
        broken = objectives.broken(values, self.constraints)
        if broken:
            return TrialResult(TrialState.SUCCEEDED, objectives.INFEASIBLE, value, report.step,
                               curve, "breaks " + "; ".join(broken), values)
        return TrialResult(TrialState.SUCCEEDED, None, value, report.step, curve,
                           values=values)

    def ready(self, number: int) -> bool:
        """Whether an ended trial can be judged: its log was read, where that is the source."""
        return not self.reads_log or number in self.logs

    def read(self, number: int, pod: Mapping[str, Any] | None, *, ended: bool
             ) -> tuple[protocol.MetricsReport | None, tuple[tuple[int, float], ...]]:
        """The trial's latest report (None: nothing yet) and curve. Raises ProtocolError for
        a report that fails the trial if it is the last."""
        source = self.source
        if source is None:
            curve = _curve(pod)
            try:
                report = _report(pod, self.metric)
            except ProtocolError:
                if ended:
                    raise
                return None, curve  # a bad report fails the trial only when it ends
            return report, _with_last(curve, report, self.metric, self.minimize)
        if source.log is not None:
            text = self.logs.get(number)
            if text is None:
                return None, ()
            try:
                return metric_sources.log_reading(text, source.log.pattern, self.metric,
                                                  minimize=self.minimize,
                                                  keep_steps=self.keep_steps)
            except ProtocolError:
                if ended:
                    raise
                return None, ()
        if not ended:
            return None, ()
        report = metric_sources.termination_report(
            _termination_message(pod, self.container), self.metric, self.container)
        return report, ((report.step, float(report.metrics[self.metric])),)


def _who(pod: Mapping[str, Any] | None, workers: int) -> str:
    """Which worker a message is about, where a trial has several."""
    if workers <= 1 or pod is None:
        return ""
    return f"worker {worker_index(pod)} of {workers} (pod {pod['metadata']['name']}): "


def _exit_message(pod: Mapping[str, Any] | None, workers: int = 1) -> str:
    if pod is None:
        return "the trial's pod is gone"
    who = _who(pod, workers)
    for status in pod.get("status", {}).get("containerStatuses") or []:
        term = status.get("state", {}).get("terminated")
        if term and term.get("exitCode", 0) != 0:
            msg = f"{who}container {status['name']} exited with code {term['exitCode']}"
            if term.get("message"):
                msg += f": {term['message'].strip()[-400:]}"
            return msg
    return who + (pod.get("status", {}).get("message") or "the trial's pod failed")


# How the Job controller's Failed condition names the pod whose failure matched a FailJob rule.
_FAILED_POD = re.compile(r"for pod [^/\s]+/(\S+) failed with exit code")


def _failed_pod(objs: TrialObjects) -> dict[str, Any] | None:
    """The pod whose failure failed the trial: with several workers, the one the Job's Failed
    condition names (the others were ended because of it); else the newest failed pod."""
    if objs.workers > 1 and objs.job is not None:
        failed = job_condition(objs.job, "Failed") or {}
        m = _FAILED_POD.search(failed.get("message") or "")
        if m:
            for pod in objs.pods:
                if pod["metadata"]["name"] == m.group(1):
                    return dict(pod)
    for pod in reversed(objs.pods):
        if pod.get("status", {}).get("phase") == "Failed":
            return dict(pod)
    return objs.current_pod


def _oom_killed(pod: Mapping[str, Any] | None) -> str | None:
    """The name of a container the kernel killed at its memory limit, if any."""
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        if (status.get("state", {}).get("terminated") or {}).get("reason") == "OOMKilled":
            return str(status["name"])
    return None


def _ended_by_deadline(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> bool:
    failed = job_condition(job, "Failed")
    if failed and failed.get("reason") == "DeadlineExceeded":
        return True
    return pod is not None and pod.get("status", {}).get("reason") == "DeadlineExceeded"


def retries(job: Mapping[str, Any]) -> int:
    """Pods of ``job`` re-run after their node lost them: the Job's failed pods but the one
    that failed it (its pod failure policy fails it at once on the training code's failure, so
    every other counted failure was a pod lost to its node, or one that never started). Pure."""
    status, spec = job.get("status", {}), job.get("spec", {})
    failed = int(status.get("failed") or 0)
    if job_condition(job, "Failed") is not None:
        if spec.get("completionMode") == "Indexed":
            # The failure ended every worker that had not succeeded: none of them was lost.
            failed -= int(spec.get("completions") or 1) - int(status.get("succeeded") or 0)
        else:
            failed -= 1
    return max(failed, 0)


def _retries_exhausted(job: Mapping[str, Any]) -> bool:
    """Whether the Job failed for more counted pod failures than its backoffLimit: under the
    operator's pod failure policy (the training code's failure fails the Job at once, with
    reason PodFailurePolicy), those are pods their node lost. Without a policy (restartPolicy
    OnFailure) the count is the container's own restarts."""
    failed = job_condition(job, "Failed")
    return bool(failed and failed.get("reason") == "BackoffLimitExceeded"
                and job.get("spec", {}).get("podFailurePolicy"))


def _disruption(pod: Mapping[str, Any] | None) -> str | None:
    """What its node did to ``pod`` (the DisruptionTarget condition), or None."""
    for c in (pod or {}).get("status", {}).get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return f"{c.get('reason') or 'Disrupted'}: {c.get('message') or 'no message'}"
    return None


def _finished_pod(objs: TrialObjects, phase: str) -> dict[str, Any] | None:
    """The newest pod of worker 0 in ``phase``: the one whose metrics tell the result."""
    for pod in reversed(objs.reporting_pods):
        if pod.get("status", {}).get("phase") == phase:
            return dict(pod)
    return objs.current_pod


def _ended(objs: TrialObjects, reader: Reader) -> TrialResult | None:
    """The result of a trial whose Job finished, or None while it runs (or while its log,
    where that is the source, has not been read)."""
    job = objs.job
    assert job is not None
    complete = job_condition(job, "Complete") is not None
    failed = job_condition(job, "Failed") is not None
    if not (complete or failed) or not reader.ready(objs.number):
        return None
    pod = _finished_pod(objs, "Succeeded" if complete else "Failed")
    problem: ProtocolError | None = None
    report: protocol.MetricsReport | None = None
    curve: tuple[tuple[int, float], ...] = ()
    try:
        report, curve = reader.read(objs.number, pod, ended=True)
    except ProtocolError as e:
        problem = e
        if reader.source is None:
            curve = _curve(pod)
    step = curve[-1][0] if curve else None
    final = report is not None and report.final and reader.source is None
    if complete or final:
        if problem is not None:
            return TrialResult(TrialState.FAILED, problem.reason, None, step, curve, str(problem))
        assert report is not None  # read returns a report or raises when ended
        return reader.succeeded(report, curve)
    value = None if report is None else float(report.metrics[reader.metric])
    pod = _failed_pod(objs)
    if _ended_by_deadline(job, pod):
        return TrialResult(TrialState.FAILED, "TimedOut", value, step, curve,
                           "the trial ran past trialTimeoutSeconds")
    lost = _disruption(pod)
    if lost is not None or _retries_exhausted(job):
        n = retries(job)
        what = lost[:300] if lost else "it was lost or never started"
        return TrialResult(TrialState.FAILED, "PodLost", value, step, curve,
                           f"its pod was lost to its node ({what}) after {n} re-run"
                           f"{'' if n == 1 else 's'}, all that budget.maxRetries allows")
    oom = _oom_killed(pod)
    if oom is not None:
        return TrialResult(TrialState.FAILED, "OOMKilled", value, step, curve,
                           f"{_who(pod, objs.workers)}container {oom} was killed for using more "
                           "memory than its limit (resources.limits.memory); raise the limit or "
                           "use less memory")
    return TrialResult(TrialState.FAILED, "ExitCode", value, step, curve,
                       _exit_message(pod, objs.workers))


def _trial_from_result(number: int, params: dict[str, Any], result: TrialResult,
                       job: dict[str, Any],
                       start: float | None, end: float | None) -> Trial:
    return Trial(
        number=number, params=params, state=result.state, value=result.value,
        curve=tuple(result.curve), reason=result.reason, message=result.message,
        start_time=start, end_time=end, job=job["metadata"]["name"], retries=retries(job),
        values=dict(result.values),
    )


def _queued(objs: TrialObjects) -> str | None:
    """Why a trial whose Job is suspended waits: for its queue (Kueue) to admit it, or for
    whoever suspended it; None when its Job is not suspended."""
    job = objs.job or {}
    if not job.get("spec", {}).get("suspend"):
        return None
    name = job["metadata"]["name"]
    queue = (job["metadata"].get("labels") or {}).get(QUEUE_LABEL)
    if queue:
        return (f"trial {objs.number} waits for its queue {queue!r} to admit it (Job {name} is "
                "suspended until Kueue has quota for it)")
    return f"Job {name} is suspended (by its template or its owner)"


def _pending_reason(objs: TrialObjects) -> str | None:
    queued = _queued(objs)
    if queued is not None:
        return queued
    pod = objs.current_pod
    if pod is None:
        return None
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("message"):
            return str(c["message"])
    return None


def _recorded(job: Mapping[str, Any], key: Keys | None
              ) -> tuple[TrialResult | None, signing.Verdict]:
    """The result on ``job`` if readable and (given ``key``) signed by the operator, and what
    its signature says."""
    annotations = job["metadata"].get("annotations") or {}
    text = annotations.get(names.RESULT_ANNOTATION)
    verdict = signing.Verdict.VERIFIED
    if key is not None:
        verdict = signing.judge(key, job, text or "",
                                annotations.get(signing.SIGNATURE_ANNOTATION))
        if verdict is not signing.Verdict.VERIFIED:
            return None, verdict
    try:
        return protocol.parse_result(text or ""), verdict
    except ProtocolError:
        return None, verdict


def _unknown_key(job: Mapping[str, Any]) -> str:
    signature = (job["metadata"].get("annotations") or {}).get(signing.SIGNATURE_ANNOTATION)
    parts = str(signature).split(":")
    which = f"key {parts[1]}" if len(parts) == 3 else "a key"
    return (f"its result was signed with {which}, which Secret {signing.KEY_SECRET} in the "
            "operator's namespace does not hold (another operator's, or a removed key); add "
            "that key to the Secret as a key* field and restart the operator to believe it; "
            "the result is kept as it is")


def _rederivable(objs: TrialObjects, result: TrialResult | None) -> bool:
    """Whether ``result``, re-derived from the pod, is what the operator once recorded: the
    trial ended on its own (not by a deadline, which the operator also uses to prune and stop)
    and the pod it ran in is still there to read.
    """
    return (result is not None and objs.job is not None and objs.current_pod is not None
            and not _ended_by_deadline(objs.job, objs.current_pod))


def observe(
    jobs: Sequence[dict[str, Any]], pods: Sequence[dict[str, Any]], reader: Reader, *,
    next_trial: int = 0, key: Keys | None = None,
) -> Observation:
    """Read the trials of one study from its Jobs and pods (both selected by its UID label),
    their metrics as ``reader`` says.

    With ``key`` (the operator's keyring, or one key) recorded results are verified; without
    one (a reader that only displays) they are taken as written.
    """
    grouped = group_by_trial(jobs, pods)
    trials: list[Trial] = []
    to_record: dict[int, TrialResult] = {}
    pending: list[str] = []
    unverified: list[int] = []
    for number in sorted(grouped):
        objs = grouped[number]
        job = objs.job
        if job is None:
            continue  # pods of a deleted Job: the number is counted Lost below
        annotations = job["metadata"].get("annotations") or {}
        try:
            params = protocol.parse_params(annotations.get(names.PARAMS_ANNOTATION) or "{}")
        except ProtocolError:
            params = {}
        pod = objs.current_pod
        start = parse_time((pod or {}).get("status", {}).get("startTime")) or parse_time(
            job.get("status", {}).get("startTime"))
        end = parse_time(job.get("status", {}).get("completionTime"))
        if end is None:  # a failed Job has no completionTime: its condition says when
            for kind in ("Complete", "Failed"):
                cond = job_condition(job, kind)
                if cond:
                    end = parse_time(cond.get("lastTransitionTime"))
        if names.RESULT_ANNOTATION in annotations:
            result, verdict = _recorded(job, key)
            if result is not None:
                trials.append(_trial_from_result(number, params, result, job, start, end))
                continue
            if verdict is signing.Verdict.UNKNOWN_KEY:
                # Recorded by an operator with another key: never re-derived nor rewritten.
                unverified.append(number)
                trials.append(Trial(
                    number=number, params=params, state=TrialState.LOST,
                    reason="ResultKeyUnknown", message=_unknown_key(job),
                    start_time=start, end_time=end, job=job["metadata"]["name"]))
                continue
            if key is not None:
                unverified.append(number)
                result = _ended(objs, reader)
                if not _rederivable(objs, result):
                    trials.append(Trial(
                        number=number, params=params, state=TrialState.LOST,
                        reason="ResultUnverified",
                        message=f"its {names.RESULT_ANNOTATION} annotation was not written by "
                                "the operator and its pod cannot tell the result again",
                        start_time=start, end_time=end, job=job["metadata"]["name"]))
                    continue
        result = _ended(objs, reader)
        if result is not None:
            to_record[number] = result
            trials.append(_trial_from_result(number, params, result, job, start, end))
            continue
        # A Job that ended but whose log is not read yet is judged later: Running till then.
        running = (pod is not None and pod.get("status", {}).get("phase") == "Running") or \
            job_ended(job)
        _, curve = reader.read(number, pod, ended=False)
        state = TrialState.RUNNING if running else TrialState.PENDING
        queued = None if running else _queued(objs)
        if not running:
            reason = _pending_reason(objs)
            if reason:
                pending.append(reason)
        trials.append(Trial(
            number=number, params=params, state=state,
            value=curve[-1][1] if curve else None, curve=curve, start_time=start,
            job=job["metadata"]["name"], retries=retries(job),
            reason=None if queued is None else QUEUED, message=queued,
        ))
    present = {t.number for t in trials}
    high = max([next_trial - 1, *present], default=-1)
    for number in range(high + 1):
        if number not in present:
            trials.append(Trial(number=number, params={}, state=TrialState.LOST,
                                reason="JobDeleted", message="its Job was deleted"))
    trials.sort(key=lambda t: t.number)
    return Observation(tuple(trials), to_record, tuple(dict.fromkeys(pending)),
                       tuple(unverified))


def releasable_pods(
    jobs: Sequence[dict[str, Any]], pods: Sequence[dict[str, Any]], recorded: set[int]
) -> list[dict[str, Any]]:
    """Pods whose ``kubetune.dev/result`` finalizer can go: their result is on the Job (or in
    ``recorded``, written this reconcile), their Job is gone or being deleted, they are deleted
    while the Job goes on, or they were disrupted and the Job, still going, has made a newer
    pod (either way this one's partial metrics are superseded). A disrupted pod that is its
    trial's last stays until the trial's result is recorded, so that a trial past
    budget.maxRetries says what its node did.
    """
    grouped = group_by_trial(jobs, pods)
    out = []
    for number, objs in grouped.items():
        job = objs.job
        recorded_here = number in recorded or (job is not None and has_result(job))
        finished = job is not None and job_ended(job)
        job_going = job is None or bool(job["metadata"].get("deletionTimestamp"))
        for i, pod in enumerate(objs.pods):
            if names.FINALIZER not in (pod["metadata"].get("finalizers") or []):
                continue
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            if _disruption(pod) is not None:
                # Kept until the Job has a newer pod, which tells the trial's story now.
                going = i < len(objs.pods) - 1 and not finished
            else:
                going = deleting and not finished
            if job_going or recorded_here or going:
                out.append(pod)
    return out
