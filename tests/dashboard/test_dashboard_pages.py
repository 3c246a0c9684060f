"""The dashboard's payloads: bounded at 10,000 trials, charts thinned without losing what
matters (every improvement, the best trials), the trial table sorted on the server."""

from __future__ import annotations

import json

import pytest
from kubetune._cli import views
from kubetune._dashboard import charts, pages
from synthetic import several_objectives, study_object, trial_jobs, view_with_pending


@pytest.fixture(scope="module")
def big() -> views.StudyView:
    return views.view_of(study_object(), trial_jobs(10_000))


def test_a_study_of_10000_trials_fits_a_bounded_page(big: views.StudyView):
    assert len(big.trials) == 10_000
    summary = pages.study_summary(study_object(), now=2_000_000.0)
    page = json.dumps(pages.study_page(big, summary, now=2_000_000.0))
    table = json.dumps(pages.trial_rows(big, {}, now=2_000_000.0))
    assert len(page) + len(table) < 2_000_000
    history = charts.history(big)
    assert sum(len(t["x"]) for t in history["data"] if t["mode"] == "markers") \
        == charts.MAX_HISTORY
    lines = [t for t in charts.curves(big)["data"] if t["name"] != "pruned here"]
    numbers = [n for t in lines for n in t["customdata"] if n is not None]
    assert len(set(numbers)) == charts.MAX_CURVES
    assert max(numbers.count(n) for n in set(numbers)) <= charts.CURVE_POINTS
    assert len(lines) <= 5  # one trace per state, not one per trial


def test_thinned_history_keeps_every_improvement_and_the_best(big: views.StudyView):
    kept = {t.number for t in charts.history_trials(big)}
    best = views.best_so_far(big.trials, minimize=True)
    improvements = {n for i, (n, v) in enumerate(best) if i == 0 or v < best[i - 1][1]}
    assert improvements <= kept
    ranked = views.ranked_rows(big.trials, minimize=True)
    assert {r.trial.number for r in ranked[:100]} <= kept
    (line,) = [t for t in charts.history(big)["data"] if t["name"] == "best so far"]
    assert line["y"][-1] == best[-1][1] and line["x"][-1] == 9999


def test_thin_curve_keeps_the_ends():
    curve = [(s, 1.0 / s) for s in range(1, 1001)]
    thin = charts.thin_curve(curve, 50)
    assert len(thin) == 50 and thin[0] == curve[0] and thin[-1] == curve[-1]
    assert charts.thin_curve(curve[:10], 50) == curve[:10]


def test_trial_table_sorts_on_the_server_and_keeps_missing_values_last(big: views.StudyView):
    by_value = pages.trial_rows(big, {}, 2e6, sort="value", limit=10_000)
    assert by_value["total"] == 10_000 and len(by_value["rows"]) == pages.MAX_ROWS
    values = [r["value"] for r in by_value["rows"]]
    assert values == sorted(values)
    down = pages.trial_rows(big, {}, 2e6, sort="value", descending=True)["rows"]
    assert [r["value"] for r in down] == sorted((r["value"] for r in down), reverse=True)
    assert down[0]["value"] == max(t.value for t in big.trials)
    numbers = pages.trial_rows(big, {7: "pod-7"}, 2e6, sort="number", descending=True)
    assert [r["number"] for r in numbers["rows"][:3]] == [9999, 9998, 9997]
    rank = pages.trial_rows(big, {7: "pod-7"}, 2e6, sort="no-such-column")
    assert rank["sort"] == "rank" and rank["rows"][0]["rank"] == 1
    assert next(r for r in pages.trial_rows(big, {7: "pod-7"}, 2e6, sort="number")["rows"]
                if r["number"] == 7)["pod"] == "pod-7"


def test_missing_durations_sort_last_both_ways():
    view = view_with_pending()
    for desc in (False, True):
        rows = pages.trial_rows(view, {}, 2000.0, sort="duration", descending=desc)["rows"]
        assert rows[-1]["duration"] is None and rows[0]["duration"] is not None


def test_study_summary_from_status():
    s = pages.study_summary(study_object(max_trials=40), now=1_000_090.0)
    assert s["status"] == "MaxTrialsReached" and s["done"] == 40 and s["maxTrials"] == 40
    assert s["age"] == "1m30s" and s["metric"] == "val_loss"


def test_incremental_reader_reads_as_observe_does_after_changes():
    import copy

    from kubetune._dashboard import incremental

    obj = study_object(max_trials=50)
    jobs = trial_jobs(40)
    reader = incremental.StudyReader()
    assert reader.view(obj, jobs, [], []).trials == views.view_of(obj, jobs).trials
    # A Job changes, one is deleted (Lost), one more appears; the study's nextTrial moves on.
    changed = copy.deepcopy(jobs)
    changed[3]["metadata"]["resourceVersion"] = "99"
    changed[3]["metadata"]["annotations"]["kubetune.dev/params"] = '{"lr": 0.5}'
    del changed[7]
    changed += trial_jobs(42)[40:]
    obj["status"]["nextTrial"] = 45
    got = reader.view(obj, changed, [], []).trials
    assert got == views.view_of(obj, changed).trials
    assert got[3].params == {"lr": 0.5} and got[7].state.value == "Lost"
    assert [t.number for t in got] == list(range(45))


def test_an_inactive_parameter_crosses_its_axis_at_off_and_the_json_has_no_nan():
    from kubetune.core import spec as specs
    from kubetune.core.trials import Trial, TrialState

    spec = specs.parse_spec({
        "objective": {"metric": "loss", "direction": "minimize"},
        "searchSpace": {"opt": {"type": "categorical", "values": ["sgd", "adam"]},
                        "mom": {"type": "float", "low": 0.5, "high": 0.9,
                                "when": {"opt": ["sgd"]}}},
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "t", "image": "i"}]}}}}})
    trials = (Trial(0, {"opt": "sgd", "mom": 0.6}, TrialState.SUCCEEDED, 1.0),
              Trial(1, {"opt": "adam"}, TrialState.SUCCEEDED, 0.5))
    view = views.StudyView(name="s", namespace="ns", spec=spec, status={}, trials=trials)
    chart = charts.parallel(view)
    json.dumps(chart, allow_nan=False)  # a browser's JSON.parse refuses NaN
    (mom,) = [d for d in chart["data"][0]["dimensions"] if d["label"] == "mom"]
    assert mom["ticktext"][0] == "off" and mom["values"] == [mom["tickvals"][0], 0.25]


def test_a_study_with_several_objectives_leads_with_its_pareto_front():
    obj = several_objectives(study_object(max_trials=40))
    view = views.view_of(obj, trial_jobs(40, latency=True))
    page = pages.study_page(view, pages.study_summary(obj, now=2_000_000.0), now=2_000_000.0)
    assert list(page["figures"]) == ["pareto", "history", "curves", "parallel"]
    front = views.pareto_of(view)
    assert front is not None and page["pareto"]["frontSize"] == len(front.front) > 1
    assert page["pareto"]["objectives"] == ["val_loss", "latency_ms"]
    names = {t["name"] for t in page["figures"]["pareto"]["data"]}
    assert "Pareto front" in names
    json.dumps(page, allow_nan=False)
    # Before any trial has succeeded the chart says why it is empty; one objective, no chart.
    empty = pages.study_page(views.view_of(obj, []), {}, now=2_000_000.0)
    assert empty["figures"]["pareto"] is None and empty["empty"]["pareto"]
    single = pages.study_page(views.view_of(study_object(max_trials=40), trial_jobs(40)), {},
                              now=2_000_000.0)
    assert "pareto" not in single["figures"] and single["pareto"] is None
