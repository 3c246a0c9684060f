"""The HTML report of a study: one self-contained file (no CDN, no network) with

- the optimization history: each trial's value and the best so far;
- parallel coordinates of the parameters against the objective;
- the learning curves, pruned trials marked;
- parameter importance (``importance``: fANOVA on the GP surrogate);
- the leaderboard.

Charts are static SVG drawn here, so the report reads without JavaScript; a few lines of inline
script highlight one trial across every chart on hover. The trials, with the curves drawn, are
embedded as JSON (``<script type="application/json" id="kubetune-data">``) for whoever wants
the numbers.
Pure: ``html_report(view, now)`` returns the text.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from typing import Any

from kubetune._cli import importance as importances
from kubetune._cli import svg, views
from kubetune._cli.svg import Scale, esc
from kubetune._cli.views import StudyView, format_duration, format_params, format_value
from kubetune.core import spec as specs
from kubetune.core.space import CategoricalParam, Space
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "MAX_CURVES",
    "MAX_LINES",
    "MAX_TABLE_ROWS",
    "STATE_COLORS",
    "axis_labels",
    "curve_trials",
    "curves_chart",
    "history_chart",
    "html_report",
    "importance_chart",
    "parallel_chart",
    "parallel_trials",
    "report_data",
]

MAX_CURVES = 300  # learning curves drawn: the best half and the most recent half
MAX_LINES = 1000  # parallel-coordinate lines: the best ones
MAX_TABLE_ROWS = 500

STATE_COLORS = {
    TrialState.SUCCEEDED: "#3b528b", TrialState.RUNNING: "#21918c",
    TrialState.PRUNED: "#e8750c", TrialState.STOPPED: "#8c8c8c",
    TrialState.FAILED: "#c0392b", TrialState.PENDING: "#b0b0b0", TrialState.LOST: "#b0b0b0",
}
_BEST_COLOR = "#d62728"
_W, _H = 760, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 50


def _title(t: Trial, metric: str) -> str:
    parts = [f"trial {t.number} ({t.state.value})"]
    if t.value is not None:
        parts.append(f"{metric} {format_value(t.value)}")
    if t.params:
        parts.append(format_params(t.params))
    if t.reason:
        parts.append(t.reason)
    return esc(", ".join(parts))


def _valued(trials: Sequence[Trial]) -> list[Trial]:
    return [t for t in trials if t.has_value]


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float) -> str:
    """Legend entries (label, colour, shape: dot, ring, line, cross) in a row."""
    out = []
    for label, colour, shape in items:
        if shape == "dot":
            mark = f'<circle cx="{x + 5}" cy="{y - 4}" r="4" fill="{colour}"/>'
        elif shape == "ring":
            mark = (f'<circle cx="{x + 5}" cy="{y - 4}" r="4" fill="none" stroke="{colour}" '
                    'stroke-width="1.5"/>')
        elif shape == "cross":
            mark = (f'<path d="M{x + 1},{y - 8}l8,8m0,-8l-8,8" stroke="{colour}" '
                    'stroke-width="2"/>')
        else:
            mark = (f'<line x1="{x}" y1="{y - 4}" x2="{x + 12}" y2="{y - 4}" stroke="{colour}" '
                    'stroke-width="2"/>')
        out.append(f'{mark}<text x="{x + 16}" y="{y}">{esc(label)}</text>')
        x += 22 + 7 * len(label)
    return f'<g class="legend">{"".join(out)}</g>'


def history_chart(view: StudyView) -> str:
    """Every trial with a value at (number, value); Succeeded ones filled, the others hollow;
    the best Succeeded value so far as a step line."""
    points = _valued(view.trials)
    if not points:
        return '<p class="empty">No trial has reported a value yet.</p>'
    last = max(t.number for t in view.trials)
    x = Scale(-0.5, last + 0.5, _LEFT, _W - _RIGHT)
    y = Scale.fit([float(t.value) for t in points], _H - _BOTTOM, _TOP)  # type: ignore[arg-type]
    body = [svg.axes(x, y, xlabel="trial", ylabel=view.metric, integer_x=True)]
    best = views.best_so_far(view.trials, minimize=view.minimize)
    if best:
        path = []
        for i, (n, v) in enumerate(best):
            end = best[i + 1][0] if i + 1 < len(best) else last
            path.append(f"{'M' if i == 0 else 'L'}{x(n):.1f},{y(v):.1f}L{x(end):.1f},{y(v):.1f}")
        body.append(f'<path class="best" d="{"".join(path)}" fill="none" stroke="{_BEST_COLOR}" '
                    'stroke-width="2"/>')
    for t in points:
        colour = STATE_COLORS[t.state]
        fill = colour if t.state is TrialState.SUCCEEDED else "none"
        body.append(f'<circle class="trial" data-trial="{t.number}" cx="{x(t.number):.1f}" '
                    f'cy="{y(float(t.value)):.1f}" r="4" fill="{fill}" stroke="{colour}" '  # type: ignore[arg-type]
                    f'stroke-width="1.5"><title>{_title(t, view.metric)}</title></circle>')
    legend = [("succeeded", STATE_COLORS[TrialState.SUCCEEDED], "dot")]
    seen = {t.state for t in points}
    legend += [(s.value.lower(), STATE_COLORS[s], "ring") for s in
               (TrialState.RUNNING, TrialState.PRUNED, TrialState.STOPPED, TrialState.FAILED)
               if s in seen]
    legend.append(("best so far", _BEST_COLOR, "line"))
    body.append(_legend(legend, _LEFT + 10, _TOP + 4))
    return svg.svg(_W, _H, body, cls="chart history", points=len(points))


def parallel_trials(view: StudyView, space: Space) -> list[Trial]:
    """The Succeeded trials that parallel coordinates draw: the best ``MAX_LINES``."""
    sign = 1.0 if view.minimize else -1.0
    done = [t for t in view.trials if t.state is TrialState.SUCCEEDED and t.has_value
            and space.contains(t.params)]
    done.sort(key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
    return done[:MAX_LINES]


def axis_labels(param: Any) -> list[tuple[float, str]]:
    """(unit position, label) pairs along one parameter's axis."""
    if isinstance(param, CategoricalParam):
        n = param.n_values
        step = max(1, n // 12)
        return [((i + 0.5) / n, format_value(param.values[i])) for i in range(0, n, step)]
    return [(u, format_value(_round(param.from_unit(u)))) for u in (0.0, 0.25, 0.5, 0.75, 1.0)]


def _round(v: Any) -> Any:
    return float(f"{v:.3g}") if isinstance(v, float) else v


def parallel_chart(view: StudyView) -> str:
    """One vertical axis per parameter (on its unit-cube scale: log axes stay log) and one for
    the objective; one line per Succeeded trial, coloured by objective, the best drawn on top."""
    if view.spec is None:
        return '<p class="empty">The spec does not parse.</p>'
    space = specs.space_of(view.spec)
    lines = parallel_trials(view, space)
    if not lines:
        return '<p class="empty">No trial has succeeded yet.</p>'
    names = [*space.names, view.metric]
    width = max(_W, 120 * len(names))
    gap = (width - _LEFT - _RIGHT) / max(1, len(names) - 1)
    top, bottom = _TOP + 20, _H - _BOTTOM
    objective = Scale.fit([float(t.value) for t in lines], bottom, top)  # type: ignore[arg-type]
    body = []
    for i, name in enumerate(names):
        px = _LEFT + i * gap
        body.append(f'<line class="paxis" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}"/>'
                    f'<text class="label" x="{px:.1f}" y="{top - 8}" text-anchor="middle">'
                    f'{esc(name)}</text>')
        if i < space.dim:
            marks = [(bottom + (top - bottom) * u, text)
                     for u, text in axis_labels(space.params[i])]
        else:
            marks = [(objective(v), svg.fmt(v)) for v in objective.ticks()]
        for py, text in marks:
            body.append(f'<text x="{px + 4:.1f}" y="{py + 4:.1f}">{esc(text)}</text>')
    n = len(lines)
    for rank, t in reversed(list(enumerate(lines))):
        u = space.to_unit(t.params)
        ys = [bottom + (top - bottom) * float(v) for v in u] + [objective(float(t.value))]  # type: ignore[arg-type]
        pts = " ".join(f"{_LEFT + i * gap:.1f},{py:.1f}" for i, py in enumerate(ys))
        colour = svg.color(1.0 - rank / max(1, n - 1))
        body.append(f'<polyline class="trial" data-trial="{t.number}" points="{pts}" '
                    f'fill="none" stroke="{colour}" stroke-width="1.5" opacity="0.8">'
                    f'<title>{_title(t, view.metric)}</title></polyline>')
    return svg.svg(width, _H, body, cls="chart parallel", points=n)


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


def curves_chart(view: StudyView) -> str:
    """Each trial's reported objective against its step; pruned trials end in a cross."""
    shown = curve_trials(view)
    if not shown:
        return '<p class="empty">No trial has reported a learning curve yet.</p>'
    steps = [s for t in shown for s, _ in t.curve]
    values = [v for t in shown for _, v in t.curve if math.isfinite(v)]
    x = Scale.fit(steps, _LEFT, _W - _RIGHT, allow_log=False, pad=0.02)
    y = Scale.fit(values, _H - _BOTTOM, _TOP)
    body = [svg.axes(x, y, xlabel="step", ylabel=view.metric, integer_x=True)]
    pruned = 0
    for t in shown:
        colour = STATE_COLORS[t.state]
        pts = [(x(s), y(v)) for s, v in t.curve if math.isfinite(v)]
        if not pts:
            continue
        title = f"<title>{_title(t, view.metric)}</title>"
        if len(pts) == 1:
            body.append(f'<circle class="trial" data-trial="{t.number}" cx="{pts[0][0]:.1f}" '
                        f'cy="{pts[0][1]:.1f}" r="3" fill="{colour}">{title}</circle>')
        else:
            dash = ' stroke-dasharray="4 3"' if t.state is TrialState.PRUNED else ""
            line = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            body.append(f'<polyline class="trial" data-trial="{t.number}" points="{line}" '
                        f'fill="none" stroke="{colour}" stroke-width="1.5" opacity="0.75"{dash}>'
                        f'{title}</polyline>')
        if t.state is TrialState.PRUNED:
            pruned += 1
            px, py = pts[-1]
            body.append(f'<path class="pruned" data-trial="{t.number}" '
                        f'd="M{px - 4:.1f},{py - 4:.1f}l8,8m0,-8l-8,8" stroke="{colour}" '
                        f'stroke-width="2">{title}</path>')
    seen = {t.state for t in shown}
    legend = [(s.value.lower(), STATE_COLORS[s], "line") for s in
              (TrialState.SUCCEEDED, TrialState.RUNNING, TrialState.STOPPED, TrialState.FAILED)
              if s in seen]
    if pruned:
        legend.append(("pruned", STATE_COLORS[TrialState.PRUNED], "cross"))
    body.append(_legend(legend, _LEFT + 10, _TOP + 4))
    return svg.svg(_W, _H, body, cls="chart curves", points=len(shown))


def importance_chart(view: StudyView, result: importances.Importance | None) -> str:
    """A horizontal bar per parameter: its share of the explained variance."""
    if view.spec is None:
        return '<p class="empty">The spec does not parse.</p>'
    if result is None:
        need = importances.min_trials(specs.space_of(view.spec))
        return (f'<p class="empty">Importance needs at least {need} succeeded trials with '
                'different values.</p>')
    row, label_w, bar_w = 26, 160, _W - 160 - 90
    height = _TOP + row * len(result.shares) + 10
    body = []
    for i, (name, share) in enumerate(result.shares):
        py = _TOP + i * row
        body.append(f'<text x="{label_w - 8}" y="{py + 15}" text-anchor="end">{esc(name)}</text>'
                    f'<rect class="bar" x="{label_w}" y="{py + 3}" width="{bar_w * share:.1f}" '
                    f'height="{row - 8}" fill="{svg.color(0.35)}"><title>{esc(name)}: '
                    f'{share:.1%}</title></rect><text x="{label_w + bar_w * share + 6:.1f}" '
                    f'y="{py + 15}">{share:.1%}</text>')
    return svg.svg(_W, height, body, cls="chart importance", points=len(result.shares))


def report_data(view: StudyView, curves_of: set[int] | None = None) -> dict[str, Any]:
    """The study's numbers: every trial, with its curve when ``curves_of`` is None or holds
    its number (the report embeds the curves it draws; ``kubetune get -o json`` has them all)."""
    return {
        "study": view.name, "namespace": view.namespace, "metric": view.metric,
        "direction": "minimize" if view.minimize else "maximize", "state": view.state,
        "trials": [
            {"number": t.number, "state": t.state.value, "value": _finite(t.value),
             "params": dict(t.params), "reason": t.reason, "start": t.start_time,
             "end": t.end_time,
             "curve": [[s, _finite(v)] for s, v in t.curve]
             if curves_of is None or t.number in curves_of else None}
            for t in view.trials
        ],
    }


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _table(view: StudyView, now: float) -> str:
    rows = views.ranked_rows(view.trials, minimize=view.minimize)
    names = list(view.spec.search_space) if view.spec else []
    head = "".join(f"<th>{esc(h)}</th>" for h in
                   ["rank", "trial", view.metric, "state", *names, "duration"])
    body = []
    for r in rows[:MAX_TABLE_ROWS]:
        t = r.trial
        end = t.end_time if t.end_time is not None else (now if t.state.is_active else None)
        duration = None if t.start_time is None or end is None else end - t.start_time
        state = t.state.value + (f" ({t.reason})" if t.reason and t.state not in (
            TrialState.SUCCEEDED, TrialState.RUNNING) else "")
        cells = [r.rank or "", t.number, format_value(t.value), state,
                 *(format_value(_round(t.params.get(n))) for n in names),
                 format_duration(duration)]
        body.append(f'<tr data-trial="{t.number}">'
                    + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    more = (f'<p class="note">{len(rows) - MAX_TABLE_ROWS} more trials are in the embedded '
            'data.</p>' if len(rows) > MAX_TABLE_ROWS else "")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;
max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}
.meta{color:#555}.note,.empty{color:#777;font-size:13px}
svg text{font-size:11px;fill:#333}svg .label{font-size:12px;fill:#111}
.axes line{stroke:#333}.axes line.grid{stroke:#e4e4e4}.paxis{stroke:#555}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;text-align:right}
th{border-bottom:1px solid #999}tbody tr:nth-child(odd){background:#f6f6f6}
body.hl [data-trial]:not(.on){opacity:.12}
tr.on{background:#fde725 !important}
#info{position:fixed;bottom:0;left:0;right:0;background:#222;color:#fff;padding:4px 12px;
font-size:13px;min-height:1.4em}
#info:empty{display:none}
"""

# Hovering a trial anywhere highlights it in every chart and the table.
_JS = """
(function(){
var info=document.getElementById('info');
function show(n,text){document.body.classList.toggle('hl',n!==null);
document.querySelectorAll('[data-trial]').forEach(function(e){
e.classList.toggle('on',e.getAttribute('data-trial')===n)});info.textContent=text||'';}
document.querySelectorAll('[data-trial]').forEach(function(e){
e.addEventListener('mouseenter',function(){var t=e.querySelector('title');
show(e.getAttribute('data-trial'),t?t.textContent:'trial '+e.getAttribute('data-trial'))});
e.addEventListener('mouseleave',function(){show(null,'')});});
})();
"""


def _rfc3339(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def html_report(view: StudyView, now: float,
                importance: importances.Importance | None = None) -> str:
    """The whole report as one HTML document."""
    spec = view.spec
    best = view.best()
    lines = [f"{esc(view.state)}"]
    if view.message:
        lines.append(esc(view.message))
    if spec is not None:
        lines.append(f"objective: {spec.objective.direction} {esc(spec.objective.metric)}; "
                     f"algorithm {esc(spec.algorithm.name)}"
                     + (f"; early stopping {esc(spec.early_stopping.name)}"
                        if spec.early_stopping else ""))
    if best is not None:
        lines.append(f"best: trial {best.number}, {esc(view.metric)} "
                     f"{esc(format_value(best.value))} ({esc(format_params(best.params))})")
    imp_note = ""
    if importance is not None:
        imp_note = (f'<p class="note">From a Gaussian-process surrogate of {importance.trials} '
                    f'succeeded trials; main effects explain {importance.main_effects:.0%} of '
                    'its variance, interactions the rest.</p>')
    curves_note = ""
    if sum(1 for t in view.trials if t.curve) > MAX_CURVES:
        curves_note = (f'<p class="note">The {MAX_CURVES} best and latest of '
                       f'{sum(1 for t in view.trials if t.curve)} curves.</p>')
    where = f" <span class=\"meta\">namespace {esc(view.namespace)}</span>" \
        if view.namespace else ""
    drawn = {t.number for t in curve_trials(view)}
    data = json.dumps(report_data(view, drawn), separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kubetune: {esc(view.name)}</title><style>{_CSS}</style></head>
<body>
<h1>{esc(view.name)}{where}</h1>
<p class="meta">{"<br>".join(lines)}<br>{len(view.trials)} trials; report written
{_rfc3339(now)}</p>
<h2>Optimization history</h2>
<div class="scroll">{history_chart(view)}</div>
<h2>Parallel coordinates</h2>
<div class="scroll">{parallel_chart(view)}</div>
<h2>Learning curves</h2>{curves_note}
<div class="scroll">{curves_chart(view)}</div>
<h2>Parameter importance</h2>{imp_note}
<div class="scroll">{importance_chart(view, importance)}</div>
<h2>Leaderboard</h2>
<div class="scroll">{_table(view, now)}</div>
<div id="info"></div>
<script type="application/json" id="kubetune-data">{data}</script>
<script>{_JS}</script>
</body></html>
"""
