"""The operator on a real API server, driven as a user drives it: kubectl apply -f."""

from __future__ import annotations

import json
import random
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Cluster, OperatorProcess, wait_for
from kubetune.core import protocol
from kubetune.kube import conventions as names
from studies import study


def get_study(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.get("ts", "-n", ns, name)


def condition(obj: dict, kind: str) -> dict | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return None


def is_true(obj: dict, kind: str) -> bool:
    c = condition(obj, kind)
    return c is not None and c["status"] == "True"


def trial_jobs(cluster: Cluster, ns: str, name: str) -> list[dict]:
    items = cluster.get("jobs", "-n", ns, "-l", f"{names.STUDY_LABEL}={name}")["items"]
    return sorted(items, key=lambda j: int(j["metadata"]["labels"][names.TRIAL_LABEL]))


def results(jobs: list[dict]) -> dict[int, protocol.TrialResult]:
    out = {}
    for job in jobs:
        text = (job["metadata"].get("annotations") or {}).get(names.RESULT_ANNOTATION)
        if text:
            out[int(job["metadata"]["labels"][names.TRIAL_LABEL])] = protocol.parse_result(text)
    return out


def wait_condition(cluster: Cluster, ns: str, name: str, kind: str, timeout: int = 240) -> dict:
    cluster.kubectl("wait", "-n", ns, f"--for=condition={kind}", f"ts/{name}",
                    f"--timeout={timeout}s", timeout=timeout + 30)
    return get_study(cluster, ns, name)


def scrape(url: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value}."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_quadratic_study_runs_to_the_end(cluster: Cluster, running_operator, namespace):
    before = scrape(running_operator.metrics)
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "quadratic.yaml"))
    obj = wait_condition(cluster, namespace, "quadratic", "Succeeded", timeout=300)
    jobs = trial_jobs(cluster, namespace, "quadratic")
    assert len(jobs) == 30
    numbers = [int(j["metadata"]["labels"][names.TRIAL_LABEL]) for j in jobs]
    assert sorted(numbers) == list(range(30))
    status = obj["status"]
    assert condition(obj, "Succeeded")["reason"] == "MaxTrialsReached"
    assert status["trials"]["succeeded"] == 30 and status["trials"]["total"] == 30
    # Known optimum 0 at x1 = x2 = 0.5, lr = 0.01, layers = 3; 30 trials of auto get close.
    assert status["bestTrial"]["value"] < 0.1
    assert len(status["leaderboard"]) == 10
    assert all(len(results([j])) == 1 for j in jobs), "every trial's result is on its Job"
    table = cluster.kubectl("get", "ts", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "FRONT", "AGE"]
    assert row.split()[:4] == ["quadratic", "Succeeded", "30/30", "0"]
    pods = cluster.get("pods", "-n", namespace)["items"]
    assert all(names.FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods)
    with urllib.request.urlopen(running_operator.liveness, timeout=5) as r:
        assert r.status == 200
    after = scrape(running_operator.metrics)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("kubetune_trials_created_total") == 30
    assert delta('kubetune_trials_finished_total{result="Succeeded"}') == 30
    reconciles = 'controller_runtime_reconcile_total{controller="tuningstudy",result="success"}'
    assert delta(reconciles) > 0
    assert delta("kubetune_suggestion_seconds_count") > 0
    assert "kubetune_event_loop_lag_seconds" in after


def test_early_stopping_prunes_hopeless_trials(cluster: Cluster, running_operator, namespace):
    manifest = study(
        "curves", toy=["curves", "--steps", "9", "--sleep", "0.6"],
        budget={"maxTrials": 12, "parallelism": 4, "maxFailedTrials": 2},
        early_stopping={"name": "median", "minStep": 2, "minTrials": 2},
        algorithm={"name": "random", "seed": 5},
        space={"x1": {"type": "float", "low": 0.0, "high": 1.0},
               "x2": {"type": "float", "low": 0.0, "high": 1.0}},
    )
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "curves", "Succeeded", timeout=400)
    jobs = trial_jobs(cluster, namespace, "curves")
    res = results(jobs)
    pruned = {n: r for n, r in res.items() if r.state.value == "Pruned"}
    assert obj["status"]["trials"]["pruned"] == len(pruned) > 0
    # Good trials stay below 1.5 and hopeless (odd-numbered) ones above 10 at every step: the
    # median rule may also stop a good trial that trails the others, but mostly hopeless ones.
    hopeless = [n for n in pruned if n % 2 == 1]
    assert len(hopeless) > len(pruned) - len(hopeless)
    for r in pruned.values():
        assert r.curve and r.reason == "EarlyStopped"
        assert r.step is not None and r.step < 9
    best = obj["status"]["bestTrial"]["number"]
    assert best not in pruned and best % 2 == 0
    assert obj["status"]["trials"]["stopped"] == 0
    for job in jobs:
        n = int(job["metadata"]["labels"][names.TRIAL_LABEL])
        if n in pruned:
            wait_for(lambda job=job: cluster.get("job", "-n", namespace, job["metadata"]["name"])
                     .get("status", {}).get("failed") or 0, timeout=60,
                     what=f"the pruned trial {n}'s pod to end")


