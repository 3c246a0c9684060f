"""Operator benchmark: a study of instant trials on devcluster, from kubectl apply to Succeeded.

Reports the per-trial overhead (from a trial Job's completion to the creation of the Job that
takes its place, p50 and p95), trials per minute, and the operator's peak RSS. Job events are
timestamped as they arrive on a watch, so the overhead has sub-second resolution.

    python benchmarks/bench_operator.py [--trials 300] [--parallelism 4] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from kubetune.core.times import parse_rfc3339
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster.pki import Pki
from kubetune_devcluster.rest import Rest
from tables import ROOT, markdown, publish

RESULTS = ROOT / "benchmarks" / "results" / "operator.md"
MARK = ("<!-- bench:operator:start -->", "<!-- bench:operator:end -->")


# Random search: the cheapest sampler, so the figures are the operator's own cost. --algorithm
# measures another; the table says which ran.
ALGORITHM = "random"
SEED = 1


def study(trials: int, parallelism: int, algorithm: str = ALGORITHM) -> dict:
    return {
        "apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy",
        "metadata": {"name": "bench"},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            "searchSpace": {"x1": {"type": "float", "low": 0.0, "high": 1.0},
                            "x2": {"type": "float", "low": 0.0, "high": 1.0}},
            "algorithm": {"name": algorithm, "seed": SEED},
            "budget": {"maxTrials": trials, "parallelism": parallelism, "maxFailedTrials": 5},
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "trial", "image": "kubetune/trainer:0.1.0",
                                "args": ["toy", "quadratic"]}]}}}},
        },
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class JobClock:
    """Watches the namespace's Jobs and notes when each appears and completes."""

    def __init__(self, state: devcluster.ClusterState, namespace: str):
        pki = Pki(state.root / "pki")
        self.rest = Rest(state.server, str(pki.ca), str(pki.cert("admin")), str(pki.key("admin")))
        self.path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
        self.created: dict[str, float] = {}
        self.completed: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._watch()
        except Exception:
            if not self.stop.is_set():
                raise

    def _watch(self) -> None:
        rv = self.rest.get(self.path)["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            for event in self.rest.watch(self.path, rv, timeout_seconds=30):
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if event["type"] == "BOOKMARK":
                    continue
                name, now = obj["metadata"]["name"], time.monotonic()
                self.created.setdefault(name, now)
                done = any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                           for c in obj.get("status", {}).get("conditions") or [])
                if done:
                    self.completed.setdefault(name, now)
                if self.stop.is_set():
                    return

    def overheads(self, parallelism: int) -> list[float]:
        """For each trial Job that ended, the seconds until the Job that took its place was
        created (``successors``)."""
        return [gap for _, _, gap in successors(self.created, self.completed, parallelism)]


def successors(created: dict[str, float], completed: dict[str, float], parallelism: int
               ) -> list[tuple[str, str, float]]:
    """(a trial Job that ended, the Job that took its place, seconds from the end to that
    Job's creation), per study: trial Jobs are named ``<study>-<uid>-<n>``, and a study of
    ``parallelism`` starts trials 0 .. parallelism - 1 and one more for each trial that ends,
    so the i-th of its Jobs to end is followed by trial ``parallelism + i``. The gap is
    negative where the operator, acting on the trial's pod, created the next Job before the
    Job controller marked the Job's end (the first Job created after the end would be another
    trial's successor)."""
    numbered: dict[str, dict[int, str]] = defaultdict(dict)
    for name in created:
        prefix, number = name.rsplit("-", 1)
        numbered[prefix][int(number)] = name
    ended: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for name, done in completed.items():
        ended[name.rsplit("-", 1)[0]].append((done, name))
    out = []
    for prefix, ends in sorted(ended.items()):
        for i, (done, name) in enumerate(sorted(ends)):
            successor = numbered[prefix].get(parallelism + i)
            if successor is not None:
                out.append((name, successor, created[successor] - done))
    return out


READS = frozenset({"get", "list", "watch"})
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
MAX_WRITES_PER_TRIAL = 4  # the target of issue 18


def operator_requests(audit_log: Path, offset: int) -> Counter[str]:
    """The operator's API requests in the audit log after ``offset`` bytes, one per audit ID,
    counted under "read", "write" and "<verb> <resource>[/<subresource>]": its own client
    (aiohttp) and kopf's. Benchmarks run it with the admin kubeconfig, so the user agent is
    what tells it from kubectl and the Job clock."""
    with audit_log.open("rb") as f:
        f.seek(offset)
        return count_requests(f)


def operator_events(lines):
    """The operator's audit events (its own client, aiohttp, and kopf's) among audit log lines
    (bytes), parsed; the others are skipped unparsed."""
    for raw in lines:
        if b"kopf" not in raw and b"aiohttp" not in raw:
            continue
        e = json.loads(raw)
        agent = e.get("userAgent", "")
        if agent.startswith("kopf") or "aiohttp" in agent:
            yield e


def count_requests(lines) -> Counter[str]:
    """``operator_requests`` over audit log lines (bytes)."""
    seen: dict[str, tuple[str, str]] = {}
    for e in operator_events(lines):
        verb, ref = e.get("verb", ""), e.get("objectRef") or {}
        what = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
        kind = "read" if verb in READS else "write" if verb in WRITES else "other"
        seen[e["auditID"]] = (kind, f"{verb} {what}")
    counts: Counter[str] = Counter()
    for kind, request in seen.values():
        counts[kind] += 1
        counts[request] += 1
    return counts


