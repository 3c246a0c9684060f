"""`make demo`: devcluster, the Helm chart and a real study, with live progress in the terminal.

    python scripts/demo.py up      # cluster up, chart installed, examples/digits.yaml to the end
    python scripts/demo.py up --study examples/tradeoff.yaml   # another study file
    python scripts/demo.py down    # chart uninstalled, cluster down

``up`` brings devcluster up (or reuses a healthy one under ``$DEVCLUSTER_STATE``, default
``.devcluster``) with one real node where the machine can run one (the trainer and operator
images imported; ``DEVCLUSTER_REAL_NODES=0`` for the node agent instead), installs helm/kubetune
with ``helm upgrade --install --wait`` so the operator runs as a pod under the chart's own RBAC,
applies the study (``--study``, default examples/digits.yaml; ``make demo STUDY=...``) afresh
in the namespace ``kubetune-demo``, and polls the study and its trial Jobs as JSON from the API
server once a second: finished trials as they end, then a progress line (rewritten in place on
a terminal, printed when it changes otherwise), and at the end the leaderboard and the best
parameters, or for a study with several objectives its Pareto front and hypervolume.

The ``render_*`` functions are pure; everything else talks to the cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubetune.core import protocol
from kubetune_devcluster import cluster as devcluster
from kubetune_devcluster import node

__all__ = [
    "main", "render_front", "render_leaderboard", "render_plan", "render_progress",
    "render_trial",
]

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "kubetune"
EXAMPLE = ROOT / "examples" / "digits.yaml"
RELEASE = "kubetune"
RELEASE_NAMESPACE = "kubetune-system"
DEMO_NAMESPACE = "kubetune-demo"
TIMEOUT_SECONDS = 900
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


# --- rendering (pure) ----------------------------------------------------------------------------

def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_number(v)}" for k, v in params.items())


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _condition(study: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    conditions: list[Mapping[str, Any]] = (study.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == "True"),
                None)


def _objectives(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The study's objectives: ``spec.objectives``, or the one ``spec.objective``."""
    return list(spec.get("objectives") or [spec.get("objective") or {}])


def _watched(spec: Mapping[str, Any]) -> str:
    """The metric a trial's curve and value follow: the one objective, or with several the one
    early stopping names (the first without early stopping)."""
    named = (spec.get("earlyStopping") or {}).get("metric")
    metrics = [o.get("metric", "value") for o in _objectives(spec)]
    return str(named) if named in metrics else str(metrics[0])


def _limits(spec: Mapping[str, Any]) -> str:
    """The constraints in words: ``params_count <= 30000``."""
    parts = []
    for c in spec.get("constraints") or []:
        if c.get("min") is not None:
            parts.append(f"{c['metric']} >= {c['min']:g}")
        if c.get("max") is not None:
            parts.append(f"{c['metric']} <= {c['max']:g}")
    return ", ".join(parts)


def render_plan(spec: Mapping[str, Any]) -> str:
    """What the study will do, in one line: budget, sampler, objectives, constraints and early
    stopping. Pure."""
    budget = spec.get("budget") or {}
    goals = " and ".join(f"{o.get('direction')} {o.get('metric')}" for o in _objectives(spec))
    text = (f"{budget.get('maxTrials')} trials, {budget.get('parallelism', 1)} at a time, "
            f"{(spec.get('algorithm') or {}).get('name', 'auto')} sampler, {goals}")
    if spec.get("constraints"):
        text += f", subject to {_limits(spec)}"
    stopping = spec.get("earlyStopping")
    if stopping:
        text += f", {stopping['name']} early stopping on {_watched(spec)}"
    return text


def render_progress(study: Mapping[str, Any], elapsed: float, width: int = 24) -> str:
    """One line: a bar over maxTrials, the trial counts, the best value so far (with several
    objectives the Pareto front's size and hypervolume), the time. Pure."""
    spec, status = study.get("spec") or {}, study.get("status") or {}
    total = int((spec.get("budget") or {}).get("maxTrials") or 1)
    n = status.get("trials") or {}
    done = sum(int(n.get(k) or 0) for k in ("succeeded", "failed", "pruned"))
    filled = min(width, round(width * done / total))
    text = (f"[{'#' * filled}{'.' * (width - filled)}] {done:>2}/{total} done, "
            f"{int(n.get('running') or 0)} running, {int(n.get('pending') or 0)} pending")
    if n.get("pruned"):
        text += f", {n['pruned']} pruned"
    if n.get("failed"):
        text += f", {n['failed']} failed"
    if n.get("infeasible"):
        text += f", {n['infeasible']} infeasible"
    best = status.get("bestTrial")
    if best:
        text += f" | best {_watched(spec)} {best['value']:.4g} (trial {best['number']})"
    elif status.get("frontSize"):
        text += (f" | front {status['frontSize']} trials, hypervolume "
                 f"{status.get('hypervolume') or 0:.4g}")
    return f"{text} | {_clock(elapsed)}"


