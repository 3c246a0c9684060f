"""The HTML report of a study: one self-contained file (plotly.js inline: no CDN, no network)
with the dashboard's own charts (``kubetune._dashboard.charts``), so each is drawn one way:

- the optimization history: each trial's value and the best so far;
- the learning curves, pruned trials marked;
- parallel coordinates of the parameters against the objective;
- parameter importance (``importance``: fANOVA on the GP surrogate);
- the leaderboard.

A study with several objectives gets its Pareto front first (``pareto_plot``): a scatter for
two objectives, parallel coordinates for three or four. The other charts then follow the
objective that ``Trial.value`` holds (the one early stopping watches, else the first), and the
leaderboard has a column per objective, by non-dominated rank.

The figures are embedded as JSON (``<script type="application/json" id="kubetune-figures">``)
and the trials, with the curves drawn, as ``id="kubetune-data"``, for whoever wants the numbers.
Pure: ``html_report(view, now)`` returns the text.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from typing import Any

from kubetune._cli import importance as importances
from kubetune._cli import pareto_plot, render, views
from kubetune._cli.views import StudyView, format_duration, format_params, format_value
from kubetune._dashboard import charts, plotlyjs
from kubetune.core.trials import TrialState

__all__ = [
    "CHARTS",
    "MAX_TABLE_ROWS",
    "TITLES",
    "charts_of",
    "empty_message",
    "figures",
    "html_report",
    "ranked_data",
    "report_data",
]

MAX_TABLE_ROWS = 500
CHARTS = ("history", "curves", "parallel", "importance")
TITLES = {"pareto": "Pareto front", "history": "Optimization history",
          "curves": "Learning curves", "parallel": "Parallel coordinates",
          "importance": "Parameter importance"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _round(v: Any) -> Any:
    return float(f"{v:.3g}") if isinstance(v, float) else v


def charts_of(view: StudyView) -> tuple[str, ...]:
    """The report's charts, in order: ``CHARTS``, after the Pareto front with several
    objectives."""
    return ("pareto", *CHARTS) if view.several else CHARTS


def empty_message(view: StudyView, chart: str) -> str:
    """What a chart that has nothing to draw says instead."""
    if chart == "pareto" and view.spec is not None:
        return pareto_plot.EMPTY
    return charts.empty_message(view, chart)


def figures(view: StudyView, importance: importances.Importance | None
            ) -> dict[str, dict[str, Any] | None]:
    """The report's figures, by ``charts_of`` (None where a chart has nothing to draw)."""
    out: dict[str, dict[str, Any] | None] = {}
    if view.several:
        out["pareto"] = pareto_plot.figure(view)
    out.update({"history": charts.history(view), "curves": charts.curves(view),
                "parallel": charts.parallel(view), "importance": charts.importance(importance)})
    return out


def report_data(view: StudyView, curves_of: set[int] | None = None) -> dict[str, Any]:
    """The study's numbers: every trial, with its curve when ``curves_of`` is None or holds
    its number (the report embeds the curves it draws; ``kubetune get -o json`` has them all).

    ``metric`` and ``value`` are the objective a trial's curve follows. A trial's ``values``
    (its final report's objective and constraint metrics) and ``infeasible`` are there when
    the study has several objectives or constraints; a study with several objectives adds
    ``objectives``, ``frontSize``, ``hypervolume``, ``referencePoint`` and ``paretoFront``
    (the trial numbers on the front, by the first objective), as the status has them."""
    spec = view.spec
    judged = bool(spec is not None and (spec.objectives is not None or spec.constraints))
    data: dict[str, Any] = {
        "study": view.name, "namespace": view.namespace, "metric": view.metric,
        "direction": "minimize" if view.minimize else "maximize", "state": view.state,
    }
    front = views.pareto_of(view)
    if front is not None:
        data["objectives"] = [{"metric": o.metric,
                               "direction": "minimize" if o.minimize else "maximize"}
                              for o in front.objectives]
        data["frontSize"] = len(front.front)
        data["hypervolume"] = front.hypervolume
        data["referencePoint"] = None if front.reference is None else dict(front.reference)
        data["paretoFront"] = [r.trial.number for r in front.shown_front()]
    if judged:
        data["infeasible"] = view.infeasible
    trials = []
    for t in view.trials:
        entry: dict[str, Any] = {
            "number": t.number, "state": t.state.value, "value": _finite(t.value),
            "params": dict(t.params), "reason": t.reason, "start": t.start_time,
            "end": t.end_time,
        }
        if judged:
            entry["values"] = {k: _finite(v) for k, v in t.values.items()}
            entry["infeasible"] = (t.state is TrialState.SUCCEEDED and views.infeasible(t))
        entry["curve"] = ([[s, _finite(v)] for s, v in t.curve]
                          if curves_of is None or t.number in curves_of else None)
        trials.append(entry)
    data["trials"] = trials
    return data


