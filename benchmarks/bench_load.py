"""Load benchmark: many studies at once, and one large study, on devcluster.

Two phases, each with an operator process of its own so that its figures are its own:

- many: 20 studies of 50 instant trials each, all applied at once (parallelism 3 each);
- large: one study of 1,000 instant trials at parallelism 50.

For each: trials per minute (apply to the last study Succeeded), the per-trial overhead (a trial
Job's end to the creation of the Job that took its place, ``bench_operator.successors``, p50 and
p95), the operator's CPU time and peak RSS, the largest study status in bytes, and the
operator's event-loop lag (the largest, from ``kube.looplag`` on its liveness endpoint; target
under 1 s).

    python benchmarks/bench_load.py [--studies 20 --trials 50 --parallelism 3]
                                    [--large-trials 1000 --large-parallelism 50] [--readme]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench_operator import (
    ALGORITHM,
    MAX_WRITES_PER_TRIAL,
    SEED,
    JobClock,
    operator_requests,
    peak_rss_mib,
    percentile,
    process_tree,
    requests_per_trial,
    study,
)
from kubetune_devcluster import cluster as devcluster
from tables import ROOT, publish

RESULTS = ROOT / "benchmarks" / "results" / "load.md"
MARK = ("<!-- bench:load:start -->", "<!-- bench:load:end -->")


@dataclass(frozen=True)
class Phase:
    name: str
    studies: int
    trials: int
    parallelism: int
    algorithm: str = ALGORITHM


@dataclass(frozen=True)
class Figures:
    phase: Phase
    wall: float
    overheads: list[float]
    cpu: float
    rss: float
    status_bytes: int
    lag_max: float
    lag_slow: int
    requests: Counter[str]

    @property
    def total(self) -> int:
        return self.phase.studies * self.phase.trials


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of ``pid`` and its descendants alive now (the operator and its
    sampler processes)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(member)
    return total


def loop_lag(liveness: str) -> dict:
    with urllib.request.urlopen(liveness, timeout=10) as r:
        return json.loads(r.read()).get("loopLag") or {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_phase(phase: Phase, state: devcluster.ClusterState, kubectl) -> Figures:
    namespace = f"load-{phase.name}-{int(time.time())}"
    kubectl("create", "namespace", namespace)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig), "PYTHONUNBUFFERED": "1"}
    log = (state.log_dir / f"bench-load-{phase.name}.log").open("ab")
    op = subprocess.Popen([sys.executable, "-m", "kubetune", "--namespace", namespace,
                           "--liveness", liveness], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    audit_log = state.root / "audit.log"
    audit_from = audit_log.stat().st_size
    clock = JobClock(state, namespace)
    threading.Thread(target=clock.run, daemon=True).start()
    time.sleep(2)
    names = [f"{phase.name}-{i}" for i in range(phase.studies)]
    try:
        cpu0 = tree_cpu_seconds(op.pid)
        started = time.monotonic()
        manifests = []
        for name in names:
            manifest = study(phase.trials, phase.parallelism, phase.algorithm)
            manifest["metadata"]["name"] = name
            manifests.append(manifest)
        kubectl("apply", "-n", namespace, "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        timeout = max(600, phase.studies * phase.trials * 3)
        kubectl("wait", "-n", namespace, "--for=condition=Succeeded", "ts", "--all",
                f"--timeout={timeout}s", timeout=timeout + 60)
        wall = time.monotonic() - started
        cpu = tree_cpu_seconds(op.pid) - cpu0
        rss = peak_rss_mib(op.pid)
        lag = loop_lag(liveness)
        requests = operator_requests(audit_log, audit_from)
        listing = json.loads(kubectl("get", "ts", "-n", namespace, "-o", "json"))
        status_bytes = max(len(json.dumps(s.get("status") or {}).encode())
                           for s in listing["items"])
    finally:
        clock.stop.set()
        os.killpg(op.pid, signal.SIGTERM)
        op.wait(timeout=30)
        log.close()
        kubectl("delete", "namespace", namespace, "--wait=false")
    return Figures(phase, wall, clock.overheads(phase.parallelism), cpu, rss, status_bytes,
                   float(lag.get("maxSeconds", float("nan"))), int(lag.get("overOneSecond", 0)),
                   requests)


def table(figures: list[Figures]) -> str:
    head = "| measure | " + " | ".join(
        f"{f.phase.studies} x {f.phase.trials} trials, parallelism {f.phase.parallelism}"
        for f in figures) + " |"
    rows = [
        ("wall time, apply to all Succeeded", [f"{f.wall:.0f} s" for f in figures]),
        ("trials per minute", [f"{f.total / f.wall * 60:.0f}" for f in figures]),
        ("overhead, a trial Job's end to the Job that took its place, p50",
         [f"{statistics.median(f.overheads) * 1000:.0f} ms" for f in figures]),
        ("overhead, p95", [f"{percentile(f.overheads, 0.95) * 1000:.0f} ms" for f in figures]),
        ("operator CPU", [f"{f.cpu:.1f} s ({f.cpu / f.wall * 100:.0f}% of one core)"
                          for f in figures]),
        ("operator peak RSS, its sampler processes included",
         [f"{f.rss:.0f} MiB" for f in figures]),
        ("largest study status", [f"{f.status_bytes / 1024:.1f} KiB" for f in figures]),
        ("operator API requests per trial, reads / writes (audit log)",
         [requests_per_trial(f.requests, f.total) for f in figures]),
        (f"target: at most {MAX_WRITES_PER_TRIAL} API writes per trial",
         [("PASS" if f.requests["write"] / f.total <= MAX_WRITES_PER_TRIAL else "MISS")
          + f" ({f.requests['write'] / f.total:.2f})" for f in figures]),
        ("event-loop lag, max (wakes over 1 s)",
         [f"{f.lag_max * 1000:.0f} ms ({f.lag_slow})" for f in figures]),
    ]
    sep = "|---|" + "---|" * len(figures)
    return "\n".join([head, sep, *(f"| {a} | " + " | ".join(b) + " |" for a, b in rows)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--parallelism", type=int, default=3)
    ap.add_argument("--large-trials", type=int, default=1000)
    ap.add_argument("--large-parallelism", type=int, default=50)
    ap.add_argument("--algorithm", default=ALGORITHM,
                    help="every study's sampler (default random: the operator's own cost)")
    ap.add_argument("--readme", action="store_true",
                    help=f"write the table into README.md between {MARK[0]} and {MARK[1]}")
    args = ap.parse_args()
    phases = [Phase("many", args.studies, args.trials, args.parallelism, args.algorithm),
              Phase("large", 1, args.large_trials, args.large_parallelism, args.algorithm)]

    state_dir = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster-bench"))
    state = devcluster.up(devcluster.ClusterConfig.from_env(state_dir))
    bins = devcluster.binaries_dir()
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig)}

    def kubectl(*a: str, stdin: str | None = None, timeout: float = 300) -> str:
        return subprocess.run([str(bins / "kubectl"), *a], input=stdin, env=env, text=True,
                              check=True, capture_output=True, timeout=timeout).stdout

    conditions = (f"devcluster on {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at the start; instant toy trials; sampler "
                  f"{args.algorithm} (seed {SEED}).")
    try:
        kubectl("apply", "--server-side", "--force-conflicts", "-f",
                str(ROOT / "crds" / "tuningstudy.yaml"))
        kubectl("wait", "--for=condition=Established", "crd/tuningstudies.kubetune.dev")
        figures = [run_phase(phase, state, kubectl) for phase in phases]
    finally:
        if os.environ.get("DEVCLUSTER_STATE") is None:
            devcluster.down(state_dir)
    text = conditions + "\n\n" + table(figures)
    publish(RESULTS, "Load benchmark", text, MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
