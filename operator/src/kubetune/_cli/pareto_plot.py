"""The Pareto front of a study with several objectives as a Plotly figure, for ``kubetune plot``
(the HTML report and the PNG). Pure: ``figure(view)`` returns a JSON-able
``{"data": [...], "layout": {...}}``, or None while no trial has succeeded.

- Two objectives: a scatter of every Succeeded trial, one objective per axis. The
  non-dominated trials are drawn strong and joined by the staircase that bounds what they
  dominate (the area between it and the reference point is the hypervolume); dominated trials
  are grey; infeasible ones (that broke a constraint) are crosses of their own colour, apart
  from both; the reference point is marked where it lies near the trials (the header and
  the JSON always give it).
- Three or four objectives: parallel coordinates, one axis per objective and a line per
  Succeeded trial, coloured by non-dominated rank (the front in the front's red, later ranks
  fading from blue to grey, infeasible trials in their own purple), the front drawn last.

Only Succeeded trials are drawn: a Pruned or Stopped trial has no final report, so not every
objective. Payloads stay bounded: the front is drawn whole, the dominated and the infeasible
trials at most ``MAX_POINTS`` each (the best-ranked, the least infeasible).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kubetune._cli import views
from kubetune._cli.views import Pareto, StudyView, format_params, format_value
from kubetune.core.trials import Trial

__all__ = [
    "DOMINATED_COLOR",
    "EMPTY",
    "FRONT_COLOR",
    "INFEASIBLE_COLOR",
    "MAX_POINTS",
    "figure",
    "note",
]

MAX_POINTS = 2000
FRONT_COLOR = "#d62728"
DOMINATED_COLOR = "#b0b0b0"
INFEASIBLE_COLOR = "#7b3294"
EMPTY = "No trial has succeeded with a value for every objective yet."
_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12}
# Parallel coordinates: ranks 1, 2, ... fade from blue to light grey behind the front.
_NEAR, _FAR = "#6baed6", "#e0e0e0"


def _num(v: float) -> float:
    """A value to 6 significant digits, as the tables show it: the JSON stays small."""
    return float(f"{v:.6g}")


def _label(view: StudyView, j: int) -> str:
    o = view.objectives[j]
    return f"{o.metric} ({views.direction_word(o)})"


def _dominated(front: Pareto) -> list[views.ParetoRow]:
    return [r for r in front.rows if r.rank > 0][:MAX_POINTS]


def _infeasible(front: Pareto) -> list[Trial]:
    """The infeasible trials that have every objective, the least infeasible first."""
    metrics = [o.metric for o in front.objectives]
    have = [t for t in front.infeasible
            if all(math.isfinite(t.values.get(m, math.nan)) for m in metrics)]
    have.sort(key=lambda t: (t.violation if t.violation is not None else math.inf, t.number))
    return have[:MAX_POINTS]


def note(view: StudyView, front: Pareto | None = None) -> str:
    """What the figure leaves out, for the report to say; empty when it draws every trial.
    ``front``: ``views.pareto_of(view)`` when the caller has it."""
    front = front if front is not None else views.pareto_of(view)
    if front is None:
        return ""
    parts = []
    dominated = sum(1 for r in front.rows if r.rank > 0)
    if dominated > MAX_POINTS:
        parts.append(f"the {MAX_POINTS} best-ranked of {dominated} dominated trials")
    if len(front.infeasible) > MAX_POINTS:
        parts.append(f"the {MAX_POINTS} least infeasible of {len(front.infeasible)} "
                     "infeasible trials")
    return ("Drawn: every trial on the front, " + " and ".join(parts) + ".") if parts else ""


def figure(view: StudyView, front: Pareto | None = None) -> dict[str, Any] | None:
    """The Pareto figure of ``view``: a scatter for two objectives, parallel coordinates for
    three or four; None for one objective or before any trial has succeeded. ``front``:
    ``views.pareto_of(view)`` when the caller has it."""
    front = front if front is not None else views.pareto_of(view)
    if front is None or (not front.rows and not _infeasible(front)):
        return None
    if len(front.objectives) == 2:
        return _scatter(view, front)
    return _parallel(view, front)


def _hover(view: StudyView, trials: Sequence[Trial], what: str) -> dict[str, Any]:
    """Hover text of the trials: number, every objective, the params (and for infeasible
    trials what they broke)."""
    metrics = [o.metric for o in view.objectives]
    texts = []
    for t in trials:
        lines = [f"trial {t.number} ({what})",
                 *(f"{m} {format_value(t.values.get(m))}" for m in metrics),
                 format_params(t.params)]
        if t.message and views.infeasible(t):
            lines.append(t.message)
        texts.append("<br>".join(lines))
    return {"text": texts, "hovertemplate": "%{text}<extra></extra>",
            "customdata": [t.number for t in trials]}


def _log_axis(values: Sequence[float]) -> bool:
    """Whether values span two decades or more, all positive (as the other charts decide)."""
    vs = [v for v in values if math.isfinite(v)]
    return bool(vs) and min(vs) > 0 and max(vs) / min(vs) >= 100


def staircase(points: Sequence[tuple[float, float]], minimize: tuple[bool, bool]
              ) -> list[tuple[float, float]]:
    """The boundary of what non-dominated 2-D ``points`` dominate: the points in order of the
    first objective, each pair joined through its worse corner (the worse value of each
    objective), so the line runs horizontally and vertically along the dominated side."""
    ordered = sorted(points)
    out: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(ordered):
        if i:
            px, py = ordered[i - 1]
            out.append((max(x, px) if minimize[0] else min(x, px),
                        max(y, py) if minimize[1] else min(y, py)))
        out.append((x, y))
    return out


def _near(v: float, values: Sequence[float]) -> bool:
    """Whether ``v`` lies within half the values' span of them (in decades on a log axis): a
    reference point further out is left off, not to squeeze the trials into a corner of the
    chart."""
    if not values:
        return False
    if _log_axis(values):
        if v <= 0:
            return False
        lo, hi, v = math.log10(min(values)), math.log10(max(values)), math.log10(v)
    else:
        lo, hi = min(values), max(values)
    room = 0.5 * (hi - lo) if hi > lo else abs(hi) or 1.0
    return lo - room <= v <= hi + room


def _scatter(view: StudyView, front: Pareto) -> dict[str, Any]:
    mins = (front.objectives[0].minimize, front.objectives[1].minimize)
    data: list[dict[str, Any]] = []
    xs: list[float] = []
    ys: list[float] = []

    def points(trials: Sequence[Trial]) -> tuple[list[float], list[float]]:
        x = [_num(front.value(t, 0)) for t in trials]
        y = [_num(front.value(t, 1)) for t in trials]
        xs.extend(x)
        ys.extend(y)
        return x, y

    dominated = [r.trial for r in _dominated(front)]
    if dominated:
        x, y = points(dominated)
        data.append({"type": "scatter", "mode": "markers", "name": "dominated", "x": x, "y": y,
                     "marker": {"size": 7, "color": DOMINATED_COLOR, "opacity": 0.7},
                     **_hover(view, dominated, "dominated")})
    bad = _infeasible(front)
    if bad:
        x, y = points(bad)
        data.append({"type": "scatter", "mode": "markers", "name": "infeasible", "x": x, "y": y,
                     "marker": {"size": 8, "symbol": "x-thin",
                                "line": {"width": 2, "color": INFEASIBLE_COLOR}},
                     **_hover(view, bad, "infeasible")})
    best = [r.trial for r in front.front]
    if best:
        x, y = points(best)
        line = staircase(list(zip(x, y, strict=True)), mins)
        data.append({"type": "scatter", "mode": "lines", "name": "front",
                     "x": [p[0] for p in line], "y": [p[1] for p in line],
                     "line": {"color": FRONT_COLOR, "width": 1.5}, "hoverinfo": "skip"})
        data.append({"type": "scatter", "mode": "markers", "name": "Pareto front",
                     "x": x, "y": y,
                     "marker": {"size": 10, "color": FRONT_COLOR,
                                "line": {"width": 1, "color": "#ffffff"}},
                     **_hover(view, best, "on the front")})
    metrics = [o.metric for o in front.objectives]
    ref = None if front.reference is None else [_num(front.reference[m]) for m in metrics]
    if ref is not None and _near(ref[0], xs) and _near(ref[1], ys):
        data.append({"type": "scatter", "mode": "markers", "name": "reference point",
                     "x": [ref[0]], "y": [ref[1]],
                     "marker": {"size": 9, "symbol": "cross-thin",
                                "line": {"width": 2, "color": "#555555"}},
                     "hovertemplate": f"reference point<br>{metrics[0]} %{{x}}<br>{metrics[1]} "
                                      "%{y}<extra></extra>"})
    layout: dict[str, Any] = {
        "margin": {"l": 72, "r": 16, "t": 16, "b": 52}, "height": 420, "font": _FONT,
        "xaxis": {"title": {"text": _label(view, 0)}, "zeroline": False},
        "yaxis": {"title": {"text": _label(view, 1)}, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.08, "x": 0},
        "hovermode": "closest", "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
    }
    for axis, values in (("xaxis", xs), ("yaxis", ys)):
        if _log_axis(values):
            layout[axis]["type"] = "log"
    return {"data": data, "layout": layout}


def _colorscale(worst: int, infeasible: bool) -> tuple[list[list[Any]], float]:
    """A stepped colour scale over ranks -1 (infeasible) or 0 (the front) to ``worst``: the
    front in the front's colour, later ranks from blue to grey, infeasible trials in theirs;
    and its lowest value."""
    low = -1.0 if infeasible else 0.0
    span = max(1.0, worst - low)

    def at(v: float) -> float:
        return round((v - low) / span, 6)

    scale: list[list[Any]] = []
    if infeasible:
        scale += [[0.0, INFEASIBLE_COLOR], [at(-0.5), INFEASIBLE_COLOR]]
        scale += [[at(-0.5), FRONT_COLOR]]
    else:
        scale += [[0.0, FRONT_COLOR]]
    scale += [[at(0.5), FRONT_COLOR], [at(0.5), _NEAR], [1.0, _FAR]]
    return scale, low


def _parallel(view: StudyView, front: Pareto) -> dict[str, Any]:
    dominated = _dominated(front)
    bad = _infeasible(front)
    # Drawn in order, the front last so that it lies on top.
    lines: list[tuple[Trial, int]] = ([(t, -1) for t in bad]
                                      + [(r.trial, r.rank) for r in reversed(dominated)]
                                      + [(r.trial, 0) for r in front.front])
    dims = [{"label": _label(view, j),
             "values": [_num(front.value(t, j)) for t, _ in lines]}
            for j in range(len(front.objectives))]
    worst = max((r.rank for r in dominated), default=0)
    scale, low = _colorscale(worst, bool(bad))
    # At most about 8 labelled ranks, the front and the worst among them.
    step = max(1, math.ceil(worst / 7))
    ticks = ([-1] if bad else []) + sorted({*range(0, worst + 1, step), worst})
    labels = [("infeasible" if k < 0 else "front" if k == 0 else str(k)) for k in ticks]
    data = [{
        "type": "parcoords", "dimensions": dims,
        "line": {"color": [rank for _, rank in lines], "colorscale": scale, "cmin": low,
                 "cmax": max(float(worst), low + 1.0), "showscale": True,
                 "colorbar": {"title": {"text": "non-dominated rank"}, "thickness": 12,
                              "tickvals": ticks, "ticktext": labels}},
    }]
    layout = {"margin": {"l": 72, "r": 96, "t": 56, "b": 24}, "height": 380, "font": _FONT,
              "paper_bgcolor": "#ffffff"}
    return {"data": data, "layout": layout}
