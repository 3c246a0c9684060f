"""The report as one PNG: the same four Plotly figures as the HTML report and the dashboard
(``kubetune._dashboard.charts``), laid out in one image and rendered by Kaleido, which drives
a headless Chrome or Chromium already on the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubetune._cli import importance as importances
from kubetune._cli import report
from kubetune._cli.errors import CommandError
from kubetune._cli.views import StudyView
from kubetune._dashboard import charts

__all__ = ["PngUnavailableError", "png_figure", "png_report"]

_ROW = 380


class PngUnavailableError(CommandError, RuntimeError):
    """PNG output needs Kaleido and a Chrome or Chromium; the message says which is missing."""


def png_figure(view: StudyView, importance: importances.Importance | None) -> Any:
    """The four charts as one Plotly figure: a column of four panels, parallel coordinates in
    a domain panel of its own; a chart with nothing to draw says so in its panel."""
    from plotly.subplots import make_subplots

    figs = report.figures(view, importance)
    specs = [[{"type": "domain"}] if k == "parallel" else [{"type": "xy"}]
             for k in report.CHARTS]
    fig = make_subplots(rows=len(report.CHARTS), cols=1, specs=specs,
                        subplot_titles=[report.TITLES[k] for k in report.CHARTS],
                        vertical_spacing=0.07)
    for row, key in enumerate(report.CHARTS, start=1):
        figure = figs[key]
        if figure is None:
            fig.add_annotation(text=charts.empty_message(view, key), showarrow=False,
                               xref="x domain" if row == 1 else f"x{row} domain",
                               yref="y domain" if row == 1 else f"y{row} domain",
                               x=0.5, y=0.5)
            continue
        for trace in figure["data"]:
            if trace["type"] == "parcoords":
                trace = {**trace, "line": {**trace["line"], "colorbar": {
                    **trace["line"]["colorbar"], "len": 0.2, "y": 1 - (row - 0.5) / 4.1}}}
            fig.add_trace(trace, row=row, col=1)
        layout = figure["layout"]
        if key != "parallel":
            for axis in ("xaxis", "yaxis"):
                fig.update_layout({f"{axis}{'' if row == 1 else row}": layout[axis]})
    fig.update_layout(height=_ROW * len(report.CHARTS), width=1100, showlegend=False,
                      title={"text": f"{view.name}: {view.state}"},
                      margin={"l": 80, "r": 40, "t": 80, "b": 40},
                      paper_bgcolor="#ffffff", plot_bgcolor="#ffffff",
                      font={"family": "sans-serif", "size": 12})
    return fig


def png_report(view: StudyView, path: Path,
               importance: importances.Importance | None = None) -> None:
    """Write the four charts as one PNG at ``path``."""
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
