"""What a study optimises, as the samplers and the ranking read it: its objectives and its
constraints. Pure.

A study has one objective (``spec.objective``) or two to four (``spec.objectives``), and any
number of constraints (``spec.constraints``, up to ``MAX_CONSTRAINTS``). A trial's final report
holds every objective and constraint metric (``Trial.values``).

How far a trial breaks the constraints, ``violation``: for each constraint the amount by which
its metric passes the bound, divided by ``max(1, |bound|)`` so that constraints in different
units weigh alike, summed. 0.0 is feasible. An infeasible trial is recorded as Succeeded with
reason ``Infeasible``: the samplers learn from it (a feasibility model in the model-based ones,
last place in the ranking-based ones) but it is never best, never on the Pareto front and never
meets a goal.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubetune.core.trials import Trial

__all__ = [
    "INFEASIBLE",
    "Constraint",
    "Objective",
    "broken",
    "judged",
    "objective_matrix",
    "violation",
]

INFEASIBLE = "Infeasible"
"""The reason recorded on a Succeeded trial that breaks a constraint."""


@dataclass(frozen=True)
class Objective:
    """One objective: the metric and whether lower is better."""

    metric: str
    minimize: bool


@dataclass(frozen=True)
class Constraint:
    """A limit on a metric: at most ``max``, at least ``min`` (one of them, or both)."""

    metric: str
    max: float | None = None
    min: float | None = None


def violation(values: Mapping[str, float], constraints: Sequence[Constraint]) -> float | None:
    """How far ``values`` break ``constraints`` (0.0: feasible); None when a constraint's
    metric is missing or not finite, or there are no constraints."""
    if not constraints:
        return None
    total = 0.0
    for c in constraints:
        v = values.get(c.metric)
        if v is None or not math.isfinite(v):
            return None
        if c.max is not None and v > c.max:
            total += (v - c.max) / max(1.0, abs(c.max))
        if c.min is not None and v < c.min:
            total += (c.min - v) / max(1.0, abs(c.min))
    return total


def broken(values: Mapping[str, float], constraints: Sequence[Constraint]) -> list[str]:
    """The constraints ``values`` break, each as a phrase: ``memory_gb 9.2 > max 8``."""
    out = []
    for c in constraints:
        v = values.get(c.metric)
        if v is None:
            continue
        if c.max is not None and v > c.max:
            out.append(f"{c.metric} {v:.6g} > max {c.max:g}")
        if c.min is not None and v < c.min:
            out.append(f"{c.metric} {v:.6g} < min {c.min:g}")
    return out


def judged(trials: Sequence[Trial], constraints: Sequence[Constraint]) -> tuple[Trial, ...]:
    """``trials`` with ``violation`` set from their ``values`` (unchanged without constraints)."""
    if not constraints:
        return tuple(trials)
    return tuple(
        dataclasses.replace(t, violation=violation(t.values, constraints)) if t.values else t
        for t in trials
    )


def objective_matrix(
    trials: Sequence[Trial], objectives: Sequence[Objective]
) -> tuple[np.ndarray, list[int]]:
    """The objective vectors of the trials that have every objective (finite), sign-flipped so
    that lower is better on every column, and their indices in ``trials``."""
    rows, kept = [], []
    for i, t in enumerate(trials):
        got = [t.values.get(o.metric) for o in objectives]
        vals = [v for v in got if v is not None and math.isfinite(v)]
        if len(vals) < len(objectives):
            continue
        rows.append([v if o.minimize else -v for v, o in zip(vals, objectives, strict=True)])
        kept.append(i)
    return np.array(rows, dtype=float).reshape(-1, len(objectives)), kept
