"""Studies with several objectives and constraints in the command: the Pareto view, `get`'s
header and tables, the JSON, `watch`, and the Pareto front in `plot`'s HTML and PNG."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_cases import SPEC, mixed_trials, study_view, trial
from kubetune import cli
from kubetune._cli import importance, pareto_plot, png, render, report, views
from kubetune._cli.journal import Journal
from kubetune._dashboard import plotlyjs
from kubetune.core import pareto
from kubetune.core import spec as specs
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import Trial, TrialState
from test_report import many_trials

NOW = 1060.0


def mo_spec(objectives: list[dict[str, Any]] | None = None,
            constraints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The command tests' spec with several objectives (accuracy up, latency down by default)
    and a params_count limit."""
    spec = copy.deepcopy(SPEC)
    del spec["objective"]
    spec["objectives"] = objectives or [{"metric": "acc", "direction": "maximize"},
                                        {"metric": "ms", "direction": "minimize"}]
    spec["constraints"] = [{"metric": "size", "max": 100.0}] if constraints is None \
        else constraints
    spec["earlyStopping"]["metric"] = spec["objectives"][0]["metric"]
    return spec


def done(number: int, values: dict[str, float], *, infeasible: bool = False,
         x: float = 0.0) -> Trial:
    """A Succeeded trial with its final report's ``values``; ``value`` the first objective's."""
    first = next(iter(values.values()))
    return Trial(number, {"x": x, "lr": 0.01, "opt": "adam"}, TrialState.SUCCEEDED, first,
                 ((1, first), (2, first)), "Infeasible" if infeasible else None,
                 "breaks size > max 100" if infeasible else None, 1000.0, 1010.0,
                 values=values)


# (acc, ms, size): 0, 1, 5 and 6 are on the front; 3 is dominated by 1 (rank 1), 2 by 3 as
# well (rank 2); 4 beats them all but is too large.
POINTS = [(0.90, 1.0, 10.0), (0.95, 2.0, 20.0), (0.93, 3.0, 30.0), (0.94, 2.5, 30.0),
          (0.99, 0.5, 500.0), (0.97, 3.0, 50.0), (0.98, 9.0, 90.0)]


def mo_trials() -> list[Trial]:
    out = [done(i, {"acc": a, "ms": m, "size": s}, infeasible=s > 100, x=i / 10)
           for i, (a, m, s) in enumerate(POINTS)]
    out.append(trial(7, "Running", 0.5, x=0.2, start=1050.0))
    out.append(trial(8, "Pruned", 0.3, x=-1.0, reason="EarlyStopped"))
    out.append(trial(9, "Failed", None, reason="MetricMissing"))
    return out


def mo_view(trials: list[Trial] | None = None, spec: dict[str, Any] | None = None
            ) -> views.StudyView:
    return study_view(mo_trials() if trials is None else trials, spec=spec or mo_spec())


# --- the Pareto view -------------------------------------------------------------------------


def test_the_front_ranks_feasible_succeeded_trials_and_leaves_infeasible_ones_out():
    front = views.pareto_of(mo_view())
    assert front is not None
    assert {r.trial.number for r in front.front} == {0, 1, 5, 6}
    assert {r.trial.number: r.rank for r in front.rows} == {0: 0, 1: 0, 5: 0, 6: 0, 3: 1, 2: 2}
    assert [t.number for t in front.infeasible] == [4]
    # The ends of a front of more than two are the least crowded: they come first.
    assert [r.trial.number for r in front.front][:2] == [0, 6]
    assert views.pareto_of(study_view(mo_trials())) is None  # one objective: no front


