"""Scale benchmark: 200 studies, 2,000 trials running at once, 20,000 finished, on devcluster.

2,000 real trainers do not fit two cores, so each trial pod is a shell that waits on a FIFO
(no CPU while it runs), and a driver in this process plays the trainers: for every trial pod
that runs, it sends the SDK's own reports (``kubetune.dev/metrics`` and ``kubetune.dev/curve``
merge patches on the pod, encoded by ``kubetune.core.protocol``, ``--reports`` of them over the
trial's life, the last one final), then writes to the pod's FIFO so that it exits 0. The value
reported is a quadratic of the trial's params, so every sampler has something to optimise.

The studies are spread round-robin over the samplers that take one objective. Reported, from
one operator process that watches only the benchmark's namespace:

- trials per minute, and trials running at once (pods Running, sampled every 5 s);
- per-trial overhead: a trial Job's end to the creation of the Job that took its place
  (``bench_operator.successors``), p50 and p95, for each sampler, also with the sampler's own
  time taken out (the operator logs, for every trial it creates, how long the sampler took for
  that batch);
- the operator's CPU, peak RSS, event-loop lag, and API requests per trial (audit log);
- the largest study status, and the status the operator's own code writes for one study of
  10,000 finished trials (built offline from 10,000 trial Jobs).

    python benchmarks/bench_scale.py [--studies 200 --trials 100 --parallelism 10]
                                     [--trial-seconds 240 --reports 4 --nodes 4] [--readme]
"""

from __future__ import annotations

import argparse
import errno
import heapq
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx
from bench_load import cpu_seconds, free_port, loop_lag, tree_cpu_seconds
from bench_operator import (
    MAX_WRITES_PER_TRIAL,
    JobClock,
    peak_rss_by_process,
    peak_rss_mib,
    percentile,
    requests_per_trial,
    successors,
)
from kubetune.core import protocol
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster.pki import Pki
from kubetune_devcluster.rest import Rest
from tables import ROOT, markdown, publish

RESULTS = ROOT / "benchmarks" / "results" / "scale.md"
MARK = ("<!-- bench:scale:start -->", "<!-- bench:scale:end -->")

# The samplers a study of one objective can name (nsga2 needs several).
SAMPLERS = ("random", "grid", "sobol", "tpe", "gp", "cmaes", "auto")
MAX_OVERHEAD_P95 = 0.250  # seconds, sampler excluded: the target of issue 18
MAX_RSS_MIB = 500
SEED = 1
# Tries of one report before the driver counts it lost (the SDK, too, retries a report).
REPORT_ATTEMPTS = 5
OPTIMUM = {"x1": 0.23, "x2": 0.71}

# The trial's whole program: wait for the driver's word on a FIFO named after the pod.
TRIAL_SCRIPT = 'f="$KT_SCALE_FIFOS/$POD_NAME"; mkfifo "$f" && read -r _ < "$f"; rm -f "$f"'

CREATED = re.compile(r"trial (\d+) of ([^/\s]+)/(\S+): created \S+ (\S+) "
                     r"\(sampler (\S+): ([\d.]+) ms for (\d+)"
                     r"(?:; ([\d.]+) ms after a trial's end reached the operator: "
                     r"([\d.]+) ms to begin, ([\d.]+) ms to look, ([\d.]+) ms to create)?\)")


def study(name: str, algorithm: str, trials: int, parallelism: int, fifos: Path) -> dict:
    return {
        "apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            # Steps on both floats, so that grid search can take the same space.
            "searchSpace": {"x1": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.01},
                            "x2": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.01}},
            "algorithm": {"name": algorithm, "seed": SEED},
            "budget": {"maxTrials": trials, "parallelism": parallelism, "maxFailedTrials": 5},
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "trial", "image": "kubetune/toy-trainer:0.1.0",
                    "command": ["sh", "-c", TRIAL_SCRIPT],
                    "env": [{"name": "KT_SCALE_FIFOS", "value": str(fifos)}],
                }]}}}},
        },
    }


