"""Studies and trials for the command's tests, built as the operator would see them."""

from __future__ import annotations

from typing import Any

from kubetune._cli.views import StudyView
from kubetune.core import spec as specs
from kubetune.core.trials import Trial, TrialState

SPEC: dict[str, Any] = {
    "objective": {"metric": "loss", "direction": "minimize"},
    "searchSpace": {
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "opt": {"type": "categorical", "values": ["adam", "sgd"]},
    },
    "algorithm": {"name": "random", "seed": 1},
    "earlyStopping": {"name": "median", "minStep": 2},
    "budget": {"maxTrials": 12, "parallelism": 3},
    "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "trial", "image": "kubetune/trainer:0.1.0", "args": ["toy", "quadratic"]}]}}}},
}


def trial(number: int, state: str, value: float | None = None, *, x: float = 0.0,
          lr: float = 0.01, opt: str = "adam", curve: list | None = None,
          start: float | None = 1000.0, end: float | None = 1010.0,
          reason: str | None = None) -> Trial:
    s = TrialState(state)
    if curve is None and value is not None:
        curve = [(1, value + 1.0), (2, value)]
    return Trial(number, {"x": x, "lr": lr, "opt": opt}, s, value, tuple(curve or ()),
                 reason=reason, start_time=start, end_time=None if s.is_active else end)


def study_view(trials: list[Trial], *, conditions: list[dict] | None = None,
               spec: dict | None = None, events: tuple = ()) -> StudyView:
    return StudyView(
        name="demo", namespace="team-a", spec=specs.parse_spec(spec or SPEC),
        status={"conditions": conditions or [
            {"type": "Ready", "status": "True", "reason": "Running",
             "message": "2 running, 0 pending; 5 of 12 trials done"}]},
        trials=tuple(trials), events=events, created=900.0,
    )


def mixed_trials() -> list[Trial]:
    """Five succeeded, one pruned, one failed, two running, one pending."""
    return [
        trial(0, "Succeeded", 0.5, x=0.1, lr=0.001),
        trial(1, "Succeeded", 0.2, x=0.3, lr=0.01, opt="sgd"),
        trial(2, "Pruned", 3.0, x=-1.5, curve=[(1, 4.0), (2, 3.0)], reason="EarlyStopped"),
        trial(3, "Failed", None, x=1.9, reason="ExitCode"),
        trial(4, "Succeeded", 0.9, x=-0.4, lr=0.2),
        trial(5, "Succeeded", 0.2, x=0.35, lr=0.02),
        trial(6, "Succeeded", 1.5, x=1.0, lr=0.5, opt="sgd"),
        trial(7, "Running", 0.7, x=0.2, curve=[(1, 0.7)], start=1050.0),
        trial(8, "Running", None, x=0.0, start=1055.0),
        trial(9, "Pending", None, start=None),
    ]
