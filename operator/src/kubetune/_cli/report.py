"""The HTML report of a study: one self-contained file (plotly.js inline: no CDN, no network)
with the dashboard's own charts (``kubetune._dashboard.charts``), so each is drawn one way:

- the optimization history: each trial's value and the best so far;
- the learning curves, pruned trials marked;
- parallel coordinates of the parameters against the objective;
- parameter importance (``importance``: fANOVA on the GP surrogate);
- the leaderboard.

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
from kubetune._cli import views
from kubetune._cli.views import StudyView, format_duration, format_params, format_value
from kubetune._dashboard import charts
from kubetune.core.trials import TrialState

__all__ = [
    "CHARTS",
    "MAX_TABLE_ROWS",
    "TITLES",
    "figures",
    "html_report",
    "report_data",
]

MAX_TABLE_ROWS = 500
CHARTS = ("history", "curves", "parallel", "importance")
TITLES = {"history": "Optimization history", "curves": "Learning curves",
           "parallel": "Parallel coordinates", "importance": "Parameter importance"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _round(v: Any) -> Any:
    return float(f"{v:.3g}") if isinstance(v, float) else v


def figures(view: StudyView, importance: importances.Importance | None
            ) -> dict[str, dict[str, Any] | None]:
    """The report's four figures (None where a chart has nothing to draw)."""
    return {"history": charts.history(view), "curves": charts.curves(view),
            "parallel": charts.parallel(view), "importance": charts.importance(importance)}


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
        lines.append(f"objective: {spec.objective.direction} {esc(spec.objective.metric)}; "
                     f"algorithm {esc(spec.algorithm.name)}"
                     + (f"; early stopping {esc(spec.early_stopping.name)}"
                        if spec.early_stopping else ""))
    if best is not None:
        lines.append(f"best: trial {best.number}, {esc(view.metric)} "
                     f"{esc(format_value(best.value))} ({esc(format_params(best.params))})")
    notes = {k: "" for k in CHARTS}
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
    for k in CHARTS:
        note = f'<p class="note">{esc(notes[k])}</p>' if notes[k] else ""
        body = (f'<div class="chart" id="{k}"></div>' if figs[k] is not None else
                f'<p class="empty">{esc(charts.empty_message(view, k))}</p>')
        sections.append(f"<h2>{TITLES[k]}</h2>{note}\n{body}")
    where = f" <span class=\"meta\">namespace {esc(view.namespace)}</span>" \
        if view.namespace else ""
    drawn = {t.number for t in charts.curve_trials(view)}
    plotly = charts.plotly_js().decode("utf-8").replace("</script", "<\\/script")
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