def render_trial(job: Mapping[str, Any], metric: str,
                 objectives: Sequence[str] = ()) -> str | None:
    """A finished trial as one line, from its Job's result and params annotations; None while
    it runs. With several ``objectives`` it shows each one's value from the final report, and
    says when the trial broke a constraint. Pure.
    """
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    text = annotations.get(protocol.RESULT_ANNOTATION)
    if not text:
        return None
    number = (meta.get("labels") or {}).get("kubetune.dev/trial", "?")
    try:
        result = protocol.parse_result(text)
        params = protocol.parse_params(annotations.get(protocol.PARAMS_ANNOTATION, "{}"))
    except protocol.ProtocolError as e:
        return f"  trial {number:>3}  unreadable result: {e}"
    line = f"  trial {number:>3}  {result.state.value:<9}"
    shown = [m for m in objectives if m in result.values]
    if shown:
        line += "  " + "  ".join(f"{m} {result.values[m]:<8.4g}" for m in shown)
    elif result.value is not None:
        line += f"  {metric} {result.value:<8.4g}"
    if result.step is not None:
        line += f"  step {result.step:<2}"
    if result.reason and (result.state.value == "Failed" or result.reason == "Infeasible"):
        line += f"  ({result.reason})"
    return f"{line}  {_params(params)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
            for r in [header, *rows]]


def render_front(study: Mapping[str, Any]) -> str:
    """A study with several objectives at its end: the Pareto front from the status (one
    column per objective, then per parameter), its size and hypervolume. Pure."""
    spec, status = study.get("spec") or {}, study.get("status") or {}
    front: Sequence[Mapping[str, Any]] = status.get("paretoFront") or []
    if not front:
        return "No feasible trial succeeded, so there is no Pareto front."
    objectives = _objectives(spec)
    metrics = [str(o.get("metric")) for o in objectives]
    names = list(spec.get("searchSpace") or front[0].get("params") or {})
    rows = [[str(e["number"]), *(f"{e.get('values', {}).get(m, float('nan')):.4g}"
                                  for m in metrics),
             *(_number(e.get("params", {}).get(p, "")) for p in names)] for e in front]
    better = ", ".join(
        f"{o.get('metric')} {'lower' if o.get('direction') == 'minimize' else 'higher'} is better"
        for o in objectives)
    reference = ", ".join(f"{k} {v:.4g}" for k, v in (status.get("referencePoint") or {}).items())
    lines = [f"Pareto front ({better}): {status.get('frontSize', len(front))} trials that no "
             "other feasible trial beats on every objective", "",
             *_table(["trial", *metrics, *names], rows), "",
             f"Hypervolume {status.get('hypervolume') or 0:.6g} (reference point {reference})"]
    infeasible = (status.get("trials") or {}).get("infeasible")
    if infeasible:
        lines.append(f"{infeasible} trial{'s' if infeasible != 1 else ''} broke a constraint "
                     f"({_limits(spec)}) and {'are' if infeasible != 1 else 'is'} left out")
    return "\n".join(lines)


def render_leaderboard(study: Mapping[str, Any]) -> str:
    """The leaderboard as a table with one column per parameter, and the best params; for a
    study with several objectives, its Pareto front (``render_front``). Pure."""
    spec, status = study.get("spec") or {}, study.get("status") or {}
    if spec.get("objectives"):
        return render_front(study)
    objective = spec.get("objective") or {}
    metric = objective.get("metric", "value")
    order = "lower" if objective.get("direction", "minimize") == "minimize" else "higher"
    board: Sequence[Mapping[str, Any]] = status.get("leaderboard") or []
    if not board:
        return "No trial succeeded, so there is no leaderboard."
    names = list(spec.get("searchSpace") or board[0].get("params") or {})
    header = ["rank", "trial", metric, *names]
    rows = [[str(i), str(e["number"]), f"{e['value']:.4g}",
             *(_number(e.get("params", {}).get(p, "")) for p in names)]
            for i, e in enumerate(board, 1)]
    lines = [f"Leaderboard ({metric}, {order} is better):", "", *_table(header, rows)]
    best = status.get("bestTrial") or board[0]
    lines += ["", f"Best params (trial {best['number']}, {metric} {best['value']:.6g}):",
              "  " + json.dumps(best.get("params") or {}, sort_keys=True)]
    return "\n".join(lines)


