"""Studies as Kubernetes' own tools read them, on devcluster with the local operator:

- the real cli-utils kstatus (tests/e2e/kstatus: sigs.k8s.io/cli-utils v0.37.2, the library
  behind Helm 4's --wait and Flux) says Current for Pending/Running, Suspended and Succeeded
  studies, and Failed for Failed and Invalid ones;
- `kubectl get ts` prints STATUS (the phase), TRIALS (done/maxTrials), RUNNING and BEST (6
  significant digits), and `-o wide` adds METRIC, ALGORITHM and REASON;
- `helm upgrade --wait` of a chart holding a study that has failed, or whose spec the
  operator refuses, ends with kstatus' Failed and the study's reason, not at its timeout.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Cluster, wait_for
from studies import study

KSTATUS_BUILD = ROOT / "tests" / "e2e" / "kstatus" / "build.sh"

# A trial that runs long enough to be seen Running, one that ends at once, one that fails.
LONG = ["quadratic", "--steps", "200", "--sleep", "0.5"]
QUICK = ["quadratic", "--steps", "1"]
FAIL = ["fail", "--exit-code", "3"]


@pytest.fixture(scope="module")
def kstatus() -> Path:
    out = subprocess.run(["bash", str(KSTATUS_BUILD)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1])


def _phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    obj = cluster.get("ts", "-n", namespace, name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return status.get("phase")


@pytest.fixture(scope="module")
def studies(cluster: Cluster, operator) -> Iterator[tuple[str, dict[str, dict]]]:
    """One study per phase in a namespace of their own, each waited into its phase."""
    operator.ensure_running()
    operator.wait_serving()
    namespace = f"status-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    invalid = study("invalid", toy=QUICK, budget={"maxTrials": 2, "parallelism": 1})
    # The API server takes it (a Job template is free-form); the operator refuses it.
    invalid["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] = 60
    manifests = {
        "running": study("running", toy=LONG, budget={"maxTrials": 4, "parallelism": 1}),
        "suspended": study("suspended", toy=QUICK, suspend=True,
                           budget={"maxTrials": 2, "parallelism": 1}),
        "succeeded": study("succeeded", toy=QUICK, budget={"maxTrials": 2, "parallelism": 2},
                           objective={"metric": "loss", "direction": "minimize"}),
        "failed": study("failed", toy=FAIL, budget={"maxTrials": 4, "parallelism": 1,
                                                    "maxFailedTrials": 0}),
        "invalid": invalid,
    }
    for manifest in manifests.values():
        cluster.apply(manifest, namespace)
    want = {"running": "Running", "suspended": "Suspended", "succeeded": "Succeeded",
            "failed": "Failed", "invalid": "Invalid"}
    for name, phase in want.items():
        wait_for(lambda n=name, p=phase: _phase(cluster, namespace, n) == p, timeout=180,
                 what=f"study {name} {phase}")
    objects = {o["metadata"]["name"]: o for o in cluster.get("ts", "-n", namespace)["items"]}
    try:
        yield namespace, objects
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_kstatus_reads_every_phase(cluster: Cluster, studies, kstatus: Path) -> None:
    namespace, _ = studies
    listed = cluster.kubectl("get", "ts", "-n", namespace, "-o", "json").stdout
    proc = subprocess.run([str(kstatus)], input=listed, capture_output=True, text=True,
                          timeout=60, check=True)
    seen = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert {n: r["status"] for n, r in seen.items()} == {
        "running": "Current", "suspended": "Current", "succeeded": "Current",
        "failed": "Failed", "invalid": "Failed",
    }, proc.stdout
    assert seen["failed"]["message"].startswith("TooManyFailedTrials: ")
    assert "ttlSecondsAfterFinished" in seen["invalid"]["message"]


def test_terminal_conditions_never_say_running(studies) -> None:
    _, objects = studies
    for name, other in (("failed", "Succeeded"), ("succeeded", "Failed")):
        cond = next(c for c in objects[name]["status"]["conditions"] if c["type"] == other)
        assert cond["status"] == "False" and cond["reason"] != "Running", (name, cond)


def _table(text: str) -> dict[str, dict[str, str]]:
    """kubectl's table as {name: {column: cell}}, cut at the header's column starts (a
    missing value is an empty cell)."""
    lines = text.rstrip().splitlines()
    header = lines[0].split()
    starts = [lines[0].index(f"{h}") if i == 0 else lines[0].index(f" {h}") + 1
              for i, h in enumerate(header)]
    out = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        out[cells[0]] = dict(zip(header, cells, strict=True))
    return out


def test_kubectl_get_columns(cluster: Cluster, studies) -> None:
    namespace, objects = studies
    table = _table(cluster.kubectl("get", "ts", "-n", namespace).stdout)
    assert list(next(iter(table.values()))) == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST",
                                                "FRONT", "AGE"]
    assert table["succeeded"]["FRONT"] == ""  # one objective: no front
    done = objects["succeeded"]["status"]
    assert table["succeeded"]["STATUS"] == "Succeeded"
    assert table["succeeded"]["TRIALS"] == "2/2"
    assert table["succeeded"]["BEST"] == f"{done['bestTrial']['value']:.6g}"
    assert table["failed"]["STATUS"] == "Failed" and table["failed"]["TRIALS"] == "1/4"
    assert table["suspended"]["STATUS"] == "Suspended"
    assert table["suspended"]["TRIALS"] == "0/2" and table["suspended"]["RUNNING"] == "0"
    assert table["invalid"]["STATUS"] == "Invalid"
    assert table["running"]["STATUS"] == "Running"
    assert table["running"]["TRIALS"].endswith("/4")

    wide = _table(cluster.kubectl("get", "ts", "-n", namespace, "-o", "wide").stdout)
    assert list(next(iter(wide.values()))) == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST",
                                               "FRONT", "AGE", "METRIC", "ALGORITHM", "REASON"]
    assert wide["succeeded"]["METRIC"] == "loss"
    assert wide["succeeded"]["ALGORITHM"] == "auto"
    assert wide["succeeded"]["REASON"] == "MaxTrialsReached"
    assert wide["failed"]["REASON"] == "TooManyFailedTrials"
    assert wide["invalid"]["REASON"] == "InvalidSpec"


def test_kubectl_explain_is_plain_text(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "tuningstudy.status.conditions").stdout
    assert "``" not in out
    for field in ("lastTransitionTime", "message", "observedGeneration", "reason", "status",
                  "type"):
        assert field in out
    assert "<empty>" not in out, out  # every field described
    phase = cluster.kubectl("explain", "tuningstudy.status.phase").stdout
    assert "Pending" in phase and "Invalid" in phase


def _study_chart(root: Path, manifest: dict) -> Path:
    chart = root / manifest["metadata"]["name"]
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: v2
        name: {manifest["metadata"]["name"]}
        version: 0.1.0
    """))
    (chart / "values.yaml").write_text("parallelism: 1\n")
    text = yaml.safe_dump(manifest).replace("parallelism: 1",
                                            "parallelism: {{ .Values.parallelism }}")
    (chart / "templates" / "study.yaml").write_text(text)
    return chart


