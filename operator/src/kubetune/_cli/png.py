"""The report as one PNG: the same four charts as the HTML report, drawn with matplotlib.

matplotlib is imported here only, on first use, and without pyplot (no global figure state, no
GUI backend): a ``Figure`` with the Agg canvas writes the file.
"""

from __future__ import annotations

import math
from pathlib import Path

from kubetune._cli import importance as importances
from kubetune._cli import report, views
from kubetune._cli.errors import CommandError
from kubetune._cli.views import StudyView
from kubetune.core import spec as specs
from kubetune.core.trials import TrialState

__all__ = ["MatplotlibMissingError", "png_report"]


class MatplotlibMissingError(CommandError, RuntimeError):
    """PNG output needs matplotlib, which is not installed."""


def _log_wanted(values: list[float]) -> bool:
    vs = [v for v in values if math.isfinite(v)]
    return bool(vs) and min(vs) > 0 and max(vs) / min(vs) >= 100


def _history(ax, view: StudyView) -> None:
    ax.set_title("Optimization history")
    ax.set_xlabel("trial")
    ax.set_ylabel(view.metric)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    points = [t for t in view.trials if t.has_value]
    if not points:
        ax.text(0.5, 0.5, "no values yet", ha="center", transform=ax.transAxes)
        return
    for state in TrialState:
        group = [t for t in points if t.state is state]
        if not group:
            continue
        colour = report.STATE_COLORS[state]
        ax.scatter([t.number for t in group], [t.value for t in group], s=18,
                   facecolors=colour if state is TrialState.SUCCEEDED else "none",
                   edgecolors=colour, label=state.value.lower(), zorder=3)
    best = views.best_so_far(view.trials, minimize=view.minimize)
    if best:
        last = max(t.number for t in view.trials)
        xs = [n for n, _ in best] + [last]
        ys = [v for _, v in best] + [best[-1][1]]
        ax.step(xs, ys, where="post", color="#d62728", label="best so far", zorder=2)
    if _log_wanted([float(t.value) for t in points]):  # type: ignore[arg-type]
        ax.set_yscale("log")
    ax.legend(fontsize=7)


def _parallel(ax, view: StudyView) -> None:
    ax.set_title("Parallel coordinates")
    if view.spec is None:
        return
    space = specs.space_of(view.spec)
    lines = report.parallel_trials(view, space)
    names = [*space.names, view.metric]
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yticks([])
    for i in range(len(names)):
        ax.axvline(i, color="#555", linewidth=0.8)
    if not lines:
        return
    values = [float(t.value) for t in lines]  # type: ignore[arg-type]
    lo, hi = min(values), max(values)
    log = _log_wanted(values)

    def unit(v: float) -> float:
        a, b, x = (math.log10(lo), math.log10(hi), math.log10(v)) if log else (lo, hi, v)
        return 0.5 if b == a else (x - a) / (b - a)

    n = len(lines)
    for rank, t in reversed(list(enumerate(lines))):
        ys = [*map(float, space.to_unit(t.params)), unit(float(t.value))]  # type: ignore[arg-type]
        ax.plot(range(len(names)), ys, color=report.svg.color(1.0 - rank / max(1, n - 1)),
                linewidth=1, alpha=0.8)
    for i, param in enumerate(space.params):
        for u, text in report.axis_labels(param):
            ax.text(i + 0.03, u, text, fontsize=6, va="center")
    for u in (0.0, 0.5, 1.0):
        v = (10 ** (math.log10(lo) + u * (math.log10(hi) - math.log10(lo))) if log
             else lo + u * (hi - lo))
        ax.text(len(names) - 1 + 0.03, u, views.format_value(float(f"{v:.3g}")), fontsize=6,
                va="center")
    ax.set_ylim(-0.05, 1.05)


def _curves(ax, view: StudyView) -> None:
    ax.set_title("Learning curves (x: pruned)")
    ax.set_xlabel("step")
    ax.set_ylabel(view.metric)
    shown = report.curve_trials(view)
    values = []
    for t in shown:
        pts = [(s, v) for s, v in t.curve if math.isfinite(v)]
        if not pts:
            continue
        values += [v for _, v in pts]
        colour = report.STATE_COLORS[t.state]
        style = "--" if t.state is TrialState.PRUNED else "-"
        ax.plot([s for s, _ in pts], [v for _, v in pts], style, color=colour, linewidth=1,
                alpha=0.75, marker="o" if len(pts) == 1 else None, markersize=3)
        if t.state is TrialState.PRUNED:
            ax.plot([pts[-1][0]], [pts[-1][1]], "x", color=colour, markersize=6)
    if _log_wanted(values):
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _importance(ax, view: StudyView, result: importances.Importance | None) -> None:
    ax.set_title("Parameter importance (fANOVA on a GP)")
    if result is None:
        ax.text(0.5, 0.5, "not enough succeeded trials", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    names = [n for n, _ in result.shares][::-1]
    shares = [s for _, s in result.shares][::-1]
    ax.barh(names, shares, color=report.svg.color(0.35))
    ax.set_xlim(0, 1)
    for i, s in enumerate(shares):
        ax.text(s + 0.01, i, f"{s:.0%}", va="center", fontsize=8)


def png_report(view: StudyView, path: Path,
               importance: importances.Importance | None = None) -> None:
    """Write the four charts as one 2x2 PNG at ``path``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissingError(
            "PNG output needs matplotlib, which is not installed: `pip install matplotlib`, or "
            "write the HTML report (-o report.html), which needs nothing more") from None
    fig = Figure(figsize=(13, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    fig.suptitle(f"{view.name}: {view.state}")
    _history(axes[0][0], view)
    _parallel(axes[0][1], view)
    _curves(axes[1][0], view)
    _importance(axes[1][1], view, importance)
    fig.savefig(path, format="png")