def server_seconds(lines, request: str) -> list[float]:
    """Seconds the API server took to answer each of the operator's ``request``s ("<verb>
    <resource>"), from receiving it to its response complete, over audit log lines (bytes)."""
    verb, resource = request.split(" ")
    out = []
    for e in operator_events(lines):
        ref = e.get("objectRef") or {}
        if e.get("stage") != "ResponseComplete" or e.get("verb") != verb or \
                ref.get("resource") != resource or ref.get("subresource"):
            continue
        done = parse_rfc3339(e["stageTimestamp"])
        received = parse_rfc3339(e["requestReceivedTimestamp"])
        if done is not None and received is not None:
            out.append(done - received)
    return out


def requests_per_trial(counts: Counter[str], trials: int) -> str:
    """Reads / writes per trial, with totals and the writes by request."""
    writes = sorted((n, r) for r, n in counts.items() if r.split(" ")[0] in WRITES)
    detail = ", ".join(f"{r} {n / trials:.2f}" for n, r in reversed(writes))
    return (f"{counts['read'] / trials:.2f} / {counts['write'] / trials:.2f} "
            f"({counts['read']} reads, {counts['write']} writes: {detail})")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (the operator and its sampler processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def peak_rss_mib(pid: int) -> float:
    """The peak resident memory of ``pid``'s process tree: each process's peak, added up (an
    upper bound of the tree's at any one moment)."""
    return sum(peak_rss_by_process(pid).values())


def peak_rss_by_process(pid: int) -> dict[int, float]:
    """The peak resident memory (MiB) of each process of ``pid``'s tree alive now."""
    peaks = {}
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        peaks[member] = sum(int(line.split()[1]) / 1024 for line in text.splitlines()
                            if line.startswith("VmHWM:"))
    return peaks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--parallelism", type=int, default=4)
    ap.add_argument("--algorithm", default=ALGORITHM,
                    help="the study's sampler (default random: the operator's own cost)")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    state_dir = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster-bench"))
    state = devcluster.up(devcluster.ClusterConfig.from_env(state_dir))
    bins = devcluster.binaries_dir()
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig)}

    def kubectl(*a: str, stdin: str | None = None) -> str:
        return subprocess.run([str(bins / "kubectl"), *a], input=stdin, env=env, text=True,
                              check=True, capture_output=True).stdout

    kubectl("apply", "-f", str(ROOT / "crds" / "tuningstudy.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/tuningstudies.kubetune.dev")
    namespace = f"bench-{int(time.time())}"
    kubectl("create", "namespace", namespace)
    log = (state.log_dir / "bench-operator.log").open("ab")
    op = subprocess.Popen([sys.executable, "-m", "kubetune", "--namespace", namespace],
                          env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    audit_log = state.root / "audit.log"
    audit_from = audit_log.stat().st_size
    clock = JobClock(state, namespace)
    watcher = threading.Thread(target=clock.run, daemon=True)
    watcher.start()
    time.sleep(1)
    try:
        started = time.monotonic()
        kubectl("apply", "-n", namespace, "-f", "-",
                stdin=json.dumps(study(args.trials, args.parallelism, args.algorithm)))
        kubectl("wait", "-n", namespace, "--for=condition=Succeeded", "ts/bench",
                f"--timeout={args.trials * 10}s")
        wall = time.monotonic() - started
        rss = peak_rss_mib(op.pid)
        requests = operator_requests(audit_log, audit_from)
    finally:
        clock.stop.set()
        os.killpg(op.pid, signal.SIGTERM)
        op.wait(timeout=30)
        kubectl("delete", "namespace", namespace, "--wait=false")
        if os.environ.get("DEVCLUSTER_STATE") is None:
            devcluster.down(state_dir)
    overheads = clock.overheads(args.parallelism)
    rows = [
        ("trials", f"{args.trials} (parallelism {args.parallelism}, instant toy trials)"),
        ("sampler", f"{args.algorithm} (seed {SEED})"),
        ("machine", f"devcluster on {os.cpu_count()} CPUs, load average {load:.1f} at the start"),
        ("wall time, apply to Succeeded", f"{wall:.1f} s"),
        ("trials per minute", f"{args.trials / wall * 60:.1f}"),
        ("overhead, a trial Job's end to the Job that took its place, p50",
         f"{statistics.median(overheads) * 1000:.0f} ms"),
        ("overhead, p95", f"{percentile(overheads, 0.95) * 1000:.0f} ms"),
        ("operator peak RSS, its sampler processes included", f"{rss:.0f} MiB"),
        ("operator API requests per trial, reads / writes (audit log)",
         requests_per_trial(requests, args.trials)),
    ]
    writes = requests["write"] / args.trials
    verdict = "PASS" if writes <= MAX_WRITES_PER_TRIAL else "MISS"
    rows.append((f"target: at most {MAX_WRITES_PER_TRIAL} API writes per trial",
                 f"{verdict} ({writes:.2f})"))
    publish(RESULTS, "Operator benchmark", markdown(("measure", "value"), rows), MARK,
            args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
