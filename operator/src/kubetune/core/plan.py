"""The one brain of a reconcile: from a study's spec and its trials, what to do now. Pure.

``decide(spec, trials, now)`` looks only at the spec and the trials (level-based, as kopf's docs
recommend), so it gives the same plan however often and after whatever restart it is called. The
kube layer gathers the inputs, applies the plan (creates Jobs, records results on stopped trials,
ends their pods) and writes ``plan.status``; it decides nothing itself.

One reconcile, in order:

1. Timeouts: a Running trial whose ``start_time`` is more than ``trialTimeoutSeconds`` before
   ``now`` ends Failed with reason TimedOut. The pod's activeDeadlineSeconds usually ends it
   first; this is the safety net for a pod that outlived its deadline.
2. Ending now: when more than ``maxFailedTrials`` trials failed (Failed: TooManyFailedTrials) or
   a Succeeded trial meets ``objective.goal`` (Succeeded: GoalReached; the goal wins when both
   hold), every Pending and Running trial ends Stopped.
3. Otherwise early stopping prunes Running trials (Pruned, with the rule's message).
4. Ending when idle: with no trial active, a spent budget (Succeeded, Failed and Pruned trials
   reach ``maxTrials``) ends the study with MaxTrialsReached, and a used-up grid (algorithm grid)
   with GridExhausted; either ends Failed with NoSuccessfulTrials when no trial succeeded.
5. New trials: ``min(parallelism - active, maxTrials - counted - active)`` of them, none while
   suspended or finished, numbered from ``max(highest number + 1, next_trial)`` so that a number
   is never reused (not even a Lost trial's), with params from ``kubetune.core.suggest``.

Steps 2 to 5 see the trials as they will be once the stops of the steps before are applied, so
one plan makes as much progress as the inputs allow. Raising ``maxTrials`` (or
``maxFailedTrials``) on a finished study resumes it: nothing here remembers that it had ended.

Suspending a study stops new trials only; Pending and Running ones run to their end.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from kubetune.core import _front as front
from kubetune.core import _leaderboard as ranking
from kubetune.core import objectives, stopping
from kubetune.core import spec as specs
from kubetune.core import suggest as default_suggest
from kubetune.core.protocol import TrialResult
from kubetune.core.space import CategoricalParam, FloatParam
from kubetune.core.trials import QUEUE_LABEL, QUEUED, Trial, TrialState, as_trials
from kubetune.core.warm_start import Prior

__all__ = [
    "Creation",
    "Finish",
    "Phase",
    "Plan",
    "Stop",
    "best_text",
    "decide",
    "done",
    "progress",
    "stop_result",
]

Suggest = Callable[[specs.StudySpec, Sequence[Trial], int], list[dict[str, Any]]]


class Creation(NamedTuple):
    """A trial to start: its number and its params."""

    number: int
    params: dict[str, Any]


class Stop(NamedTuple):
    """A Pending or Running trial to end, the state it ends in, and why.

    The kube layer records (state, reason, message) as the trial's result before it ends the pod.
    """

    number: int
    state: TrialState
    reason: str
    message: str


class Finish(NamedTuple):
    """The study's terminal condition: type Succeeded or Failed, a CamelCase reason, a message."""

    condition: str
    reason: str
    message: str


class Phase(StrEnum):
    """What the study is doing, in one word: ``status.phase``, the STATUS printer column.

    Pending until a trial has started, Running, Suspended while ``spec.suspend`` holds,
    Succeeded or Failed once it ended, Invalid while its spec cannot proceed (set by the kube
    layer, which is where a spec is judged invalid).
    """

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"


@dataclass(frozen=True)
class Plan:
    """What one reconcile must do, and the status to write once it is done.

    ``status`` describes the study after the plan is applied: created trials count as pending,
    stopped ones in their end state. ``summary`` is one line a person reads (the Ready message).
    """

    create: tuple[Creation, ...]
    stop: tuple[Stop, ...]
    finished: Finish | None
    suspended: bool
    phase: Phase
    summary: str
    status: dict[str, Any]


