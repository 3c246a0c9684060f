"""Study manifests for the e2e tests: the toy trainer's objectives with known optima."""

from __future__ import annotations

import copy
from typing import Any


def study(name: str, *, toy: list[str] | None = None, space: dict | None = None,
          objective: dict | None = None, budget: dict | None = None, algorithm: dict | None = None,
          early_stopping: dict | None = None, container: dict | None = None,
          pod_spec: dict | None = None, job_meta: dict | None = None,
          suspend: bool = False) -> dict[str, Any]:
    """A TuningStudy running ``python -m kubetune_trainer toy ...`` per trial (the toy-trainer
    image: the SDK and the toy objectives, no torch)."""
    trial = {"name": "trial", "image": "kubetune/toy-trainer:0.1.0",
             "args": ["toy", *(toy or ["quadratic"])]}
    trial.update(container or {})
    spec: dict[str, Any] = {
        "objective": objective or {"metric": "loss", "direction": "minimize"},
        "searchSpace": space or {"x1": {"type": "float", "low": -2.0, "high": 2.0},
                                 "x2": {"type": "float", "low": -2.0, "high": 2.0}},
        "algorithm": algorithm or {"name": "auto", "seed": 3},
        "budget": budget or {"maxTrials": 8, "parallelism": 4, "maxFailedTrials": 3},
        "suspend": suspend,
        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [trial], **(pod_spec or {})}}}},
    }
    if job_meta:
        spec["jobTemplate"]["metadata"] = copy.deepcopy(job_meta)
    if early_stopping:
        spec["earlyStopping"] = early_stopping
    return {"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy",
            "metadata": {"name": name}, "spec": spec}
