"""The reader of a study with several objectives or constraints: the final report must hold
every metric they need; one that breaks a constraint is Succeeded, reason Infeasible."""

from __future__ import annotations

from kubetune.core.protocol import MetricsReport
from kubetune.core.spec import parse_spec
from kubetune.core.trials import TrialState
from kubetune.kube.observe import Reader

MULTI = {
    "objectives": [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "latency_ms", "direction": "minimize", "reference": 50.0},
    ],
    "constraints": [{"metric": "params_count", "max": 1e6}],
    "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}},
}


def test_the_reader_records_every_metric_and_judges_constraints():
    reader = Reader.of(parse_spec(MULTI))
    assert reader.reported == ("accuracy", "latency_ms", "params_count")
    curve = ((2, 0.8),)
    ok = reader.succeeded(MetricsReport(2, {"accuracy": 0.8, "latency_ms": 5.0,
                                            "params_count": 1e5, "loss": 0.1}, True), curve)
    assert ok.state is TrialState.SUCCEEDED and ok.reason is None and ok.value == 0.8
    assert ok.values == {"accuracy": 0.8, "latency_ms": 5.0, "params_count": 1e5}
    bad = reader.succeeded(MetricsReport(2, {"accuracy": 0.8, "latency_ms": 5.0,
                                             "params_count": 2e6}, True), curve)
    assert bad.state is TrialState.SUCCEEDED and bad.reason == "Infeasible"
    assert "params_count 2e+06 > max 1e+06" in (bad.message or "")
    missing = reader.succeeded(MetricsReport(2, {"accuracy": 0.8, "params_count": 1}, True),
                               curve)
    assert missing.state is TrialState.FAILED and missing.reason == "MetricMissing"
    assert "'latency_ms'" in (missing.message or "")
    nan = reader.succeeded(MetricsReport(2, {"accuracy": 0.8, "latency_ms": float("inf"),
                                             "params_count": 1}, True), curve)
    assert nan.reason == "MetricNotFinite"


def test_a_single_objective_reader_records_no_values():
    single = {k: v for k, v in MULTI.items() if k not in ("objectives", "constraints")}
    s = parse_spec({**single, "objective": {"metric": "loss", "direction": "minimize"}})
    r = Reader.of(s).succeeded(MetricsReport(1, {"loss": 0.5}, True), ((1, 0.5),))
    assert r.values == {} and r.value == 0.5
