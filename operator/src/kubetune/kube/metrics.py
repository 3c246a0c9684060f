"""The operator's Prometheus metrics, on their own registry (passed in, never global).

Reconcile metrics use controller-runtime's names, so dashboards made for Go operators work:
``controller_runtime_reconcile_total{controller, result}``,
``controller_runtime_reconcile_errors_total{controller}`` and
``controller_runtime_reconcile_time_seconds{controller}``. kubetune's own:
``kubetune_trials_created_total``, ``kubetune_trials_finished_total{result}``,
``kubetune_suggestion_seconds``, ``kubetune_trial_turnaround_seconds``,
``kubetune_active_studies`` and ``kubetune_event_loop_lag_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from kubetune.kube import looplag

__all__ = ["CONTROLLER", "Metrics", "serve"]

CONTROLLER = "tuningstudy"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total", "Reconciles, by result.",
            ["controller", "result"], registry=r)
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total", "Reconciles that raised.",
            ["controller"], registry=r)
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds", "Time per reconcile.", ["controller"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r)
        self.trials_created = Counter(
            "kubetune_trials_created", "Trial Jobs created.", registry=r)
        self.trials_finished = Counter(
            "kubetune_trials_finished", "Trials whose result was recorded, by state.",
            ["result"], registry=r)
        self.suggestion_seconds = Histogram(
            "kubetune_suggestion_seconds", "Time the sampler took to propose a batch.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.trial_turnaround = Histogram(
            "kubetune_trial_turnaround_seconds",
            "From a trial's end reaching the operator to its successor's Job created "
            "(the work queue, the reconcile, the sampler and the create).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.active_studies = Gauge(
            "kubetune_active_studies", "Studies neither Succeeded nor Failed.", registry=r)
        self.loop_lag = Gauge(
            "kubetune_event_loop_lag_seconds", "How late the event loop woke, latest sample.",
            registry=r)
        self.loop_lag.set_function(lambda: looplag.lag().latest)

    @contextmanager
    def reconciling(self) -> Iterator[None]:
        """Time and count one reconcile; an exception counts as an error and propagates."""
        start = time.perf_counter()
        try:
            yield
        except BaseException as e:
            if not isinstance(e, GeneratorExit):
                self.reconcile_errors.labels(CONTROLLER).inc()
                self.reconcile_total.labels(CONTROLLER, "error").inc()
            raise
        else:
            self.reconcile_total.labels(CONTROLLER, "success").inc()
        finally:
            self.reconcile_time.labels(CONTROLLER).observe(time.perf_counter() - start)

    def timed_suggest(self, suggest: Callable[..., Any]) -> Callable[..., Any]:
        """``suggest`` that records how long each call takes."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.suggestion_seconds.time():
                return suggest(*args, **kwargs)

        return timed


def serve(metrics: Metrics, url: str) -> None:
    """Serve ``metrics`` at ``url`` (e.g. http://0.0.0.0:8081/metrics) from a thread."""
    parsed = urlparse(url)
    start_http_server(parsed.port or 8081, addr=parsed.hostname or "0.0.0.0",
                      registry=metrics.registry)
