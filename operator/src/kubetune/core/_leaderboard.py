"""Ranking a study's trials for its status: ``bestTrial`` and the ``leaderboard``. Pure.

Only Succeeded trials with a finite value that keep every constraint rank: a Pruned or Stopped
trial's value comes from a shorter run, so it is not comparable, and an infeasible one breaks a
limit (the samplers still learn from both). Ties go to the older
trial. The leaderboard holds at most ``LEADERBOARD_SIZE`` entries, and stops short of that when
their params are long (64 parameters with 256-character values make ~21 KB an entry), so that
the status stays well under 64 KiB whatever the spec.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Sequence
from typing import Any

from kubetune.core.trials import Trial, TrialState

__all__ = ["LEADERBOARD_SIZE", "RANKED_BYTES", "better", "ranked", "succeeded", "summary_of"]

LEADERBOARD_SIZE = 10
RANKED_BYTES = 48 * 1024  # bestTrial and leaderboard together, as JSON


def succeeded(history: Sequence[Trial]) -> list[Trial]:
    """The trials that may rank: Succeeded, feasible, with a finite value."""
    return [t for t in history
            if t.state is TrialState.SUCCEEDED and t.has_value and t.feasible]


def better(lower_is_better: bool) -> Callable[[Trial], tuple[float, int]]:
    """Sort key: best value first, then the older trial."""
    sign = 1.0 if lower_is_better else -1.0
    return lambda t: (sign * float(t.value), t.number)  # type: ignore[arg-type]


def summary_of(t: Trial) -> dict[str, Any]:
    """A trial as ``bestTrial`` and the leaderboard show it (spec.TrialSummary)."""
    return {"number": t.number, "value": t.value, "params": dict(t.params), "job": t.job}


def ranked(
    history: Sequence[Trial], *, lower_is_better: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(bestTrial, leaderboard)`` for the status; (None, []) before any trial succeeded."""
    top = heapq.nsmallest(LEADERBOARD_SIZE, succeeded(history), key=better(lower_is_better))
    best = summary_of(top[0]) if top else None
    board, size = [], len(json.dumps(best))
    for t in top:
        entry = summary_of(t)
        size += len(json.dumps(entry)) + 1
        if size > RANKED_BYTES:
            break
        board.append(entry)
    return best, board
