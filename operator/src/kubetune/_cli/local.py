"""``kubetune run STUDY.yaml --local``: the study on this machine, without Kubernetes.

The operator's own reconcile (``kubetune.kube.reconcile``), run against an in-process
executor (``LocalCluster``) instead of an apiserver: the trial Jobs the reconcile creates
(built by ``kubetune.kube.jobs.build_trial_job``, so they get the env vars a trial Job gets)
start their first container as a local process: the image's entrypoint
(``kubetune/trainer`` -> ``python -m kubetune_trainer``) or its ``command``, ``args`` with
``$(VAR)`` expanded, as devcluster's node agent computes them (``kubetune.kube.podspec``).
Outside a pod ``kubetune.sdk.report`` prints each report as a JSON line on stdout; the runner
reads those lines into the pod annotations the trial would have had (``kubetune.dev/metrics``
and the thinned ``kubetune.dev/curve``), and the executor serves the trials as Job and pod
objects: trial states, metric checks, early stopping, timeouts, the goal and the budget are
decided, and results recorded, by exactly the code the operator runs. A result the
reconcile records on a Job goes to the journal; a pod whose deadline it lowers (pruned, timed
out, study over) has its process group terminated.

Results go to the journal (``journal``); running the same study file again resumes: finished
trials keep their results, and trials the last run left unfinished start again with the same
number and params (as a Job retries a pod after a disruption).

Trial processes die with the runner (Linux: PR_SET_PDEATHSIG), even when it is killed -9.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from kubetune._cli import render, views
from kubetune._cli.errors import CommandError
from kubetune._cli.journal import Journal, JournalState, Recorded, read_journal
from kubetune.core import plan as plans
from kubetune.core import protocol, stopping, times
from kubetune.core import spec as specs
from kubetune.core.protocol import ProtocolError, TrialResult
from kubetune.kube import api as paths
from kubetune.kube import conventions as names
from kubetune.kube import errors
from kubetune.kube import jobs as builders
from kubetune.kube import observe as observing
from kubetune.kube.reconcile import Reconciler

__all__ = ["LocalCluster", "LocalRunner", "StudyFileError", "load_study", "run_local",
           "trial_command", "trial_objects"]

NAMESPACE = "local"
_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a stopped trial
_TICK = 0.25  # longest wait between two looks at the trials
_MIN_DECIDE_GAP = 0.05  # a chatty trainer must not make the loop spin
_TAIL_LINES = 20
# After its process exits, how long a trial's output may stay open (held by a child it left
# behind) before the trial is judged on what it printed so far.
_DRAIN_SECONDS = 2.0


class StudyFileError(CommandError, ValueError):
    """A study file that cannot be run; the message names the file, the field and the fix."""


def load_study(path: Path) -> dict[str, Any]:
    """The TuningStudy in the YAML file at ``path`` (the first one, if it holds several)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except OSError as e:
        raise StudyFileError(f"{path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise StudyFileError(f"{path}: not valid YAML ({e})") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == names.KIND:
            name = (doc.get("metadata") or {}).get("name")
            if not name:
                raise StudyFileError(f"{path}: metadata.name is missing; give the study a name")
            return doc
    raise StudyFileError(f"{path}: no document of kind {names.KIND} in it; write one with "
                         f"apiVersion {names.API_VERSION}")


def _no_lookup(kind: str, name: str, key: str) -> str | None:
    return None


def _no_keys(kind: str, name: str) -> Mapping[str, str] | None:
    return None


def trial_command(job: Mapping[str, Any], base_env: Mapping[str, str]
                  ) -> tuple[list[str], dict[str, str], str | None]:
    """(argv, env, working directory) of a trial Job's first container as a local process.

    Pure. The env is ``base_env``, then the container's env with ``$(VAR)`` expanded, without
    ``POD_NAME`` / ``POD_NAMESPACE``: outside a pod the SDK then prints its reports on stdout.
    ConfigMap and Secret references cannot be resolved here, and fail the trial unless optional.
    Raises ``kubetune_devcluster.podspec.PodSpecError`` for a container that cannot run.
    """
    from kubetune.kube import podspec  # the kubelet's rules, shared with devcluster

    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    stub = {"metadata": {"name": "", "namespace": NAMESPACE}, "spec": pod["spec"]}
    env = podspec.container_env(stub, container, _no_lookup, _no_keys, base_env)
    for key in ("POD_NAME", "POD_NAMESPACE"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    try:
        argv = podspec.command_for(container, env)
    except podspec.PodSpecError as e:
        if e.reason != "UnknownImage":
            raise
        known = ", ".join(sorted(podspec.IMAGE_ENTRYPOINTS))
        raise podspec.PodSpecError(e.reason, (
            f"container {container.get('name')!r}: a local run pulls no images, and image "
            f"{container.get('image')!r} is not one it runs from this Python environment "
            f"({known}); give the container a `command` that runs here")) from None
    return argv, env, container.get("workingDir")


@dataclass
class LocalTrial:
    """One trial's process and what it has reported so far."""

    number: int
    params: dict[str, Any]
    job: dict[str, Any]
    start: float
    proc: subprocess.Popen | None = None
    end: float | None = None
    exit_code: int | None = None
    metrics_text: str | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    tail: collections.deque = field(default_factory=lambda: collections.deque(
        maxlen=_TAIL_LINES))
    recorded: Recorded | None = None
    stop_sent: float | None = None
    killed: bool = False
    log: IO[str] | None = None
    open_streams: int = 0
    exited_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.exit_code is None


def trial_objects(trial: LocalTrial) -> tuple[dict, dict]:
    """The Job and pod the kube layer would see for ``trial``, for ``observe``. No I/O."""
    job = copy.deepcopy(trial.job)
    labels = {names.TRIAL_LABEL: str(trial.number)}
    annotations: dict[str, str] = {}
    with trial.lock:
        if trial.metrics_text is not None:
            annotations[names.METRICS_ANNOTATION] = trial.metrics_text
        if trial.curve:
            annotations[names.CURVE_ANNOTATION] = protocol.encode_curve(trial.curve)
        tail = "\n".join(trial.tail)
    started = times.rfc3339_micro(trial.start)
    status: dict[str, Any] = {"startTime": started}
    pod_status: dict[str, Any] = {"phase": "Running", "startTime": started}
    if trial.recorded is not None:
        job["metadata"]["annotations"][names.RESULT_ANNOTATION] = protocol.encode_result(
            trial.recorded.result)
    if trial.exit_code is not None and trial.end is not None:
        ended = times.rfc3339_micro(trial.end)
        ok = trial.exit_code == 0
        status["completionTime"] = ended
        status["conditions"] = [{"type": "Complete" if ok else "Failed", "status": "True",
                                 # The Job's pod failure policy fails it on an exit code.
                                 "reason": "Completed" if ok else "PodFailurePolicy",
                                 "lastTransitionTime": ended}]
        pod_status["phase"] = "Succeeded" if ok else "Failed"
        if not ok:
            container = job["spec"]["template"]["spec"]["containers"][0]
            pod_status["containerStatuses"] = [{"name": container.get("name", ""), "state": {
                "terminated": {"exitCode": trial.exit_code, "message": tail}}}]
    job["status"] = status
    pod = {"metadata": {"name": _pod_name(job["metadata"]["name"]), "namespace": NAMESPACE,
                        "labels": labels, "annotations": annotations,
                        "creationTimestamp": started},
           "status": pod_status}
    return job, pod


def _pod_name(job_name: str) -> str:
    return f"{job_name}-local"


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when the runner dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


class LocalRunner:
    """Runs one study's trials as local processes until the plan says it is finished."""

    def __init__(self, study: dict[str, Any], spec: specs.StudySpec, journal: Journal,
                 state: JournalState, *, log_dir: Path, out: IO[str],
                 base_env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time):
        # The reconcile reads the spec from the study, as it reads a TuningStudy's .spec.
        self.study: dict[str, Any] = {**study, "spec": spec,
                                      "status": {"nextTrial": state.next_trial}}
        self.spec = spec
        self.journal = journal
        self.log_dir = log_dir
        self.out = out
        self.clock = clock
        env = dict(os.environ if base_env is None else base_env)
        for key in ("POD_NAME", "POD_NAMESPACE"):
            env.pop(key, None)
        self.base_env = env
        self.metric = specs.watched(spec).metric
        self.minimize = specs.minimize(spec)
        self.keep_steps = stopping.keep_steps(spec.early_stopping)
        self.trials: dict[int, LocalTrial] = {}
        self.wake = threading.Event()
        self.cluster = LocalCluster(self)
        # Status is written in process here, so at every change (no API server to spare).
        self.reconciler = Reconciler(self.cluster, self.cluster, clock=self.clock,
                                     hold_status=False)
        self._loop = asyncio.new_event_loop()
        self._preexec = _die_with_parent()
        self._threads: list[threading.Thread] = []
        self._resume(state)

    # --- output -----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- trials -----------------------------------------------------------------------------

    def _resume(self, state: JournalState) -> None:
        for n, params in sorted(state.trials.items()):
            job = builders.build_trial_job(self.study, self.spec, n, params)
            rec = state.results.get(n)
            if rec is not None:
                trial = LocalTrial(n, params, job, rec.start or 0.0, end=rec.end,
                                   recorded=Recorded(rec.result, rec.start, rec.end))
                self.trials[n] = trial
        unfinished = state.unfinished
        if state.trials:
            self.say(f"resuming: {len(state.results)} trials done"
                     + (f", restarting {len(unfinished)} the last run left unfinished "
                        f"({', '.join(map(str, unfinished))})" if unfinished else ""))
        for n in unfinished:
            job = builders.build_trial_job(self.study, self.spec, n, state.trials[n])
            self.launch(job, announce="restarted")

    def launch(self, job: dict[str, Any], *, announce: str = "started") -> None:
        """Start the trial of ``job`` (a trial Job manifest) as a local process."""
        number = int(job["metadata"]["labels"][names.TRIAL_LABEL])
        params = protocol.parse_params(
            job["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        now = self.clock()
        trial = LocalTrial(number, dict(params), job, now)
        self.trials[number] = trial
        log_path = self.log_dir / f"trial-{number}.log"
        log = log_path.open("a", encoding="utf-8", errors="replace")
        try:
            argv, env, cwd = trial_command(job, self.base_env)
            trial.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
                start_new_session=True, preexec_fn=self._preexec,
            )
        except (OSError, ValueError) as e:
            # ValueError covers devcluster's PodSpecError: a container this machine cannot run.
            log.write(f"kubetune: cannot start the trial: {e}\n")
            log.close()
            trial.tail.append(f"cannot start the trial: {e}")
            trial.exit_code, trial.end = 127, now
            self.say(f"trial {number} could not start: {e}")
            return
        self.say(f"trial {number} {announce}: {views.format_params(params)}")
        trial.log, trial.open_streams = log, 2
        for stream, reports in ((trial.proc.stdout, True), (trial.proc.stderr, False)):
            t = threading.Thread(target=self._read, args=(trial, stream, reports),
                                 name=f"trial-{number}-{'out' if reports else 'err'}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def journal_trial(self, job: dict[str, Any]) -> None:
        number = int(job["metadata"]["labels"][names.TRIAL_LABEL])
        params = protocol.parse_params(job["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        self.journal.trial(number, params, self.clock())

    def _read(self, trial: LocalTrial, stream: IO[str], reports: bool) -> None:
        """Copy one output stream to the trial's log; stdout's report lines become its
        metrics annotation and curve, as the SDK would have patched them on its pod."""
        try:
            for line in stream:
                text = line.rstrip("\n")
                with trial.lock:
                    assert trial.log is not None
                    trial.log.write(line)
                    trial.log.flush()
                    if reports and _is_report(text):
                        self._report(trial, text)
                    else:
                        trial.tail.append(text)
                self.wake.set()
        finally:
            stream.close()
            with trial.lock:
                trial.open_streams -= 1
                if trial.open_streams == 0 and trial.log is not None:
                    trial.log.close()
            self.wake.set()

    def _report(self, trial: LocalTrial, text: str) -> None:
        trial.metrics_text = text
        try:
            report = protocol.parse_metrics(text, self.metric)
        except ProtocolError:
            return  # observe() fails the trial with the reason if this stays its last report
        trial.curve = protocol.append_point(trial.curve, report.step, report.metrics[self.metric],
                                            minimize=self.minimize, keep_steps=self.keep_steps)

    def _reap(self, now: float) -> None:
        for trial in self.trials.values():
            if trial.proc is None or trial.exit_code is not None:
                continue
            code = trial.proc.poll()
            if code is not None:
                trial.exited_at = trial.exited_at or now
                with trial.lock:
                    drained = trial.open_streams == 0
                # Judge the trial only once its last report is read.
                if drained or now - trial.exited_at > _DRAIN_SECONDS:
                    # Killed by signal N reads 128 + N, as a container's exit code does.
                    trial.exit_code = code if code >= 0 else 128 - code
                    trial.end = trial.exited_at
                continue
            if trial.stop_sent is not None and not trial.killed and \
                    now - trial.stop_sent > _STOP_GRACE:
                self._signal(trial, signal.SIGKILL)
                trial.killed = True

    def stop(self, number: int) -> None:
        """End a trial's process (its pod's deadline was lowered): SIGTERM, SIGKILL later."""
        trial = self.trials.get(number)
        if trial is None or not trial.alive or trial.stop_sent is not None:
            return
        trial.stop_sent = self.clock()
        self._signal(trial, signal.SIGTERM)

    @staticmethod
    def _signal(trial: LocalTrial, sig: int) -> None:
        if trial.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(trial.proc.pid, sig)

    def record(self, number: int, result: TrialResult, now: float) -> None:
        """A result the reconcile recorded on the trial's Job: into the journal."""
        trial = self.trials[number]
        end = trial.end if trial.end is not None else now
        trial.recorded = Recorded(result, trial.start, end)
        self.journal.result(number, result, trial.start, end)
        text = f"trial {number} {result.state.value}"
        if result.value is not None:
            text += f": {self.metric} {views.format_value(result.value)}"
        if result.reason:
            text += f" ({result.reason}{': ' + result.message if result.message else ''})"
        self.say(f"{text} [{views.format_duration(end - trial.start)}]")

    # --- the loop ---------------------------------------------------------------------------

    def objects(self) -> tuple[list[dict], list[dict]]:
        jobs, pods = [], []
        for trial in self.trials.values():
            job, pod = trial_objects(trial)
            jobs.append(job)
            if trial.proc is not None or trial.exit_code is not None:
                pods.append(pod)
        return jobs, pods

    def step(self) -> plans.Plan:
        """One reconcile, the operator's own, against this machine's trial processes."""
        self._reap(self.clock())
        outcome = self._loop.run_until_complete(self.reconciler.reconcile(self.study))
        if outcome.plan is None:
            raise StudyFileError(_stalled_message(self.study))
        return outcome.plan

    @property
    def next_trial(self) -> int:
        return int((self.study.get("status") or {}).get("nextTrial") or 0)

    def running(self) -> bool:
        return any(t.alive for t in self.trials.values())

    def run(self) -> int:
        """Until the study ends: 0 when it succeeded, 1 when it failed."""
        last = 0.0
        while True:
            gap = _MIN_DECIDE_GAP - (self.clock() - last)
            if gap > 0:
                time.sleep(gap)
            last = self.clock()
            self.wake.clear()
            plan = self.step()
            if plan.finished is not None and not self.running():
                self.journal.finished(plan.finished.condition, plan.finished.reason,
                                      plan.finished.message)
                self._close()
                self.say(f"\nstudy {self.study['metadata']['name']} {plan.finished.condition}: "
                         f"{plan.finished.reason}: {plan.finished.message}\n")
                self.say(render.leaderboard_table(self.view(), self.clock(), limit=10))
                return 0 if plan.finished.condition == "Succeeded" else 1
            self.wake.wait(_TICK)

    def view(self) -> views.StudyView:
        jobs, pods = self.objects()
        seen = observing.observe(jobs, pods, observing.Reader.of(self.spec),
                                 next_trial=self.next_trial)
        return views.StudyView(name=self.study["metadata"]["name"], namespace=None,
                               spec=self.spec, status={}, trials=seen.trials)

    def stop_all(self) -> None:
        """Terminate every trial process (SIGTERM, then SIGKILL after a grace period)."""
        live = [t for t in self.trials.values() if t.alive]
        for t in live:
            self._signal(t, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE
        for t in live:
            assert t.proc is not None
            try:
                t.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(t, signal.SIGKILL)
                t.proc.wait()
        self._close()

    def _close(self) -> None:
        for t in self._threads:
            t.join(timeout=2.0)
        self.journal.close()
        self._loop.close()


class LocalCluster:
    """The API the reconcile talks to, served by a ``LocalRunner``'s trial processes.

    Creating a trial Job starts its process; a result annotation on a Job goes to the
    journal; a lowered pod (or Job) deadline stops the process; the study's status is kept in
    memory. It is also the reconcile's store: the trials, as the Job and pod objects the kube
    layer would see (``trial_objects``). Events are dropped: the runner prints its own lines.
    """

    def __init__(self, runner: LocalRunner):
        self.runner = runner

    # --- the store ---------------------------------------------------------------------------

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        return self.runner.objects()[0]

    def pods_of(self, uid: str, settled: bool = False) -> list[dict[str, Any]]:
        return self.runner.objects()[1]  # nothing is kept aside here

    def ended_seen(self, uid: str) -> float | None:
        return None  # trials are read when stepped, not watched

    def jobs_named(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The trials of the earlier local study ``name`` (its journal beside this one's), as
        the Jobs its results would be recorded on: what ``spec.warmStart`` reads."""
        state = read_journal(self.runner.log_dir.parent / f"{name}.jsonl")
        if not state.results:
            return []
        try:
            spec = specs.parse_spec(state.spec)
        except specs.SpecError:
            return []
        study = {"metadata": {"name": state.name, "namespace": NAMESPACE, "uid": state.uid}}
        out = []
        for n, recorded in sorted(state.results.items()):
            job = builders.build_trial_job(study, spec, n, state.trials.get(n, {}))
            job["metadata"]["annotations"][names.RESULT_ANNOTATION] = protocol.encode_result(
                recorded.result)
            out.append(job)
        return out

    def wrote(self, kind: str, obj: dict[str, Any]) -> None:
        """Nothing to keep: the next read builds the objects from the trials afresh."""

    # --- the API -----------------------------------------------------------------------------

    def _number(self, path: str) -> int:
        name = path.rsplit("/", 1)[-1]
        for trial in self.runner.trials.values():
            job_name = trial.job["metadata"]["name"]
            if name in (job_name, _pod_name(job_name)):
                return trial.number
        raise errors.NotFound(404, f"{path}: no such trial here", method="PATCH", path=path)

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        raise errors.NotFound(404, f"{path}: a local run serves no reads", method="GET",
                              path=path)

    async def text(self, path: str, **params: str) -> str:
        """A trial's log (stdout and stderr, as its file holds them), its last ``tailLines``
        lines: what pods/log answers for a trial pod."""
        if not path.endswith("/log"):
            raise errors.NotFound(404, f"{path}: a local run serves only logs", method="GET",
                                  path=path)
        number = self._number(path.removesuffix("/log"))
        log_file = self.runner.log_dir / f"trial-{number}.log"
        try:
            lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        tail = int(params.get("tailLines") or len(lines))
        return "\n".join(lines[-tail:]) if tail else ""

    async def create(self, path: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        if path == paths.jobs_path(NAMESPACE) and not dry_run:
            if int(body["metadata"]["labels"][names.TRIAL_LABEL]) in self.runner.trials:
                raise errors.AlreadyExists(409, f"Job {body['metadata']['name']} exists",
                                           reason="AlreadyExists", method="POST", path=path)
            self.runner.journal_trial(body)
            self.runner.launch(body)
        return dict(body)

    async def merge_patch(self, path: str, body: Any) -> dict[str, Any]:
        study = self.runner.study
        if path == paths.study_path(NAMESPACE, study["metadata"]["name"]) + "/status":
            study["status"] = paths.merged(study.get("status") or {}, body["status"])
            return {"metadata": study["metadata"], "status": study["status"]}
        number = self._number(path)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if names.RESULT_ANNOTATION in annotations:
            result = protocol.parse_result(annotations[names.RESULT_ANNOTATION])
            self.runner.record(number, result, self.runner.clock())
        if "activeDeadlineSeconds" in (body.get("spec") or {}):
            self.runner.stop(number)
        return trial_objects(self.runner.trials[number])[0 if "/jobs/" in path else 1]

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        # Local pods carry no finalizer, so the reconcile never releases one.
        return trial_objects(self.runner.trials[self._number(path)])[1]

    async def replace(self, path: str, body: Any) -> dict[str, Any]:
        raise errors.NotFound(404, f"{path}: a local run replaces nothing", method="PUT",
                              path=path)

    async def watch(self, path: str, resource_version: str, *, timeout_seconds: int = 290,
                    **params: str) -> AsyncIterator[dict[str, Any]]:
        return
        yield  # an async generator that yields nothing: a local run is read, not watched

    async def close(self) -> None:
        return None


def _is_report(line: str) -> bool:
    """A line the SDK printed (``{"step": .., "metrics": {..}, ..}``), not the trainer's own."""
    s = line.lstrip()
    return s.startswith("{") and '"metrics"' in s


def run_local(path: Path, *, parallel: int | None, journal_path: Path | None,
              out: IO[str] | None = None) -> int:
    """Run the study in the file at ``path`` locally; returns the command's exit status.
    Progress and the final leaderboard go to ``out`` (default: stdout)."""
    out = out or sys.stdout
    study = load_study(path)
    name = study["metadata"]["name"]
    spec_obj = copy.deepcopy(study.get("spec") or {})
    if parallel is not None:
        spec_obj.setdefault("budget", {})["parallelism"] = parallel
    spec = specs.parse_spec(spec_obj)
    if spec.metrics_from is not None and spec.metrics_from.termination_message is not None:
        raise StudyFileError(
            f"{path}: spec.metricsFrom.terminationMessage needs a container of its own "
            "(the kubelet reads /dev/termination-log there), which a local run does not give a "
            "process; run it on the cluster, or use metricsFrom.log or kubetune.sdk.report")
    if spec.trial_template is not None:
        raise StudyFileError(
            f"{path}: spec.trialTemplate makes each trial a {spec.trial_template.get('kind')}, "
            "which needs its controller on a cluster; a local run starts one process per "
            "trial from a jobTemplate")
    if spec.trial.workers > 1:
        raise StudyFileError(
            f"{path}: spec.trial.workers is {spec.trial.workers}, and a local run starts one "
            "process per trial; run the study on a cluster (a devcluster will do), or set "
            "trial.workers to 1 to try it here on one worker")
    where = journal_path or Path(".kubetune") / f"{name}.jsonl"
    journal, state = Journal.open(where, name, spec_obj)
    if spec.algorithm.seed is None:
        # As in the cluster, where the seed derives from the study's UID: stable across resumes.
        spec = spec.model_copy(update={"algorithm": spec.algorithm.model_copy(
            update={"seed": names.study_seed(state.uid)})})
    log_dir = where.with_suffix("")
    log_dir = log_dir.parent / f"{log_dir.name}.logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    body = {"metadata": {"name": name, "namespace": NAMESPACE, "uid": state.uid}}
    print(f"study {name}: {spec.budget.max_trials} trials, {spec.budget.parallelism} at a time; "
          f"journal {where}, trial logs in {log_dir}/", file=out, flush=True)
    runner = LocalRunner(body, spec, journal, state, log_dir=log_dir, out=out)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # `kill` (SIGTERM) stops the trials and keeps the journal, as Ctrl-C does.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return runner.run()
    except KeyboardInterrupt:
        runner.stop_all()
        print(f"\ninterrupted: run the same command again to resume from {where}", file=out,
              flush=True)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        runner.stop_all()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stalled_message(study: Mapping[str, Any]) -> str:
    for c in (study.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return f"the study cannot run: {c.get('message')}"
    return "the study cannot run"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
