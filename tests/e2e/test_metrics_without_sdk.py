"""Metrics without the SDK (spec.metricsFrom): an unmodified script that only prints its metric,
read by the operator through the pods/log API that devcluster's node serves as a kubelet does.
The termination-message source needs a container's /dev/termination-log: it is proven on a real
kubelet in test_real_node.py.
"""

from __future__ import annotations

import json

import pytest
from conftest import Cluster
from kubetune.core import protocol
from kubetune.kube import conventions as names
from studies import study
from test_operator import results, trial_jobs, wait_condition

pytestmark = pytest.mark.e2e

# A training script that knows nothing of kubetune but its parameters' variables: it prints a
# line per epoch and the loss of (x1, x2) on the toy quadratic, optimum at (0.5, 0.5).
PRINTING_SCRIPT = """
import os
x1 = float(os.environ["KUBETUNE_PARAM_X1"]); x2 = float(os.environ["KUBETUNE_PARAM_X2"])
loss = (x1 - 0.5) ** 2 + (x2 - 0.5) ** 2
for epoch in range(1, 4):
    print(f"epoch {epoch} lr=0.01 val_loss={loss + 1.0 / epoch:.6f}", flush=True)
print("training done")
"""
PATTERN = r"epoch (?P<step>[0-9]+) .*val_loss=(?P<value>[0-9.e+-]+)"


def printing_study(name: str, script: str, pattern: str, **kwargs) -> dict:
    manifest = study(name, container={"command": ["python", "-c", script], "args": []},
                     **kwargs)
    manifest["spec"]["metricsFrom"] = {"log": {"pattern": pattern}}
    return manifest


def test_a_script_that_only_prints_its_metric_completes_with_values(
        cluster: Cluster, running_operator, namespace):
    cluster.apply(printing_study("printed", PRINTING_SCRIPT, PATTERN, budget={
        "maxTrials": 4, "parallelism": 2, "maxFailedTrials": 0}), namespace)
    obj = wait_condition(cluster, namespace, "printed", "Succeeded")
    jobs = trial_jobs(cluster, namespace, "printed")
    got = results(jobs)
    assert sorted(got) == [0, 1, 2, 3]
    for job in jobs:
        params = json.loads(job["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        result = got[int(job["metadata"]["labels"][names.TRIAL_LABEL])]
        loss = (params["x1"] - 0.5) ** 2 + (params["x2"] - 0.5) ** 2
        assert result.state.value == "Succeeded"
        # The last matching line (epoch 3) is the value; the curve holds the epochs as steps.
        assert result.value == pytest.approx(loss + 1.0 / 3, abs=1e-6)
        assert result.step == 3
        assert [s for s, _ in result.curve] == [1, 2, 3]
    assert obj["status"]["bestValue"]
    assert obj["status"]["trials"]["succeeded"] == 4


def test_a_log_without_a_match_fails_the_trial_naming_the_pattern(
        cluster: Cluster, running_operator, namespace):
    cluster.apply(printing_study("silent", "print('nothing to see')", PATTERN, budget={
        "maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0}), namespace)
    wait_condition(cluster, namespace, "silent", "Failed")
    (result,) = results(trial_jobs(cluster, namespace, "silent")).values()
    assert result.state.value == "Failed"
    assert result.reason == protocol.METRIC_MISSING
    assert PATTERN in (result.message or "")


@pytest.mark.parametrize(("pattern", "says"), [
    ("val_loss=([0-9.]+)", "named group (?P<value>...)"),
    ("val_loss=(?P<value>[0-9.]+", "missing closing )"),
    ("(?<=loss=)(?P<value>[0-9.]+)", "not a valid regular expression"),
])
def test_kubectl_apply_refuses_a_bad_pattern(cluster: Cluster, namespace, pattern, says):
    manifest = printing_study("bad-pattern", "print(1)", pattern)
    refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest),
                              check=False)
    assert refused.returncode != 0
    assert "spec.metricsFrom.log" in refused.stderr and says in refused.stderr, refused.stderr