def test_goal_stops_running_trials_as_stopped(cluster: Cluster, running_operator, namespace):
    manifest = study(
        "goal", toy=["quadratic", "--steps", "30", "--sleep", "0.5"],
        objective={"metric": "loss", "direction": "minimize", "goal": 100.0},
        budget={"maxTrials": 20, "parallelism": 3, "maxFailedTrials": 2},
    )
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "goal", "Succeeded", timeout=300)
    assert condition(obj, "Succeeded")["reason"] == "GoalReached"
    counts = obj["status"]["trials"]
    assert counts["pruned"] == 0
    assert counts["succeeded"] >= 1
    # The first trial to finish meets the goal; the others still ran and end Stopped.
    assert counts["stopped"] == counts["total"] - counts["succeeded"] - counts["failed"]


def test_operator_killed_three_times_loses_and_duplicates_nothing(
    cluster: Cluster, running_operator: OperatorProcess, namespace
):
    manifest = study("restart", toy=["quadratic", "--steps", "2", "--sleep", "0.4"],
                     budget={"maxTrials": 24, "parallelism": 4, "maxFailedTrials": 2})
    cluster.apply(manifest, namespace)
    rng = random.Random(11)
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 5.0))
        running_operator.kill()
        time.sleep(rng.uniform(0.2, 2.0))
        running_operator.start()
    obj = wait_condition(cluster, namespace, "restart", "Succeeded", timeout=300)
    jobs = trial_jobs(cluster, namespace, "restart")
    numbers = [int(j["metadata"]["labels"][names.TRIAL_LABEL]) for j in jobs]
    assert len(numbers) == len(set(numbers)) == 24
    res = results(jobs)
    assert len(res) == 24, "every trial's result is on its Job"
    assert obj["status"]["trials"]["succeeded"] == 24
    assert obj["status"]["nextTrial"] == 24


FAILURES = [
    (["fail", "--exit-code", "3"], "ExitCode", "exited with code 3"),
    (["nan"], "MetricNotFinite", ""),
    (["silent"], "MetricMissing", ""),
    (["malformed"], "MetricInvalid", ""),
]


@pytest.mark.parametrize(("toy", "reason", "text"), FAILURES, ids=[f[1] for f in FAILURES])
def test_failed_trials_get_their_reason_and_fail_the_study(
    cluster: Cluster, running_operator, namespace, toy, reason, text
):
    manifest = study("failing", toy=toy,
                     budget={"maxTrials": 6, "parallelism": 2, "maxFailedTrials": 1})
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "failing", "Failed", timeout=180)
    assert condition(obj, "Failed")["reason"] == "TooManyFailedTrials"
    res = results(trial_jobs(cluster, namespace, "failing"))
    failed = [r for r in res.values() if r.state.value == "Failed"]
    assert len(failed) >= 2
    assert {r.reason for r in failed} == {reason}
    assert all(text in (r.message or "") for r in failed)


