"""A study as the command shows it: its spec, status, trials and latest events. Pure.

``view_of`` builds one from the objects the cluster holds (the TuningStudy, its Jobs and pods,
its Events) through ``kubetune.kube.observe``, the reader the operator itself uses, so the
command shows each trial in the state the operator sees. The local runner builds its views the
same way from its own journal.

A study with several objectives has no single best trial: ``pareto_of`` ranks its trials by
non-dominated sorting and computes its front and hypervolume with the operator's own function
(``kubetune.core._front``), from the trials themselves, so a local run's journal, which has no
status, shows the same numbers the operator would write. Infeasible trials (Succeeded, but
breaking a constraint) are never ranked, best or on a front, with one objective or several.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubetune.core import _front as fronts
from kubetune.core import objectives as objs
from kubetune.core import pareto
from kubetune.core import plan as plans
from kubetune.core import spec as specs
from kubetune.core.objectives import Objective
from kubetune.core.trials import Trial, TrialState
from kubetune.kube import observe as observing

__all__ = [
    "Event",
    "Pareto",
    "ParetoRow",
    "Row",
    "StudyView",
    "best_so_far",
    "direction_word",
    "events_of",
    "format_duration",
    "format_params",
    "format_value",
    "front_column",
    "infeasible",
    "leaderboard_rows",
    "list_columns",
    "pareto_of",
    "phase_of",
    "ranked_rows",
    "several_objectives",
    "timestamp",
    "view_of",
]

# The order of the states after the ranked (Succeeded) trials in a leaderboard: infeasible
# Succeeded trials first (they ran to the end), then the others.
_UNRANKED_ORDER = {
    TrialState.SUCCEEDED: -1, TrialState.RUNNING: 0, TrialState.PRUNED: 1,
    TrialState.STOPPED: 2, TrialState.PENDING: 3, TrialState.FAILED: 4, TrialState.LOST: 5,
}


@dataclass(frozen=True)
class Event:
    """One Kubernetes Event of a study (or a line of the local runner's log)."""

    time: float | None
    reason: str
    message: str
    kind: str = "Normal"


@dataclass(frozen=True)
class StudyView:
    """What the command knows of one study. ``spec`` is None when the spec does not parse;
    ``problem`` then says why."""

    name: str
    namespace: str | None
    spec: specs.StudySpec | None
    status: Mapping[str, Any]
    trials: tuple[Trial, ...]
    events: tuple[Event, ...] = ()
    created: float | None = None
    problem: str | None = None
    pending_reasons: tuple[str, ...] = field(default=())

    @property
    def metric(self) -> str:
        """The metric of ``Trial.value``: the one objective, or with several the one early
        stopping watches (the first without early stopping)."""
        return specs.watched(self.spec).metric if self.spec else "objective"

    @property
    def minimize(self) -> bool:
        """Whether lower values of ``metric`` are better."""
        return specs.minimize(self.spec) if self.spec else True

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """Every objective, in the spec's order (one for a single-objective study)."""
        return specs.objectives_of(self.spec) if self.spec else ()

    @property
    def several(self) -> bool:
        """Whether the study has several objectives (``spec.objectives``): a Pareto front
        rather than a best trial."""
        return self.spec is not None and self.spec.objectives is not None

    @property
    def max_trials(self) -> int | None:
        return self.spec.budget.max_trials if self.spec else None

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        """The status condition of type ``kind``; None when the status has none."""
        conditions: list[Mapping[str, Any]] = self.status.get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), None)

    def is_true(self, kind: str) -> bool:
        c = self.condition(kind)
        return c is not None and c.get("status") == "True"

    @property
    def outcome(self) -> str | None:
        """``Succeeded`` or ``Failed`` once the study has ended, else None."""
        for kind in ("Succeeded", "Failed"):
            if self.is_true(kind):
                return kind
        return None

    @property
    def state(self) -> str:
        """One word for a study's header: the Ready condition's reason (why it is in its
        phase, e.g. MaxTrialsReached); Pending before any status."""
        ready = self.condition("Ready")
        if ready is not None and ready.get("reason"):
            return str(ready["reason"])
        return "Pending"

    @property
    def message(self) -> str:
        ready = self.condition("Ready")
        return str(ready.get("message") or "") if ready else ""

    def counts(self) -> Counter[TrialState]:
        """How many trials are in each state."""
        return Counter(t.state for t in self.trials)

    @property
    def done(self) -> int:
        """Trials that spent the budget: Succeeded, Failed and Pruned."""
        return sum(1 for t in self.trials if t.state.counts_toward_budget)

    def best(self) -> Trial | None:
        """The best feasible Succeeded trial; None with several objectives, which have a
        front instead (``pareto_of``)."""
        if self.several:
            return None
        rows = ranked_rows(self.trials, minimize=self.minimize)
        return rows[0].trial if rows and rows[0].rank == 1 else None

    @property
    def infeasible(self) -> int:
        """How many Succeeded trials broke a constraint."""
        return sum(1 for t in self.trials if t.state is TrialState.SUCCEEDED and infeasible(t))


