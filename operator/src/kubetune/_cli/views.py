"""A study as the command shows it: its spec, status, trials and latest events. Pure.

``view_of`` builds one from the objects the cluster holds (the TuningStudy, its Jobs and pods,
its Events) through ``kubetune.kube.observe``, the reader the operator itself uses, so the
command shows each trial in the state the operator sees. The local runner builds its views the
same way from its own journal.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.core import plan as plans
from kubetune.core import spec as specs
from kubetune.core.trials import Trial, TrialState
from kubetune.kube import observe as observing

__all__ = [
    "Event",
    "Row",
    "StudyView",
    "best_so_far",
    "events_of",
    "format_duration",
    "format_params",
    "format_value",
    "list_columns",
    "phase_of",
    "ranked_rows",
    "timestamp",
    "view_of",
]

# The order of the states after the ranked (Succeeded) trials in a leaderboard.
_UNRANKED_ORDER = {
    TrialState.RUNNING: 0, TrialState.PRUNED: 1, TrialState.STOPPED: 2, TrialState.PENDING: 3,
    TrialState.FAILED: 4, TrialState.LOST: 5,
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
        return self.spec.objective.metric if self.spec else "objective"

    @property
    def minimize(self) -> bool:
        return specs.minimize(self.spec) if self.spec else True

    @property
    def max_trials(self) -> int | None:
        return self.spec.budget.max_trials if self.spec else None

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        for c in self.status.get("conditions") or []:
            if c.get("type") == kind:
                return c
        return None

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

    def counts(self) -> Counter:
        return Counter(t.state for t in self.trials)

    @property
    def done(self) -> int:
        """Trials that spent the budget: Succeeded, Failed and Pruned."""
        return sum(1 for t in self.trials if t.state.counts_toward_budget)

    def best(self) -> Trial | None:
        rows = ranked_rows(self.trials, minimize=self.minimize)
        return rows[0].trial if rows and rows[0].rank == 1 else None


@dataclass(frozen=True)
class Row:
    """A leaderboard row: ``rank`` is set for Succeeded trials with a value, else None."""

    rank: int | None
    trial: Trial


def _ranks(t: Trial) -> bool:
    return t.state is TrialState.SUCCEEDED and t.has_value


def ranked_rows(trials: Iterable[Trial], *, minimize: bool) -> list[Row]:
    """Every trial, sorted by objective: Succeeded trials ranked best first (ties to the older
    trial, as the status's leaderboard), then the others (Running, Pruned, Stopped with their
    last reported value; Pending, Failed and Lost), each group by value, then by number.
    A Pruned trial's value comes from a shorter run, so it is shown but not ranked."""
    sign = 1.0 if minimize else -1.0
    trials = list(trials)
    ranked = sorted((t for t in trials if _ranks(t)),
                    key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    rest = sorted(
        (t for t in trials if not _ranks(t)),
        key=lambda t: (_UNRANKED_ORDER.get(t.state, 9),
                       sign * float(t.value) if t.has_value else math.inf, t.number),
    )
    return [Row(i + 1, t) for i, t in enumerate(ranked)] + [Row(None, t) for t in rest]


def best_so_far(trials: Sequence[Trial], *, minimize: bool) -> list[tuple[int, float]]:
    """(trial number, best Succeeded value up to it) at each Succeeded trial, in number order."""
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


def view_of(study: Mapping[str, Any], jobs: Sequence[dict] = (), pods: Sequence[dict] = (),
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