def decide(
    spec: specs.StudySpec | Mapping[str, Any],
    trials: Sequence[Trial | Mapping[str, Any]],
    now: float,
    *,
    next_trial: int = 0,
    suggest: Suggest | None = None,
    prior: Prior | None = None,
) -> Plan:
    """The plan for one reconcile of a study. Pure, given a pure ``suggest``.

    ``spec``: a StudySpec or its dict; ``trials``: every trial of the study (numbers unique);
    ``now``: a Unix timestamp; ``next_trial``: ``status.nextTrial`` as last written;
    ``suggest``: the sampler entry point, ``kubetune.core.suggest`` unless given; ``prior``:
    what ``spec.warmStart`` carries over (``core.warm_start``), history the sampler sees first.

    Raises ``SpecError`` for an invalid spec (the kube layer's Stalled / InvalidSpec) and
    ValueError when two trials share a number.
    """
    spec = specs.parse_spec(spec)
    history = objectives.judged(_checked(trials), specs.constraints_of(spec))
    lower_is_better = specs.minimize(spec)
    budget = spec.budget
    metric = specs.watched(spec).metric

    stops = _timeouts(history, now, budget.trial_timeout_seconds)
    history = _apply(history, stops, now)

    finished = _ending_now(spec, history, lower_is_better)
    if finished is not None:
        ending = [
            Stop(t.number, TrialState.STOPPED, finished.reason, f"study ended: {finished.message}")
            for t in history
            if t.state.is_active
        ]
    else:
        ending = [
            Stop(p.number, TrialState.PRUNED, "EarlyStopped", p.message)
            for p in stopping.prunes(
                spec.early_stopping, history, minimize=lower_is_better, metric=metric
            )
        ]
    stops += ending
    history = _apply(history, ending, now)

    counts = _counts(history)
    active = counts[TrialState.PENDING] + counts[TrialState.RUNNING]
    counted = sum(counts[s] for s in TrialState if s.counts_toward_budget)
    grid_used_up = spec.algorithm.name == "grid" and _grid_used_up(spec, history)
    if finished is None and active == 0:
        finished = _ending_idle(spec, counts, counted, grid_used_up)

    start = max([next_trial, *(t.number + 1 for t in history)])
    create: list[Creation] = []
    if finished is None and not spec.suspend and not grid_used_up:
        n = min(budget.parallelism - active, budget.max_trials - counted - active)
        n = min(n, _admissible(spec, history))
        if n > 0:
            propose = default_suggest if suggest is None else suggest
            learned = [*(prior.trials if prior else ()), *history]
            proposals = propose(spec, learned, n)[:n]
            create = [Creation(start + i, enqueued(spec, start + i, p))
                      for i, p in enumerate(proposals)]

    phase = _phase(finished, spec.suspend, history)
    status = _status(spec, history, create, start, lower_is_better)
    status["phase"] = phase.value
    status["progress"] = progress(status["trials"], budget.max_trials)
    status["bestValue"] = None if status["bestTrial"] is None else \
        best_text(status["bestTrial"]["value"])
    if spec.warm_start is not None:
        carried = prior or Prior()
        status["warmStart"] = {"trials": len(carried.trials), "message": carried.message}
    summary = finished.message if finished else _summary(spec, status, phase)
    return Plan(
        create=tuple(create),
        stop=tuple(stops),
        finished=finished,
        suspended=bool(spec.suspend),
        phase=phase,
        summary=summary,
        status=status,
    )


def _admissible(spec: specs.StudySpec, history: Sequence[Trial]) -> int:
    """How many trials may be created with respect to a queue that admits them (Kueue): none
    while one waits to be admitted, so that the sampler does not propose far ahead of what
    runs, and one at a time into a queue the template names, so that the study never holds
    more than one trial waiting; no limit otherwise."""
    if any(t.state is TrialState.PENDING and t.reason == QUEUED for t in history):
        return 0
    labels = (specs.template_of(spec).get("metadata") or {}).get("labels") or {}
    return 1 if labels.get(QUEUE_LABEL) else spec.budget.parallelism


def _checked(trials: Sequence[Trial | Mapping[str, Any]]) -> tuple[Trial, ...]:
    history = as_trials(trials)
    seen: set[int] = set()
    for t in history:
        if t.number in seen:
            raise ValueError(
                f"trials: trial number {t.number} appears twice; each trial's number must be "
                "unique (it names the trial's Job), so pass each trial once"
            )
        seen.add(t.number)
    return history


def _timeouts(history: Sequence[Trial], now: float, limit: int | None) -> list[Stop]:
    if not limit:
        return []
    return [
        Stop(
            t.number,
            TrialState.FAILED,
            "TimedOut",
            f"ran {now - t.start_time:.0f} s, past trialTimeoutSeconds {limit:g}",
        )
        for t in history
        if t.state is TrialState.RUNNING and t.start_time is not None and now - t.start_time > limit
    ]