@dataclass(frozen=True)
class Row:
    """A leaderboard row: ``rank`` is set for feasible Succeeded trials with a value, else None.
    With one objective it is the place, from 1; with several the non-dominated rank, from 0
    (the front), as the status's leaderboard has it."""

    rank: int | None
    trial: Trial


def infeasible(t: Trial) -> bool:
    """Whether ``t`` broke a constraint: the operator's reason Infeasible, or a violation."""
    return t.reason == objs.INFEASIBLE or not t.feasible


def _ranks(t: Trial) -> bool:
    return t.state is TrialState.SUCCEEDED and t.has_value and not infeasible(t)


def ranked_rows(trials: Iterable[Trial], *, minimize: bool) -> list[Row]:
    """Every trial, sorted by objective: feasible Succeeded trials ranked best first (ties to
    the older trial, as the status's leaderboard), then the others (infeasible Succeeded ones;
    Running, Pruned, Stopped with their last reported value; Pending, Failed and Lost), each
    group by value, then by number. A Pruned trial's value comes from a shorter run, and an
    infeasible one breaks a limit, so they are shown but not ranked."""
    sign = 1.0 if minimize else -1.0
    trials = list(trials)
    ranked = sorted((t for t in trials if _ranks(t)),
                    key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    return [Row(i + 1, t) for i, t in enumerate(ranked)] + _unranked(trials, minimize)


def _unranked(trials: Iterable[Trial], minimize: bool) -> list[Row]:
    """The trials that ``ranked_rows`` leaves unranked, in its order."""
    sign = 1.0 if minimize else -1.0
    rest = sorted(
        (t for t in trials if not _ranks(t)),
        key=lambda t: (_UNRANKED_ORDER.get(t.state, 9),
                       sign * t.value if t.value is not None and t.has_value else math.inf,
                       t.number),
    )
    return [Row(None, t) for t in rest]


@dataclass(frozen=True)
class ParetoRow:
    """A feasible Succeeded trial with every objective's value, and where it stands: its
    non-dominated rank (0: on the front) and its crowding distance within that rank (larger:
    lonelier; inf at the ends)."""

    rank: int
    crowding: float
    trial: Trial


@dataclass(frozen=True)
class Pareto:
    """A study with several objectives, as ``get``, ``watch`` and ``plot`` show it.

    ``rows``: every feasible Succeeded trial that has each objective's value, ordered as the
    status's leaderboard (rank, then the least crowded, then the older trial). ``infeasible``:
    the Succeeded trials that broke a constraint, by number. ``hypervolume`` and
    ``reference``: what the operator writes to the status for these trials (None before any
    trial counts).
    """

    objectives: tuple[Objective, ...]
    rows: tuple[ParetoRow, ...]
    infeasible: tuple[Trial, ...]
    hypervolume: float | None
    reference: Mapping[str, float] | None

    @property
    def front(self) -> tuple[ParetoRow, ...]:
        """The non-dominated rows (rank 0), in ``rows``' order."""
        return tuple(r for r in self.rows if r.rank == 0)

    def value(self, t: Trial, j: int) -> float:
        """``t``'s value of objective ``j``."""
        return float(t.values[self.objectives[j].metric])

    def shown_front(self, limit: int | None = None) -> list[ParetoRow]:
        """The front as the status lists it: at most ``limit`` rows, thinned by crowding
        distance (the extremes kept), ordered by the first objective, best first, then by
        number."""
        # In trial order, as the operator thins it: thinning breaks ties by position.
        front = sorted(self.front, key=lambda r: r.trial.number)
        if limit is not None and len(front) > limit:
            y = self.matrix([r.trial for r in front])
            front = [front[i] for i in pareto.thin(y, limit)]
        sign = 1.0 if self.objectives[0].minimize else -1.0
        return sorted(front, key=lambda r: (sign * self.value(r.trial, 0), r.trial.number))

    def matrix(self, trials: Sequence[Trial]) -> np.ndarray:
        """The trials' objective vectors, lower better on every column."""
        y, _ = objs.objective_matrix(trials, self.objectives)
        return y


def pareto_of(view: StudyView) -> Pareto | None:
    """The Pareto view of a study with several objectives; None for one objective."""
    if not view.several:
        return None
    assert view.spec is not None and view.spec.objectives is not None
    objectives = view.objectives
    history = objs.judged(view.trials, specs.constraints_of(view.spec))
    succeeded = [t for t in history if t.state is TrialState.SUCCEEDED]
    bad = tuple(t for t in succeeded if infeasible(t))
    good = [t for t in succeeded if t.has_value and not infeasible(t)]
    y, kept = objs.objective_matrix(good, objectives)
    trials = [good[i] for i in kept]
    rows: list[ParetoRow] = []
    if trials:
        ranks = pareto.nondominated_ranks(y)
        for rank in range(int(ranks.max()) + 1):
            layer = np.flatnonzero(ranks == rank)
            # As the status's leaderboard: crowding only tells apart more than two rows.
            crowd = (pareto.crowding_distance(y[layer]) if len(layer) > 2
                     else np.full(len(layer), math.inf))
            rows += [ParetoRow(rank, float(c), trials[i]) for i, c in zip(layer, crowd,
                                                                        strict=True)]
        rows.sort(key=lambda r: (r.rank, -r.crowding, r.trial.number))
    status = fronts.front_status(history, objectives,
                                 [o.reference for o in view.spec.objectives])
    return Pareto(objectives, tuple(rows), bad, status["hypervolume"],
                  status["referencePoint"])


def leaderboard_rows(view: StudyView) -> list[Row]:
    """Every trial of the study in leaderboard order: ``ranked_rows`` with one objective; with
    several, the ranked trials by non-dominated rank, crowding and number (``Row.rank`` the
    non-dominated rank), then the others as ``ranked_rows`` orders them."""
    front = pareto_of(view)
    if front is None:
        return ranked_rows(view.trials, minimize=view.minimize)
    ranked = {r.trial.number for r in front.rows}
    return ([Row(r.rank, r.trial) for r in front.rows]
            + _unranked((t for t in view.trials if t.number not in ranked), view.minimize))


def best_so_far(trials: Sequence[Trial], *, minimize: bool) -> list[tuple[int, float]]:
    """(trial number, best feasible Succeeded value up to it) at each feasible Succeeded trial,
    in number order."""
    out: list[tuple[int, float]] = []
    best: float | None = None
    for t in sorted(trials, key=lambda t: t.number):
        if not _ranks(t):
            continue
        v = float(t.value)  # type: ignore[arg-type]
        if best is None or (v < best if minimize else v > best):
            best = v
        out.append((t.number, best))
    return out


def timestamp(text: str | None) -> float | None:
    """An RFC 3339 time as a Unix timestamp; None when absent or unreadable."""
    try:
        return observing.parse_time(text)
    except ValueError:
        return None


def _resource_version(obj: Mapping[str, Any]) -> int:
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else 0


def events_of(objects: Iterable[Mapping[str, Any]]) -> tuple[Event, ...]:
    """Kubernetes Event objects as Events, oldest first."""
    out = []
    # Event times have whole seconds: within one, the resourceVersion keeps the API's order.
    for e in sorted(objects, key=_resource_version):
        when = (timestamp(e.get("lastTimestamp")) or timestamp(e.get("eventTime"))
                or timestamp((e.get("metadata") or {}).get("creationTimestamp")))
        out.append(Event(when, str(e.get("reason") or ""), str(e.get("message") or ""),
                         str(e.get("type") or "Normal")))
    out.sort(key=lambda e: (e.time or 0.0))
    return tuple(out)


def view_of(study: Mapping[str, Any], jobs: Sequence[dict[str, Any]] = (),
            pods: Sequence[dict[str, Any]] = (),
            events: Iterable[Mapping[str, Any]] = ()) -> StudyView:
    """The view of a TuningStudy object, its trial Jobs and pods, and its Events. Pure."""
    meta = study.get("metadata") or {}
    status = study.get("status") or {}
    try:
        spec: specs.StudySpec | None = specs.parse_spec(study.get("spec") or {})
        problem = None
    except specs.SpecError as e:
        spec, problem = None, str(e)
    trials: tuple[Trial, ...] = ()
    pending: tuple[str, ...] = ()
    if spec is not None:
        seen = observing.observe(
            list(jobs), list(pods), observing.Reader.of(spec),
            next_trial=int(status.get("nextTrial") or 0),
        )
        trials, pending = seen.trials, seen.pending_reasons
    return StudyView(
        name=str(meta.get("name") or ""), namespace=meta.get("namespace"), spec=spec,
        status=status, trials=trials, events=events_of(events),
        created=timestamp(meta.get("creationTimestamp")), problem=problem,
        pending_reasons=pending,
    )


def phase_of(status: Mapping[str, Any]) -> str:
    """``status.phase``; for a status without one (the local runner's, or an older
    operator's) the Ready condition's reason; Pending before any status."""
    if status.get("phase"):
        return str(status["phase"])
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None and ready.get("reason"):
        return str(ready["reason"])
    return "Pending"


def list_columns(study: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """STATUS, TRIALS, RUNNING and BEST of a TuningStudy, as ``kubectl get ts`` prints them:
    the fields the operator writes for its printer columns, and for a status written before
    them the same values computed from the counts (trials done over maxTrials)."""
    status = study.get("status") or {}
    counts = status.get("trials") or {}
    limit = ((study.get("spec") or {}).get("budget") or {}).get("maxTrials")
    trials = status.get("progress") or plans.progress(counts, limit)
    best = status.get("bestValue") or format_value((status.get("bestTrial") or {}).get("value"))
    return phase_of(status), str(trials), str(int(counts.get("running") or 0)), str(best)


def several_objectives(study: Mapping[str, Any]) -> bool:
    """Whether a TuningStudy object has several objectives (its spec's ``objectives``)."""
    return bool((study.get("spec") or {}).get("objectives"))


def front_column(study: Mapping[str, Any]) -> str:
    """FRONT of a TuningStudy, as ``kubectl get ts`` prints it: ``status.frontSize``, the
    number of trials on its Pareto front; ``-`` for one objective or before any status."""
    size = (study.get("status") or {}).get("frontSize")
    return "-" if size is None else str(size)


def direction_word(objective: Objective) -> str:
    """``lower is better`` or ``higher is better``."""
    return "lower is better" if objective.minimize else "higher is better"


# --- formatting shared by the text, HTML and PNG renderings ------------------------------------


def format_value(value: Any) -> str:
    """A number in at most ~10 characters: 6 significant digits, or the value as text."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    """``x1=0.5 lr=0.001``: floats in 4 significant digits."""
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={format_value(v)}"
        for k, v in params.items()
    )


def format_duration(seconds: float | None) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``2h10m``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 9.95 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