def test_hypervolume_and_reference_are_the_operators_and_match_a_brute_force():
    front = views.pareto_of(mo_view())
    assert front is not None and front.reference is not None
    # No reference in the spec: the worst of the (here 6) feasible trials, pushed out by a
    # tenth of the range: acc 0.90 - 0.008, ms 9.0 + 0.8.
    assert front.reference == pytest.approx({"acc": 0.892, "ms": 9.8})
    # Brute force: the area dominated by the front, on a fine grid of cells.
    pts = [(-a, m) for a, m, s in POINTS if s <= 100]
    ref = (-0.892, 9.8)
    xs = sorted({p[0] for p in pts} | {ref[0]})
    ys = sorted({p[1] for p in pts} | {ref[1]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(itertools.pairwise(xs),
                                                itertools.pairwise(ys)):
        if any(px <= x0 and py <= y0 for px, py in pts):
            area += (x1 - x0) * (y1 - y0)
    assert front.hypervolume == pytest.approx(area)


def test_a_given_reference_point_is_used():
    spec = mo_spec([{"metric": "acc", "direction": "maximize", "reference": 0.5},
                    {"metric": "ms", "direction": "minimize", "reference": 20.0}])
    front = views.pareto_of(mo_view(spec=spec))
    assert front is not None and front.reference == {"acc": 0.5, "ms": 20.0}


def test_the_shown_front_is_thinned_by_crowding_and_ordered_by_the_first_objective():
    # 30 points on a line of the trade-off: every one is on the front.
    trials = [done(i, {"acc": 0.5 + i / 100, "ms": 1.0 + i, "size": 1.0}) for i in range(30)]
    front = views.pareto_of(mo_view(trials))
    assert front is not None and len(front.front) == 30
    shown = front.shown_front(5)
    assert shown[0].trial.number == 29  # acc is maximised: best first
    assert {0, 29} <= {r.trial.number for r in shown} and len(shown) == 5
    y = front.matrix([r.trial for r in sorted(front.front, key=lambda r: r.trial.number)])
    assert sorted(r.trial.number for r in shown) == list(pareto.thin(y, 5))


def test_leaderboard_rows_put_the_front_first_then_the_unranked():
    rows = views.leaderboard_rows(mo_view())
    assert [(r.rank, r.trial.number) for r in rows][:6] == [
        (0, 0), (0, 6), (0, 5), (0, 1), (1, 3), (2, 2)]
    # Unranked: the infeasible trial first, then Running, Pruned, Failed.
    assert [(r.rank, r.trial.number) for r in rows][6:] == [(None, 4), (None, 7), (None, 8),
                                                            (None, 9)]


def test_one_objective_with_a_constraint_never_ranks_an_infeasible_trial():
    spec = copy.deepcopy(SPEC)
    spec["constraints"] = [{"metric": "size", "max": 100.0}]
    small = [done(0, {"loss": 0.5, "size": 10.0}), done(1, {"loss": 0.1, "size": 900.0},
                                                        infeasible=True),
             done(2, {"loss": 0.3, "size": 50.0})]
    view = study_view(small, spec=spec)
    rows = views.ranked_rows(view.trials, minimize=True)
    assert [(r.rank, r.trial.number) for r in rows] == [(1, 2), (2, 0), (None, 1)]
    best = view.best()
    assert best is not None and best.number == 2
    assert views.best_so_far(view.trials, minimize=True) == [(0, 0.5), (2, 0.3)]
    assert view.infeasible == 1
    header = render.study_header(view)
    assert "Objective: minimize loss; constraints: size <= 100; algorithm random" in header
    assert "Infeasible: 1 succeeded trial broke a constraint" in header
    assert "Best: trial 2, loss 0.3" in header
    table = render.leaderboard_table(view, NOW).splitlines()
    assert "Succeeded (Infeasible)" in table[-1] and table[-1].split()[0] == "-"


# --- get: the header and the tables -----------------------------------------------------------


def test_the_header_says_the_front_and_hypervolume_instead_of_a_best_trial():
    header = render.study_header(mo_view()).splitlines()
    assert header[1] == ("Objectives: maximize acc, minimize ms; constraints: size <= 100; "
                         "algorithm random, early stopping median on acc")
    assert header[3] == ("Pareto front: 4 trials, hypervolume 0.6044 (reference point acc "
                         "0.892, ms 9.8)")
    assert header[4] == ("Infeasible: 1 succeeded trial broke a constraint (never best, never "
                         "on a front)")
    assert not any(line.startswith("Best:") for line in header)
    empty = render.study_header(mo_view([trial(0, "Running", 0.4)]))
    assert "Pareto front: none yet (no feasible trial has succeeded)" in empty


def test_the_front_table_has_a_column_per_objective_then_the_params():
    text = render.leaderboard_table(mo_view(), NOW)
    front, rest = text.split("\n\nAll trials, by non-dominated rank (0: on the front):\n")
    lines = front.splitlines()
    assert lines[0] == "Pareto front: 4 trials, by acc (higher is better):"
    assert lines[1].split() == ["TRIAL", "ACC", "MS", "x", "lr", "opt"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["6", "0.98", "9"], ["5", "0.97", "3"], ["1", "0.95", "2"], ["0", "0.9", "1"]]
    table = rest.splitlines()
    assert table[0].split() == ["RANK", "TRIAL", "ACC", "MS", "STATE", "x", "lr", "opt",
                                "DURATION"]
    assert [line.split()[:2] for line in table[1:5]] == [["0", "0"], ["0", "6"], ["0", "5"],
                                                         ["0", "1"]]
    infeasible = next(line for line in table if line.split()[1] == "4")
    assert "Succeeded (Infeasible)" in infeasible and infeasible.split()[0] == "-"
    running = next(line for line in table if line.split()[1] == "7")
    assert running.split()[2:4] == ["0.5", "-"]  # the watched objective so far, no final report
    limited = render.leaderboard_table(mo_view(), NOW, limit=2).splitlines()
    assert "4 trials, by acc (higher is better); 2 shown, thinned by crowding distance" in \
        limited[0]
    assert limited[-1] == "... and 8 more trials (--limit 0 shows all)"


def test_the_watch_frame_shows_the_front():
    frame = render.watch_frame(mo_view(), NOW, width=120)
    assert "pareto front: 4 trials, hypervolume 0.6044" in frame
    assert frame.count("; 1 infeasible") == 1
    assert "Pareto front: 4 trials, by acc" in frame
    assert "best acc" not in frame
    assert all(len(line) <= 120 for line in frame.splitlines())


def test_the_studies_list_adds_front_when_a_study_has_several_objectives():
    single = {"metadata": {"name": "one"}, "spec": {"budget": {"maxTrials": 10}},
              "status": {"phase": "Running", "progress": "3/10", "bestValue": "0.5",
                         "trials": {"running": 1}}}
    several = {"metadata": {"name": "two"},
               "spec": {"objectives": [{"metric": "a", "direction": "maximize"},
                                       {"metric": "b", "direction": "minimize"}],
                        "budget": {"maxTrials": 40}},
               "status": {"phase": "Running", "progress": "12/40", "frontSize": 7,
                          "trials": {"running": 4}}}
    lines = render.studies_table([single, several], NOW).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "FRONT", "AGE"]
    assert lines[1].split() == ["one", "Running", "3/10", "1", "0.5", "-", "-"]
    assert lines[2].split() == ["two", "Running", "12/40", "4", "-", "7", "-"]
    assert "FRONT" not in render.studies_table([single], NOW)


# --- get -o json ------------------------------------------------------------------------------


def test_json_carries_the_objectives_front_and_each_trials_values():
    data = report.ranked_data(mo_view())
    assert data["objectives"] == [{"metric": "acc", "direction": "maximize"},
                                  {"metric": "ms", "direction": "minimize"}]
    assert data["frontSize"] == 4 and data["infeasible"] == 1
    assert data["hypervolume"] == pytest.approx(0.6044)
    assert data["paretoFront"] == [6, 5, 1, 0]
    assert [(t["rank"], t["number"]) for t in data["trials"]][:6] == [
        (0, 0), (0, 6), (0, 5), (0, 1), (1, 3), (2, 2)]
    by_number = {t["number"]: t for t in data["trials"]}
    assert by_number[4]["values"] == {"acc": 0.99, "ms": 0.5, "size": 500.0}
    assert by_number[4]["infeasible"] is True and by_number[4]["rank"] is None
    assert by_number[0]["infeasible"] is False
    json.dumps(data, allow_nan=False)


# --- plot: the Pareto front -------------------------------------------------------------------


def traces(fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in fig["data"]}


def test_two_objectives_draw_a_scatter_with_the_front_joined_by_a_staircase():
    fig = pareto_plot.figure(mo_view())
    assert fig is not None
    drawn = traces(fig)
    assert set(drawn) == {"dominated", "infeasible", "front", "Pareto front", "reference point"}
    assert sorted(drawn["Pareto front"]["customdata"]) == [0, 1, 5, 6]
    assert sorted(drawn["dominated"]["customdata"]) == [2, 3]
    assert drawn["dominated"]["marker"]["color"] == pareto_plot.DOMINATED_COLOR
    assert drawn["infeasible"]["customdata"] == [4]
    assert drawn["infeasible"]["marker"]["symbol"] == "x-thin"
    assert "breaks size > max 100" in drawn["infeasible"]["text"][0]
    # acc is maximised, ms minimised: between two front points the line turns at the lower
    # acc and the higher ms, the side they dominate.
    line = list(zip(drawn["front"]["x"], drawn["front"]["y"], strict=True))
    assert line == [(0.9, 1.0), (0.9, 2.0), (0.95, 2.0), (0.95, 3.0), (0.97, 3.0), (0.97, 9.0),
                    (0.98, 9.0)]
    assert drawn["reference point"]["x"] == [0.892]
    assert fig["layout"]["xaxis"]["title"]["text"] == "acc (higher is better)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "ms (lower is better)"


def test_the_staircase_turns_on_the_dominated_side_for_every_direction():
    pts = [(1.0, 3.0), (2.0, 1.0)]
    assert pareto_plot.staircase(pts, (True, True)) == [(1.0, 3.0), (2.0, 3.0), (2.0, 1.0)]
    assert pareto_plot.staircase([(1.0, 1.0), (2.0, 3.0)], (False, True)) == [
        (1.0, 1.0), (1.0, 3.0), (2.0, 3.0)]
    assert pareto_plot.staircase([(1.0, 1.0), (2.0, 3.0)], (True, False)) == [
        (1.0, 1.0), (2.0, 1.0), (2.0, 3.0)]


def test_three_objectives_draw_parallel_coordinates_coloured_by_rank():
    spec = mo_spec([{"metric": "acc", "direction": "maximize"},
                    {"metric": "ms", "direction": "minimize"},
                    {"metric": "mem", "direction": "minimize"}])
    rng = np.random.default_rng(0)
    trials = [done(i, {"acc": float(rng.random()), "ms": float(rng.random()),
                       "mem": float(rng.random()), "size": 500.0 if i == 3 else 1.0},
                   infeasible=i == 3) for i in range(12)]
    view = mo_view(trials, spec)
    fig = pareto_plot.figure(view)
    assert fig is not None
    (par,) = fig["data"]
    assert par["type"] == "parcoords"
    assert [d["label"] for d in par["dimensions"]] == [
        "acc (higher is better)", "ms (lower is better)", "mem (lower is better)"]
    front = views.pareto_of(view)
    assert front is not None
    colours = par["line"]["color"]
    assert len(colours) == 12
    assert colours[0] == -1  # the infeasible trial, drawn first
    assert colours[-len(front.front):] == [0] * len(front.front)  # the front, on top
    assert par["line"]["colorbar"]["ticktext"][:2] == ["infeasible", "front"]
    assert sorted(colours[1:len(colours) - len(front.front)], reverse=True) == \
        colours[1:len(colours) - len(front.front)]


def test_the_report_puts_the_pareto_front_first():
    html = report.html_report(mo_view(), NOW)
    figs = json.loads(re.search(r'id="kubetune-figures">(.*?)</script>', html, re.S).group(1))
    assert list(figs) == ["pareto", "history", "curves", "parallel", "importance"]
    assert html.index("<h2>Pareto front</h2>") < html.index("<h2>Optimization history</h2>")
    assert "Pareto front: 4 trials, hypervolume 0.6044" in html
    assert "follow acc, the objective a trial&#x27;s learning curve reports" in html
    assert "<th>front rank</th><th>trial</th><th>acc</th><th>ms</th>" in html
    data = json.loads(re.search(r'id="kubetune-data">(.*?)</script>', html, re.S).group(1))
    assert data["frontSize"] == 4
    empty = report.html_report(mo_view([trial(0, "Running", 0.4)]), NOW)
    assert pareto_plot.EMPTY in empty


def test_a_reference_point_far_from_the_trials_is_left_off_the_scatter():
    spec = mo_spec([{"metric": "acc", "direction": "maximize", "reference": 0.0},
                    {"metric": "ms", "direction": "minimize"}])
    fig = pareto_plot.figure(mo_view(spec=spec))
    assert fig is not None and "reference point" not in traces(fig)


def test_the_png_has_the_pareto_panel_first_with_its_legend():
    fig = png.png_figure(mo_view(), None).to_dict()
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles[:2] == ["Pareto front", "Optimization history"]
    legend = {t["name"] for t in fig["data"] if t.get("showlegend")}
    assert legend == {"Pareto front", "dominated", "infeasible", "reference point"}
    assert fig["layout"]["showlegend"] is True
    assert fig["layout"]["xaxis"]["title"]["text"] == "acc (higher is better)"
    # Three objectives: the front is parallel coordinates in a panel of its own, no legend.
    spec = mo_spec([{"metric": "acc", "direction": "maximize"},
                    {"metric": "ms", "direction": "minimize"},
                    {"metric": "size", "direction": "minimize"}], constraints=[])
    three = png.png_figure(mo_view(spec=spec), None).to_dict()
    assert three["data"][0]["type"] == "parcoords"
    assert three["layout"]["showlegend"] is False


# --- the command, on a local run's journal ----------------------------------------------------


@pytest.fixture
def mo_journal(tmp_path: Path) -> Path:
    """The journal of a finished local run of the study above, written as the runner does."""
    spec = mo_spec()
    journal, _ = Journal.open(tmp_path / "tradeoff.jsonl", "tradeoff", spec)
    for t in mo_trials():
        if t.state.is_active:
            continue
        journal.trial(t.number, t.params, 1000.0)
        journal.result(t.number, TrialResult(t.state, t.reason, t.value, 2, t.curve, t.message,
                                             t.values), 1000.0, 1010.0)
    journal.finished("Succeeded", "MaxTrialsReached", "done")
    journal.close()
    specs.parse_spec(spec)
    return tmp_path / "tradeoff.jsonl"


def test_get_and_plot_a_local_run_with_several_objectives(mo_journal, tmp_path, capsys):
    assert cli.main(["get", "--journal", str(mo_journal)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Study tradeoff: MaxTrialsReached")
    assert "Pareto front: 4 trials, hypervolume 0.6044" in out
    assert "Pareto front: 4 trials, by acc (higher is better):" in out
    assert cli.main(["get", "--journal", str(mo_journal), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["paretoFront"] == [6, 5, 1, 0]
    html = tmp_path / "report.html"
    assert cli.main(["plot", "--journal", str(mo_journal), "-o", str(html)]) == 0
    assert '<div class="chart" id="pareto"></div>' in html.read_text()


def test_the_example_tradeoff_study_fits_the_trainer():
    from kubetune_trainer import params as trainer

    study = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" /
                            "tradeoff.yaml").read_text())
    spec = specs.parse_spec(study["spec"])
    assert spec.objectives is not None and len(spec.objectives) == 2
    # Every objective and constraint is a metric the trainer reports in each report.
    assert set(specs.reported(spec)) <= set(trainer.REPORTED_METRICS)
    (c,) = study["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "kubetune/trainer:0.1.0"
    flags = trainer.parse_params(trainer.parse_flags(c["args"]), from_text=True)
    assert flags["threads"] == 1  # the same for every trial, so that latencies compare
    for name, p in spec.search_space.items():
        for value in (p.values if p.values is not None else [p.low, p.high]):
            trainer.parse_params({name: value})


def test_every_figure_uses_only_the_trace_types_of_the_served_plotly_js():
    """plotly.js is served with only ``plotlyjs.TRACES`` registered: a figure of another type
    would not draw."""
    single = study_view(mixed_trials())
    imp = importance.importances(specs.space_of(single.spec), many_trials(), minimize=True)
    assert imp is not None
    three = mo_spec([{"metric": "acc", "direction": "maximize"},
                     {"metric": "ms", "direction": "minimize"},
                     {"metric": "size", "direction": "minimize"}], constraints=[])
    used = set()
    for view, imp_of in ((single, imp), (mo_view(), None), (mo_view(spec=three), None)):
        for fig in report.figures(view, imp_of).values():
            used |= {t["type"] for t in (fig or {}).get("data", [])}
    assert used == plotlyjs.TRACES