def ranked_data(view: StudyView) -> dict[str, Any]:
    """``kubetune get STUDY -o json``: ``report_data`` with every curve, each trial with its
    ``rank`` (``views.leaderboard_rows``: the place from 1 with one objective, the
    non-dominated rank from 0 with several; None when unranked), in leaderboard order, then
    the unranked trials by number."""
    data = report_data(view)
    rows = views.leaderboard_rows(view)
    ranks = {r.trial.number: r.rank for r in rows}
    place = {r.trial.number: i for i, r in enumerate(rows) if r.rank is not None}
    for t in data["trials"]:
        t["rank"] = ranks.get(t["number"])
    data["trials"].sort(key=lambda t: (t["rank"] is None, place.get(t["number"], 0),
                                       t["number"]))
    return data


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _table(view: StudyView, now: float) -> str:
    rows = views.leaderboard_rows(view)
    names = list(view.spec.search_space) if view.spec else []
    metrics = [o.metric for o in view.objectives] if view.several else [view.metric]
    head = "".join(f"<th>{esc(h)}</th>" for h in
                   [*(["front rank"] if view.several else ["rank"]), "trial", *metrics,
                    "state", *names, "duration"])
    body = []
    for r in rows[:MAX_TABLE_ROWS]:
        t = r.trial
        end = t.end_time if t.end_time is not None else (now if t.state.is_active else None)
        duration = None if t.start_time is None or end is None else end - t.start_time
        state = t.state.value + (f" ({t.reason})" if t.reason and (t.state not in (
            TrialState.SUCCEEDED, TrialState.RUNNING) or views.infeasible(t)) else "")
        if view.several:
            values = [format_value(t.values.get(m)) if t.values else
                      format_value(t.value) if m == view.metric else "-" for m in metrics]
        else:
            values = [format_value(t.value)]
        cells = ["" if r.rank is None else r.rank, t.number, *values, state,
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
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;text-align:right}
th{border-bottom:1px solid #999}tbody tr:nth-child(odd){background:#f6f6f6}
"""

# Draws each embedded figure into its div with the inline plotly.js.
_JS = """
(function(){
var figs=JSON.parse(document.getElementById('kubetune-figures').textContent);
Object.keys(figs).forEach(function(k){var f=figs[k];if(!f)return;
Plotly.newPlot(document.getElementById(k),f.data,f.layout,
{responsive:true,displaylogo:false});});
})();
"""


def _rfc3339(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def html_report(view: StudyView, now: float,
                importance: importances.Importance | None = None) -> str:
    """The whole report as one HTML document."""
    spec = view.spec
    best = view.best()
    lines = [f"{esc(view.state)}"]
    if view.message:
        lines.append(esc(view.message))
    if spec is not None:
        lines.append(esc(render.objectives_line(spec)))
    front = views.pareto_of(view)
    front_line = render.front_line(view)
    if front_line is not None:
        lines.append(esc(front_line))
    if best is not None:
        lines.append(f"best: trial {best.number}, {esc(view.metric)} "
                     f"{esc(format_value(best.value))} ({esc(format_params(best.params))})")
    infeasible = render.infeasible_line(view)
    if infeasible is not None:
        lines.append(esc(infeasible))
    shown = charts_of(view)
    notes = {k: "" for k in shown}
    if front is not None:
        notes["pareto"] = pareto_plot.note(view)
        notes["history"] = (f"This chart and the next three follow {view.metric}, the "
                            "objective a trial's learning curve reports.")
    if importance is not None:
        notes["importance"] = (
            f"From a Gaussian-process surrogate of {importance.trials} succeeded trials; main "
            f"effects explain {importance.main_effects:.0%} of its variance, interactions the "
            "rest.")
    with_curves = sum(1 for t in view.trials if t.curve)
    if with_curves > charts.MAX_CURVES:
        notes["curves"] = f"The {charts.MAX_CURVES} best and latest of {with_curves} curves."
    figs = figures(view, importance)
    sections = []
    for k in shown:
        note = f'<p class="note">{esc(notes[k])}</p>' if notes[k] else ""
        body = (f'<div class="chart" id="{k}"></div>' if figs[k] is not None else
                f'<p class="empty">{esc(empty_message(view, k))}</p>')
        sections.append(f"<h2>{TITLES[k]}</h2>{note}\n{body}")
    where = f" <span class=\"meta\">namespace {esc(view.namespace)}</span>" \
        if view.namespace else ""
    drawn = {t.number for t in charts.curve_trials(view)}
    plotly = plotlyjs.bundle().decode("utf-8").replace("</script", "<\\/script")
    newline = "\n"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kubetune: {esc(view.name)}</title><style>{_CSS}</style></head>
<body>
<h1>{esc(view.name)}{where}</h1>
<p class="meta">{"<br>".join(lines)}<br>{len(view.trials)} trials; report written
{_rfc3339(now)}</p>
{newline.join(sections)}
<h2>Leaderboard</h2>
<div class="scroll">{_table(view, now)}</div>
<script type="application/json" id="kubetune-data">{_script_json(report_data(view, drawn))}</script>
<script type="application/json" id="kubetune-figures">{_script_json(figs)}</script>
<script>{plotly}</script>
<script>{_JS}</script>
</body></html>
"""
