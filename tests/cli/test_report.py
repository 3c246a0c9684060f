"""The HTML report, the PNG and parameter importance."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from cli_cases import SPEC, mixed_trials, study_view, trial
from kubetune._cli import importance, png, report
from kubetune._dashboard import charts, plotlyjs
from kubetune.core import spec as specs
from kubetune.core.space import Space


class _Tags(HTMLParser):
    """Checks that every non-void element is closed in order."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def figures(text: str) -> dict[str, dict | None]:
    """The report's embedded Plotly figures, by chart name."""
    m = re.search(r'id="kubetune-figures">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def traces(fig: dict, name: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("name") == name]


@pytest.fixture(scope="module")
def html() -> str:
    view = study_view(mixed_trials())
    imp = importance.importances(specs.space_of(view.spec), many_trials(), minimize=True)
    return report.html_report(view, now=1060.0, importance=imp)


def many_trials(n: int = 30) -> list:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        x, lr = float(rng.uniform(-2, 2)), float(10 ** rng.uniform(-4, 0))
        opt = "adam" if i % 2 else "sgd"
        out.append(trial(i, "Succeeded", (x - 0.5) ** 2 + 0.01 * np.log10(lr) ** 2, x=x, lr=lr,
                         opt=opt))
    return out


def test_report_is_well_formed_and_self_contained(html: str):
    parser = _Tags()
    parser.feed(html)
    parser.close()
    assert parser.stack == []
    assert html.startswith("<!DOCTYPE html>")
    # Nothing is fetched: plotly.js is inline, there is no external script, style or image.
    assert "<link" not in html and " src=" not in html and "<img" not in html
    assert plotlyjs.bundle().decode()[:200].replace("</script", "<\\/script") in html
    for name in ("history", "curves", "parallel", "importance"):
        assert f'<div class="chart" id="{name}"></div>' in html


def test_history_has_one_point_per_trial_with_a_value_and_a_best_line(html: str):
    history = figures(html)["history"]
    points = [t for t in history["data"] if t["mode"] == "markers"]
    valued = [t for t in mixed_trials() if t.has_value]
    assert sorted(n for p in points for n in p["x"]) == sorted(t.number for t in valued)
    filled = {n for p in points if p["marker"]["symbol"] == "circle" for n in p["x"]}
    assert filled == {t.number for t in valued if t.state.value == "Succeeded"}
    (best,) = traces(history, "best so far")
    # The running best: 0.5 at trial 0, 0.2 from trial 1 on (5 ties, not an improvement),
    # drawn to the latest trial.
    assert best["x"] == [0, 1, 9] and best["y"] == [0.5, 0.2, 0.2]
    assert best["line"]["shape"] == "hv"


def test_parallel_coordinates_draw_each_succeeded_trial_across_every_axis(html: str):
    (par,) = figures(html)["parallel"]["data"]
    assert [d["label"] for d in par["dimensions"]] == ["x", "lr", "opt", "loss"]
    assert all(len(d["values"]) == 5 for d in par["dimensions"])
    # Best first (ties to the older trial): 0.2 (1), 0.2 (5), 0.5, 0.9, 1.5.
    assert par["dimensions"][-1]["values"] == [0.2, 0.2, 0.5, 0.9, 1.5]
    lr = par["dimensions"][1]
    assert lr["ticktext"][0] == "0.0001" and lr["ticktext"][-1] == "1"  # log axis, unit cube
    assert par["dimensions"][2]["ticktext"] == ["adam", "sgd"]


def test_parallel_coordinates_leave_out_trials_that_broke_a_constraint():
    trials = mixed_trials()
    trials[1] = dataclasses.replace(trials[1], violation=0.4)  # the best value, infeasible
    trials[5] = dataclasses.replace(trials[5], violation=0.0)
    drawn = charts.parallel_trials(study_view(trials), specs.space_of(specs.parse_spec(SPEC)))
    assert [t.number for t in drawn] == [5, 0, 4, 6]


def curve_points(fig: dict) -> dict[int, list[tuple[int, float]]]:
    """Each trial's drawn curve, from the traces that join a state's curves with gaps."""
    out: dict[int, list] = {}
    for t in fig["data"]:
        if t["name"] == "pruned here":
            continue
        for x, y, n in zip(t["x"], t["y"], t["customdata"], strict=True):
            if n is not None:
                out.setdefault(n, []).append((x, y))
    return out


def test_learning_curves_mark_pruned_trials(html: str):
    curves = figures(html)["curves"]
    drawn = curve_points(curves)
    with_curve = [t for t in mixed_trials() if t.curve]
    assert sorted(drawn) == sorted(t.number for t in with_curve)
    assert drawn[2] == [(1, 4.0), (2, 3.0)]
    (pruned,) = traces(curves, "pruned")
    assert pruned["line"]["dash"] == "dash" and set(pruned["customdata"]) == {2}
    (cross,) = traces(curves, "pruned here")
    assert cross["x"] == [2] and cross["y"] == [3.0] and cross["customdata"] == [2]


def test_importance_bars_and_embedded_data(html: str):
    (bars,) = figures(html)["importance"]["data"]
    assert sorted(bars["y"]) == ["lr", "opt", "x"]
    assert sum(bars["x"]) == pytest.approx(1.0)
    data = json.loads(re.search(r'id="kubetune-data">(.*?)</script>', html, re.S).group(1))
    assert data["study"] == "demo" and data["metric"] == "loss"
    assert [t["number"] for t in data["trials"]] == list(range(10))
    assert data["trials"][2]["curve"] == [[1, 4.0], [2, 3.0]]


def test_report_before_any_value_says_so():
    text = report.html_report(study_view([trial(0, "Pending", None, start=None)]), now=0.0)
    assert "No trial has reported a value yet." in text
    assert "Importance needs at least" in text
    assert figures(text) == dict.fromkeys(("history", "curves", "parallel", "importance"))
    assert '<div class="chart"' not in text


def test_report_escapes_user_text():
    spec = copy.deepcopy(SPEC)
    spec["searchSpace"]["opt"]["values"] = ["</script><b>x", "sgd"]
    view = study_view([trial(0, "Succeeded", 1.0, opt="</script><b>x")], spec=spec)
    text = report.html_report(view, now=0.0)
    assert "</script><b>" not in text
    parser = _Tags()
    parser.feed(text)
    assert parser.stack == []
    # The label survives, escaped, in the figure.
    (par,) = figures(text)["parallel"]["data"]
    assert par["dimensions"][2]["ticktext"][0] == "</script><b>x"


def test_importance_finds_the_parameter_that_matters():
    space = Space.from_search_space({
        "a": {"type": "float", "low": 0.0, "high": 1.0},
        "b": {"type": "float", "low": 0.0, "high": 1.0},
        "c": {"type": "categorical", "values": ["p", "q", "r"]},
    })
    rng = np.random.default_rng(0)
    trials = []
    for i in range(40):
        a, b = float(rng.random()), float(rng.random())
        t = trial(i, "Succeeded", 10 * (a - 0.3) ** 2 + 0.1 * b)
        trials.append(dataclasses.replace(t, params={"a": a, "b": b, "c": "pqr"[i % 3]}))
    result = importance.importances(space, trials, minimize=True)
    assert result is not None and result.trials == 40
    shares = dict(result.shares)
    assert result.shares[0][0] == "a" and shares["a"] > 0.8
    assert sum(shares.values()) == pytest.approx(1.0)
    assert importance.importances(space, trials, minimize=True) == result  # deterministic
    assert importance.importances(space, trials[:5], minimize=True) is None


def test_png_has_the_four_charts():
    view = study_view(mixed_trials())
    imp = importance.importances(specs.space_of(view.spec), many_trials(), minimize=True)
    fig = png.png_figure(view, imp).to_dict()
    kinds = sorted({t["type"] for t in fig["data"]})
    assert kinds == ["bar", "parcoords", "scatter"]
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles == ["Optimization history", "Learning curves", "Parallel coordinates",
                      "Parameter importance"]


def test_png_without_data_says_so_in_each_panel():
    fig = png.png_figure(study_view([trial(0, "Pending", None, start=None)]), None).to_dict()
    texts = [a["text"] for a in fig["layout"]["annotations"]]
    assert "No trial has reported a value yet." in texts
    assert fig["data"] == []


def test_png_is_a_png(tmp_path):
    pytest.importorskip("kaleido")
    view = study_view(mixed_trials())
    path = tmp_path / "report.png"
    png.png_report(view, path, None)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 40_000  # four drawn charts, not an empty canvas
