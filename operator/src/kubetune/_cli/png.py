"""The report as one PNG: the same Plotly figures as the HTML report and the dashboard
(``kubetune._dashboard.charts``, and for a study with several objectives the Pareto front of
``pareto_plot`` first), laid out in one image and rendered by Kaleido, which drives a headless
Chrome or Chromium already on the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubetune._cli import importance as importances
from kubetune._cli import report
from kubetune._cli.errors import CommandError
from kubetune._cli.views import StudyView

__all__ = ["PngUnavailableError", "png_figure", "png_report"]

_ROW = 380


class PngUnavailableError(CommandError, RuntimeError):
    """PNG output needs Kaleido and a Chrome or Chromium; the message says which is missing."""


def _domain(figure: dict[str, Any] | None) -> bool:
    """Whether a figure is drawn in a domain panel (parallel coordinates) rather than on axes."""
    return figure is not None and any(t["type"] == "parcoords" for t in figure["data"])


def png_figure(view: StudyView, importance: importances.Importance | None) -> Any:
    """The report's charts as one Plotly figure: a column of panels (``report.charts_of``),
    parallel coordinates in domain panels of their own; a chart with nothing to draw says so in
    its panel."""
    from plotly.subplots import make_subplots

    figs = report.figures(view, importance)
    keys = report.charts_of(view)
    rows = len(keys)
    # An empty chart says so on axes; one with parallel coordinates gets a domain panel.
    specs = [[{"type": "domain"}] if _domain(figs[k]) else [{"type": "xy"}] for k in keys]
    fig = make_subplots(rows=rows, cols=1, specs=specs,
                        subplot_titles=[report.TITLES[k] for k in keys],
                        vertical_spacing=0.28 / rows)
    for row, key in enumerate(keys, start=1):
        figure = figs[key]
        if figure is None:
            axes = fig.get_subplot(row, 1)
            fig.add_annotation(text=report.empty_message(view, key), showarrow=False,
                               xref=f"{axes.xaxis.plotly_name.replace('axis', '')} domain",
                               yref=f"{axes.yaxis.plotly_name.replace('axis', '')} domain",
                               x=0.5, y=0.5)
            continue
        for trace in figure["data"]:
            if trace["type"] == "parcoords":
                trace = {**trace, "line": {**trace["line"], "colorbar": {
                    **trace["line"]["colorbar"], "len": 0.8 / rows,
                    "y": 1 - (row - 0.5) / (rows + 0.1)}}}
            else:
                # Only the Pareto scatter's markers are in the legend (not its staircase).
                trace = {**trace, "showlegend": key == "pareto" and trace.get("mode") != "lines"}
            fig.add_trace(trace, row=row, col=1)
        if not _domain(figure):
            axes = fig.get_subplot(row, 1)
            layout = figure["layout"]
            for axis in ("xaxis", "yaxis"):
                fig.update_layout({getattr(axes, axis).plotly_name: layout[axis]})
    # One legend, for the Pareto scatter (which colour is the front, which dominated or
    # infeasible), above its panel on the right; the other charts say it in their titles.
    legend = keys[0] == "pareto" and figs["pareto"] is not None and not _domain(figs["pareto"])
    fig.update_layout(height=_ROW * rows, width=1100, showlegend=legend,
                      legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.0,
                              "yanchor": "bottom"},
                      title={"text": f"{view.name}: {view.state}"},
                      margin={"l": 80, "r": 40, "t": 80, "b": 40},
                      paper_bgcolor="#ffffff", plot_bgcolor="#ffffff",
                      font={"family": "sans-serif", "size": 12})
    return fig


def png_report(view: StudyView, path: Path,
               importance: importances.Importance | None = None) -> None:
    """Write the report's charts as one PNG at ``path``."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise PngUnavailableError(
            "PNG output needs Kaleido: `pip install 'kubetune[plot]'` (it drives a Chrome or "
            "Chromium on this machine), or write the HTML report (-o report.html), which needs "
            "nothing more") from None
    fig = png_figure(view, importance)
    try:
        fig.write_image(str(path), format="png", scale=1)
    except RuntimeError as e:  # Kaleido found no browser, or the browser failed
        raise PngUnavailableError(
            f"rendering the PNG failed: {e}; install Chrome or Chromium (Debian: `apt-get "
            "install chromium`), or write the HTML report (-o report.html)") from None
