"""The node agent's status reports: typed errors, retries with backoff up to a cap, and each
kind of failure logged once with what it means."""

from __future__ import annotations

import logging
import threading
import types
from pathlib import Path

import pytest
from kubetune.kube import errors
from kubetune_devcluster import pods

POD = {"metadata": {"uid": "u-1", "namespace": "ns", "name": "trial-0"}, "spec": {}}


class FlakyRest:
    """Raises the scripted errors first, one per call, then succeeds."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def request(self, method: str, path: str, **_: object) -> dict:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {}


def runner(tmp_path: Path, rest: FlakyRest) -> pods.PodRunner:
    agent = types.SimpleNamespace(pods_dir=tmp_path, rest=rest, stopping=threading.Event())
    return pods.PodRunner(agent, POD)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pods, "STATUS_BACKOFF", (0.001, 0.004))


def unavailable() -> errors.ApiError:
    return errors.api_error(503, '{"message": "etcd is down"}', method="PATCH", path="/x")


def test_a_final_phase_is_retried_until_it_lands_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rest = FlakyRest([unavailable() for _ in range(6)])
    with caplog.at_level(logging.INFO, logger="devcluster.pods"):
        runner(tmp_path, rest).patch_status({"phase": "Succeeded"})
    assert rest.calls == 7  # more than a passing phase's tries
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "etcd is down" in warnings[0].getMessage()
    assert "until it lands" in warnings[0].getMessage()
    assert "reported after 7 tries" in caplog.records[-1].getMessage()


def test_a_passing_phase_gets_a_few_tries_then_says_what_that_means(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rest = FlakyRest([unavailable() for _ in range(100)])
    runner(tmp_path, rest).patch_status({"phase": "Running"})
    assert rest.calls == pods.STATUS_TRIES
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.ERROR]
    assert "a later report will carry the pod's state" in caplog.records[-1].getMessage()


def test_a_final_phase_gives_up_at_its_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pods, "FINAL_STATUS_SECONDS", 0.05)
    rest = FlakyRest([unavailable() for _ in range(100_000)])
    runner(tmp_path, rest).patch_status({"phase": "Failed"})
    assert 1 < rest.calls < 100_000
    assert "its Job will not see it end" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("status", [404, 409])
def test_a_pod_that_is_gone_is_not_retried(tmp_path: Path, status: int) -> None:
    rest = FlakyRest([errors.api_error(status, "{}")])
    runner(tmp_path, rest).patch_status({"phase": "Succeeded"})
    assert rest.calls == 1


def test_a_refused_status_is_not_retried_and_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rest = FlakyRest([errors.api_error(403, '{"message": "node may not"}')])
    runner(tmp_path, rest).patch_status({"phase": "Succeeded"})
    assert rest.calls == 1
    assert "refused phase Succeeded" in caplog.records[-1].getMessage()


class Recorder:
    """Records each status patch with the GPUs the agent held free at that moment."""

    def __init__(self) -> None:
        self.free: list[int] = []
        self.seen: list[tuple[str, list[int]]] = []

    def give_gpus(self, ids: list[int]) -> None:
        self.free = sorted({*self.free, *ids})

    def request(self, method: str, path: str, *, body: dict, **_: object) -> dict:
        self.seen.append((body["status"]["phase"], list(self.free)))
        return {}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_pods_gpus_are_free_before_its_final_phase_is_reported(tmp_path: Path,
                                                                   phase: str) -> None:
    rest = Recorder()
    agent = types.SimpleNamespace(pods_dir=tmp_path, rest=rest, stopping=threading.Event(),
                                  give_gpus=rest.give_gpus)
    pod = pods.PodRunner(agent, POD)  # type: ignore[arg-type]
    pod.gpu_ids = [2, 3]
    pod.report("Running", initialized=True)
    pod.report(phase, initialized=True)
    assert rest.seen == [("Running", []), (phase, [2, 3])]
    assert pod.gpu_ids == []
