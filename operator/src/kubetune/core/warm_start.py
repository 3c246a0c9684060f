"""Warm starts (``spec.warmStart``): the finished trials of earlier studies as prior history for
the sampler. Pure: the kube layer reads the earlier studies' trial Jobs, this decides which
trials carry over.

A trial of an earlier study carries over when the study optimised the same metric in the same
direction, the trial Succeeded with a finite value, and its params give every parameter of
this study's search space a value that parameter can take (within the bounds, on the step's
lattice, one of the categorical values); parameters of the earlier study that this one lacks
are dropped. At most ``MAX_PRIOR`` trials carry over, the best first. They reach the sampler
numbered -1, -2, ... (before this study's own), and never count toward this study's budget,
status or leaderboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubetune.core import spec as specs
from kubetune.core.trials import Trial, TrialState

__all__ = ["MAX_MESSAGE", "MAX_PRIOR", "Prior", "PriorStudy", "prior_history"]

MAX_PRIOR = 200
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class PriorStudy:
    """What the cluster holds of one study named in ``warmStart.studies``: its objective as
    its trials were told it (None when it has no trials, or is not there) and its trials."""

    name: str
    metric: str | None = None
    direction: str | None = None
    trials: tuple[Trial, ...] = ()


@dataclass(frozen=True)
class Prior:
    """The history that carries over, and one line per earlier study on what it gave."""

    trials: tuple[Trial, ...] = ()
    message: str = ""


def _carried(spec: specs.StudySpec, trial: Trial) -> Trial | None:
    if trial.state is not TrialState.SUCCEEDED or not trial.has_value:
        return None
    space = specs.space_of(spec)
    params = {name: trial.params[name] for name in space.names if name in trial.params}
    if not space.contains(params):
        return None
    return Trial(number=0, params=params, state=TrialState.SUCCEEDED, value=trial.value)


def prior_history(spec: specs.StudySpec, studies: Sequence[PriorStudy]) -> Prior:
    """The earlier studies' trials that ``spec``'s sampler learns from, and what each gave."""
    direction = specs.watched(spec).direction
    metric = specs.watched(spec).metric
    kept: list[Trial] = []
    lines: list[str] = []
    for study in studies:
        if not study.trials:
            lines.append(f"{study.name}: no trials found in this namespace")
            continue
        if (study.metric, study.direction) != (metric, direction):
            lines.append(f"{study.name}: not used, it optimises {study.metric} "
                         f"({study.direction}), this study {metric} ({direction})")
            continue
        carried = [c for t in study.trials if (c := _carried(spec, t)) is not None]
        succeeded = sum(t.state is TrialState.SUCCEEDED for t in study.trials)
        line = f"{study.name}: {len(carried)} of {succeeded} succeeded trials"
        if len(carried) < succeeded:
            line += " (the others lie outside this search space)"
        lines.append(line)
        kept += carried
    sign = 1.0 if direction == "minimize" else -1.0
    best = sorted(kept, key=lambda t: sign * (t.value or 0.0))[:MAX_PRIOR]
    if len(kept) > MAX_PRIOR:
        lines.append(f"the best {MAX_PRIOR} of {len(kept)} carried over")
    trials = tuple(Trial(number=-(i + 1), params=t.params, state=t.state, value=t.value)
                   for i, t in enumerate(best))
    message = "; ".join(lines)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3] + "..."
    return Prior(trials, message)
