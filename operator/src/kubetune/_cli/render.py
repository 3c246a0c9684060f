"""Studies as terminal text: the list of studies, a study's leaderboard, and the live frame of
``kubetune watch``. Pure: every function takes values (and ``now``) and returns a string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubetune._cli import views
from kubetune._cli.views import StudyView, format_duration, format_params, format_value
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "leaderboard_table",
    "progress_bar",
    "studies_table",
    "study_header",
    "table",
    "watch_frame",
]

_ELLIPSIS = "…"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + _ELLIPSIS


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
          right: Sequence[int] = (), width: int | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart, as kubectl prints them.

    Columns whose index is in ``right`` are right-aligned (numbers). With ``width`` the last
    column is clipped so that no line is longer.
    """
    cols = len(headers)
    cells = [list(headers), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(cols)]
    lines = []
    for r in cells:
        parts = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i])
                 for i in range(cols)]
        line = "  ".join(parts).rstrip()
        lines.append(_clip(line, width) if width else line)
    return "\n".join(lines)


def _age(created: float | None, now: float) -> str:
    return "-" if created is None else format_duration(now - created)


def studies_table(studies: Sequence[Mapping[str, Any]], now: float, *,
                  namespaces: bool = False) -> str:
    """``kubetune get``: one line per TuningStudy object, from its status alone."""
    headers = ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "AGE"]
    if namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in studies:
        meta = obj.get("metadata") or {}
        created = views.timestamp(meta.get("creationTimestamp"))
        row = [str(meta.get("name", "")), *views.list_columns(obj), _age(created, now)]
        if namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    if not rows:
        return "No studies found."
    offset = 1 if namespaces else 0
    return table(headers, rows, right=[offset + 2, offset + 3, offset + 4])


def _duration(t: Trial, now: float) -> float | None:
    if t.start_time is None:
        return None
    end = t.end_time if t.end_time is not None else (now if t.state.is_active else None)
    return None if end is None else end - t.start_time


def leaderboard_table(view: StudyView, now: float, *, limit: int | None = None,
                      width: int | None = None) -> str:
    """A study's trials sorted by objective: RANK, TRIAL, VALUE, STATE, one column per
    parameter, DURATION. Trials beyond ``limit`` are summarised in one line."""
    rows = views.ranked_rows(view.trials, minimize=view.minimize)
    if not rows:
        return "No trials yet."
    names = list(view.spec.search_space) if view.spec else []
    headers = ["RANK", "TRIAL", view.metric.upper(), "STATE", *names, "DURATION"]
    shown = rows if limit is None else rows[:limit]
    lines = []
    for r in shown:
        t = r.trial
        state = t.state.value
        if t.reason and t.state not in (TrialState.SUCCEEDED, TrialState.RUNNING):
            state += f" ({t.reason})"
        params = [format_value(_short(t.params.get(n))) for n in names]
        lines.append([str(r.rank or "-"), str(t.number), format_value(t.value), state, *params,
                      format_duration(_duration(t, now))])
    numeric = [4 + i for i, n in enumerate(names)
               if view.spec is not None and view.spec.search_space[n].type != "categorical"]
    text = table(headers, lines, right=[0, 1, 2, *numeric, len(headers) - 1], width=width)
    if len(shown) < len(rows):
        text += f"\n... and {len(rows) - len(shown)} more trials (--limit 0 shows all)"
    return text


def _short(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v


def study_header(view: StudyView) -> str:
    """The lines above a leaderboard: status, objective, budget and the best trial."""
    where = f" (namespace {view.namespace})" if view.namespace else ""
    lines = [f"Study {view.name}{where}: {view.state}"]
    if view.problem:
        lines.append("Invalid spec: " + view.problem.replace("\n", "\n  "))
        return "\n".join(lines)
    assert view.spec is not None
    spec = view.spec
    goal = f", goal {spec.objective.goal:g}" if spec.objective.goal is not None else ""
    lines.append(f"Objective: {spec.objective.direction} {spec.objective.metric}{goal}; "
                 f"algorithm {spec.algorithm.name}"
                 + (f", early stopping {spec.early_stopping.name}"
                    if spec.early_stopping else ""))
    if view.message:
        lines.append(f"Status: {view.message}")
    best = view.best()
    if best is not None:
        lines.append(f"Best: trial {best.number}, {view.metric} {format_value(best.value)} "
                     f"({format_params(best.params)})")
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    """Whole seconds: Event times have no finer resolution."""
    s = max(0, int(seconds))
    return f"{s}s ago" if s < 60 else f"{format_duration(s)} ago"


def progress_bar(done: int, total: int | None, width: int = 40) -> str:
    """``[#########.........]  9/20 (45%)``; an unknown total shows the count alone."""
    if not total:
        return f"{done} trials done"
    frac = min(1.0, done / total)
    filled = round(frac * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({frac:.0%})"


def watch_frame(view: StudyView, now: float, *, width: int = 100, events: int = 5,
                top: int = 5) -> str:
    """One frame of ``kubetune watch``: counts, a progress bar against maxTrials, the best
    value so far, the top of the leaderboard and the latest events."""
    n = view.counts()
    lines = [study_header(view).splitlines()[0], ""]
    lines.append(progress_bar(view.done, view.max_trials, width=min(50, max(10, width - 30))))
    lines.append(
        f"done {view.done} (succeeded {n[TrialState.SUCCEEDED]}, failed {n[TrialState.FAILED]}, "
        f"pruned {n[TrialState.PRUNED]})   running {n[TrialState.RUNNING]}   "
        f"pending {n[TrialState.PENDING]}"
        + (f"   stopped {n[TrialState.STOPPED]}" if n[TrialState.STOPPED] else "")
        + (f"   lost {n[TrialState.LOST]}" if n[TrialState.LOST] else "")
    )
    best = view.best()
    if best is not None:
        lines.append(f"best {view.metric} {format_value(best.value)} (trial {best.number}: "
                     f"{format_params(best.params)})")
    else:
        lines.append(f"best {view.metric}: none yet")
    if view.message:
        lines.append(view.message)
    if view.pending_reasons and n[TrialState.PENDING]:
        lines.append("waiting: " + " | ".join(view.pending_reasons[:2]))
    if view.trials:
        lines += ["", *leaderboard_table(view, now, limit=top, width=width).splitlines()]
    if view.events:
        lines += ["", "Latest events:"]
        for e in view.events[-events:]:
            ago = "" if e.time is None else _ago(now - e.time)
            lines.append(_clip(f"  {ago:>9}  {e.reason:<15} {e.message}", width))
    return "\n".join(_clip(line, width) for line in lines)
