"""Plan + what the cluster said -> the study's .status (conditions per kstatus). Pure.

``status.phase`` says in one word what the study is doing (Pending, Running, Suspended,
Succeeded, Failed, Invalid). The conditions say it the way kstatus (``helm --wait``, Flux,
Argo CD, ``kubectl wait``) reads it:

- Ready: True while the spec is accepted and the study makes progress or has succeeded; its
  message is what a person wants to know now (including why trials wait for a node or a GPU).
- Reconciling: True only while the operator has not yet acted on the latest generation
  (kstatus: InProgress).
- Stalled: True for a spec that cannot proceed (reason InvalidSpec) and for a study that ended
  Failed (its terminal reason), so kstatus says Failed and waiting tools stop at once. A
  Succeeded study keeps Stalled False and Ready True (kstatus: Current).
- Suspended: True while spec.suspend is set.
- Succeeded / Failed: terminal, with CamelCase reasons from the plan. While neither holds their
  reason is the phase; once one holds, the other's reason is the terminal reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.core.plan import Finish, Phase, Plan
from kubetune.core.times import rfc3339

__all__ = [
    "conditions_changed", "invalid_status", "reconciling_status", "routine_change",
    "study_status",
]

MAX_MESSAGE = 1024


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
            c["lastTransitionTime"] = rfc3339(now)
        out.append(c)
    return out


def _cond(kind: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason,
            "message": message}


def _terminal(kind: str, finished: Finish | None, phase: Phase) -> dict[str, Any]:
    """The Succeeded or Failed condition: True with the plan's reason when the study ended
    that way; else False, with the other ending's reason or, while it runs, the phase."""
    if finished is None:
        return _cond(kind, False, phase.value)
    if finished.condition == kind:
        return _cond(kind, True, finished.reason, finished.message)
    return _cond(kind, False, finished.reason, f"the study ended {finished.condition}")


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
    if finished is None:
        ready = _cond("Ready", True, plan.phase.value, message)
        stalled = _cond("Stalled", False, "SpecAccepted")
    elif finished.condition == "Failed":
        ready = _cond("Ready", False, finished.reason, message)
        # kstatus reports only the message (`helm --wait`: "status: Failed, message: ..."),
        # so it starts with the reason.
        stalled = _cond("Stalled", True, finished.reason,
                        f"{finished.reason}: {finished.message}")
    else:
        ready = _cond("Ready", True, finished.reason, message)
        stalled = _cond("Stalled", False, "SpecAccepted")
    wanted = [
        ready,
        _cond("Reconciling", False, "Reconciled"),
        stalled,
        _cond("Suspended", plan.suspended,
              "SuspendRequested" if plan.suspended else "NotSuspended"),
        _terminal("Succeeded", finished, plan.phase),
        _terminal("Failed", finished, plan.phase),
    ]
    status = dict(plan.status)
    status["observedGeneration"] = generation
    status["conditions"] = _merge_conditions(previous.get("conditions") or [], wanted,
                                             generation, now)
    status["startTime"] = previous.get("startTime") or rfc3339(now)
    if finished is not None:
        status["completionTime"] = previous.get("completionTime") or rfc3339(now)
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
    status["phase"] = Phase.INVALID.value
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


# What a waiting tool reads: a change to any of these is written at once. Everything else
# (counts, the best so far, the leaderboard, the trial high-water mark, condition messages) is
# progress, which a reader sees a moment later at no loss.
_SHAPE_FIELDS = ("phase", "observedGeneration", "completionTime", "startTime")


def routine_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` over ``old`` only moves progress along: the same phase,
    generation and times, and every condition with the same status and reason. Such a write
    may wait a little and be merged with the next one; any other may not."""
    merged = {**old, **new}
    if any(old.get(k) != merged.get(k) for k in _SHAPE_FIELDS):
        return False
    return _shape(old) == _shape(merged)


def _shape(status: Mapping[str, Any]) -> list[tuple[Any, Any, Any]]:
    return sorted((c.get("type"), c.get("status"), c.get("reason"))
                  for c in status.get("conditions") or [])


def _normal(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if v is not None}
    out["conditions"] = sorted(
        (dict(c) for c in status.get("conditions") or []), key=lambda c: c.get("type", "")
    )
    return out
