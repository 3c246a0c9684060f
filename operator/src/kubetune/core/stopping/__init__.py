"""Early stopping: pure rules that pick the Running trials to prune from the study's curves.

Each rule takes the trials (their ``curve`` holds (step, objective) pairs) and the objective's
direction, and returns ``Prune(number, message)`` verdicts; it performs nothing. ``prunes``
dispatches on the spec's ``earlyStopping.name``.

Every rule reads a curve only through its first step, last step and running best, which the
metric protocol's thinning keeps, so decisions on thinned curves equal those on full curves.
One limit: a curve that improves at more than ~200 reports cannot keep every improvement, and
thinning keeps the most recent ones. Then ASHA stays exact when the curve is thinned with
``keep_steps(early_stopping)`` (its rungs), and the median rule can only prune less than on
the full curve (a peer's early best reads worse, which raises the median).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune.core.stopping._curves import Prune
from kubetune.core.stopping.asha import asha_stops, rungs
from kubetune.core.stopping.median import median_stops
from kubetune.core.trials import Trial

__all__ = ["Prune", "asha_stops", "keep_steps", "median_stops", "prunes"]


def prunes(
    early_stopping: Any, trials: Sequence[Trial], *, minimize: bool, metric: str
) -> list[Prune]:
    """Verdicts of the rule ``early_stopping`` names (an EarlyStoppingSpec, or None for none)."""
    if early_stopping is None:
        return []
    name = early_stopping.name
    if name == "median":
        return median_stops(
            trials,
            minimize=minimize,
            min_step=early_stopping.min_step,
            min_trials=early_stopping.min_trials,
            metric=metric,
        )
    if name == "asha":
        return asha_stops(
            trials,
            minimize=minimize,
            min_step=early_stopping.min_step,
            max_step=early_stopping.max_step,
            reduction_factor=early_stopping.reduction_factor,
            metric=metric,
        )
    raise ValueError(
        f"earlyStopping.name must be median or asha, got {name!r}: pick one, or omit earlyStopping"
    )


def keep_steps(early_stopping: Any) -> tuple[int, ...]:
    """Steps whose running best a trainer's curve thinning must keep exactly (the
    ``keep_steps`` of ``protocol.thin_curve``): ASHA's rungs, or none for the median rule."""
    if early_stopping is None or early_stopping.name != "asha":
        return ()
    return rungs(early_stopping.min_step, early_stopping.max_step, early_stopping.reduction_factor)
