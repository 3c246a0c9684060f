"""The study's charts as Plotly figures: the one way kubetune draws them, for the live
dashboard and for ``kubetune plot``'s HTML file alike. Pure: each function takes a
``StudyView`` and returns a JSON-able ``{"data": [...], "layout": {...}}`` (or None when there
is nothing to draw yet) that plotly.js renders in the browser.

Payloads stay bounded whatever the number of trials: the history keeps every improvement and
at most ``MAX_HISTORY`` points, parallel coordinates the best ``MAX_LINES`` trials, the
learning curves the best and the latest ``MAX_CURVES`` trials, each thinned to
``CURVE_POINTS`` points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kubetune._cli import importance as importances
from kubetune._cli import views
from kubetune._cli.views import StudyView, format_params, format_value
from kubetune.core import spec as specs
from kubetune.core.space import CategoricalParam, Space
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "CURVE_POINTS",
    "MAX_CURVES",
    "MAX_HISTORY",
    "MAX_LINES",
    "STATE_COLORS",
    "curve_trials",
    "curves",
    "empty_message",
    "history",
    "history_trials",
    "importance",
    "parallel",
    "parallel_trials",
    "thin_curve",
]

MAX_HISTORY = 1500
MAX_LINES = 1000
MAX_CURVES = 200
CURVE_POINTS = 40

STATE_COLORS = {
    TrialState.SUCCEEDED: "#3b528b", TrialState.RUNNING: "#21918c",
    TrialState.PRUNED: "#e8750c", TrialState.STOPPED: "#8c8c8c",
    TrialState.FAILED: "#c0392b", TrialState.PENDING: "#b0b0b0", TrialState.LOST: "#b0b0b0",
}
BEST_COLOR = "#d62728"
# Viridis: perceptually even, readable for the colour-blind and in greyscale.
_COLORSCALE = "Viridis"
_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12}


def _layout(xlabel: str, ylabel: str, **extra: Any) -> dict[str, Any]:
    return {
        "margin": {"l": 64, "r": 16, "t": 16, "b": 48}, "height": 340, "font": _FONT,
        "xaxis": {"title": {"text": xlabel}, "zeroline": False},
        "yaxis": {"title": {"text": ylabel}, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.08, "x": 0},
        "hovermode": "closest", "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
        **extra,
    }


def _num(v: float) -> float:
    """A value to 6 significant digits, as the page shows it: the JSON stays small."""
    return float(f"{v:.6g}")


_OFF = -0.15  # where an inactive parameter's line crosses its axis


def _unit(v: float) -> float:
    return round(float(v), 4)  # a unit-cube position: 1/10,000 of an axis is below a pixel


def _log_axis(values: Sequence[float]) -> bool:
    vs = [v for v in values if math.isfinite(v)]
    return bool(vs) and min(vs) > 0 and max(vs) / min(vs) >= 100


def empty_message(view: StudyView, chart: str) -> str:
    """What a chart that has nothing to draw says instead."""
    if view.spec is None:
        return "The spec does not parse."
    if chart == "history":
        return "No trial has reported a value yet."
    if chart == "parallel":
        return "No trial has succeeded yet."
    if chart == "curves":
        return "No trial has reported a learning curve yet."
    need = importances.min_trials(specs.space_of(view.spec))
    return f"Importance needs at least {need} succeeded trials with different values."


def history_trials(view: StudyView) -> list[Trial]:
    """The trials the history plots: all with a value, or, past ``MAX_HISTORY``, every one that
    improved the best, the best of the rest, and an even spread of the others."""
    points = [t for t in view.trials if t.has_value]
    if len(points) <= MAX_HISTORY:
        return points
    improved = {n for n, _ in _improvements(view)}
    sign = 1.0 if view.minimize else -1.0
    keep = set(improved)
    for t in sorted(points, key=lambda t: sign * float(t.value))[: MAX_HISTORY // 4]:  # type: ignore[arg-type]
        keep.add(t.number)
    rest = [t for t in points if t.number not in keep]
    room = max(0, MAX_HISTORY - len(keep))
    if rest and room:
        stride = len(rest) / room
        keep.update(rest[int(i * stride)].number for i in range(min(room, len(rest))))
    return [t for t in points if t.number in keep]


def _improvements(view: StudyView) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for n, v in views.best_so_far(view.trials, minimize=view.minimize):
        if not out or out[-1][1] != v:
            out.append((n, v))
    return out


def history(view: StudyView) -> dict[str, Any] | None:
    """Each trial's value by trial number, coloured by state (Succeeded filled, the others
    hollow), and the running best as a step line to the latest trial."""
    points = history_trials(view)
    if view.spec is None or not points:
        return None
    data: list[dict[str, Any]] = []
    order = (TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.PRUNED, TrialState.STOPPED,
             TrialState.FAILED)
    for state in order:
        group = [t for t in points if t.state is state]
        if not group:
            continue
        data.append({
            "type": "scatter", "mode": "markers", "name": state.value.lower(),
            "x": [t.number for t in group], "y": [_num(t.value) for t in group],  # type: ignore[arg-type]
            "text": [format_params(t.params) for t in group],
            "hovertemplate": f"trial %{{x}} ({state.value})<br>{view.metric} %{{y}}<br>"
                             "%{text}<extra></extra>",
            "customdata": [t.number for t in group],
            "marker": {"size": 7, "color": STATE_COLORS[state],
                       "symbol": "circle" if state is TrialState.SUCCEEDED else "circle-open",
                       "line": {"width": 1.5, "color": STATE_COLORS[state]}},
        })
    best = _improvements(view)
    if best:
        last = max(t.number for t in view.trials)
        xs = [n for n, _ in best] + [last]
        ys = [v for _, v in best] + [best[-1][1]]
        data.append({"type": "scatter", "mode": "lines", "name": "best so far",
                     "x": xs, "y": ys, "line": {"shape": "hv", "color": BEST_COLOR, "width": 2},
                     "hoverinfo": "skip"})
    values = [float(t.value) for t in points]  # type: ignore[arg-type]
    layout = _layout("trial", view.metric)
    if _log_axis(values):
        layout["yaxis"]["type"] = "log"
    return {"data": data, "layout": layout}


def parallel_trials(view: StudyView, space: Space) -> list[Trial]:
    """The Succeeded trials that parallel coordinates draw: the best ``MAX_LINES`` of those that
    keep every constraint."""
    sign = 1.0 if view.minimize else -1.0
    done = [t for t in view.trials
            if t.state is TrialState.SUCCEEDED and t.has_value and t.feasible]
    done.sort(key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    out = []
    for t in done:  # best first, so only the drawn ones are checked
        if space.contains(t.params):
            out.append(t)
            if len(out) == MAX_LINES:
                break
    return out


def parallel(view: StudyView) -> dict[str, Any] | None:
    """One axis per parameter (log parameters on a log scale through their unit-cube value,
    categorical ones by their values) and one for the objective; a line per Succeeded trial,
    coloured by the objective."""
    if view.spec is None:
        return None
    space = specs.space_of(view.spec)
    lines = parallel_trials(view, space)
    if not lines:
        return None
    dims: list[dict[str, Any]] = []
    cube = [space.to_unit(t.params) for t in lines]
    for i, (name, param) in enumerate(zip(space.names, space.params, strict=True)):
        # A trial that leaves a conditional parameter inactive crosses its axis at "off",
        # below the range.
        units = [_OFF if math.isnan(u[i]) else _unit(u[i]) for u in cube]
        if isinstance(param, CategoricalParam):
            n = param.n_values
            ticks = [(k + 0.5) / n for k in range(n)]
            labels = [format_value(v) for v in param.values]
        else:
            ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
            labels = [format_value(_round(param.from_unit(u))) for u in ticks]
        axis_range = [0, 1]
        if _OFF in units:
            ticks, labels, axis_range = [_OFF, *ticks], ["off", *labels], [_OFF - 0.05, 1]
        dims.append({"label": name, "values": units, "range": axis_range,
                     "tickvals": ticks, "ticktext": labels})
    values = [_num(t.value) for t in lines]  # type: ignore[arg-type]
    dims.append({"label": view.metric, "values": values})
    data = [{
        "type": "parcoords", "dimensions": dims,
        "line": {"color": values, "colorscale": _COLORSCALE,
                 "reversescale": not view.minimize, "showscale": True,
                 "colorbar": {"title": {"text": view.metric}, "thickness": 12}},
    }]
    layout = {"margin": {"l": 72, "r": 72, "t": 48, "b": 24}, "height": 360, "font": _FONT,
              "paper_bgcolor": "#ffffff"}
    return {"data": data, "layout": layout}


def _round(v: Any) -> Any:
    return float(f"{v:.3g}") if isinstance(v, float) else v


def curve_trials(view: StudyView) -> list[Trial]:
    """The trials whose curves are drawn: all, or the best and the latest ``MAX_CURVES``."""
    with_curves = [t for t in view.trials if t.curve]
    if len(with_curves) <= MAX_CURVES:
        return with_curves
    sign = 1.0 if view.minimize else -1.0
    by_value = sorted(with_curves, key=lambda t: (sign * t.curve[-1][1], t.number))
    keep = {t.number for t in by_value[: MAX_CURVES // 2]}
    for t in sorted(with_curves, key=lambda t: -t.number):
        if len(keep) >= MAX_CURVES:
            break
        keep.add(t.number)
    return [t for t in with_curves if t.number in keep]


def thin_curve(curve: Sequence[tuple[int, float]], n: int = CURVE_POINTS
               ) -> list[tuple[int, float]]:
    """At most ``n`` points of a curve: the first, the last and an even spread between."""
    points = [(s, v) for s, v in curve if math.isfinite(v)]
    if len(points) <= n:
        return points
    stride = (len(points) - 1) / (n - 1)
    return [points[round(i * stride)] for i in range(n)]


def curves(view: StudyView) -> dict[str, Any] | None:
    """Each drawn trial's objective against its step, coloured by state; a pruned trial's
    curve is dashed and ends in a cross where it was stopped. The curves of one state share a
    trace (gaps between them), so the browser draws a few paths, not hundreds."""
    shown = curve_trials(view)
    if view.spec is None or not shown:
        return None
    data: list[dict[str, Any]] = []
    crosses: list[tuple[int, float, int]] = []
    values: list[float] = []
    for state in (TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.STOPPED,
                  TrialState.FAILED, TrialState.PRUNED):
        xs: list[int | None] = []
        ys: list[float | None] = []
        numbers: list[int | None] = []
        for t in shown:
            pts = thin_curve(t.curve) if t.state is state else []
            if not pts:
                continue
            xs += [s for s, _ in pts] + [None]
            ys += [_num(v) for _, v in pts] + [None]
            numbers += [t.number] * len(pts) + [None]
            values += [v for _, v in pts]
            if state is TrialState.PRUNED:
                crosses.append((pts[-1][0], _num(pts[-1][1]), t.number))
        if not xs:
            continue
        data.append({
            "type": "scatter", "mode": "lines", "name": state.value.lower(),
            "x": xs[:-1], "y": ys[:-1], "customdata": numbers[:-1], "opacity": 0.7,
            "hovertemplate": f"trial %{{customdata}} ({state.value})<br>step %{{x}}<br>"
                             f"{view.metric} %{{y}}<extra></extra>",
            "line": {"color": STATE_COLORS[state], "width": 1.5,
                     "dash": "dash" if state is TrialState.PRUNED else "solid"},
        })
    if crosses:
        data.append({
            "type": "scatter", "mode": "markers", "name": "pruned here",
            "x": [c[0] for c in crosses], "y": [c[1] for c in crosses],
            "customdata": [c[2] for c in crosses],
            "hovertemplate": f"trial %{{customdata}} pruned at step %{{x}}<br>{view.metric} "
                             "%{y}<extra></extra>",
            "marker": {"symbol": "x-thin", "size": 10,
                       "line": {"width": 2, "color": STATE_COLORS[TrialState.PRUNED]}},
        })
    layout = _layout("step", view.metric)
    if _log_axis(values):
        layout["yaxis"]["type"] = "log"
    return {"data": data, "layout": layout}


def importance(result: importances.Importance | None) -> dict[str, Any] | None:
    """A horizontal bar per parameter: its share of the surrogate's explained variance."""
    if result is None:
        return None
    shares = list(reversed(result.shares))  # plotly draws the first bar at the bottom
    data = [{
        "type": "bar", "orientation": "h", "x": [s for _, s in shares],
        "y": [n for n, _ in shares], "text": [f"{s:.1%}" for _, s in shares],
        "textposition": "outside", "hoverinfo": "y+text", "marker": {"color": "#3b528b"},
    }]
    layout = _layout("share of explained variance", "",
                     height=max(160, 60 + 30 * len(shares)))
    layout["xaxis"].update({"range": [0, 1.15], "tickformat": ".0%"})
    layout["margin"]["l"] = 120
    layout["showlegend"] = False
    return {"data": data, "layout": layout}
