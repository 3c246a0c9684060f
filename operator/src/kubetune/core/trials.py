"""Trial records: what the engine knows of one trial, as plain frozen values.

A trial is built by the kube layer from its Job and pod (or by a test from a dict) and handed
to the pure core; the core never sees Kubernetes objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["QUEUED", "QUEUE_LABEL", "Trial", "TrialState", "as_trial", "as_trials"]

# The reason of a Pending trial whose Job is suspended until its queue (Kueue) admits it.
QUEUED = "Queued"
# The label that puts a Job in a Kueue LocalQueue.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


class TrialState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PRUNED = "Pruned"  # stopped by early stopping
    STOPPED = "Stopped"  # still running when the study ended or met its goal
    LOST = "Lost"  # its Job was deleted by hand

    @property
    def is_active(self) -> bool:
        """Pending or Running: a pending point for the samplers."""
        return self in (TrialState.PENDING, TrialState.RUNNING)

    @property
    def is_finished(self) -> bool:
        return not self.is_active

    @property
    def counts_toward_budget(self) -> bool:
        """Succeeded, Failed and Pruned trials spend maxTrials; Stopped and Lost do not."""
        return self in (TrialState.SUCCEEDED, TrialState.FAILED, TrialState.PRUNED)


@dataclass(frozen=True)
class Trial:
    """One trial. ``value`` is the objective as reported (not sign-flipped).

    ``curve`` holds (step, objective) pairs in step order; Pruned trials keep theirs, and their
    ``value`` is the last reported objective, so that samplers can learn from them. In a study
    with several objectives ``value`` and ``curve`` follow the one early stopping watches (the
    first objective without early stopping).

    ``values`` holds the final report's objective and constraint metrics, by name (empty for a
    trial without a final report). ``violation`` says how far the trial breaks the study's
    constraints (``core.objectives.violation``): 0.0 feasible, above 0 infeasible, None when it
    was not judged (no constraints, or no final report).
    """

    number: int
    params: Mapping[str, Any]
    state: TrialState
    value: float | None = None
    curve: tuple[tuple[int, float], ...] = ()
    reason: str | None = None
    message: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    job: str | None = None
    retries: int = 0  # pods re-run because their node lost them
    values: Mapping[str, float] = field(default_factory=dict)
    violation: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_value(self) -> bool:
        return self.value is not None and math.isfinite(self.value)

    @property
    def feasible(self) -> bool:
        """Whether the trial keeps every constraint (or was not judged against any)."""
        return self.violation is None or self.violation <= 0.0

    @property
    def last_step(self) -> int | None:
        return self.curve[-1][0] if self.curve else None


def as_trial(record: Trial | Mapping[str, Any], number: int = 0) -> Trial:
    """Accept a Trial, or a plain record ``{"params", "state", "value", "curve", ...}``."""
    if isinstance(record, Trial):
        return record
    value = record.get("value")
    curve = tuple((int(s), float(v)) for s, v in record.get("curve") or ())
    return Trial(
        number=int(record.get("number", number)),
        params=dict(record.get("params") or {}),
        state=TrialState(record.get("state", TrialState.SUCCEEDED)),
        value=None if value is None else float(value),
        curve=curve,
        reason=record.get("reason"),
        message=record.get("message"),
        start_time=record.get("start_time", record.get("startTime")),
        end_time=record.get("end_time", record.get("endTime")),
        job=record.get("job"),
        values={str(k): float(v) for k, v in (record.get("values") or {}).items()},
        violation=None if record.get("violation") is None else float(record["violation"]),
    )


def as_trials(records: Sequence[Trial | Mapping[str, Any]]) -> tuple[Trial, ...]:
    """Normalise a history; records without a number are numbered by position."""
    return tuple(as_trial(r, i) for i, r in enumerate(records))