BAD_STUDIES = [
    ("low-not-below-high", {"searchSpace": {"x": {"type": "float", "low": 1.0, "high": 1.0}}},
     "low"),
    ("log-needs-positive-low",
     {"searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "log"),
    ("unknown-algorithm", {"algorithm": {"name": "hillclimb"}}, "algorithm"),
    ("parallelism-over-budget", {"budget": {"maxTrials": 2, "parallelism": 4}}, "parallelism"),
    ("empty-categorical", {"searchSpace": {"c": {"type": "categorical", "values": []}}}, "values"),
    ("step-not-dividing",
     {"searchSpace": {"b": {"type": "int", "low": 16, "high": 250, "step": 16}}}, "step"),
    ("clashing-env-names", {"searchSpace": {
        "batch-size": {"type": "int", "low": 1, "high": 4},
        "batch_size": {"type": "int", "low": 1, "high": 4}}}, "same KUBETUNE_PARAM_ variable"),
    ("grid-over-continuous", {"algorithm": {"name": "grid"}}, "step"),
    ("ttl-after-finished", {"jobTemplate": {"spec": {"ttlSecondsAfterFinished": 10, "template": {
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "t", "image": "kubetune/trainer:0.1.0"}]}}}}}, "ttlSecondsAfterFinished"),
    ("job-template-refused-by-apiserver", {"jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Always", "containers": [
            {"name": "t", "image": "kubetune/trainer:0.1.0"}]}}}}}, "restartPolicy"),
    ("unknown-early-stopping", {"earlyStopping": {"name": "hyperband"}}, "earlyStopping"),
]


@pytest.mark.parametrize(("name", "override", "needle"), BAD_STUDIES,
                         ids=[b[0] for b in BAD_STUDIES])