# --- the cluster ---------------------------------------------------------------------------------

class Api:
    """GETs against devcluster's API server with the admin client certificate."""

    def __init__(self, state: devcluster.ClusterState):
        self.server = state.server
        self.context: ssl.SSLContext = devcluster.admin_ssl_context(state)

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.server + path, context=self.context,
                                        timeout=10) as r:
                found: dict[str, Any] = json.loads(r.read())
                return found
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


class Tools:
    """kubectl and helm from devcluster's cache, with the cluster's admin kubeconfig."""

    def __init__(self, state: devcluster.ClusterState):
        self.bin = devcluster.binaries_dir()
        self.env = {**os.environ, "KUBECONFIG": str(state.kubeconfig)}

    def run(self, tool: str, *args: str, check: bool = True, quiet: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bin / tool), *args], env=self.env, text=True,
                              input=input, capture_output=True)
        if check and proc.returncode != 0:
            sys.exit(f"demo: {tool} {' '.join(args)} failed ({proc.returncode}):\n"
                     f"{proc.stdout}{proc.stderr}")
        if not quiet and proc.stdout.strip():
            print(proc.stdout.rstrip())
        return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _liveness_port(tools: Tools) -> int:
    """The port of an earlier install, so an upgrade changes nothing; else a free one (the
    operator's pod is a process on this machine, and 8080 may well be taken here).
    """
    proc = tools.run("helm", "get", "values", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json",
                     check=False, quiet=True)
    if proc.returncode == 0:
        port = ((json.loads(proc.stdout or "{}") or {}).get("liveness") or {}).get("port")
        if port:
            return int(port)
    return _free_port()


def _adopt(tools: Tools, values: list[str]) -> None:
    """Let the release take over cluster-wide objects it renders that exist without a live
    owner: a CRD applied by hand or by `make test`, or one an uninstalled release kept. Refuse
    those of another release that is still installed.
    """
    rendered = tools.run("helm", "template", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
                         *values, quiet=True).stdout
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc.get("kind") not in CLUSTER_SCOPED:
            continue
        ref = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
        found = tools.run("kubectl", "get", ref, "-o", "json", "--ignore-not-found",
                          quiet=True).stdout
        if not found.strip():
            continue
        annotations = json.loads(found)["metadata"].get("annotations") or {}
        owner = annotations.get("meta.helm.sh/release-name")
        owner_ns = annotations.get("meta.helm.sh/release-namespace", "")
        if (owner, owner_ns) == (RELEASE, RELEASE_NAMESPACE):
            continue
        if owner and tools.run("helm", "status", owner, "-n", owner_ns, check=False,
                               quiet=True).returncode == 0:
            sys.exit(f"demo: {ref} belongs to the Helm release {owner!r} "
                     f"(namespace {owner_ns}); uninstall it first")
        tools.run("kubectl", "annotate", "--overwrite", ref,
                  f"meta.helm.sh/release-name={RELEASE}",
                  f"meta.helm.sh/release-namespace={RELEASE_NAMESPACE}", quiet=True)
        tools.run("kubectl", "label", "--overwrite", ref, "app.kubernetes.io/managed-by=Helm",
                  quiet=True)


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def up(example: Path = EXAMPLE) -> int:
    started = time.monotonic()
    state_dir = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster")).resolve()
    config = devcluster.ClusterConfig.from_env(state_dir)
    missing = node.missing_requirements(devcluster.binaries_dir())
    if "DEVCLUSTER_REAL_NODES" not in os.environ and not missing:
        # As on kind: a kubelet runs the operator and the trainer from their images.
        config = dataclasses.replace(config, nodes=0, real_nodes=1,
                                     images=("trainer", "operator"))
    where = ("a real node: kubelet, containerd, runc" if config.real_nodes
             else "the node agent: pods as host processes" + (
                 f"; no real node here: {'; '.join(missing)}" if missing else ""))
    _step(f"devcluster ({state_dir.name}) on {where}")
    state = devcluster.up(config, timeout=600)
    tools, api = Tools(state), Api(state)

    values = ["--set", "metrics.enabled=false", "--set", "liveness.bindAddress=127.0.0.1",
              "--set", f"liveness.port={_liveness_port(tools)}"]
    _step(f"helm upgrade --install {RELEASE} helm/kubetune -n {RELEASE_NAMESPACE}")
    _adopt(tools, values)
    # --force-conflicts: fields of adopted objects that kubectl applied become the chart's.
    tools.run("helm", "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
              "--create-namespace", "--wait", "--timeout", "3m", "--force-conflicts", *values,
              quiet=True)
    tools.run("kubectl", "-n", RELEASE_NAMESPACE, "get", "pods", "-l",
              "app.kubernetes.io/component=operator")

    study = yaml.safe_load(example.read_text())
    name = study["metadata"]["name"]
    _step(f"kubectl apply -n {DEMO_NAMESPACE} -f {_shown(example)}")
    if api.get(f"/api/v1/namespaces/{DEMO_NAMESPACE}") is None:
        tools.run("kubectl", "create", "namespace", DEMO_NAMESPACE, quiet=True)
    # A fresh study each time; the old one's trials go with it (owner references).
    tools.run("kubectl", "-n", DEMO_NAMESPACE, "delete", "tuningstudy", name,
              "--ignore-not-found", "--wait", "--timeout=120s", quiet=True)
    tools.run("kubectl", "-n", DEMO_NAMESPACE, "apply", "-f", str(example))
    print(f"    {render_plan(study['spec'])}\n", flush=True)

    final = watch(api, name, time.monotonic())
    print()
    if final is None:
        print(f"demo: the study did not finish within {TIMEOUT_SECONDS} s; see "
              f"kubectl -n {RELEASE_NAMESPACE} logs deploy/{RELEASE}")
        return 1
    kind, condition = final
    print(f"Study {name}: {kind} ({condition.get('reason')}): {condition.get('message')}\n")
    print(render_leaderboard(api.get(_study_path(name)) or {}))
    print(f"\nmake demo took {_clock(time.monotonic() - started)}. Look around with\n"
          f"  export KUBECONFIG={state.kubeconfig} PATH={tools.bin}:$PATH\n"
          f"  kubectl get tuningstudies -A; kubectl -n {DEMO_NAMESPACE} get jobs,pods\n"
          f"and clean up with `make demo-down`.")
    return 0 if kind == "Succeeded" else 1


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _study_path(name: str) -> str:
    return f"/apis/kubetune.dev/v1alpha1/namespaces/{DEMO_NAMESPACE}/tuningstudies/{name}"


