"""Real-node benchmark: what a container costs a trial, beside the process agent, in one run.

One devcluster with both kinds of node: the node agent's (the trial runs as a host process)
and a real node (kubelet, containerd, runc; the trial runs in a container from the toy-trainer
image). The same trial, a Job running ``python -m kubetune_trainer toy quadratic`` (it reports
through the SDK and exits in well under a second), runs ``--trials`` times on each node,
interleaved so that both see the same machine load; each is timed from the Job's creation to
its Complete condition, polled every 50 ms. No sampler is involved: the trials' parameters
are fixed, so only the node differs.

    python benchmarks/bench_real_node.py [--trials 10] [--readme]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster import node as node_mod

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_operator import percentile, publish

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "real-node.md"
MARK = ("<!-- bench:real-node:start -->", "<!-- bench:real-node:end -->")
STATE = ROOT / ".devcluster-bench-node"


def trial_job(name: str, node: str) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"kubetune.dev/trial": "0"}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {"kubetune.dev/trial": "0"}},
            "spec": {
                "restartPolicy": "Never", "nodeName": node,
                "containers": [{
                    "name": "trial", "image": "kubetune/toy-trainer:0.1.0",
                    "command": ["python", "-m", "kubetune_trainer", "toy", "quadratic"],
                    "env": [{"name": "KUBETUNE_PARAMS", "value": '{"x1": 0.1, "x2": 0.9}'},
                            {"name": "KUBETUNE_METRIC", "value": "loss"}],
                }]}}},
    }


def run_one(state: devcluster.ClusterState, namespace: str, node: str) -> float:
    ctx = devcluster.admin_ssl_context(state)
    base = f"{state.server}/apis/batch/v1/namespaces/{namespace}/jobs"
    name = f"t-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    node_mod.api_request(ctx, "POST", base, trial_job(name, node), content_type="application/json")
    while True:
        job = node_mod.api_request(ctx, "GET", f"{base}/{name}") or {}
        conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions") or []}
        if conditions.get("Complete") == "True":
            return time.monotonic() - started
        if conditions.get("Failed") == "True":
            raise RuntimeError(f"trial Job {name} on {node} failed: {json.dumps(job['status'])}")
        time.sleep(0.05)


def table(times: dict[str, list[float]]) -> str:
    agent, real = times["process agent"], times["real node"]
    lines = ["| node | trials | p50 (s) | p95 (s) | mean (s) |", "|---|---|---|---|---|"]
    for kind, values in times.items():
        lines.append(f"| {kind} | {len(values)} | {percentile(values, 0.5):.2f} | "
                     f"{percentile(values, 0.95):.2f} | {statistics.mean(values):.2f} |")
    extra = statistics.median(real) - statistics.median(agent)
    lines += ["", f"A container costs a trial {extra:+.2f} s at the median (Job created to "
              "Complete; the trial itself, a toy quadratic, runs well under a second). "
              "Measured by `benchmarks/bench_real_node.py`, no sampler involved."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=10, help="trials per node kind")
    ap.add_argument("--readme", action="store_true", help="update the README's table")
    args = ap.parse_args()
    config = devcluster.ClusterConfig(state_dir=STATE, nodes=1, real_nodes=1,
                                      images=("toy-trainer",))
    state = devcluster.up(config, timeout=300)
    try:
        ns = "bench-node"
        ctx = devcluster.admin_ssl_context(state)
        node_mod.api_request(ctx, "POST", f"{state.server}/api/v1/namespaces",
                          {"metadata": {"name": ns}}, content_type="application/json")
        kinds = {"process agent": config.node_names[0], "real node": config.real_node_names[0]}
        for node in kinds.values():  # warm up: first start of the image, of the interpreter
            run_one(state, ns, node)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.trials):
            for kind, node in kinds.items():
                times[kind].append(run_one(state, ns, node))
    finally:
        devcluster.down(STATE)
    publish(RESULTS, "Real-node benchmark", table(times), MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
