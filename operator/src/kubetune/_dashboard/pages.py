"""What the dashboard's pages show, as JSON-able values. Pure: each function takes the
objects the watches hold (or a ``StudyView``) and ``now``, and returns plain data.

Every payload is bounded: the list has one small row per study, a study page carries its
charts (thinned in ``charts``), its latest events and conditions, and the trial table comes a
page of ``MAX_ROWS`` rows at a time, sorted on the server, so a study of 10,000 trials costs
the browser what one of 250 does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from kubetune._cli import pareto_plot, views
from kubetune._cli.views import StudyView, format_params, format_value
from kubetune._dashboard import charts
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "MAX_EVENTS",
    "MAX_ROWS",
    "SORT_KEYS",
    "study_page",
    "study_summary",
    "trial_rows",
]

MAX_ROWS = 250
MAX_EVENTS = 50
SORT_KEYS = ("rank", "number", "value", "state", "duration", "start")


def study_summary(obj: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One row of the studies list, from the TuningStudy object's status alone."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    spec = obj.get("spec") or {}
    counts = status.get("trials") or {}
    done = sum(int(counts.get(k) or 0) for k in ("succeeded", "failed", "pruned"))
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    best = status.get("bestTrial") or {}
    created = views.timestamp(meta.get("creationTimestamp"))
    # Several objectives: the first names the study; the front's size stands for the best.
    objective = spec.get("objective") or (spec.get("objectives") or [{}])[0]
    return {
        "namespace": str(meta.get("namespace") or ""), "name": str(meta.get("name") or ""),
        "status": str((ready or {}).get("reason") or "Pending"),
        "message": str((ready or {}).get("message") or ""),
        "phase": str(status.get("phase") or ""),
        "done": done, "maxTrials": (spec.get("budget") or {}).get("maxTrials"),
        "running": int(counts.get("running") or 0),
        "metric": str(objective.get("metric") or ""),
        "direction": str(objective.get("direction") or ""),
        "best": _finite(best.get("value")), "bestText": format_value(best.get("value")),
        "bestTrial": best.get("number"),
        "front": status.get("frontSize"),
        "algorithm": str((spec.get("algorithm") or {}).get("name") or ""),
        "created": created, "age": views.format_duration(None if created is None
                                                         else now - created),
    }


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) \
        and math.isfinite(v) else None


def _duration(t: Trial, now: float) -> float | None:
    if t.start_time is None:
        return None
    end = t.end_time if t.end_time is not None else (now if t.state.is_active else None)
    return None if end is None else max(0.0, end - t.start_time)


def study_page(view: StudyView, summary: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The study page without its table and importance (fetched apart, so the charts draw
    first): header, counts, the charts (the Pareto front first for a study with several
    objectives; the others follow the watched objective), conditions and the latest events."""
    counts = view.counts()
    spec = view.spec
    best = view.best()
    front = views.pareto_of(view)
    figures: dict[str, dict[str, Any] | None] = {}
    if front is not None:
        figures["pareto"] = pareto_plot.figure(view, front)
    figures |= {"history": charts.history(view), "curves": charts.curves(view),
                "parallel": charts.parallel(view)}
    return {
        "summary": dict(summary),
        "problem": view.problem,
        "params": list(spec.search_space) if spec else [],
        "objective": {"metric": view.metric,
                      "direction": "minimize" if view.minimize else "maximize"},
        "algorithm": spec.algorithm.name if spec else None,
        "earlyStopping": spec.early_stopping.name if spec and spec.early_stopping else None,
        "counts": {s.value: counts.get(s, 0) for s in TrialState},
        "trials": len(view.trials),
        "best": None if best is None else {
            "number": best.number, "value": _finite(best.value),
            "valueText": format_value(best.value), "params": format_params(best.params)},
        "figures": figures,
        "empty": {k: pareto_plot.EMPTY if k == "pareto" else charts.empty_message(view, k)
                  for k, v in figures.items() if v is None},
        "pareto": None if front is None else {
            "objectives": [o.metric for o in front.objectives], "frontSize": len(front.front),
            "hypervolume": _finite(front.hypervolume), "note": pareto_plot.note(view, front)},
        "shown": {"history": _drawn(figures["history"], "markers"),
                  "curves": _drawn(figures["curves"], "lines"),
                  "withCurves": sum(1 for t in view.trials if t.curve),
                  "valued": sum(1 for t in view.trials if t.has_value)},
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message",
                                   "lastTransitionTime")}
            for c in view.status.get("conditions") or []],
        "events": [
            {"time": e.time, "type": e.kind, "reason": e.reason, "message": e.message}
            for e in view.events[-MAX_EVENTS:]][::-1],
        "now": now,
    }


def _drawn(figure: Mapping[str, Any] | None, mode: str) -> int:
    """The trials a figure draws: the distinct trial numbers of its traces in ``mode``."""
    if figure is None:
        return 0
    return len({n for t in figure["data"] if t.get("mode") == mode
                for n in t.get("customdata") or () if n is not None})


def _sort_key(key: str, ranks: Mapping[int, int | None], now: float, minimize: bool
              ) -> Callable[[Trial], tuple[Any, ...]]:
    """The sort key of a column; its first element is True for a trial without the value."""
    sign = 1.0 if minimize else -1.0

    def value(t: Trial) -> tuple[Any, ...]:
        if key == "number":
            return (False, t.number)
        if key == "value":
            return (not t.has_value, sign * float(t.value) if t.has_value else 0.0,  # type: ignore[arg-type]
                    t.number)
        if key == "state":
            return (False, t.state.value, t.number)
        if key == "duration":
            d = _duration(t, now)
            return (d is None, d or 0.0, t.number)
        if key == "start":
            return (t.start_time is None, t.start_time or 0.0, t.number)
        rank = ranks.get(t.number)
        return (rank is None, rank or 0)

    return value


def trial_rows(view: StudyView, pods: Mapping[int, str], now: float, *, sort: str = "rank",
               descending: bool = False, limit: int = MAX_ROWS) -> dict[str, Any]:
    """One page of the trial table, sorted by ``sort`` (one of ``SORT_KEYS``; unknown keys
    sort by rank). ``pods`` maps a trial number to its current pod, for the log link. Trials
    without the sorted quantity (no value, not started) stay last either way."""
    rows = views.ranked_rows(view.trials, minimize=view.minimize)
    ranks = {r.trial.number: r.rank for r in rows}
    if sort not in SORT_KEYS:
        sort = "rank"
    key = _sort_key(sort, ranks, now, view.minimize)
    trials = [r.trial for r in rows]
    trials.sort(key=key)
    if descending:  # the trials without the value stay last
        trials = [t for t in trials if not key(t)[0]][::-1] + [t for t in trials if key(t)[0]]
    limit = max(1, min(limit, MAX_ROWS))
    out = []
    for t in trials[:limit]:
        out.append({
            "number": t.number, "rank": ranks.get(t.number), "state": t.state.value,
            "reason": t.reason or "", "message": t.message or "",
            "value": _finite(t.value), "valueText": format_value(t.value),
            "params": {k: format_value(_short(v)) for k, v in t.params.items()},
            "duration": _duration(t, now),
            "durationText": views.format_duration(_duration(t, now)),
            "start": t.start_time, "job": t.job, "pod": pods.get(t.number),
        })
    return {"sort": sort, "descending": descending, "total": len(trials), "rows": out}


def _short(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v
