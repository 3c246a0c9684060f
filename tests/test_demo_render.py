"""What `make demo` prints at the end of a study with several objectives (scripts/demo.py's pure
renderers), from a status as the operator writes it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("kubetune_demo_script", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


STUDY = {
    "spec": {
        "objectives": [{"metric": "val_accuracy", "direction": "maximize", "reference": 0.5},
                       {"metric": "latency_ms", "direction": "minimize"}],
        "constraints": [{"metric": "params_count", "max": 30000}],
        "searchSpace": {"width": {"type": "int", "low": 8, "high": 128},
                        "lr": {"type": "float", "low": 0.001, "high": 0.03}},
    },
    "status": {
        "frontSize": 2, "hypervolume": 0.123456789,
        "referencePoint": {"val_accuracy": 0.5, "latency_ms": 2.5},
        "trials": {"infeasible": 3},
        "paretoFront": [
            {"number": 4, "values": {"val_accuracy": 0.91, "latency_ms": 0.4},
             "params": {"width": 16, "lr": 0.01}},
            {"number": 9, "values": {"val_accuracy": 0.97, "latency_ms": 1.2},
             "params": {"width": 96, "lr": 0.004}},
        ],
    },
}


def test_the_front_is_a_table_of_values_and_params_with_its_hypervolume(demo):
    text = demo.render_front(STUDY)
    assert text.startswith("Pareto front (val_accuracy higher is better, latency_ms lower is "
                           "better): 2 trials")
    header = next(line for line in text.splitlines() if line.lstrip().startswith("trial"))
    assert header.split() == ["trial", "val_accuracy", "latency_ms", "width", "lr"]
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["4"], ["9"])]
    assert [r[:3] for r in rows] == [["4", "0.91", "0.4"], ["9", "0.97", "1.2"]]
    assert "Hypervolume 0.123457 (reference point val_accuracy 0.5, latency_ms 2.5)" in text
    assert "3 trials broke a constraint" in text and "params_count" in text


def test_the_leaderboard_of_a_study_with_several_objectives_is_its_front(demo):
    assert demo.render_leaderboard(STUDY) == demo.render_front(STUDY)


def test_no_feasible_trial_means_no_front(demo):
    empty = {"spec": STUDY["spec"], "status": {"frontSize": 0, "paretoFront": []}}
    assert "no Pareto front" in demo.render_front(empty)
