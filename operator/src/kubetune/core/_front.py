"""The status of a study with several objectives: its Pareto front, hypervolume and
leaderboard. Pure.

Only feasible Succeeded trials with every objective count (a Pruned or Stopped trial's values
come from a shorter run, an infeasible one breaks a constraint). From them:

- ``frontSize``: how many no other trial dominates (at least as good on every objective and
  better on one);
- ``paretoFront``: those trials, at most ``MAX_FRONT``, thinned by crowding distance with the
  extremes kept (``pareto.thin``), ordered by the first objective, best first;
- ``referencePoint`` and ``hypervolume``: each objective's ``reference`` where the spec gives
  one, otherwise the worst value among the first ``REFERENCE_TRIALS`` such trials (by number)
  pushed out by a tenth of their range (``pareto.reference_point``), so that it stops moving
  once ten trials have succeeded; the hypervolume only grows after that;
- ``leaderboard``: non-dominated rank 0 first (the front), then rank 1, ..., within a rank the
  least crowded first, ties to the older trial; at most 10 entries.

The entries carry their params, so the whole is bounded by ``FRONT_BYTES`` of JSON (the
leaderboard first, then the front) whatever the spec, as ``_leaderboard`` bounds a single
objective's status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kubetune.core import pareto
from kubetune.core._leaderboard import LEADERBOARD_SIZE, succeeded
from kubetune.core.objectives import Objective, objective_matrix
from kubetune.core.trials import Trial

__all__ = ["FRONT_BYTES", "MAX_FRONT", "REFERENCE_TRIALS", "front_status", "meets_goals"]

MAX_FRONT = 50
REFERENCE_TRIALS = 10
FRONT_BYTES = 48 * 1024


def _entry(t: Trial, objectives: Sequence[Objective], rank: int | None = None
           ) -> dict[str, Any]:
    entry: dict[str, Any] = {"number": t.number}
    if rank is not None:
        entry["rank"] = rank
    entry["values"] = {o.metric: t.values[o.metric] for o in objectives}
    entry["params"] = dict(t.params)
    entry["job"] = t.job
    return entry


def reference(y: np.ndarray, numbers: Sequence[int], given: Sequence[float | None]
              ) -> np.ndarray:
    """The reference point in lower-is-better terms: ``given`` where set (already sign-flipped),
    else from the ``REFERENCE_TRIALS`` rows with the lowest trial numbers."""
    first = np.argsort(np.asarray(numbers), kind="stable")[:REFERENCE_TRIALS]
    derived = pareto.reference_point(y[first])
    return np.array([derived[j] if g is None else g for j, g in enumerate(given)], dtype=float)


def _ranked(y: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """(row, rank) of the best ``limit`` rows: successive non-dominated fronts, each least
    crowded first, ties to the lower row."""
    left = np.arange(len(y))
    out: list[tuple[int, int]] = []
    rank = 0
    while len(left) and len(out) < limit:
        mask = pareto.pareto_mask(y[left])
        layer = left[mask]
        crowd = pareto.crowding_distance(y[layer]) if len(layer) > 2 else \
            np.full(len(layer), math.inf)
        order = sorted(range(len(layer)), key=lambda i: (-crowd[i], layer[i]))
        out += [(int(layer[i]), rank) for i in order]
        left = left[~mask]
        rank += 1
    return out[:limit]


def front_status(
    history: Sequence[Trial],
    objectives: Sequence[Objective],
    references: Sequence[float | None],
) -> dict[str, Any]:
    """``frontSize``, ``paretoFront``, ``hypervolume``, ``referencePoint`` and
    ``leaderboard`` for the status; ``references`` are the spec's, in the metrics' own
    direction (None where not given)."""
    ranked_trials = [t for t in succeeded(history)]
    y, kept = objective_matrix(ranked_trials, objectives)
    trials = [ranked_trials[i] for i in kept]
    if not trials:
        return {"frontSize": 0, "paretoFront": [], "hypervolume": None,
                "referencePoint": None, "leaderboard": []}
    signs = np.array([1.0 if o.minimize else -1.0 for o in objectives])
    given = [None if r is None else s * r for r, s in zip(references, signs, strict=True)]
    ref = reference(y, [t.number for t in trials], given)
    front = np.flatnonzero(pareto.pareto_mask(y))
    volume = pareto.hypervolume(y[front], ref)
    shown = front[pareto.thin(y[front], MAX_FRONT)] if len(front) > MAX_FRONT else front
    shown = sorted(shown, key=lambda i: (y[i, 0], trials[i].number))

    board, size = [], 0
    for row, rank in _ranked(y, LEADERBOARD_SIZE):
        entry = _entry(trials[row], objectives, rank)
        size += len(json.dumps(entry)) + 1
        if size > FRONT_BYTES // 2:
            break
        board.append(entry)
    listed = []
    for i in shown:
        entry = _entry(trials[i], objectives)
        size += len(json.dumps(entry)) + 1
        if size > FRONT_BYTES:
            break
        listed.append(entry)
    return {
        "frontSize": len(front),
        "paretoFront": listed,
        "hypervolume": float(volume),
        "referencePoint": {o.metric: float(s * r)
                           for o, s, r in zip(objectives, signs, ref, strict=True)},
        "leaderboard": board,
    }


def meets_goals(t: Trial, goals: Mapping[str, tuple[float, bool]]) -> bool:
    """Whether ``t`` meets every goal, ``goals`` mapping a metric to (goal, minimize)."""
    for metric, (goal, lower) in goals.items():
        v = t.values.get(metric)
        if v is None or not (v <= goal if lower else v >= goal):
            return False
    return True
