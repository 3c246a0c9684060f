"""What the stopping rules share: a trial's learning curve reduced to what they read. Pure.

A rule reads a curve only through three facts: the first step reported, the last step reported,
and the best value reported at or before a step (the running best, "best-so-far"). Thinning that
keeps the first point, the last point and every running-best point (docs/design.md section 4) keeps
all three, so a rule decides the same on a thinned curve as on the full one.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter, neg

from kubetune.core.trials import Trial, TrialState

__all__ = ["Progress", "Prune", "fmt", "progress_of", "progresses", "running"]


@dataclass(frozen=True)
class Prune:
    """A rule's verdict: stop running trial ``number``; ``message`` says why, for a person."""

    number: int
    message: str


@dataclass(frozen=True)
class Progress:
    """One trial's curve in loss form (lower is better: sign-flipped to maximize).

    ``steps`` ascend and ``losses`` go with them. Lookups slice and reduce in C (``min`` of a
    slice), since a study may hold 10,000 curves of 200 points and a rule reads them all.
    """

    number: int
    state: TrialState
    steps: list[int]
    losses: list[float]
    sign: float  # +1 to minimize, -1 to maximize: value = sign * loss

    @property
    def first_step(self) -> int:
        return self.steps[0]

    @property
    def last_step(self) -> int:
        return self.steps[-1]

    @property
    def best_loss(self) -> float:
        return min(self.losses)

    def best_at(self, step: int) -> float | None:
        """Best loss reported at a step <= ``step`` (step-wise interpolation); None before any."""
        i = bisect_right(self.steps, step)
        return min(self.losses[:i]) if i else None

    def value(self, loss: float) -> float:
        """A loss back in the objective's own sign, for messages."""
        return self.sign * loss


def progress_of(trial: Trial, *, minimize: bool) -> Progress | None:
    """The trial's progress, or None when it reported no finite point.

    Non-finite points (a diverged trainer's nan or inf) are skipped: they are never a best.
    Points are ordered by step (stably), so a curve that restarted after a pod retry still reads
    as "the best at or before step s".
    """
    curve = trial.curve
    steps = list(map(itemgetter(0), curve))
    values = list(map(itemgetter(1), curve))
    if not all(map(math.isfinite, values)) or steps != sorted(steps):
        points = sorted(((s, v) for s, v in curve if math.isfinite(v)), key=itemgetter(0))
        steps = list(map(itemgetter(0), points))
        values = list(map(itemgetter(1), points))
    if not steps:
        return None
    losses = values if minimize else list(map(neg, values))
    return Progress(trial.number, trial.state, steps, losses, 1.0 if minimize else -1.0)


def progresses(trials: Iterable[Trial], *, minimize: bool) -> list[Progress]:
    """Progress of every trial a rule may compare against: all but Lost ones, with a curve.

    Lost trials are left out: their Job was deleted by hand, so what they reported is not part of
    the study any more.
    """
    out = []
    for t in trials:
        if t.state is TrialState.LOST:
            continue
        p = progress_of(t, minimize=minimize)
        if p is not None:
            out.append(p)
    return out


def fmt(x: float) -> str:
    """A value as a person reads it in a message."""
    return f"{x:.4g}"


def running(items: Sequence[Progress]) -> list[Progress]:
    """The Running ones: the only trials a rule may stop."""
    return [p for p in items if p.state is TrialState.RUNNING]
