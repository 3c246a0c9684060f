"""A study with two objectives and a constraint on devcluster: it runs to the end, its status
carries the Pareto front (checked against the results recorded on the Jobs), `kubectl get`
shows the FRONT column, and malformed objectives are refused by `kubectl apply`."""

from __future__ import annotations

import json

import dashboards
import numpy as np
import pytest
from browser import chromium
from conftest import Cluster, wait_for
from kubetune.core import pareto
from selenium.webdriver.common.by import By
from studies import study
from test_operator import condition, results, trial_jobs, wait_condition

pytestmark = pytest.mark.e2e

# Two objectives that pull apart (a ZDT1-like pair over x1, x2 in [0, 1]) and a constraint
# metric, x1 + x2 at most 1.2, reported with the SDK in one final report.
TWO_OBJECTIVES = """
import math, os
from kubetune import sdk
x1 = float(os.environ["KUBETUNE_PARAM_X1"]); x2 = float(os.environ["KUBETUNE_PARAM_X2"])
f1 = x1
f2 = 1.0 + 9.0 * x2 - math.sqrt(x1 * (1.0 + 9.0 * x2)) if x1 < 1.0 + 9.0 * x2 else 0.0
sdk.report(1, final=True, f1=f1, f2=f2, total=x1 + x2)
"""
# The same, but the final report forgets f2.
FORGETS_F2 = """
from kubetune import sdk
sdk.report(1, final=True, f1=0.5, total=0.5)
"""
SPACE = {"x1": {"type": "float", "low": 0.0, "high": 1.0},
         "x2": {"type": "float", "low": 0.0, "high": 1.0}}


def pareto_study(name: str, script: str, **kwargs) -> dict:
    manifest = study(name, container={"command": ["python", "-c", script], "args": []},
                     space=SPACE, **kwargs)
    spec = manifest["spec"]
    del spec["objective"]
    spec["objectives"] = [{"metric": "f1", "direction": "minimize", "reference": 1.1},
                          {"metric": "f2", "direction": "minimize", "reference": 11.0}]
    spec["constraints"] = [{"metric": "total", "max": 1.2}]
    return manifest


def test_two_objectives_with_a_constraint_end_with_the_front_in_the_status(
        cluster: Cluster, running_operator, namespace):
    cluster.apply(pareto_study("pareto", TWO_OBJECTIVES, budget={
        "maxTrials": 12, "parallelism": 4, "maxFailedTrials": 0}), namespace)
    obj = wait_condition(cluster, namespace, "pareto", "Succeeded", timeout=300)
    status = obj["status"]
    assert condition(obj, "Succeeded")["reason"] == "MaxTrialsReached"
    got = results(trial_jobs(cluster, namespace, "pareto"))
    assert sorted(got) == list(range(12))
    assert all(r.state.value == "Succeeded" for r in got.values())
    infeasible = {n for n, r in got.items() if r.reason == "Infeasible"}
    for n, r in got.items():
        assert set(r.values) == {"f1", "f2", "total"}
        assert (r.values["total"] > 1.2) == (n in infeasible), r
    assert status["trials"]["infeasible"] == len(infeasible)

    # The front, worked out here from the recorded results, is what the status says.
    feasible = sorted(set(got) - infeasible)
    y = np.array([[got[n].values["f1"], got[n].values["f2"]] for n in feasible])
    front = {feasible[i] for i in np.flatnonzero(pareto.pareto_mask(y))}
    assert status["frontSize"] == len(front) > 0
    assert {e["number"] for e in status["paretoFront"]} == front
    for entry in status["paretoFront"]:
        assert entry["values"] == {k: got[entry["number"]].values[k] for k in ("f1", "f2")}
        assert set(entry["params"]) == {"x1", "x2"}
    assert status["referencePoint"] == {"f1": 1.1, "f2": 11.0}
    assert status["hypervolume"] == pytest.approx(
        pareto.hypervolume(y[pareto.pareto_mask(y)], np.array([1.1, 11.0])))
    assert "bestTrial" not in status and "bestValue" not in status
    ranks = [e["rank"] for e in status["leaderboard"]]
    assert ranks == sorted(ranks) and ranks[0] == 0
    assert all(e["number"] not in infeasible for e in status["leaderboard"])

    table = cluster.kubectl("get", "ts", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "FRONT", "AGE"]
    assert row.split()[:5] == ["pareto", "Succeeded", "12/12", "0", str(len(front))]
    assert condition(obj, "Succeeded")["message"] == "12 of 12 trials done"

    # The dashboard leads the study's page with the same front.
    driver = chromium()
    try:
        with dashboards.serving(cluster, "-n", namespace) as url:
            driver.get(f"{url}studies/{namespace}/pareto")
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#pareto .main-svg"),
                     timeout=30, what="the Pareto front drawn")
            note = driver.find_element(By.ID, "pareto-note").text
            assert note.startswith(f"{len(front)} trials on the front of f1, f2"), note
            drawn = driver.execute_script(
                "return document.getElementById('pareto').data"
                ".filter(t => t.name === 'Pareto front')[0].customdata.length")
            assert drawn == len(front)
    finally:
        driver.quit()


def test_a_final_report_without_an_objective_fails_naming_it(
        cluster: Cluster, running_operator, namespace):
    cluster.apply(pareto_study("forgetful", FORGETS_F2, budget={
        "maxTrials": 1, "parallelism": 1, "maxFailedTrials": 0}), namespace)
    wait_condition(cluster, namespace, "forgetful", "Failed")
    (result,) = results(trial_jobs(cluster, namespace, "forgetful")).values()
    assert result.state.value == "Failed" and result.reason == "MetricMissing"
    assert "'f2'" in (result.message or "")


@pytest.mark.parametrize(("edit", "says"), [
    (lambda s: s.update(objective={"metric": "f1", "direction": "minimize"}),
     "give exactly one of objective (one metric) and objectives"),
    (lambda s: s.update(objectives=s["objectives"][:1]), "should have at least 2 items"),
    (lambda s: s["objectives"][1].update(metric="f1"), "each objective needs its own metric"),
    (lambda s: s.update(earlyStopping={"name": "median"}),
     "earlyStopping.metric must name the one"),
    (lambda s: s.update(constraints=[{"metric": "total"}]), "give max, min or both"),
])
def test_kubectl_apply_refuses_malformed_objectives(cluster: Cluster, operator, namespace, edit,
                                                    says):
    manifest = pareto_study("malformed", TWO_OBJECTIVES)
    edit(manifest["spec"])
    refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest),
                              check=False)
    assert refused.returncode != 0
    assert says in refused.stderr, refused.stderr
    assert not cluster.get("ts", "-n", namespace)["items"]
