"""The node agent: registers devcluster's Nodes and runs the pods bound to them as local
processes, doing the part of the kubelet's job that a tuning study needs.

One agent process serves every node of the cluster. Per node it keeps the Node Ready and its
Lease fresh, watches the pods bound to it, and runs each pod in a thread of its own
(``PodRunner``): a ServiceAccount token bound to the pod, init containers, then containers, each
in a process group of its own; status reported through ``pods/status``; activeDeadlineSeconds
honoured; the process group killed and the deletion completed when the pod is deleted. Container
output is kept under the state directory and served on the kubelet's log endpoint, so
``kubectl logs`` works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

from kubetune.core.times import rfc3339, rfc3339_micro
from kubetune.kube import errors, podspec

from kubetune_devcluster.cluster import AGENT_TAINT, KUBE_VERSION, ClusterState, load_state
from kubetune_devcluster.logserver import LogServer
from kubetune_devcluster.pki import Pki
from kubetune_devcluster.podnames import PodNames
from kubetune_devcluster.pods import PodRunner
from kubetune_devcluster.rest import Rest

__all__ = ["NodeAgent", "main"]

log = logging.getLogger("devcluster.agent")

# One agent process serves every node, and pods of one namespace find each other by name
# across them.
POD_NAMES = PodNames()

LEASE_SECONDS = 40
LEASE_RENEW = 10.0
STATUS_EVERY = 30.0


class NodeAgent:
    """Everything one node needs: its Node, its Lease, its pods and its GPUs."""

    def __init__(self, state: ClusterState, name: str, port: int):
        self.state = state
        self.name = name
        self.port = port
        cfg = state.config
        self.cpu, self.memory = cfg.get("node_cpu", "8"), cfg.get("node_memory", "32Gi")
        self.gpus = int(cfg.get("node_gpus", 4))
        self.max_pods = int(cfg.get("node_pods", 110))
        pki = Pki(state.root / "pki")
        self.pki = pki
        self.rest = Rest(state.server, str(pki.ca), str(pki.cert(f"node-{name}")),
                         str(pki.key(f"node-{name}")))
        self.pods_dir = state.root / "pods"
        self.pods_dir.mkdir(exist_ok=True)
        self.pod_names = POD_NAMES
        self.runners: dict[str, PodRunner] = {}
        self.by_name: dict[tuple[str, str], PodRunner] = {}
        self.free_gpus = list(range(self.gpus))
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.heartbeats = threading.Event()  # cleared to simulate a node that stops reporting
        self.heartbeats.set()

    # --- the Node and its Lease -------------------------------------------------------------

    def node_status(self) -> dict:
        now = rfc3339(time.time())
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.max_pods),
                     "ephemeral-storage": "100Gi"}
        if self.gpus:
            resources[podspec.GPU] = str(self.gpus)

        def cond(kind: str, status: str, reason: str, message: str) -> dict:
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now}

        return {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                cond("Ready", "True", "KubeletReady", "devcluster node agent is posting status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": self.name, "systemUUID": self.name, "bootID": self.name,
                "kernelVersion": os.uname().release, "osImage": "devcluster",
                "containerRuntimeVersion": "devcluster://local-processes",
                "kubeletVersion": KUBE_VERSION, "kubeProxyVersion": KUBE_VERSION,
                "operatingSystem": "linux", "architecture": "amd64",
            },
        }

    def register(self) -> None:
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {
                "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "devcluster",
                AGENT_TAINT: "true",
            }},
            "spec": {"taints": [{"key": AGENT_TAINT, "value": "true", "effect": "NoSchedule"}]}
            if self.state.real_nodes else {},
            "status": self.node_status(),
        }
        with contextlib.suppress(errors.AlreadyExists):  # registered by an earlier agent
            self.rest.post("/api/v1/nodes", node)
        self.post_status()
        self.renew_lease()

    def post_status(self) -> None:
        # Strategic merge: conditions merge by type, so other writers' conditions survive.
        self.rest.request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", body={"status": self.node_status()},
            content_type="application/strategic-merge-patch+json",
        )

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": rfc3339_micro(time.time())}
        try:
            self.rest.merge_patch(path, {"spec": spec})
        except errors.NotFound:
            node = self.rest.get(f"/api/v1/nodes/{self.name}")
            self.rest.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name,
                                                  "uid": node["metadata"]["uid"]}]},
                "spec": spec,
            })

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_RENEW):
            if not self.heartbeats.is_set():
                continue
            try:
                self.renew_lease()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    self.post_status()
                    last_status = time.monotonic()
            except Exception as e:  # keep beating through apiserver restarts
                log.warning("node %s heartbeat failed: %s", self.name, e)

    # --- pods ---------------------------------------------------------------------------------

    def watch_pods(self) -> None:
        selector = {"fieldSelector": f"spec.nodeName={self.name}"}
        while not self.stopping.is_set():
            try:
                listing = self.rest.get("/api/v1/pods", **selector)
                seen = set()
                for pod in listing.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self.on_pod(pod)
                for uid in list(self.runners):
                    if uid not in seen:
                        self.on_deleted(uid)
                rv = listing["metadata"]["resourceVersion"]
                for event in self.rest.watch("/api/v1/pods", rv, **selector):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.on_deleted(obj["metadata"]["uid"])
                    else:
                        self.on_pod(obj)
                    if self.stopping.is_set():
                        return
            except Exception as e:
                if not self.stopping.is_set():
                    log.warning("node %s pod watch restarting: %s", self.name, e)
                    time.sleep(1)

    def on_pod(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            if runner is None:
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    if pod["metadata"].get("deletionTimestamp"):
                        threading.Thread(target=self.finish_deletion, args=(pod,),
                                         daemon=True).start()
                    return
                runner = PodRunner(self, pod)
                self.runners[uid] = runner
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.by_name[key] = runner
                threading.Thread(target=runner.run, daemon=True, name=f"pod-{uid}").start()
                return
        runner.update(pod)

    def on_deleted(self, uid: str) -> None:
        with self.lock:
            runner = self.runners.pop(uid, None)
            if runner is not None:
                key = runner.key
                if self.by_name.get(key) is runner:
                    del self.by_name[key]
        if runner is not None:
            runner.gone()

    def finish_deletion(self, pod: dict) -> None:
        """Complete a deletion the way the kubelet does: delete with grace 0 once stopped."""
        meta = pod["metadata"]
        try:
            self.rest.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except (errors.NotFound, errors.Conflict):
            pass  # already gone, or a new pod of that name: nothing of ours left to delete
        except errors.ApiError as e:
            log.warning("deleting pod %s/%s: %s", meta["namespace"], meta["name"], e)

    def take_gpus(self, n: int) -> list[int] | None:
        with self.lock:
            if n > len(self.free_gpus):
                return None
            taken, self.free_gpus = self.free_gpus[:n], self.free_gpus[n:]
            return taken

    def give_gpus(self, ids: list[int]) -> None:
        with self.lock:
            self.free_gpus = sorted(set(self.free_gpus) | set(ids))

    def log_path(self, namespace: str, pod: str, container: str) -> Path | None:
        runner = self.by_name.get((namespace, pod))
        if runner is None:
            return None
        path = runner.dir / f"{container}.log"
        return path if path.exists() else None

    def container_running(self, namespace: str, pod: str, container: str) -> bool:
        runner = self.by_name.get((namespace, pod))
        return runner is not None and container in runner.running

    def stop(self) -> None:
        self.stopping.set()
        for runner in list(self.runners.values()):
            runner.kill_all(grace=2)


def main(state_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state = load_state(state_dir)
    if state is None:
        raise SystemExit(f"no devcluster state in {state_dir}")
    agents = [NodeAgent(state, name, port) for name, port in state.node_ports.items()]
    for agent in agents:
        deadline = time.monotonic() + 60
        while True:
            try:
                agent.register()
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise
                log.info("registering %s: %s", agent.name, e)
                time.sleep(0.5)
    servers = [LogServer(agent, state) for agent in agents]
    for server in servers:
        server.start()
    for agent in agents:
        threading.Thread(target=agent.heartbeat_loop, daemon=True).start()
        threading.Thread(target=agent.watch_pods, daemon=True).start()
    control_heartbeats(agents, state_dir)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("node agent serving %s", ", ".join(a.name for a in agents))
    stop.wait()
    for agent in agents:
        agent.stop()
    for server in servers:
        server.stop()


def control_heartbeats(agents: list[NodeAgent], state_dir: Path) -> None:
    """SIGUSR1 pauses every node's heartbeats (the node goes NotReady after the grace period);
    SIGUSR2 resumes them. Fault tests use this to take a node away without losing its pods.
    """

    def pause(signum, frame) -> None:
        for a in agents:
            a.heartbeats.clear()

    def resume(signum, frame) -> None:
        for a in agents:
            a.heartbeats.set()
            threading.Thread(target=_beat_now, args=(a,), daemon=True).start()

    signal.signal(signal.SIGUSR1, pause)
    signal.signal(signal.SIGUSR2, resume)


def _beat_now(agent: NodeAgent) -> None:
    try:
        agent.renew_lease()
        agent.post_status()
    except Exception as e:
        log.warning("node %s heartbeat failed: %s", agent.name, e)
