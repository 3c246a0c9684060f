"""Kueue queues for the e2e tests: a ResourceFlavor, a ClusterQueue with nominal quotas for one
test namespace and a LocalQueue in it, and Jobs that ask a queue for GPUs.

``create_queues`` installs them and waits until Kueue calls them Active; ``delete_queues`` removes
the cluster-scoped ones (the namespace's deletion takes the rest); ``gpu_queues`` does both around
a ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import PYTHON_IMAGE, Cluster, shared_volume, wait_for

__all__ = ["QUEUE_LABEL", "Queues", "create_queues", "delete_queues", "gpu_queues",
           "queue_manifests", "queued_job"]

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
API = "kueue.x-k8s.io/v1beta2"


@dataclass(frozen=True)
class Queues:
    """What ``create_queues`` made: Jobs in ``namespace`` labelled with ``labels`` queue there."""

    namespace: str
    flavor: str
    cluster_queue: str
    local_queue: str

    @property
    def labels(self) -> dict[str, str]:
        return {QUEUE_LABEL: self.local_queue}


def queue_manifests(namespace: str, *, gpus: int, cpu: str = "100",
                    memory: str = "1000Gi") -> tuple[Queues, list[dict[str, Any]]]:
    """A flavor, a ClusterQueue that admits only ``namespace``'s workloads up to these nominal
    quotas, and a LocalQueue ``gpu`` in ``namespace``."""
    queues = Queues(namespace=namespace, flavor=f"{namespace}-default",
                    cluster_queue=f"{namespace}-gpu", local_queue="gpu")
    quota = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus}
    manifests = [
        {"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": queues.flavor}},
        {"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": queues.cluster_queue},
         "spec": {
             "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
             "resourceGroups": [{
                 "coveredResources": list(quota),
                 "flavors": [{"name": queues.flavor, "resources": [
                     {"name": name, "nominalQuota": value} for name, value in quota.items()]}],
             }],
         }},
        {"apiVersion": API, "kind": "LocalQueue",
         "metadata": {"name": queues.local_queue, "namespace": namespace},
         "spec": {"clusterQueue": queues.cluster_queue}},
    ]
    return queues, manifests


def _active(cluster: Cluster, *args: str) -> bool:
    conditions = cluster.get(*args).get("status", {}).get("conditions", [])
    return any(c["type"] == "Active" and c["status"] == "True" for c in conditions)


def create_queues(cluster: Cluster, namespace: str, *, gpus: int, cpu: str = "100",
                  memory: str = "1000Gi") -> Queues:
    """Install ``queue_manifests`` and wait until both queues are Active."""
    queues, manifests = queue_manifests(namespace, gpus=gpus, cpu=cpu, memory=memory)
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": manifests})
    wait_for(lambda: _active(cluster, "clusterqueue.kueue.x-k8s.io", queues.cluster_queue),
             what=f"ClusterQueue {queues.cluster_queue} Active")
    wait_for(lambda: _active(cluster, "localqueue.kueue.x-k8s.io", "-n", namespace,
                             queues.local_queue),
             what=f"LocalQueue {namespace}/{queues.local_queue} Active")
    return queues


def delete_queues(cluster: Cluster, queues: Queues) -> None:
    """The cluster-scoped objects; Kueue holds them until the namespace's workloads are gone."""
    cluster.kubectl("delete", "clusterqueue.kueue.x-k8s.io", queues.cluster_queue,
                    "resourceflavor.kueue.x-k8s.io", queues.flavor, "--wait=false",
                    "--ignore-not-found", check=False)


@contextmanager
def gpu_queues(cluster: Cluster, namespace: str, *, gpus: int, cpu: str = "100",
               memory: str = "1000Gi") -> Iterator[Queues]:
    """``create_queues`` for the block, ``delete_queues`` after it."""
    queues = create_queues(cluster, namespace, gpus=gpus, cpu=cpu, memory=memory)
    try:
        yield queues
    finally:
        delete_queues(cluster, queues)


def queued_job(name: str, code: str, queues: Queues, *, gpus: int = 1,
               shared: Path | None = None) -> dict[str, Any]:
    """A Job that runs ``python -c code`` once, asks ``queues`` for ``gpus`` GPUs and is created
    unsuspended: Kueue's webhook suspends it until the queue admits it. ``shared``: a host
    folder the code can read (conftest's ``shared_volume``)."""
    container: dict[str, Any] = {
        "name": "main", "image": PYTHON_IMAGE, "command": ["python", "-c", code],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    if gpus:
        container["resources"]["limits"] = {"nvidia.com/gpu": gpus}
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if shared is not None:
        volume, mount = shared_volume(shared)
        pod["volumes"], container["volumeMounts"] = [volume], [mount]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": queues.namespace, "labels": queues.labels},
        "spec": {"suspend": False, "backoffLimit": 0, "template": {"spec": pod}},
    }