def test_malformed_studies_are_refused_or_stalled(
    cluster: Cluster, running_operator, namespace, name, override, needle
):
    manifest = study(name)
    manifest["spec"].update(override)
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest),
                           check=False)
    if proc.returncode != 0:
        assert needle in proc.stderr, proc.stderr
        return
    obj = wait_for(lambda: (lambda o: o if is_true(o, "Stalled") else None)(
        get_study(cluster, namespace, name)), timeout=60, what="Stalled")
    stalled = condition(obj, "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert needle in stalled["message"]
    assert not is_true(obj, "Ready")
    assert trial_jobs(cluster, namespace, name) == [], "nothing is created for a bad study"


def test_gpu_trials_queue_and_the_status_says_why(cluster: Cluster, running_operator, namespace):
    manifest = study(
        "gpus", toy=["quadratic", "--steps", "1", "--sleep", "4"],
        budget={"maxTrials": 6, "parallelism": 6, "maxFailedTrials": 1},
        container={"resources": {"limits": {"nvidia.com/gpu": 1}}},
    )
    cluster.apply(manifest, namespace)

    def waiting() -> dict | None:
        obj = get_study(cluster, namespace, "gpus")
        t = obj.get("status", {}).get("trials", {})
        if t.get("running") == 4 and t.get("pending") == 2:
            return obj
        return None

    obj = wait_for(waiting, timeout=120, what="4 running and 2 pending GPU trials")
    assert "Insufficient nvidia.com/gpu" in condition(obj, "Ready")["message"]
    wait_condition(cluster, namespace, "gpus", "Succeeded", timeout=180)


def test_suspend_resume_and_more_trials(cluster: Cluster, running_operator, namespace):
    manifest = study("lifecycle", toy=["quadratic", "--steps", "2", "--sleep", "0.5"],
                     budget={"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 1},
                     suspend=True)
    cluster.apply(manifest, namespace)
    obj = wait_for(lambda: (lambda o: o if is_true(o, "Suspended") else None)(
        get_study(cluster, namespace, "lifecycle")), timeout=60, what="Suspended")
    assert trial_jobs(cluster, namespace, "lifecycle") == []
    assert is_true(obj, "Ready")
    cluster.kubectl("patch", "ts", "-n", namespace, "lifecycle", "--type=merge",
                    "-p", '{"spec":{"suspend":false}}')
    wait_condition(cluster, namespace, "lifecycle", "Succeeded", timeout=180)
    assert len(trial_jobs(cluster, namespace, "lifecycle")) == 4
    cluster.kubectl("patch", "ts", "-n", namespace, "lifecycle", "--type=merge",
                    "-p", '{"spec":{"budget":{"maxTrials":6}}}')
    wait_for(lambda: len(trial_jobs(cluster, namespace, "lifecycle")) == 6, timeout=60,
             what="2 more trials after raising maxTrials")
    obj = wait_for(lambda: (lambda o: o if is_true(o, "Succeeded")
                            and o["status"]["trials"]["succeeded"] == 6 else None)(
        get_study(cluster, namespace, "lifecycle")), timeout=180, what="6 succeeded")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_deleted_job_is_lost_and_its_number_never_reused(cluster: Cluster, running_operator,
                                                         namespace):
    manifest = study("lost", toy=["quadratic", "--steps", "1", "--sleep", "3"],
                     budget={"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 1})
    cluster.apply(manifest, namespace)
    wait_for(lambda: len(trial_jobs(cluster, namespace, "lost")) >= 1, what="a trial Job")
    first = trial_jobs(cluster, namespace, "lost")[0]["metadata"]["name"]
    cluster.kubectl("delete", "job", "-n", namespace, first, "--wait=true", "--timeout=60s")
    obj = wait_condition(cluster, namespace, "lost", "Succeeded", timeout=180)
    jobs = trial_jobs(cluster, namespace, "lost")
    numbers = [int(j["metadata"]["labels"][names.TRIAL_LABEL]) for j in jobs]
    assert 0 not in numbers and len(numbers) == 4 == len(set(numbers))
    assert obj["status"]["trials"]["lost"] == 1
    assert obj["status"]["trials"]["succeeded"] == 4
    assert cluster.get("pods", "-n", namespace, "-l", "kubetune.dev/trial=0")["items"] == []


def test_a_suspended_job_stays_suspended_until_its_owner_resumes_it(
        cluster: Cluster, running_operator, namespace):
    # The template's own suspend (Kueue's queue is tests/e2e/test_kueue_study.py): the operator
    # never resumes a Job, and creates no other trial while one waits.
    manifest = study("queued", budget={"maxTrials": 3, "parallelism": 2, "maxFailedTrials": 1},
                     job_meta={"labels": {"team": "a"}})
    manifest["spec"]["jobTemplate"]["spec"]["suspend"] = True
    cluster.apply(manifest, namespace)
    wait_for(lambda: trial_jobs(cluster, namespace, "queued")[1:], what="the trial Jobs")
    time.sleep(3)
    first, second = trial_jobs(cluster, namespace, "queued")
    assert first["spec"]["suspend"] is True and second["spec"]["suspend"] is True
    assert first["metadata"]["labels"]["team"] == "a"
    obj = get_study(cluster, namespace, "queued")
    assert obj["status"]["trials"]["pending"] == 2
    assert "suspended" in condition(obj, "Ready")["message"]
    resume = ("patch", "job", "-n", namespace, "--type=merge", "-p",
              '{"spec":{"suspend":false}}')
    cluster.kubectl(*resume, first["metadata"]["name"])
    wait_for(lambda: get_study(cluster, namespace, "queued")["status"]["trials"]["succeeded"],
             timeout=120, what="the resumed trial to succeed")
    time.sleep(3)
    # A slot is free, but a trial still waits: nothing new is proposed.
    assert len(trial_jobs(cluster, namespace, "queued")) == 2
    cluster.kubectl(*resume, second["metadata"]["name"])
    third = wait_for(lambda: trial_jobs(cluster, namespace, "queued")[2:], timeout=120,
                     what="the third trial's Job")[0]
    assert third["spec"]["suspend"] is True
    cluster.kubectl(*resume, third["metadata"]["name"])
    wait_condition(cluster, namespace, "queued", "Succeeded", timeout=120)


def test_enqueued_configurations_run_as_the_first_trials(cluster: Cluster, running_operator,
                                                         namespace):
    manifest = study("enqueued", budget={"maxTrials": 3, "parallelism": 2, "maxFailedTrials": 0})
    manifest["spec"]["enqueue"] = [{"x1": 0.5, "x2": 0.5}, {"x1": -1}]
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "enqueued", "Succeeded")
    params = {int(j["metadata"]["labels"][names.TRIAL_LABEL]):
              json.loads(j["metadata"]["annotations"][names.PARAMS_ANNOTATION])
              for j in trial_jobs(cluster, namespace, "enqueued")}
    assert params[0] == {"x1": 0.5, "x2": 0.5}
    assert params[1]["x1"] == -1.0 and -2.0 <= params[1]["x2"] <= 2.0
    assert sorted(params) == [0, 1, 2]
    # The toy quadratic's optimum is at x1 = x2 = 0.5: the known configuration leads.
    assert obj["status"]["bestTrial"]["number"] == 0


def test_deleting_a_study_deletes_its_jobs(cluster: Cluster, running_operator, namespace):
    manifest = study("doomed", toy=["quadratic", "--steps", "20", "--sleep", "1"],
                     budget={"maxTrials": 4, "parallelism": 2, "maxFailedTrials": 1})
    cluster.apply(manifest, namespace)
    wait_for(lambda: len(trial_jobs(cluster, namespace, "doomed")) == 2, what="2 trial Jobs")
    cluster.kubectl("delete", "ts", "-n", namespace, "doomed", "--wait=true", "--timeout=60s")
    wait_for(lambda: trial_jobs(cluster, namespace, "doomed") == [], timeout=90,
             what="the garbage collector to delete the trial Jobs")
    wait_for(lambda: cluster.get("pods", "-n", namespace)["items"] == [], timeout=90,
             what="the trial pods to go (their result finalizer released)")


def test_examples_are_valid(cluster: Cluster, running_operator, namespace):
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") == "TuningStudy":
                cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                                input=json.dumps(doc))


def test_a_warm_started_study_proposes_from_the_earlier_studys_trials(
        cluster: Cluster, running_operator, namespace):
    from kubetune import core
    from kubetune.core import spec as specs
    from kubetune.core import warm_start as warm
    from kubetune.kube.reconcile import prior_study

    cluster.apply(study("source", algorithm={"name": "random", "seed": 1},
                        budget={"maxTrials": 6, "parallelism": 3, "maxFailedTrials": 0}),
                  namespace)
    wait_condition(cluster, namespace, "source", "Succeeded")
    manifest = study("warmed", algorithm={"name": "gp", "seed": 3},
                     budget={"maxTrials": 2, "parallelism": 1, "maxFailedTrials": 0})
    manifest["spec"]["warmStart"] = {"studies": ["source"]}
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "warmed", "Succeeded")
    assert obj["status"]["warmStart"] == {
        "trials": 6, "message": "source: 6 of 6 succeeded trials"}
    assert obj["status"]["trials"]["total"] == 2  # the earlier trials are not this study's
    spec = specs.parse_spec(manifest["spec"])
    prior = warm.prior_history(spec, [prior_study(
        "source", trial_jobs(cluster, namespace, "source"), None)])
    first = json.loads(trial_jobs(cluster, namespace, "warmed")[0]["metadata"]["annotations"][
        names.PARAMS_ANNOTATION])
    # gp is past its 6-point startup design at once: trial 0 is its model's proposal (to the
    # last digits the kernel fit reaches, which BLAS threading can move between processes), not
    # the first point of its cold start.
    warm_first = core.suggest(spec, list(prior.trials), 1)[0]
    cold_first = core.suggest(spec, [], 1)[0]
    assert first == pytest.approx(warm_first, abs=1e-6)
    assert first != pytest.approx(cold_first, abs=1e-3)


CONDITIONAL_SCRIPT = """
import json, os
p = json.loads(os.environ["KUBETUNE_PARAMS"])
assert ("KUBETUNE_PARAM_MOMENTUM" in os.environ) == (p["optimizer"] == "sgd"), p
loss = (p["x1"] - 0.5) ** 2 + ((p["momentum"] - 0.9) ** 2 if "momentum" in p else 0.2)
print(f"loss={loss}")
"""


def test_a_conditional_parameter_reaches_only_the_trials_that_activate_it(
        cluster: Cluster, running_operator, namespace):
    manifest = study("conditional", container={"command": ["python", "-c", CONDITIONAL_SCRIPT],
                                               "args": []},
                     space={"optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
                            "x1": {"type": "float", "low": 0.0, "high": 1.0},
                            "momentum": {"type": "float", "low": 0.5, "high": 0.99,
                                         "when": {"optimizer": ["sgd"]}}},
                     budget={"maxTrials": 8, "parallelism": 4, "maxFailedTrials": 0})
    manifest["spec"]["metricsFrom"] = {"log": {"pattern": r"loss=(?P<value>[0-9.e+-]+)"}}
    cluster.apply(manifest, namespace)
    obj = wait_condition(cluster, namespace, "conditional", "Succeeded")
    assert obj["status"]["trials"]["succeeded"] == 8  # the script's own check passed in each
    optimizers = set()
    for job in trial_jobs(cluster, namespace, "conditional"):
        params = json.loads(job["metadata"]["annotations"][names.PARAMS_ANNOTATION])
        env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        optimizers.add(params["optimizer"])
        assert ("momentum" in params) == (params["optimizer"] == "sgd") == (
            "KUBETUNE_PARAM_MOMENTUM" in env)
    assert optimizers == {"sgd", "adam"}
