"""Trials that are another resource than a Job (``spec.trialTemplate``): JobSet, a Kubeflow
training job, any custom resource whose conditions say when it succeeded or failed. Pure.

A kind is told by its API group, its resource (the plural in its API path), the condition
types that mean success and failure, and the labels of the pod that reports the metrics.
``KNOWN`` holds them for the kinds we know; a template of another kind gives all four.
Every pod template inside a trial's spec (any mapping whose ``spec`` lists ``containers``)
gets kubetune's labels, finalizer and environment, wherever the kind keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KNOWN",
    "Resource",
    "TrialKind",
    "kind_of",
    "pod_templates",
]


@dataclass(frozen=True)
class Resource:
    """A kind of resource the operator watches for trials, named as its --workload flag
    takes it: ``jobsets.jobset.x-k8s.io/v1alpha2`` (resource.group/version)."""

    group: str
    version: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Resource:
        """Raises ValueError with the expected form."""
        left, _, version = text.strip().partition("/")
        resource, _, group = left.partition(".")
        if not (resource and group and version) or "/" in version:
            raise ValueError(f"{text!r} is not resource.group/version, e.g. "
                             "jobsets.jobset.x-k8s.io/v1alpha2")
        return cls(group, version, resource)

    @property
    def name(self) -> str:
        return f"{self.resource}.{self.group}/{self.version}"


@dataclass(frozen=True)
class TrialKind:
    """How kubetune runs and reads trials of one kind of resource."""

    group: str
    version: str
    resource: str  # the plural in the resource's API path, e.g. jobsets
    success: str  # the condition type that is True once the trial succeeded
    failure: str  # ... once it failed
    metrics_pod: dict[str, str] = field(default_factory=dict)  # labels of the reporting pod

    def encode(self) -> str:
        """The annotation that lets a trial object describe itself to ``observe``."""
        return json.dumps({"apiVersion": f"{self.group}/{self.version}",
                           "resource": self.resource, "success": self.success,
                           "failure": self.failure, "metricsPod": self.metrics_pod},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> TrialKind | None:
        """The kind an annotation describes; None for text that is not one."""
        try:
            data = json.loads(text)
            group, _, version = str(data["apiVersion"]).rpartition("/")
            return cls(group, version, str(data["resource"]), str(data["success"]),
                       str(data["failure"]), {str(k): str(v)
                                              for k, v in dict(data["metricsPod"]).items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @property
    def watched_as(self) -> Resource:
        return Resource(self.group, self.version, self.resource)

    def collection(self, namespace: str) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.resource}"


def _jobset_metrics_pod(spec: Mapping[str, Any]) -> dict[str, str]:
    """The first pod of the first Job of the first replicated Job."""
    jobs = spec.get("replicatedJobs") or [{}]
    first = jobs[0] if isinstance(jobs, list) and jobs else {}
    return {"jobset.sigs.k8s.io/replicatedjob-name": str(first.get("name", "")),
            "jobset.sigs.k8s.io/job-index": "0"}


def _pytorchjob_metrics_pod(spec: Mapping[str, Any]) -> dict[str, str]:
    """The master's pod (Kubeflow's training operator labels replicas by lower-cased type)."""
    return {"training.kubeflow.org/replica-type": "master",
            "training.kubeflow.org/replica-index": "0"}


# kind -> (group, resource, success, failure, labels of the reporting pod given the spec).
# JobSet is proven end to end (tests/e2e/test_jobset_study.py, JobSet's controller in
# devcluster); PyTorchJob follows Kubeflow training operator v1's labels and conditions.
KNOWN: dict[str, tuple[str, str, str, str, Callable[[Mapping[str, Any]], dict[str, str]]]] = {
    "JobSet": ("jobset.x-k8s.io", "jobsets", "Completed", "Failed", _jobset_metrics_pod),
    "PyTorchJob": ("kubeflow.org", "pytorchjobs", "Succeeded", "Failed",
                   _pytorchjob_metrics_pod),
}


def kind_of(template: Mapping[str, Any]) -> TrialKind | None:
    """The kind of ``trialTemplate``: the template's own fields (resource, successCondition,
    failureCondition, metricsPod.matchLabels) over what ``KNOWN`` says of its kind; None when
    something is missing (``_spec_problems`` says what)."""
    kind = str(template.get("kind") or "")
    group, _, version = str(template.get("apiVersion") or "").rpartition("/")
    spec = template.get("spec") if isinstance(template.get("spec"), Mapping) else {}
    known = KNOWN.get(kind)
    if known is not None and known[0] != group:
        known = None
    resource = template.get("resource") or (known[1] if known else None)
    success = template.get("successCondition") or (known[2] if known else None)
    failure = template.get("failureCondition") or (known[3] if known else None)
    selector = (template.get("metricsPod") or {}).get("matchLabels")
    if selector is None and known is not None:
        selector = known[4](spec or {})
    if not (group and version and resource and success and failure and selector):
        return None
    return TrialKind(group, version, str(resource), str(success), str(failure),
                     {str(k): str(v) for k, v in dict(selector).items()})


def pod_templates(node: Any) -> Iterator[dict[str, Any]]:
    """Every pod template (a mapping whose ``spec`` has a ``containers`` list) inside
    ``node``, outermost first; a pod template's own insides are not searched."""
    if isinstance(node, dict):
        spec = node.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
            yield node
            return
        for value in node.values():
            yield from pod_templates(value)
    elif isinstance(node, list):
        for value in node:
            yield from pod_templates(value)
