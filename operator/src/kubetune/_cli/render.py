"""Studies as terminal text: the list of studies, a study's leaderboard, and the live frame of
``kubetune watch``. Pure: every function takes values (and ``now``) and returns a string.

A study with several objectives shows its Pareto front where one objective shows its best
trial: the header says the front's size and hypervolume, ``leaderboard_table`` starts with the
front (one column per objective, then the params) and goes on with every trial by
non-dominated rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubetune._cli import views
from kubetune._cli.views import StudyView, format_duration, format_params, format_value
from kubetune.core import spec as specs
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "front_line",
    "front_table",
    "infeasible_line",
    "leaderboard_table",
    "objectives_line",
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
    """``kubetune get``: one line per TuningStudy object, from its status alone. FRONT (the
    size of a study's Pareto front) is shown when a study listed has several objectives."""
    front = any(views.several_objectives(obj) or (obj.get("status") or {}).get("frontSize")
                is not None for obj in studies)
    headers = ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", *(["FRONT"] if front else []),
               "AGE"]
    if namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for obj in studies:
        meta = obj.get("metadata") or {}
        created = views.timestamp(meta.get("creationTimestamp"))
        row = [str(meta.get("name", "")), *views.list_columns(obj),
               *([views.front_column(obj)] if front else []), _age(created, now)]
        if namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    if not rows:
        return "No studies found."
    offset = 1 if namespaces else 0
    numbers = [offset + 2, offset + 3, offset + 4, *([offset + 5] if front else [])]
    return table(headers, rows, right=numbers)


def _duration(t: Trial, now: float) -> float | None:
    if t.start_time is None:
        return None
    end = t.end_time if t.end_time is not None else (now if t.state.is_active else None)
    return None if end is None else end - t.start_time


def _state(t: Trial) -> str:
    """A trial's state, with its reason where it says more: why it ended, or Infeasible."""
    state = t.state.value
    if t.reason and (t.state not in (TrialState.SUCCEEDED, TrialState.RUNNING)
                     or views.infeasible(t)):
        state += f" ({t.reason})"
    return state


def _numeric(view: StudyView, names: Sequence[str], first: int) -> list[int]:
    """The indices of the parameter columns holding numbers, the first at ``first``."""
    return [first + i for i, n in enumerate(names)
            if view.spec is not None and view.spec.search_space[n].type != "categorical"]


def _objective_value(t: Trial, metric: str) -> str:
    """A trial's value of ``metric`` from its final report; ``-`` before one."""
    return format_value(t.values.get(metric))


def leaderboard_table(view: StudyView, now: float, *, limit: int | None = None,
                      width: int | None = None) -> str:
    """A study's trials sorted by objective: RANK, TRIAL, VALUE, STATE, one column per
    parameter, DURATION. Trials beyond ``limit`` are summarised in one line.

    With several objectives: first the Pareto front (``front_table``), then every trial by
    non-dominated rank (RANK 0 is the front), with one column per objective."""
    if view.several:
        front = front_table(view, limit=limit, width=width)
        trials = _trials_table(view, now, limit=limit, width=width)
        if front is None:
            return trials
        return f"{front}\n\nAll trials, by non-dominated rank (0: on the front):\n{trials}"
    return _trials_table(view, now, limit=limit, width=width)


def _trials_table(view: StudyView, now: float, *, limit: int | None,
                  width: int | None) -> str:
    rows = views.leaderboard_rows(view)
    if not rows:
        return "No trials yet."
    names = list(view.spec.search_space) if view.spec else []
    metrics = [o.metric for o in view.objectives] if view.several else [view.metric]
    headers = ["RANK", "TRIAL", *(m.upper() for m in metrics), "STATE", *names, "DURATION"]
    shown = rows if limit is None else rows[:limit]
    lines = []
    for r in shown:
        t = r.trial
        if view.several:
            values = [_objective_value(t, m) if t.values else
                      format_value(t.value) if m == view.metric else "-" for m in metrics]
        else:
            values = [format_value(t.value)]
        rank = "-" if r.rank is None else str(r.rank)
        params = [format_value(_short(t.params.get(n))) for n in names]
        lines.append([rank, str(t.number), *values, _state(t), *params,
                      format_duration(_duration(t, now))])
    first = 3 + len(metrics)
    right = [0, 1, *range(2, 2 + len(metrics)), *_numeric(view, names, first),
             len(headers) - 1]
    text = table(headers, lines, right=right, width=width)
    if len(shown) < len(rows):
        text += f"\n... and {len(rows) - len(shown)} more trials (--limit 0 shows all)"
    return text


