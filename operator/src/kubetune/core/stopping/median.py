"""The median stopping rule. Pure.

A Running trial whose last reported step is ``s >= min_step`` is pruned when its best value so
far is strictly worse than the median of the other trials' best values at step ``s``, given at
least ``min_trials`` such other trials.

"Best at step s" is step-wise: the best value a trial reported at a step <= s. A trial counts at
step s only when it has got there: it reported a step >= s, and a first step <= s. Other trials
are any state but Lost (finished, pruned or running alike). Ties continue.

The rule reads the first step, the last step and the running best of each curve, which thinning
keeps (see ``_curves``), so it decides the same on thinned curves as on full ones. When a peer's
curve improves at more reports than thinning can keep, its oldest improvements go: its best at
an early step reads worse, the median can only rise, and the rule prunes no more than it would
on the full curves (the judged trial's own best, its latest improvement, is always kept).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from kubetune.core.stopping._curves import Prune, fmt, progresses, running
from kubetune.core.trials import Trial

__all__ = ["DEFAULT_MIN_TRIALS", "median_stops"]

DEFAULT_MIN_TRIALS = 5


def median_stops(
    trials: Sequence[Trial],
    *,
    minimize: bool,
    min_step: int = 0,
    min_trials: int = DEFAULT_MIN_TRIALS,
    metric: str = "objective",
) -> list[Prune]:
    """Running trials the median rule stops, in trial-number order, each with its reason."""
    if min_trials < 1:
        raise ValueError(
            f"earlyStopping.minTrials must be at least 1, got {min_trials}: "
            "the median of no trials is undefined; use the default 5"
        )
    everyone = progresses(trials, minimize=minimize)
    stops = []
    for me in sorted(running(everyone), key=lambda p: p.number):
        step = me.last_step
        if step < min_step:
            continue
        others = [
            b
            for p in everyone
            if p.number != me.number and p.last_step >= step and (b := p.best_at(step)) is not None
        ]
        if len(others) < min_trials:
            continue
        median = statistics.median(others)
        if me.best_loss > median:
            stops.append(
                Prune(
                    me.number,
                    f"{metric} {fmt(me.value(me.best_loss))} (best so far) at step {step} is "
                    f"worse than the median {fmt(me.value(median))} of {len(others)} trials "
                    "at that step",
                )
            )
    return stops