def _apply(history: tuple[Trial, ...], stops: Sequence[Stop], now: float) -> tuple[Trial, ...]:
    """The trials as they will be once ``stops`` are applied."""
    if not stops:
        return history
    by_number = {s.number: s for s in stops}
    return tuple(
        _ended(t, by_number[t.number], now) if t.number in by_number else t for t in history
    )


def _ended(trial: Trial, stop: Stop, now: float) -> Trial:
    value = trial.value
    if value is None and stop.state is not TrialState.FAILED:
        # Pruned and Stopped trials keep their last report as their value (see trials.Trial).
        finite = [v for _, v in trial.curve if math.isfinite(v)]
        value = finite[-1] if finite else None
    return dataclasses.replace(
        trial,
        state=stop.state,
        reason=stop.reason,
        message=stop.message,
        value=value,
        end_time=now,
    )


def _ending_now(
    spec: specs.StudySpec, history: Sequence[Trial], lower_is_better: bool
) -> Finish | None:
    """GoalReached or TooManyFailedTrials: the study ends even with trials running."""
    goal = None if spec.objective is None else spec.objective.goal
    if spec.objectives is not None:
        reached = _goals_reached(spec, history)
        if reached is not None:
            return reached
    elif goal is not None:
        met = [
            t
            for t in ranking.succeeded(history)
            if (t.value <= goal if lower_is_better else t.value >= goal)  # type: ignore[operator]
        ]
        if met:
            best = min(met, key=ranking.better(lower_is_better))
            op = "<=" if lower_is_better else ">="
            return Finish(
                "Succeeded",
                "GoalReached",
                f"trial {best.number} reached {specs.watched(spec).metric} {best.value:.6g}, "
                f"meeting the goal {op} {goal:g}",
            )
    limit = spec.budget.max_failed_trials
    failed = [t for t in history if t.state is TrialState.FAILED]
    if len(failed) > limit:
        last = max(failed, key=lambda t: t.number)
        why = ": ".join(x for x in (last.reason, last.message) if x) or "no reason recorded"
        return Finish(
            "Failed",
            "TooManyFailedTrials",
            f"{len(failed)} trials failed, more than maxFailedTrials {limit}; "
            f"the last, trial {last.number}: {why}",
        )
    return None


def _goals_reached(spec: specs.StudySpec, history: Sequence[Trial]) -> Finish | None:
    """GoalReached for several objectives: a feasible Succeeded trial meets every goal given
    (objectives without a goal do not hold it back); the oldest such trial is named."""
    goals = {o.metric: (o.goal, o.direction == "minimize")
             for o in spec.objectives or () if o.goal is not None}
    if not goals:
        return None
    met = [t for t in ranking.succeeded(history) if front.meets_goals(t, goals)]
    if not met:
        return None
    first = min(met, key=lambda t: t.number)
    got = ", ".join(f"{m} {first.values[m]:.6g}" for m in goals)
    return Finish("Succeeded", "GoalReached",
                  f"trial {first.number} reached {got}, meeting every objective's goal")


def _ending_idle(
    spec: specs.StudySpec, counts: Counter[TrialState], counted: int, grid_used_up: bool
) -> Finish | None:
    """MaxTrialsReached, GridExhausted or NoSuccessfulTrials, once no trial is active."""
    if counted >= spec.budget.max_trials:
        reason, what = "MaxTrialsReached", f"{counted} of {spec.budget.max_trials} trials done"
    elif grid_used_up:
        reason, what = "GridExhausted", "every grid point has been tried"
    else:
        return None
    if counts[TrialState.SUCCEEDED] == 0:
        return Finish(
            "Failed",
            "NoSuccessfulTrials",
            f"{what} and no trial succeeded ({counts[TrialState.FAILED]} failed, "
            f"{counts[TrialState.PRUNED]} pruned)",
        )
    return Finish("Succeeded", reason, what)


def _grid_used_up(spec: specs.StudySpec, history: Sequence[Trial]) -> bool:
    from kubetune.core.samplers.grid import grid_exhausted  # samplers load only when used

    return grid_exhausted(specs.space_of(spec), history)


def _counts(history: Sequence[Trial]) -> Counter[TrialState]:
    return Counter(t.state for t in history)


