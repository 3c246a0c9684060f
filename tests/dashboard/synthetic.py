"""Synthetic studies for the dashboard's tests and its load benchmark: the objects the
cluster would hold (a TuningStudy, its trial Jobs with recorded results), built with the
operator's own builders so that ``observe`` reads them as it reads real ones."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from kubetune._cli.views import StudyView
from kubetune.core import protocol
from kubetune.core import spec as specs
from kubetune.core.times import rfc3339
from kubetune.core.trials import Trial, TrialState
from kubetune.kube import conventions as names

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "batch_size": {"type": "int", "low": 16, "high": 256, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "optimizer": {"type": "categorical", "values": ["adam", "sgd", "adamw"]},
}


def study_object(name: str = "big", namespace: str = "team-a", uid: str = "u-1",
                 max_trials: int = 10_000) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION, "kind": names.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid,
                     "creationTimestamp": rfc3339(1_000_000.0), "resourceVersion": "1"},
        "spec": {
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "searchSpace": SPACE, "algorithm": {"name": "tpe", "seed": 1},
            "earlyStopping": {"name": "asha", "minStep": 1, "maxStep": 27},
            "budget": {"maxTrials": max_trials, "parallelism": min(8, max_trials)},
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "t", "image": "kubetune/trainer:0.1.0"}]}}}},
        },
        "status": {"trials": {"succeeded": max_trials}, "conditions": [
            {"type": "Ready", "status": "True", "reason": "MaxTrialsReached",
             "message": f"{max_trials} of {max_trials} trials done"}]},
    }


def several_objectives(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a ``study_object``) with two objectives: val_loss and latency_ms, both down."""
    spec = obj["spec"]
    spec["objectives"] = [{"metric": "val_loss", "direction": "minimize"},
                          {"metric": "latency_ms", "direction": "minimize"}]
    del spec["objective"]
    spec["earlyStopping"]["metric"] = "val_loss"
    return obj


def trial_jobs(n: int, *, study_uid: str = "u-1", namespace: str = "team-a",
               seed: int = 0, latency: bool = False) -> list[dict[str, Any]]:
    """``n`` finished trial Jobs, a quarter pruned, each with a 27-step curve; with
    ``latency``, the succeeded ones also report latency_ms, which falls as val_loss rises."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        params = {"lr": 10 ** rng.uniform(-5, -1), "batch_size": rng.choice([16, 32, 64, 128]),
                  "dropout": rng.uniform(0, 0.5), "optimizer": rng.choice(["adam", "sgd"])}
        final = abs(math.log10(params["lr"]) + 3) * 0.2 + params["dropout"] + rng.random() * 0.1
        steps = 27 if i % 4 else 9
        curve = [(s, final + 1.0 / s) for s in range(1, steps + 1)]
        state = "Succeeded" if i % 4 else "Pruned"
        values = ({"val_loss": curve[-1][1], "latency_ms": 10.0 / (0.1 + final)}
                  if latency and state == "Succeeded" else {})
        result = protocol.TrialResult(
            TrialState(state), "EarlyStopped" if state == "Pruned" else None,
            curve[-1][1], steps, tuple(curve), values=values)
        start = 1_000_000.0 + i * 30
        jobs.append({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": f"big-abcde-{i}", "namespace": namespace, "uid": f"job-{i}",
                "labels": {names.STUDY_UID_LABEL: study_uid, names.TRIAL_LABEL: str(i)},
                "annotations": {names.PARAMS_ANNOTATION: json.dumps(params),
                                names.RESULT_ANNOTATION: protocol.encode_result(result)}},
            "status": {"startTime": rfc3339(start), "completionTime": rfc3339(start + 25),
                       "conditions": [{"type": "Complete" if state == "Succeeded"
                                       else "Failed", "status": "True"}]},
        })
    return jobs



def view_with_pending() -> StudyView:
    obj = study_object(max_trials=3)
    params = {"lr": 0.01, "batch_size": 32, "dropout": 0.1, "optimizer": "adam"}
    trials = (
        Trial(0, params, TrialState.SUCCEEDED, 0.5, start_time=1000.0, end_time=1010.0),
        Trial(1, params, TrialState.PENDING),
        Trial(2, params, TrialState.RUNNING, start_time=1990.0),
    )
    return StudyView(name="s", namespace="n", spec=specs.parse_spec(obj["spec"]),
                     status=obj["status"], trials=trials)