def loss(params: dict, step: int, steps: int) -> float:
    """The objective a trial reports at ``step`` of ``steps``: its params' distance to the
    optimum, approached from above as the trial goes on."""
    base = sum((float(params[k]) - v) ** 2 for k, v in OPTIMUM.items())
    return base + 0.5 * (steps - step) / steps


def env_value(pod: dict, name: str) -> str | None:
    for c in pod["spec"]["containers"]:
        for e in c.get("env") or []:
            if e.get("name") == name:
                return e.get("value")
    return None


@dataclass(order=True)
class _Due:
    at: float
    pod: str = field(compare=False)
    step: int = field(compare=False)


class Driver:
    """Plays the trainers of every trial pod in the namespace: reports, then the FIFO."""

    def __init__(self, rest: Rest, namespace: str, fifos: Path, *, trial_seconds: float,
                 reports: int, workers: int = 8):
        self.rest, self.namespace, self.fifos = rest, namespace, fifos
        self.trial_seconds, self.reports = trial_seconds, reports
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.rng = random.Random(SEED)
        self.lock = threading.Lock()
        self.heap: list[_Due] = []
        self.params: dict[str, dict] = {}  # pod name -> params, for pods that run
        self.curves: dict[str, list] = {}
        self.running: set[str] = set()
        self.seen: set[str] = set()
        self.started: dict[str, float] = {}  # Job name -> when its pod was first seen Running
        self.patches = 0
        self.failures: Counter[str] = Counter()
        self.stop = threading.Event()
        self.wake = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()
        threading.Thread(target=self._schedule, daemon=True).start()

    def running_now(self) -> int:
        with self.lock:
            return len(self.running)

    # --- the watch: which pods run --------------------------------------------------------

    def _watch(self) -> None:
        rv = self._list()
        while not self.stop.is_set():
            try:
                for event in self.rest.watch(self._pods_path, rv, timeout_seconds=60):
                    obj = event["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if event["type"] != "BOOKMARK":
                        self._pod(event["type"], obj)
            except Exception as e:  # a dropped watch: list again and carry on
                if self.stop.is_set():
                    return
                self.failures[f"watch: {type(e).__name__}"] += 1
                rv = self._list()

    @property
    def _pods_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def _list(self) -> str:
        """List the pods and take in each, as a watch event would bring it (a pod that began
        to run while the watch was down is seen here); the list's resourceVersion. A failed
        list is tried again, a second later, until it answers."""
        while True:
            try:
                listed = self.rest.get(self._pods_path)
                break
            except Exception as e:
                if self.stop.is_set():
                    raise
                self.failures[f"list: {type(e).__name__}"] += 1
                time.sleep(1.0)
        for pod in listed.get("items") or []:
            self._pod("ADDED", pod)
        return listed["metadata"]["resourceVersion"]

    def _pod(self, kind: str, pod: dict) -> None:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        with self.lock:
            if kind == "DELETED" or phase in ("Succeeded", "Failed"):
                self.running.discard(name)
                return
            if phase != "Running" or name in self.seen:
                return
            self.seen.add(name)
            self.running.add(name)
            job = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
            if job:
                self.started.setdefault(job, time.monotonic())
            self.params[name] = json.loads(env_value(pod, "KUBETUNE_PARAMS") or "{}")
            self.curves[name] = []
            life = self.trial_seconds * self.rng.uniform(0.75, 1.25)  # no waves
            now = time.monotonic()
            for step in range(1, self.reports + 1):
                heapq.heappush(self.heap, _Due(now + life * step / self.reports, name, step))
        self.wake.set()

    # --- reports and ends, when due ---------------------------------------------------------

    def _schedule(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                due = []
                now = time.monotonic()
                while self.heap and self.heap[0].at <= now:
                    due.append(heapq.heappop(self.heap))
                wait = self.heap[0].at - now if self.heap else 1.0
            for d in due:
                self.pool.submit(self._report, d.pod, d.step)
            self.wake.wait(min(1.0, max(0.0, wait)))
            self.wake.clear()

    def _report(self, pod: str, step: int) -> None:
        final = step == self.reports
        with self.lock:
            params = self.params.get(pod)
            if params is None:
                return
            value = loss(params, step, self.reports)
            curve = protocol.append_point(self.curves[pod], step, value, minimize=True)
            self.curves[pod] = curve
        body = {"metadata": {"annotations": {
            protocol.METRICS_ANNOTATION: protocol.encode_metrics(step, {"loss": value}, final),
            protocol.CURVE_ANNOTATION: protocol.encode_curve(curve)}}}
        # A trainer's SDK retries a report the API server did not answer; the patch sets the
        # same annotations again, so a retry of one that did land changes nothing.
        for attempt in range(REPORT_ATTEMPTS):
            try:
                self.rest.merge_patch(f"/api/v1/namespaces/{self.namespace}/pods/{pod}", body)
                break
            except Exception as e:
                self.failures[f"report: {type(e).__name__}"
                              + ("" if attempt + 1 < REPORT_ATTEMPTS else ", gave up")] += 1
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
        else:
            return
        with self.lock:
            self.patches += 1
        if final:
            self._end(pod)

    def _end(self, pod: str) -> None:
        """Tell the pod's shell to exit 0: open its FIFO once it reads (retried for 60 s)."""
        path = self.fifos / pod
        for _ in range(120):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENXIO):
                    raise
                time.sleep(0.5)
                continue
            try:
                os.write(fd, b"\n")
            finally:
                os.close(fd)
            with self.lock:
                self.params.pop(pod, None)
                self.curves.pop(pod, None)
            return
        self.failures["end: no reader on the FIFO for 60 s"] += 1


class Turnaround(NamedTuple):
    """Seconds from a trial's end reaching the operator's watch to its successor created, and
    its parts as the operator logs them: until the study's reconcile began, its look (the
    sampler included), and the creates."""

    total: float
    begin: float
    look: float
    create: float


def sampler_times(log: Path) -> dict[str, tuple[str, float, Turnaround | None]]:
    """Job name -> (sampler, seconds it took for the batch that Job came from, the turnaround
    from the end it replaced, or None), from the operator's log."""
    out = {}
    with log.open(errors="replace") as f:
        for line in f:
            m = CREATED.search(line)
            if m:
                turnaround = None if m.group(8) is None else Turnaround(
                    *(float(m.group(i)) / 1000 for i in (8, 9, 10, 11)))
                out[m.group(4)] = (m.group(5), float(m.group(6)) / 1000, turnaround)
    return out


def overheads(clock: JobClock, sampled: dict[str, tuple[str, float, Turnaround | None]],
              parallelism: int) -> dict[str, list[tuple[float, float, Turnaround | None]]]:
    """Per sampler, (overhead, overhead without the sampler, the operator's part of it with
    the sampler taken out of its total and its look, or None) for each trial Job that ended and
    the Job that took its place (``bench_operator.successors``). The operator's part runs from
    the end reaching the operator's watch to its create returning; the rest is the API server
    delivering the end to the operator and the new Job to this script."""
    out: dict[str, list[tuple[float, float, Turnaround | None]]] = defaultdict(list)
    for _, successor, gap in successors(clock.created, clock.completed, parallelism):
        sampler, seconds, turnaround = sampled.get(successor, ("?", 0.0, None))
        own = None if turnaround is None else turnaround._replace(
            total=max(0.0, turnaround.total - seconds),
            look=max(0.0, turnaround.look - seconds))
        out[sampler].append((gap, gap - seconds, own))
    return out


def status_at(trials: int) -> int:
    """Bytes of the .status the operator's own code writes for one study of ``trials``
    finished trials: trial Jobs built by ``kube.jobs`` with signed results, observed, decided
    and turned into a status as a reconcile does."""
    from kubetune.core import plan as plans
    from kubetune.core import spec as specs
    from kubetune.core.protocol import TrialResult
    from kubetune.core.trials import TrialState
    from kubetune.kube import jobs as builders
    from kubetune.kube import observe as observing
    from kubetune.kube import signing
    from kubetune.kube import status as statuses

    manifest = study("big", "random", trials, 10, Path("/tmp"))
    manifest["metadata"].update(namespace="bench", uid="0" * 8 + "-0000-0000-0000-" + "0" * 12)
    spec = specs.parse_spec(manifest["spec"])
    key = signing.Keyring((b"bench-scale-key-" * 2,))
    rng = random.Random(SEED)
    jobs = []
    for n in range(trials):
        params = {"x1": round(rng.random(), 2), "x2": round(rng.random(), 2)}
        job = builders.build_trial(manifest, spec, n, params)
        value = loss(params, 4, 4)
        result = TrialResult(TrialState.SUCCEEDED, "Completed", value, 4,
                             tuple((s, loss(params, s, 4)) for s in range(1, 5)))
        job["metadata"]["uid"] = f"job-{n}"
        job["metadata"].setdefault("annotations", {}).update(
            builders.result_patch(result, job, key)["metadata"]["annotations"])
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        jobs.append(job)
    seen = observing.observe(jobs, [], observing.Reader.of(spec, {}), next_trial=trials,
                             key=key)
    now = time.time()
    plan = plans.decide(spec, seen.trials, now, next_trial=trials)
    status = statuses.study_status(plan, {}, generation=1, now=now)
    assert status["trials"]["succeeded"] == trials, status["trials"]
    return len(json.dumps(status, separators=(",", ":")).encode())


@dataclass
class Run:
    studies: int
    trials: int
    parallelism: int
    trial_seconds: float
    wall: float = 0.0
    cpu: float = 0.0
    rss: float = 0.0
    rss_own: float = 0.0  # the operator's own process, the rest its sampler processes
    lag_max: float = float("nan")
    lag_slow: int = 0
    status_bytes: int = 0
    status_10k: int = 0
    requests: Counter = field(default_factory=Counter)
    creates_server: list[float] = field(default_factory=list)  # the API server's own
    running: list[tuple[float, int, int]] = field(default_factory=list)
    overheads: dict = field(default_factory=dict)
    finished: int = 0
    starts: list[float] = field(default_factory=list)  # Job created -> its pod Running
    cluster_cpu: dict[str, float] = field(default_factory=dict)
    driver_failures: Counter = field(default_factory=Counter)
    patches: int = 0

    @property
    def total(self) -> int:
        return self.studies * self.trials


def audit_lines(audit_log: Path, start: tuple[int, int, float]):
    """The lines (bytes) of a large audit log that the apiserver rotates
    (``--audit-log-maxsize``) written since ``start`` (the live log's inode, its size then,
    the time): every file written since, the live one from that size on."""
    inode, offset, since = start
    for path in audit_log.parent.glob(audit_log.stem + "*" + audit_log.suffix):
        if path.stat().st_ino != inode and path.stat().st_mtime < since:
            continue
        with path.open("rb") as f:
            if path.stat().st_ino == inode:
                f.seek(offset)
            yield from f


def operator_requests(audit_log: Path, start: tuple[int, int, float]) -> Counter[str]:
    """``bench_operator.count_requests`` over ``audit_lines``."""
    from bench_operator import count_requests
    return count_requests(audit_lines(audit_log, start))


def creates_server_side(audit_log: Path, start: tuple[int, int, float]) -> list[float]:
    """``bench_operator.server_seconds`` of the operator's Job creates over ``audit_lines``:
    how long the API server itself took to answer each."""
    from bench_operator import server_seconds
    return server_seconds(audit_lines(audit_log, start), "create jobs")


def drive(run: Run, state: devcluster.ClusterState, kubectl, *, reports: int) -> None:
    namespace = f"scale-{int(time.time())}"
    kubectl("create", "namespace", namespace)
    fifos = state.root / "scale-fifos"
    fifos.mkdir(exist_ok=True)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig), "PYTHONUNBUFFERED": "1"}
    log_path = state.log_dir / f"bench-scale-{namespace}.log"
    log = log_path.open("ab")
    op = subprocess.Popen([sys.executable, "-m", "kubetune", "--namespace", namespace,
                           "--liveness", liveness], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    pki = Pki(state.root / "pki")
    rest = Rest(state.server, str(pki.ca), str(pki.cert("admin")), str(pki.key("admin")))
    audit_log = state.root / "audit.log"
    audit_from = (audit_log.stat().st_ino, audit_log.stat().st_size, time.time())
    clock = JobClock(state, namespace)
    threading.Thread(target=clock.run, daemon=True).start()
    driver = Driver(rest, namespace, fifos, trial_seconds=run.trial_seconds, reports=reports)
    driver.start()
    time.sleep(2)
    components = {name: pid for name, pid in state.pids.items()
                  if name in ("kube-apiserver", "etcd", "kube-controller-manager",
                              "kube-scheduler", "node-agent")}
    try:
        cpu0 = tree_cpu_seconds(op.pid)
        cluster0 = {name: cpu_seconds(pid) for name, pid in components.items()}
        started = time.monotonic()
        manifests = [study(f"s{i:03d}", SAMPLERS[i % len(SAMPLERS)], run.trials,
                           run.parallelism, fifos) for i in range(run.studies)]
        kubectl("apply", "-n", namespace, "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        path = f"/apis/kubetune.dev/v1alpha1/namespaces/{namespace}/tuningstudies"
        deadline = started + 3 * 3600
        while time.monotonic() < deadline:
            time.sleep(5)
            elapsed = time.monotonic() - started
            inflight = len(clock.created) - len(clock.completed)
            run.running.append((elapsed, driver.running_now(), inflight))
            if len(run.running) % 6 == 0:
                try:
                    items = rest.get(path)["items"]
                except httpx.TransportError as e:  # a busy apiserver: sample again later
                    run.driver_failures[f"progress: {type(e).__name__}"] += 1
                    continue
                done = sum(1 for s in items
                           if (s.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
                print(f"{elapsed:6.0f} s: {len(clock.completed)} Jobs done, "
                      f"{run.running[-1][1]} running, {inflight} in flight, "
                      f"{done}/{run.studies} studies ended, operator RSS "
                      f"{peak_rss_mib(op.pid):.0f} MiB", file=sys.stderr, flush=True)
                if done == run.studies:
                    break
        else:
            raise SystemExit("the studies did not end within 3 hours")
        run.wall = time.monotonic() - started
        run.cpu = tree_cpu_seconds(op.pid) - cpu0
        run.cluster_cpu = {name: cpu_seconds(pid) - cluster0[name]
                           for name, pid in components.items()}
        peaks = peak_rss_by_process(op.pid)
        run.rss, run.rss_own = sum(peaks.values()), peaks.get(op.pid, 0.0)
        lag = loop_lag(liveness)
        run.lag_max = float(lag.get("maxSeconds", float("nan")))
        run.lag_slow = int(lag.get("overOneSecond", 0))
        items = rest.get(path)["items"]
        run.finished = sum(sum((s.get("status") or {}).get("trials", {}).get(k, 0)
                               for k in ("succeeded", "pruned", "failed", "stopped"))
                           for s in items)
        run.status_bytes = max(len(json.dumps(s.get("status") or {},
                                              separators=(",", ":")).encode()) for s in items)
    finally:
        clock.stop.set()
        driver.stop.set()
        os.killpg(op.pid, signal.SIGTERM)
        op.wait(timeout=60)
        log.close()
    run.requests = operator_requests(audit_log, audit_from)
    run.creates_server = creates_server_side(audit_log, audit_from)
    run.overheads = overheads(clock, sampler_times(log_path), run.parallelism)
    run.driver_failures = driver.failures
    run.patches = driver.patches
    run.starts = [t - clock.created[job] for job, t in driver.started.items()
                  if job in clock.created]
    kubectl("delete", "namespace", namespace, "--wait=false")


def table(run: Run, conditions: str) -> str:
    steady = [r for r in run.running if r[2] >= 0.9 * run.studies * run.parallelism]
    running = [r[1] for r in steady] or [0]
    writes = run.requests["write"] / run.total
    all_overheads = [o for v in run.overheads.values() for o in v]
    without = [o[1] for o in all_overheads]
    p95 = percentile(without, 0.95) if without else float("nan")
    rows = [
        ("studies", f"{run.studies} x {run.trials} trials, parallelism {run.parallelism} "
                    f"(samplers round-robin: {', '.join(SAMPLERS)})"),
        ("trials finished", f"{run.finished} of {run.total}"),
        ("wall time, apply to every study ended", f"{run.wall / 60:.1f} min"),
        ("trials per minute", f"{run.finished / run.wall * 60:.0f}"),
        ("trials in flight (all Jobs created, none ended), pods Running then: mean / max",
         f"{statistics.mean(running):.0f} / {max(running)} (over {len(steady) * 5} s)"),
        ("trial pod's life from Running to its final report", f"{run.trial_seconds:.0f} s "
         "+- 25%"),
        ("trial start, Job created to its pod Running, p50 / p95",
         f"{statistics.median(run.starts):.2f} s / {percentile(run.starts, 0.95):.2f} s"
         if run.starts else "-"),
        ("reports sent by the driver (SDK patches)", f"{run.patches} "
         f"({run.patches / max(1, run.finished):.1f} per trial)"),
        ("operator CPU, its sampler processes included",
         f"{run.cpu:.0f} s ({run.cpu / run.wall * 100:.0f}% of one core)"),
        ("operator peak RSS, its sampler processes included",
         f"{run.rss:.0f} MiB (the operator's process {run.rss_own:.0f} MiB, the others "
         f"{run.rss - run.rss_own:.0f} MiB)"),
        ("CPU of devcluster's processes (pods' shells not included)", ", ".join(
            f"{name} {cpu:.0f} s" for name, cpu in sorted(run.cluster_cpu.items(),
                                                          key=lambda kv: -kv[1]))),
        ("event-loop lag, max (wakes over 1 s)",
         f"{run.lag_max * 1000:.0f} ms ({run.lag_slow})"),
        ("largest study status in the run", f"{run.status_bytes / 1024:.1f} KiB"),
        ("status of one study of 10,000 finished trials (offline, same code)",
         f"{run.status_10k / 1024:.1f} KiB"),
        ("operator API requests per trial, reads / writes (audit log)",
         requests_per_trial(run.requests, run.total)),
        ("the operator's Job creates, the API server's own time (audit log, request received "
         "to response complete), p50 / p95",
         f"{percentile(run.creates_server, 0.5) * 1000:.0f} ms / "
         f"{percentile(run.creates_server, 0.95) * 1000:.0f} ms" if run.creates_server else "-"),
    ]
    head = markdown(["measure", "value"], rows)
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.0f} ms" if values else "-"

    by, parts = [], []
    for s, v in sorted(run.overheads.items()):
        total, without = [o[0] for o in v], [o[1] for o in v]
        turnarounds = [o[2] for o in v if o[2] is not None]
        own = [t.total for t in turnarounds]
        by.append([s, str(len(v)), ms(total, 0.5), ms(total, 0.95), ms(without, 0.5),
                   ms(without, 0.95), ms(own, 0.5), ms(own, 0.95)])
        parts.append([s] + [ms([getattr(t, step) for t in turnarounds], q)
                            for step in ("begin", "look", "create") for q in (0.5, 0.95)])
    per_sampler = markdown(["sampler", "ends followed by their successor", "overhead p50",
                            "overhead p95", "sampler excluded, p50", "sampler excluded, p95",
                            "of which the operator's, p50", "the operator's, p95"], by)
    steps = markdown(["sampler", "end to its study's reconcile begun, p50", "p95",
                      "look, sampler excluded, p50", "p95", "creates, p50", "p95"], parts)
    targets = [
        f"{'PASS' if p95 < MAX_OVERHEAD_P95 else 'MISS'} overhead p95, sampler excluded, "
        f"every sampler: {p95 * 1000:.0f} ms (target under {MAX_OVERHEAD_P95 * 1000:.0f} ms)",
        f"{'PASS' if writes <= MAX_WRITES_PER_TRIAL else 'MISS'} API writes per trial: "
        f"{writes:.2f} (target at most {MAX_WRITES_PER_TRIAL})",
        f"{'PASS' if run.rss < MAX_RSS_MIB else 'MISS'} operator peak RSS: {run.rss:.0f} MiB "
        f"(target under {MAX_RSS_MIB} MiB)",
    ]
    failures = ""
    if run.driver_failures:
        failures = "\n\nDriver failures: " + ", ".join(
            f"{k} {n}" for k, n in sorted(run.driver_failures.items()))
    return (f"{conditions}\n\n{head}\n\nPer-trial overhead, a Job's completion to its study's "
            "next Job as this script's watch sees both, by sampler; the operator's part runs from "
            "the end reaching the operator's watch to its create returning (the operator logs "
            "it), the rest is the API server delivering the end and the new Job:"
            f"\n\n{per_sampler}\n\nThe operator's part, step by step (its log of each "
            "trial created): the end waiting for its study's reconcile to begin (a reconcile "
            "already running, the event loop busy), the reconcile's look (observe and decide, in "
            "a reconcile thread), and its creates up to this trial's:"
            f"\n\n{steps}\n\n```\n" + "\n".join(targets) + "\n```"
            + failures)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--parallelism", type=int, default=10)
    ap.add_argument("--trial-seconds", type=float, default=240.0,
                    help="a trial pod's life from Running to its final report (+- 25%%)")
    ap.add_argument("--reports", type=int, default=4, help="reports per trial, the last final")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--readme", action="store_true",
                    help=f"write the table into README.md between {MARK[0]} and {MARK[1]}")
    args = ap.parse_args()
    # Stopped from outside (timeout, kill): unwind, so the operator and devcluster stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench_scale: terminated"))

    run = Run(args.studies, args.trials, args.parallelism, args.trial_seconds)
    run.status_10k = status_at(10_000)
    pods = math.ceil(args.studies * args.parallelism * 1.25 / args.nodes)
    state_dir = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster-bench"))
    config = devcluster.ClusterConfig(state_dir, nodes=args.nodes, node_pods=pods, node_gpus=0)
    state = devcluster.up(config)
    bins = devcluster.binaries_dir()
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig)}

    def kubectl(*a: str, stdin: str | None = None, timeout: float = 300) -> str:
        return subprocess.run([str(bins / "kubectl"), *a], input=stdin, env=env, text=True,
                              check=True, capture_output=True, timeout=timeout).stdout

    conditions = (f"devcluster on {os.cpu_count()} CPUs ({args.nodes} agent nodes of {pods} "
                  f"pods), load average {os.getloadavg()[0]:.1f} at the start; each trial pod "
                  f"a shell waiting on a FIFO, {args.reports} reports a trial from the driver.")
    try:
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(ROOT / "crds" / "tuningstudy.yaml"))
        kubectl("wait", "--for=condition=Established", "crd/tuningstudies.kubetune.dev")
        drive(run, state, kubectl, reports=args.reports)
    finally:
        if os.environ.get("DEVCLUSTER_STATE") is None:
            devcluster.down(state_dir)
    publish(RESULTS, "Scale benchmark", table(run, conditions), MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