def _phase(finished: Finish | None, suspend: bool, history: Sequence[Trial]) -> Phase:
    if finished is not None:
        return Phase.SUCCEEDED if finished.condition == "Succeeded" else Phase.FAILED
    if suspend:
        return Phase.SUSPENDED
    if all(t.state is TrialState.PENDING for t in history):
        return Phase.PENDING
    return Phase.RUNNING


def done(counts: Mapping[str, Any]) -> int:
    """Trials that spent the budget (Succeeded, Failed, Pruned), from ``status.trials``."""
    return sum(int(counts.get(s.value.lower()) or 0) for s in TrialState
               if s.counts_toward_budget)


def progress(counts: Mapping[str, Any], max_trials: int | None) -> str:
    """``status.progress``, the TRIALS column: trials done over maxTrials, e.g. ``7/20``."""
    n = done(counts)
    return f"{n}/{max_trials}" if max_trials else str(n)


def best_text(value: float) -> str:
    """``status.bestValue``, the BEST column: the value to 6 significant digits."""
    return f"{value:.6g}"


def enqueued(spec: specs.StudySpec, number: int, proposal: Mapping[str, Any]) -> dict[str, Any]:
    """The params of trial ``number``: ``spec.enqueue[number]`` where the user gave one (its
    values as the space holds them), the algorithm's proposal for whatever it leaves out."""
    if number >= len(spec.enqueue):
        return dict(proposal)
    given = spec.enqueue[number]
    params = dict(proposal)
    space = specs.space_of(spec)
    for p in space.params:
        if p.name not in given:
            continue
        value = given[p.name]
        if isinstance(p, CategoricalParam):
            params[p.name] = p.values[p.index(value)]
        else:
            params[p.name] = float(value) if isinstance(p, FloatParam) else int(value)
    if space.conditional:
        # The entry's choices decide which parameters are active: drop the others, and give a
        # parameter it turns on without a value the middle of its range.
        params = space.prune(params)
        for i in space.order:  # parents first, so a filled-in parent turns its children on
            p = space.params[i]
            if p.name not in params and p.name in space.active_names(params):
                params[p.name] = p.from_unit(0.5)
    return params


def _status(
    spec: specs.StudySpec,
    history: Sequence[Trial],
    create: Sequence[Creation],
    start: int,
    lower_is_better: bool,
) -> dict[str, Any]:
    counts = _counts(history)
    counts[TrialState.PENDING] += len(create)
    status: dict[str, Any] = {
        "trials": {
            **{s.value.lower(): counts[s] for s in TrialState},
            "total": len(history) + len(create),
            "retries": sum(t.retries for t in history),
            "infeasible": sum(
                1 for t in history if t.state is TrialState.SUCCEEDED and not t.feasible),
        },
        "nextTrial": start + len(create),
    }
    if spec.objectives is not None:
        status["bestTrial"] = None
        status.update(front.front_status(history, specs.objectives_of(spec),
                                         [o.reference for o in spec.objectives]))
        return status
    best, board = ranking.ranked(history, lower_is_better=lower_is_better)
    status["bestTrial"] = best
    status["leaderboard"] = board
    return status


def _summary(spec: specs.StudySpec, status: Mapping[str, Any], phase: Phase) -> str:
    n = status["trials"]
    text = (
        f"{n['running']} running, {n['pending']} pending; "
        f"{done(n)} of {spec.budget.max_trials} trials done"
    )
    best = status["bestTrial"]
    if best is not None:
        text += f"; best {specs.watched(spec).metric} {best['value']:.6g} (trial {best['number']})"
    if status.get("frontSize"):
        text += (f"; Pareto front of {status['frontSize']} trials, hypervolume "
                 f"{status['hypervolume']:.6g}")
    if status["trials"].get("infeasible"):
        text += f"; {status['trials']['infeasible']} infeasible"
    if phase == Phase.SUSPENDED:
        text = "suspended, no new trials: " + text
    return text


def stop_result(trial: Trial, stop: Stop) -> TrialResult:
    """The result to record for a trial the plan stops: the stop's state and reason, with the
    value and curve the trial had reported. Pure."""
    return TrialResult(
        state=stop.state, reason=stop.reason, value=trial.value,
        step=trial.curve[-1][0] if trial.curve else None, curve=tuple(trial.curve),
        message=stop.message,
    )
