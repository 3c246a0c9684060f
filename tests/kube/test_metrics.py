"""kube.metrics: reconciles counted by result with controller-runtime's names."""

from __future__ import annotations

import pytest
from kubetune.kube.metrics import CONTROLLER, Metrics


def sample(m: Metrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_reconcile_counts_as_success_or_error_and_is_timed() -> None:
    m = Metrics()
    with m.reconciling():
        pass
    with pytest.raises(RuntimeError), m.reconciling():
        raise RuntimeError("boom")
    assert sample(m, "controller_runtime_reconcile_total", controller=CONTROLLER,
                  result="success") == 1
    assert sample(m, "controller_runtime_reconcile_total", controller=CONTROLLER,
                  result="error") == 1
    assert sample(m, "controller_runtime_reconcile_errors_total", controller=CONTROLLER) == 1
    assert sample(m, "controller_runtime_reconcile_time_seconds_count",
                  controller=CONTROLLER) == 2


def test_suggestions_are_timed() -> None:
    m = Metrics()
    assert m.timed_suggest(lambda n: [n])(3) == [3]
    assert sample(m, "kubetune_suggestion_seconds_count") == 1
