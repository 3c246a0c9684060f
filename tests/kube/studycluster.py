"""A study on the fake API (fakeapi.py), with the Job controller's and the kubelet's parts
played by hand: the trial's pod runs, reports, and ends when a test says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fakeapi import FakeApi
from kubetune.core import protocol, times
from kubetune.kube import api as paths
from kubetune.kube import conventions as names

NS = "ml"
UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
KEY = b"k" * 32
SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "recorded" / "study-spec.json").read_text())


class Store:
    """The reconcile's store, read straight from the fake (the cache has its own tests)."""

    def __init__(self, fake: FakeApi):
        self.fake = fake
        self.wrote_kinds: list[str] = []
        self.ends: list[float] = []  # what ended_seen answers, oldest first

    def jobs_of(self, uid: str) -> list[dict[str, Any]]:
        return self.fake.labelled("jobs", names.STUDY_UID_LABEL, uid)

    def pods_of(self, uid: str, settled: bool = False) -> list[dict[str, Any]]:
        return self.fake.labelled("pods", names.STUDY_UID_LABEL, uid)  # none kept aside

    def jobs_named(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [j for j in self.fake.labelled("jobs", names.STUDY_LABEL, names.label_value(name))
                if j["metadata"].get("namespace") == namespace]

    def wrote(self, kind: str, obj: dict[str, Any]) -> None:
        self.wrote_kinds.append(kind)

    def ended_seen(self, uid: str) -> float | None:
        return self.ends.pop(0) if self.ends else None


def add_study(fake: FakeApi, spec: dict[str, Any] | None = None,
              name: str = "demo") -> dict[str, Any]:
    return fake.put(paths.study_path(NS, name), {
        "apiVersion": names.API_VERSION, "kind": names.KIND,
        "metadata": {"name": name, "namespace": NS, "uid": UID, "generation": 1},
        "spec": spec or SPEC})


def study_of(fake: FakeApi, name: str = "demo") -> dict[str, Any]:
    return fake.objects[paths.study_path(NS, name)]


def jobs(fake: FakeApi) -> dict[int, dict[str, Any]]:
    return {int(j["metadata"]["labels"][names.TRIAL_LABEL]): j
            for j in fake.labelled("jobs", names.STUDY_UID_LABEL, UID)}


def run_pod(fake: FakeApi, job: dict[str, Any], now: float, *, phase: str = "Running",
            metrics: str | None = None) -> dict[str, Any]:
    """The trial's pod, as the Job controller makes it and the kubelet reports it."""
    meta = job["metadata"]
    annotations = {} if metrics is None else {names.METRICS_ANNOTATION: metrics}
    return fake.put(paths.pod_path(NS, f"{meta['name']}-p"), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{meta['name']}-p", "namespace": NS,
                     "labels": dict(meta["labels"]), "annotations": annotations,
                     "finalizers": [names.FINALIZER]},
        "spec": {"activeDeadlineSeconds": 3600},
        "status": {"phase": phase, "startTime": times.rfc3339(now)}})


def finish(fake: FakeApi, number: int, loss: float, now: float) -> None:
    """Trial ``number`` reports its final loss and its Job completes."""
    job = jobs(fake)[number]
    run_pod(fake, job, now - 5, phase="Succeeded",
            metrics=protocol.encode_metrics(2, {"loss": loss}, final=True))
    job = dict(job, status={"conditions": [{"type": "Complete", "status": "True",
                                            "lastTransitionTime": times.rfc3339(now)}],
                            "completionTime": times.rfc3339(now),
                            "startTime": times.rfc3339(now - 5)})
    fake.put(paths.job_path(NS, job["metadata"]["name"]), job)