def watch(api: Api, name: str, started: float) -> tuple[str, Mapping[str, Any]] | None:
    """Print finished trials and the progress line until the study ends; its end condition."""
    tty = sys.stdout.isatty()
    shown: set[str] = set()
    last_line, last_print = "", 0.0
    while time.monotonic() - started < TIMEOUT_SECONDS:
        study = api.get(_study_path(name))
        if study is None:
            time.sleep(1)
            continue
        uid = study["metadata"]["uid"]
        metric = _watched(study["spec"])
        several = [str(o.get("metric")) for o in study["spec"].get("objectives") or []]
        jobs = api.get(f"/apis/batch/v1/namespaces/{DEMO_NAMESPACE}/jobs"
                       f"?labelSelector=kubetune.dev/study-uid={uid}") or {}
        finished = []
        for job in jobs.get("items") or []:
            line = render_trial(job, metric, several)
            if line is not None and job["metadata"]["name"] not in shown:
                shown.add(job["metadata"]["name"])
                finished.append((int(job["metadata"]["labels"].get("kubetune.dev/trial", 0)),
                                 line))
        progress = render_progress(study, time.monotonic() - started)
        if tty:
            sys.stdout.write("\r\033[K")
        for _, line in sorted(finished):
            print(line)
        now = time.monotonic()
        if tty:
            sys.stdout.write(progress)
        elif progress.rsplit("|", 1)[0] != last_line or now - last_print >= 10:
            print(progress)
            last_line, last_print = progress.rsplit("|", 1)[0], now
        sys.stdout.flush()
        for kind in ("Succeeded", "Failed", "Stalled"):
            condition = _condition(study, kind)
            if condition is not None:
                return kind, condition
        time.sleep(1)
    return None


def down() -> int:
    state_dir = Path(os.environ.get("DEVCLUSTER_STATE", ROOT / ".devcluster")).resolve()
    state = devcluster.load_state(state_dir)
    if state is not None and devcluster.is_healthy(state):
        _step(f"helm uninstall {RELEASE} -n {RELEASE_NAMESPACE}")
        Tools(state).run("helm", "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait",
                         "--timeout", "60s", "--ignore-not-found", check=False)
    _step(f"devcluster down ({state_dir.name})")
    devcluster.down(state_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--study", type=Path, default=EXAMPLE, metavar="FILE",
                        help="the study file that `up` applies (default: examples/digits.yaml)")
    args = parser.parse_args(argv)
    if args.command == "down":
        return down()
    if not args.study.is_file():
        parser.error(f"--study {args.study}: no such file")
    return up(args.study)


if __name__ == "__main__":
    sys.exit(main())