def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cluster.bin / "helm"), *args], capture_output=True, text=True,
                          env=cluster.env, timeout=120)


def _ends_failed(proc: subprocess.CompletedProcess, reason: str) -> None:
    """Helm 4's --wait is kstatus: a Failed study ends the wait with its message. Waiting to
    the 30 s timeout would end with "context deadline exceeded" instead."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "status: Failed" in out and reason in out, out
    assert "context deadline exceeded" not in out, out


def test_helm_upgrade_wait_ends_at_once_on_a_failed_study(cluster: Cluster, operator,
                                                          tmp_path: Path, namespace: str) -> None:
    operator.ensure_running()
    operator.wait_serving()
    doomed = study("doomed", toy=FAIL, budget={"maxTrials": 3, "parallelism": 1,
                                               "maxFailedTrials": 0})
    chart = _study_chart(tmp_path, doomed)
    # Installed without waiting: a study that runs is Current, so --wait would not hold it.
    proc = _helm(cluster, "install", "doomed", str(chart), "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: _phase(cluster, namespace, "doomed") == "Failed", timeout=120,
             what="study doomed Failed")
    # An upgrade of the failed study (a new generation, acted on, still Failed).
    _ends_failed(_helm(cluster, "upgrade", "doomed", str(chart), "-n", namespace,
                       "--set", "parallelism=2", "--wait", "--timeout", "30s"),
                 "TooManyFailedTrials")
    assert _phase(cluster, namespace, "doomed") == "Failed"

    # A study whose spec the operator refuses fails the install at once too.
    invalid = study("refused", toy=QUICK, budget={"maxTrials": 2, "parallelism": 1})
    invalid["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] = 60
    _ends_failed(_helm(cluster, "upgrade", "--install", "refused",
                       str(_study_chart(tmp_path, invalid)), "-n", namespace, "--wait",
                       "--timeout", "30s"), "ttlSecondsAfterFinished")
