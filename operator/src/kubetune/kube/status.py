"""Plan + what the cluster said -> the study's .status (conditions per kstatus). Pure.

Conditions:
- Ready: True while the spec is accepted and the study makes progress or has succeeded; its
  message is what a person wants to know now (including why trials wait for a node or a GPU).
- Reconciling: True only while the operator has not yet acted on the latest generation.
- Stalled: True for a spec that cannot proceed (reason InvalidSpec).
- Suspended: True while spec.suspend is set.
- Succeeded / Failed: terminal, with CamelCase reasons from the plan.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.core.plan import Phase, Plan

__all__ = ["conditions_changed", "invalid_status", "reconciling_status", "study_status"]

MAX_MESSAGE = 1024


def _rfc3339(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_conditions(
    previous: Sequence[Mapping[str, Any]], wanted: Sequence[dict[str, Any]], generation: int,
    now: float,
) -> list[dict[str, Any]]:
    """``wanted`` with lastTransitionTime carried over from ``previous`` where status held."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in wanted:
        c = {**c, "message": (c.get("message") or "")[:MAX_MESSAGE],
             "observedGeneration": generation}
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"]:
            c["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = _rfc3339(now)
        out.append(c)
    return out


def _cond(kind: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason,
            "message": message}


def study_status(
    plan: Plan,
    previous: Mapping[str, Any],
    *,
    generation: int,
    now: float,
    pending_reasons: Sequence[str] = (),
) -> dict[str, Any]:
    """The full .status to write after applying ``plan``."""
    message = plan.summary
    if pending_reasons and plan.status["trials"]["pending"]:
        message += "; waiting: " + " | ".join(pending_reasons[:3])
    finished = plan.finished
    if finished is not None:
        ready = _cond("Ready", finished.condition == "Succeeded", finished.reason, message)
    elif plan.phase == Phase.SUSPENDED:
        ready = _cond("Ready", True, "Suspended", message)
    else:
        ready = _cond("Ready", True, "Running", message)
    wanted = [
        ready,
        _cond("Reconciling", False, "Reconciled"),
        _cond("Stalled", False, "SpecAccepted"),
        _cond("Suspended", plan.suspended,
              "SuspendRequested" if plan.suspended else "NotSuspended"),
        _cond("Succeeded", finished is not None and finished.condition == "Succeeded",
              finished.reason if finished and finished.condition == "Succeeded" else "Running",
              finished.message if finished and finished.condition == "Succeeded" else ""),
        _cond("Failed", finished is not None and finished.condition == "Failed",
              finished.reason if finished and finished.condition == "Failed" else "Running",
              finished.message if finished and finished.condition == "Failed" else ""),
    ]
    status = dict(plan.status)
    status["observedGeneration"] = generation
    status["conditions"] = _merge_conditions(previous.get("conditions") or [], wanted,
                                             generation, now)
    status["startTime"] = previous.get("startTime") or _rfc3339(now)
    if finished is not None:
        status["completionTime"] = previous.get("completionTime") or _rfc3339(now)
    else:
        status["completionTime"] = None
    return status


def invalid_status(message: str, previous: Mapping[str, Any], *, generation: int,
                   now: float) -> dict[str, Any]:
    """The status of a study whose spec cannot proceed: Stalled, reason InvalidSpec."""
    wanted = [
        _cond("Ready", False, "InvalidSpec", message),
        _cond("Reconciling", False, "Reconciled"),
        _cond("Stalled", True, "InvalidSpec", message),
    ]
    status = {k: v for k, v in previous.items() if k != "conditions"}
    status["observedGeneration"] = generation
    status["conditions"] = _merge_conditions(previous.get("conditions") or [], wanted,
                                             generation, now)
    return status


def reconciling_status(
    previous: Mapping[str, Any], *, generation: int, now: float
) -> dict[str, Any]:
    """Marks a new generation as being acted on (kstatus: InProgress until done)."""
    kept = [c for c in previous.get("conditions") or [] if c.get("type") != "Reconciling"]
    wanted = _cond("Reconciling", True, "NewGeneration",
                   f"acting on generation {generation}")
    merged = _merge_conditions(previous.get("conditions") or [], [wanted], generation, now)
    return {"conditions": [*kept, *merged]}


def conditions_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` over ``old`` changes anything a reader would see."""
    return _normal(old) != _normal(new)


def _normal(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if v is not None}
    out["conditions"] = sorted(
        (dict(c) for c in status.get("conditions") or []), key=lambda c: c.get("type", "")
    )
    return out
