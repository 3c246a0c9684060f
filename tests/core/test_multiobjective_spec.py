"""Several objectives and constraints in a spec: what parse_spec accepts and refuses, how a
trial's violation is measured, and how the result protocol carries the metrics."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubetune.core import protocol
from kubetune.core.objectives import Constraint, broken, judged, violation
from kubetune.core.protocol import TrialResult
from kubetune.core.spec import (
    SpecError,
    constraints_of,
    minimize,
    objectives_of,
    parse_spec,
    reported,
    watched,
)
from kubetune.core.trials import Trial, TrialState

TEMPLATE = {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}}
MULTI: dict[str, Any] = {
    "objectives": [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize", "reference": 50.0},
    ],
    "constraints": [{"metric": "params_count", "max": 1e6}],
    "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "jobTemplate": TEMPLATE,
}


def with_(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(MULTI)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def problems(obj: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(obj)
    return str(e.value)


def test_several_objectives_and_constraints_parse():
    s = parse_spec(MULTI)
    assert [(o.metric, o.minimize) for o in objectives_of(s)] == [
        ("accuracy", False), ("latency_ms", True)]
    assert constraints_of(s) == (Constraint("params_count", 1e6, None),)
    assert reported(s) == ("accuracy", "latency_ms", "params_count")
    assert watched(s).metric == "accuracy" and not minimize(s)


def test_early_stopping_metric_picks_the_watched_objective():
    s = parse_spec(with_(earlyStopping={"name": "asha", "metric": "latency_ms"}))
    assert watched(s).metric == "latency_ms" and minimize(s)


def test_one_objective_is_unchanged_and_constraints_work_with_it():
    s = parse_spec(with_(objectives=..., objective={"metric": "loss", "direction": "minimize"}))
    assert objectives_of(s)[0].metric == "loss" and reported(s) == ("loss", "params_count")


@pytest.mark.parametrize(("changes", "words"), [
    ({"objectives": ...}, "give exactly one of objective and objectives: neither"),
    ({"objective": {"metric": "a", "direction": "minimize"}},
     "give exactly one of objective and objectives: both"),
    ({"objectives": [{"metric": "a", "direction": "minimize"}]}, "spec.objectives"),
    ({"objectives": [{"metric": "a", "direction": "minimize"}] * 5}, "spec.objectives"),
    ({"objectives": [{"metric": "a", "direction": "minimize"},
                     {"metric": "a", "direction": "maximize"}]},
     "spec.objectives[1].metric: repeats an earlier objective's metric"),
    ({"earlyStopping": {"name": "median"}},
     "spec.earlyStopping.metric: must name the objective whose learning curve is judged"),
    ({"earlyStopping": {"name": "median", "metric": "loss"}}, "set it to one of"),
    ({"algorithm": {"name": "cmaes"}}, "spec.algorithm.name: takes one objective"),
    ({"warmStart": {"studies": ["earlier"]}}, "spec.warmStart: carries over trials of one"),
    ({"constraints": [{"metric": "m"}]}, "has neither max nor min"),
    ({"constraints": [{"metric": "m", "min": 2, "max": 1}]}, "exceeds max"),
    ({"metricsFrom": {"log": {"pattern": "acc=(?P<value>[0-9.]+)"}}},
     "spec.metricsFrom.log: reads one metric from the log"),
])
def test_bad_multi_objective_specs_name_the_field_and_the_fix(changes, words):
    assert words in problems(with_(**changes))


def test_nsga2_is_refused_for_one_objective():
    text = problems(with_(objectives=..., objective={"metric": "l", "direction": "minimize"},
                          algorithm={"name": "nsga2"}))
    assert "spec.algorithm.name: is for studies with several objectives" in text


def test_a_single_objective_early_stopping_metric_must_be_the_objective():
    text = problems(with_(objectives=..., objective={"metric": "l", "direction": "minimize"},
                          earlyStopping={"name": "median", "metric": "other"}))
    assert "spec.earlyStopping.metric: names a metric that is not the objective" in text


def test_violation_is_normalised_per_bound_and_none_when_unknown():
    cons = (Constraint("mem", max=8.0), Constraint("acc", min=0.5))
    assert violation({"mem": 8.0, "acc": 0.5}, cons) == 0.0
    assert violation({"mem": 12.0, "acc": 0.5}, cons) == pytest.approx(0.5)
    assert violation({"mem": 4.0, "acc": 0.25}, cons) == pytest.approx(0.25)
    assert violation({"mem": 4.0}, cons) is None
    assert violation({"mem": 4.0}, ()) is None
    assert broken({"mem": 9.25, "acc": 0.6}, cons) == ["mem 9.25 > max 8"]


def test_judged_sets_violation_only_where_there_are_values():
    ts = (Trial(0, {}, TrialState.SUCCEEDED, 1.0, values={"m": 3.0}),
          Trial(1, {}, TrialState.RUNNING))
    out = judged(ts, (Constraint("m", max=2.0),))
    assert out[0].violation == pytest.approx(0.5) and not out[0].feasible
    assert out[1].violation is None and out[1].feasible
    assert judged(ts, ()) == ts


def test_result_values_round_trip_and_bad_ones_are_refused():
    r = TrialResult(TrialState.SUCCEEDED, "Infeasible", 0.9, 3, ((3, 0.9),), "breaks m",
                    {"accuracy": 0.9, "latency_ms": 12})
    back = protocol.parse_result(protocol.encode_result(r))
    assert back.values == {"accuracy": 0.9, "latency_ms": 12.0} and back.reason == "Infeasible"
    plain = protocol.encode_result(TrialResult(TrialState.SUCCEEDED, value=1.0))
    assert "values" not in plain and protocol.parse_result(plain).values == {}
    with pytest.raises(ValueError, match="not a finite number"):
        protocol.encode_result(TrialResult(TrialState.SUCCEEDED, value=1.0,
                                           values={"a": float("nan")}))
    with pytest.raises(protocol.ProtocolError, match="values"):
        protocol.parse_result('{"state":"Succeeded","curve":[],"values":{"a":"x"}}')
