"""Pod names on the node agent: what cluster DNS gives a pod that has a hostname and a
subdomain (the pods of an Indexed Job in a headless Service), for pods that run as host
processes.

Every agent pod shares the host's network (its IP is 127.0.0.1), so each name resolves to
127.0.0.1. A pod with a hostname runs in a mount and UTS namespace of its own (``unshare``, as
root): its hostname is set, and its /etc/hosts is a file of ours bind-mounted over the host's,
listing every named pod of its namespace as ``<hostname>.<subdomain>[.<ns>.svc[.cluster.local]]``,
rewritten in place as such pods come and go. Without root, or without ``unshare``, such pods run
as before, and names of other pods do not resolve; ``available`` says why.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NamedPod", "PodNames", "available", "wrap"]

log = logging.getLogger("devcluster.podnames")

CLUSTER_DOMAIN = "cluster.local"
_LOCAL = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
# Runs as the container's process: bind our hosts file, take the pod's hostname, then exec
# the container's command line (so the pid, its process group and signals stay the same).
_ENTER = 'mount --bind "$1" /etc/hosts && hostname "$2" && shift 2 && exec "$@"'


@dataclass(frozen=True)
class NamedPod:
    namespace: str
    hostname: str
    subdomain: str | None
    hosts: Path  # the file bind-mounted over the pod's /etc/hosts


def available() -> str | None:
    """None when pods can get names here, else what is missing."""
    if os.geteuid() != 0:
        return "the node agent is not root (mount and UTS namespaces need it)"
    missing = [t for t in ("unshare", "mount", "hostname") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    return None


def wrap(pod: NamedPod, argv: list[str]) -> list[str]:
    """``argv`` run inside the pod's own mount and UTS namespaces."""
    return ["unshare", "--mount", "--uts", "--propagation", "private", "--",
            "sh", "-c", _ENTER, "kubetune-pod", str(pod.hosts), pod.hostname, *argv]


def names_of(pod: NamedPod) -> list[str]:
    if pod.subdomain is None:
        return [pod.hostname]
    short = f"{pod.hostname}.{pod.subdomain}"
    fq = f"{short}.{pod.namespace}.svc"
    return [f"{fq}.{CLUSTER_DOMAIN}", fq, short]


class PodNames:
    """The named pods of every node of one agent process, and their hosts files."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, NamedPod] = {}  # pod uid -> pod

    def add(self, uid: str, pod: NamedPod) -> None:
        with self._lock:
            self._pods[uid] = pod
            self._write(pod.namespace)

    def remove(self, uid: str) -> None:
        with self._lock:
            pod = self._pods.pop(uid, None)
            if pod is not None:
                self._write(pod.namespace)

    def _write(self, namespace: str) -> None:
        pods = [p for p in self._pods.values() if p.namespace == namespace]
        others = "".join(f"127.0.0.1\t{' '.join(names_of(p))}\n"
                         for p in pods if p.subdomain is not None)
        for pod in pods:
            own = f"127.0.0.1\t{pod.hostname}\n"
            # In place: the bind mount holds the file's inode, so a rename would go unseen.
            with open(pod.hosts, "w") as f:
                f.write(_LOCAL + own + others)