def front_table(view: StudyView, *, limit: int | None = None,
                width: int | None = None) -> str | None:
    """The Pareto front of a study with several objectives: TRIAL, one column per objective,
    one per parameter, ordered by the first objective, best first; past ``limit`` thinned by
    crowding distance as the status's paretoFront is. None for one objective."""
    front = views.pareto_of(view)
    if front is None:
        return None
    first = front.objectives[0]
    if not front.front:
        return "Pareto front: no feasible trial has succeeded yet."
    shown = front.shown_front(limit)
    names = list(view.spec.search_space) if view.spec else []
    metrics = [o.metric for o in front.objectives]
    headers = ["TRIAL", *(m.upper() for m in metrics), *names]
    lines = [[str(r.trial.number), *(_objective_value(r.trial, m) for m in metrics),
              *(format_value(_short(r.trial.params.get(n))) for n in names)] for r in shown]
    right = [0, *range(1, 1 + len(metrics)), *_numeric(view, names, 1 + len(metrics))]
    title = (f"Pareto front: {len(front.front)} trials, by {first.metric} "
             f"({views.direction_word(first)})")
    if len(shown) < len(front.front):
        title += f"; {len(shown)} shown, thinned by crowding distance (--limit 0 shows all)"
    return title + ":\n" + table(headers, lines, right=right, width=width)


def _short(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v


def objectives_line(spec: specs.StudySpec) -> str:
    """``Objective: minimize loss, goal 0.1`` or ``Objectives: maximize acc, minimize ms``,
    then the constraints, the algorithm and the early stopping."""
    if spec.objectives is not None:
        text = "Objectives: " + ", ".join(
            f"{o.direction} {o.metric}" + (f" (goal {o.goal:g})" if o.goal is not None else "")
            for o in spec.objectives)
    else:
        o = specs.watched(spec)
        goal = f", goal {o.goal:g}" if o.goal is not None else ""
        text = f"Objective: {o.direction} {o.metric}{goal}"
    if spec.constraints:
        text += "; constraints: " + ", ".join(
            " and ".join(([f"{c.metric} >= {c.min:g}"] if c.min is not None else [])
                         + ([f"{c.metric} <= {c.max:g}"] if c.max is not None else []))
            for c in spec.constraints)
    text += f"; algorithm {spec.algorithm.name}"
    if spec.early_stopping:
        text += f", early stopping {spec.early_stopping.name}"
        if spec.objectives is not None:
            text += f" on {specs.watched(spec).metric}"
    return text


def front_line(view: StudyView) -> str | None:
    """``Pareto front: 7 trials, hypervolume 0.81 (reference acc 0.1, ms 50)``; None for one
    objective."""
    front = views.pareto_of(view)
    if front is None:
        return None
    if front.hypervolume is None or not front.reference:
        return "Pareto front: none yet (no feasible trial has succeeded)"
    reference = ", ".join(f"{m} {format_value(v)}" for m, v in front.reference.items())
    return (f"Pareto front: {len(front.front)} trials, hypervolume "
            f"{format_value(front.hypervolume)} (reference point {reference})")


def study_header(view: StudyView) -> str:
    """The lines above a leaderboard: status, objectives and constraints, the algorithm, and
    the best trial, or with several objectives the Pareto front's size and hypervolume; the
    number of infeasible trials when there are any."""
    where = f" (namespace {view.namespace})" if view.namespace else ""
    lines = [f"Study {view.name}{where}: {view.state}"]
    if view.problem:
        lines.append("Invalid spec: " + view.problem.replace("\n", "\n  "))
        return "\n".join(lines)
    assert view.spec is not None
    lines.append(objectives_line(view.spec))
    if view.message:
        lines.append(f"Status: {view.message}")
    front = front_line(view)
    if front is not None:
        lines.append(front)
    best = view.best()
    if best is not None:
        lines.append(f"Best: trial {best.number}, {view.metric} {format_value(best.value)} "
                     f"({format_params(best.params)})")
    infeasible = infeasible_line(view)
    if infeasible is not None:
        lines.append(infeasible)
    return "\n".join(lines)


def infeasible_line(view: StudyView) -> str | None:
    """``Infeasible: 3 succeeded trials broke a constraint ...``; None when none did."""
    n = view.infeasible
    if not n:
        return None
    return (f"Infeasible: {n} succeeded trial{'s' if n != 1 else ''} broke a constraint "
            "(never best, never on a front)")


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
    front = front_line(view)
    best = view.best()
    if front is not None:
        lines.append(front[0].lower() + front[1:]
                     + (f"; {view.infeasible} infeasible" if view.infeasible else ""))
    elif best is not None:
        lines.append(f"best {view.metric} {format_value(best.value)} (trial {best.number}: "
                     f"{format_params(best.params)})")
    else:
        lines.append(f"best {view.metric}: none yet")
    if view.message:
        lines.append(view.message)
    if view.pending_reasons and n[TrialState.PENDING]:
        lines.append("waiting: " + " | ".join(view.pending_reasons[:2]))
    if view.trials:
        # The front once there is one (it is what a study with several objectives has found),
        # else the top of the leaderboard.
        pareto = views.pareto_of(view)
        shown = (front_table(view, limit=top, width=width) if pareto is not None
                 and pareto.front else _trials_table(view, now, limit=top, width=width))
        lines += ["", *(shown or "").splitlines()]
    if view.events:
        lines += ["", "Latest events:"]
        for e in view.events[-events:]:
            ago = "" if e.time is None else _ago(now - e.time)
            lines.append(_clip(f"  {ago:>9}  {e.reason:<15} {e.message}", width))
    return "\n".join(_clip(line, width) for line in lines)
