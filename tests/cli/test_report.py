"""The HTML report, the PNG and parameter importance."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from cli_cases import SPEC, mixed_trials, study_view, trial
from kubetune._cli import importance, png, report
from kubetune.core import spec as specs
from kubetune.core.space import Space

SVG = "{http://www.w3.org/2000/svg}"


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


def charts(text: str) -> dict[str, ET.Element]:
    """Each inline <svg>, parsed as XML (so it must be well-formed), by its chart name."""
    out = {}
    for m in re.finditer(r"<svg .*?</svg>", text, flags=re.S):
        root = ET.fromstring(m.group(0))
        out[root.get("class").split()[-1]] = root
    return out


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
    # Nothing is fetched: the only URL is the SVG namespace.
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>]*", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "<link" not in html and " src=" not in html


def test_history_has_one_point_per_trial_with_a_value_and_a_best_line(html: str):
    history = charts(html)["history"]
    circles = history.findall(f".//{SVG}circle[@class='trial']")
    valued = [t for t in mixed_trials() if t.has_value]
    assert sorted(int(c.get("data-trial")) for c in circles) == sorted(t.number for t in valued)
    assert history.get("data-points") == str(len(valued))
    filled = {int(c.get("data-trial")) for c in circles if c.get("fill") != "none"}
    assert filled == {t.number for t in valued if t.state.value == "Succeeded"}
    best = history.find(f".//{SVG}path[@class='best']")
    assert best is not None and best.get("d").startswith("M")


def test_parallel_coordinates_draw_each_succeeded_trial_across_every_axis(html: str):
    parallel = charts(html)["parallel"]
    lines = parallel.findall(f".//{SVG}polyline[@class='trial']")
    assert len(lines) == 5
    assert all(len(line.get("points").split()) == 4 for line in lines)  # x, lr, opt, loss
    # The best is drawn last, on top.
    assert lines[-1].get("data-trial") == "1"


def test_learning_curves_mark_pruned_trials(html: str):
    curves = charts(html)["curves"]
    drawn = curves.findall(f".//{SVG}polyline[@class='trial']") + curves.findall(
        f".//{SVG}circle[@class='trial']")
    with_curve = [t for t in mixed_trials() if t.curve]
    assert sorted(int(e.get("data-trial")) for e in drawn) == sorted(t.number for t in with_curve)
    crosses = curves.findall(f".//{SVG}path[@class='pruned']")
    assert [c.get("data-trial") for c in crosses] == ["2"]


def test_importance_bars_and_embedded_data(html: str):
    bars = charts(html)["importance"].findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 3
    data = json.loads(re.search(r'id="kubetune-data">(.*?)</script>', html, re.S).group(1))
    assert data["study"] == "demo" and data["metric"] == "loss"
    assert [t["number"] for t in data["trials"]] == list(range(10))
    assert data["trials"][2]["curve"] == [[1, 4.0], [2, 3.0]]


def test_report_before_any_value_says_so():
    text = report.html_report(study_view([trial(0, "Pending", None, start=None)]), now=0.0)
    assert "No trial has reported a value yet." in text
    assert "Importance needs at least" in text
    assert charts(text) == {}


def test_report_escapes_user_text():
    spec = copy.deepcopy(SPEC)
    spec["searchSpace"]["opt"]["values"] = ["</script><b>x", "sgd"]
    view = study_view([trial(0, "Succeeded", 1.0, opt="</script><b>x")], spec=spec)
    text = report.html_report(view, now=0.0)
    assert "</script><b>" not in text
    parser = _Tags()
    parser.feed(text)
    assert parser.stack == []


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


def test_png_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    view = study_view(mixed_trials())
    path = tmp_path / "report.png"
    png.png_report(view, path, None)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # four drawn charts, not an empty canvas
