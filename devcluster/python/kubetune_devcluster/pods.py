"""One pod's life on a devcluster node: identity, init containers, containers, deadline,
deletion, and the status the kubelet would report for each step."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from kubetune.core.times import rfc3339
from kubetune.kube import errors, podspec

from kubetune_devcluster import podnames

if TYPE_CHECKING:
    from kubetune_devcluster.agent import NodeAgent

__all__ = ["PodRunner"]

log = logging.getLogger("devcluster.pods")

TOKEN_SECONDS = 3600
STATUS_TRIES = 5  # a passing phase: the next report supersedes it
FINAL_STATUS_SECONDS = 600.0  # a final phase: retried this long, as the kubelet would keep on
STATUS_BACKOFF = (0.2, 5.0)  # first and longest pause between tries
WAKE_EVERY = 10.0  # longest sleep of a pod's thread while its containers run


def now_rfc3339() -> str:
    return rfc3339(time.time())


class PodRunner:
    """Runs one pod from start to its end and reports its status."""

    def __init__(self, agent: NodeAgent, pod: dict):
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid, self.namespace, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.key = (self.namespace, self.name)
        self.dir = agent.pods_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.running: set[str] = set()
        self.statuses: dict[str, dict] = {}
        self.init_statuses: dict[str, dict] = {}
        self.changed = threading.Event()
        self.deleted = threading.Event()
        # Wakes the runner's thread, asleep in ``wait`` beside its containers' pidfds; closed
        # by that thread when the pod ends, so thousands of pods cost no CPU while they run.
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._finishing = False
        self.terminal = False
        self.ended = threading.Event()  # set with ``terminal``: the token refresh stops
        self.gpu_ids: list[int] = []
        self.start_time: float | None = None
        self.token_expiry = 0.0
        self.rest = agent.rest
        self.named: podnames.NamedPod | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    def update(self, pod: dict) -> None:
        self.pod = pod
        self.changed.set()
        self._poke()
        if self.terminal and pod["metadata"].get("deletionTimestamp"):
            self._finish_deletion()

    def gone(self) -> None:
        self.deleted.set()
        self.changed.set()
        self._poke()
        if self.terminal:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _poke(self) -> None:
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    def _finish_deletion(self) -> None:
        """Complete the pod's deletion once, off the caller's thread (the agent's watch)."""
        with self._wake_lock:
            if self._finishing:
                return
            self._finishing = True
        threading.Thread(target=self.agent.finish_deletion, args=(self.pod,),
                         daemon=True).start()

    def wait(self, timeout: float) -> None:
        """Sleep until a container exits, the pod changes or ``timeout`` seconds pass."""
        pidfds = []
        try:
            for proc in self.procs.values():
                try:
                    pidfds.append(os.pidfd_open(proc.pid))
                except ProcessLookupError:
                    return  # reaped already: look again at once
            if not self.changed.is_set():
                poller = select.poll()  # not select(): the agent holds thousands of fds
                for fd in (self._wake_fd, *pidfds):
                    poller.register(fd, select.POLLIN)
                poller.poll(timeout * 1000)
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._wake_fd)
            self.changed.clear()
        finally:
            for fd in pidfds:
                os.close(fd)

    # --- status -------------------------------------------------------------------------------

    def patch_status(self, status: dict) -> None:
        """Report ``status`` on ``pods/status``, retrying with backoff up to a cap.

        A final phase must land, as the kubelet's does, or the pod stays Running and its Job
        never ends: it is retried for FINAL_STATUS_SECONDS. A passing phase gets STATUS_TRIES
        tries; the next report supersedes it. Each kind of failure is logged once, with what it
        means for the pod.
        """
        phase = status.get("phase")
        final = phase in ("Succeeded", "Failed")
        deadline = time.monotonic() + FINAL_STATUS_SECONDS
        pause, longest = STATUS_BACKOFF
        logged: set[type] = set()
        attempt = 0
        while True:
            try:
                self.rest.request("PATCH", f"{self.path}/status", body={
                    "metadata": {"uid": self.uid}, "status": status,
                }, content_type="application/strategic-merge-patch+json")
                if logged:
                    log.info("pod %s/%s: phase %s reported after %d tries", self.namespace,
                             self.name, phase, attempt + 1)
                return
            except (errors.NotFound, errors.Conflict) as e:
                # Deleted, or replaced by a new pod of the same name (the uid precondition).
                log.debug("pod %s/%s is gone; status not reported: %s", self.namespace,
                          self.name, e)
                return
            except (errors.Invalid, errors.Forbidden, errors.Unauthorized,
                    errors.BadRequest) as e:
                log.error("pod %s/%s: the apiserver refused phase %s (%s); the pod keeps its "
                          "last reported status", self.namespace, self.name, phase, e)
                return
            except (errors.ApiError, httpx.TransportError) as e:
                if type(e) not in logged:
                    logged.add(type(e))
                    log.warning("pod %s/%s: reporting phase %s failed (%s); retrying with "
                                "backoff%s", self.namespace, self.name, phase, e,
                                " until it lands" if final else "")
            attempt += 1
            out = time.monotonic() >= deadline if final else attempt >= STATUS_TRIES
            if out:
                log.error("pod %s/%s: gave up reporting phase %s after %d tries; %s",
                          self.namespace, self.name, phase, attempt,
                          "its Job will not see it end" if final else "a later report "
                          "will carry the pod's state")
                return
            if self.deleted.wait(pause) or self.agent.stopping.is_set():
                return
            pause = min(pause * 2, longest)

    def conditions(self, *, initialized: bool, ready: bool) -> list[dict]:
        now = now_rfc3339()

        def cond(kind: str, ok: bool, reason: str | None = None) -> dict:
            c = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now,
                 "lastProbeTime": None}
            if reason:
                c["reason"] = reason
            return c

        return [
            cond("PodReadyToStartContainers", True),
            cond("Initialized", initialized),
            cond("ContainersReady", ready, None if ready else "ContainersNotReady"),
            cond("Ready", ready, None if ready else "ContainersNotReady"),
        ]

    def base_status(self) -> dict:
        return {
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": rfc3339(self.start_time or time.time()),
            "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
        }

    def report(self, phase: str, *, initialized: bool, reason: str | None = None,
               message: str | None = None) -> None:
        status = self.base_status()
        status["phase"] = phase
        ready = phase == "Running" and all(s.get("ready") for s in self.statuses.values())
        status["conditions"] = self.conditions(initialized=initialized, ready=ready)
        status["containerStatuses"] = list(self.statuses.values())
        if self.init_statuses:
            status["initContainerStatuses"] = list(self.init_statuses.values())
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        if phase in ("Succeeded", "Failed"):
            # Its processes have ended: its GPUs are free before the scheduler, reading the
            # final phase, binds another GPU pod here (a kubelet's device manager frees a
            # terminated pod's devices before it admits the next pod, too).
            self.agent.give_gpus(self.gpu_ids)
            self.gpu_ids = []
        self.patch_status(status)

    def container_status(self, c: dict, state: dict, *, ready: bool = False,
                         restarts: int = 0) -> dict:
        return {
            "name": c["name"], "image": c.get("image", ""), "imageID": "",
            "containerID": f"devcluster://{self.uid[:8]}-{c['name']}",
            "ready": ready, "started": "running" in state, "restartCount": restarts,
            "state": state,
        }

    # --- the pod's life -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:
            log.exception("pod %s/%s", self.namespace, self.name)
            self.kill_all(grace=0)
            self.report("Failed", initialized=False, reason="NodeAgentError", message=str(e))
        finally:
            if self.named is not None:
                self.agent.pod_names.remove(self.uid)
            self.agent.give_gpus(self.gpu_ids)
            self.gpu_ids = []
            with self._wake_lock:
                os.close(self._wake_fd)
                self._wake_fd = -1
            # From here the agent's watch completes the deletion (``update``) and removes the
            # pod's folder (``gone``); this thread ends.
            self.terminal = True
            self.ended.set()
            if self.deleted.is_set():
                shutil.rmtree(self.dir, ignore_errors=True)
            elif self.pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion()

    def _run(self) -> None:
        spec = self.pod["spec"]
        if self.pod.get("status", {}).get("phase") == "Running":
            # A pod that was running under an earlier agent: its processes went with it.
            self.kill_stale()
            self.report("Failed", initialized=True, reason="NodeAgentRestarted",
                        message="the devcluster node agent restarted and lost this pod's processes")
            return
        if self.pod["metadata"].get("deletionTimestamp"):
            return
        self.start_time = time.time()
        containers = spec.get("containers", [])
        inits = spec.get("initContainers") or []
        for c in containers:
            self.statuses[c["name"]] = self.container_status(
                c, {"waiting": {"reason": "ContainerCreating"}})
        for c in inits:
            self.init_statuses[c["name"]] = self.container_status(
                c, {"waiting": {"reason": "PodInitializing"}})
        self.report("Pending", initialized=not inits)

        gpus = podspec.gpu_request(self.pod)
        if gpus:
            ids = self.agent.take_gpus(gpus)
            if ids is None:
                self.report("Failed", initialized=False, reason="UnexpectedAdmissionError",
                            message=f"node {self.agent.name} has too few free {podspec.GPU}")
                return
            self.gpu_ids = ids
        self.take_name()
        try:
            base_env = self.base_env()
        except errors.ApiError as e:
            self.report("Failed", initialized=False, reason="ServiceAccountTokenError",
                        message=str(e))
            return

        restart = spec.get("restartPolicy", "Always")
        for c in inits:
            ok = self.run_init(c, base_env, restart)
            if ok is None:
                return
            if not ok:
                self.finish(failed=True)
                return
        self.report("Pending", initialized=True)
        ok = self.run_containers(containers, base_env, restart)
        if ok is None:
            return
        self.finish(failed=not ok)

    def finish(self, *, failed: bool, reason: str | None = None,
               message: str | None = None) -> None:
        self.report("Failed" if failed else "Succeeded", initialized=True, reason=reason,
                    message=message)

    def deadline_left(self) -> float | None:
        """Seconds until activeDeadlineSeconds passes (None: no deadline)."""
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is None or self.start_time is None:
            return None
        return float(deadline) - (time.time() - self.start_time)

    def deadline_passed(self) -> bool:
        left = self.deadline_left()
        return left is not None and left <= 0

    def interrupted(self) -> str | None:
        """Why the running processes must end now, or None."""
        if self.deleted.is_set() or self.pod["metadata"].get("deletionTimestamp"):
            return "Deleted"
        if self.deadline_passed():
            return "DeadlineExceeded"
        return None

    def run_init(self, c: dict, base_env: dict, restart: str) -> bool | None:
        """Run one init container to its end (init containers never restart on success)."""
        policy = "Never" if restart == "Never" else "OnFailure"
        return self.run_containers([c], base_env, policy, init=True)

    def run_containers(self, containers: list[dict], base_env: dict, restart: str, *,
                       init: bool = False) -> bool | None:
        """Run containers until all have ended; True if all exited 0, None if interrupted."""
        statuses = self.init_statuses if init else self.statuses
        restarts = {c["name"]: 0 for c in containers}
        exits: dict[str, int] = {}
        for c in containers:
            if not self.start(c, base_env, statuses):
                return False
        self.report("Pending" if init else "Running", initialized=not init)
        while True:
            why = self.interrupted()
            if why:
                self.kill_all(grace=self.grace())
                self.mark_killed(statuses)
                if why == "DeadlineExceeded":
                    self.report("Failed", initialized=True, reason="DeadlineExceeded",
                                message="Pod was active on the node longer than the specified "
                                        "deadline")
                else:
                    self.report("Failed", initialized=True)
                return None
            ended = False
            for c in containers:
                name = c["name"]
                proc = self.procs.get(name)
                if proc is None or proc.poll() is None:
                    continue
                code = proc.returncode
                code = 128 - code if code < 0 else code
                del self.procs[name]
                self.running.discard(name)
                if self.should_restart(restart, code):
                    restarts[name] += 1
                    time.sleep(min(10.0, 0.5 * 2 ** restarts[name]))
                    statuses[name]["restartCount"] = restarts[name]
                    self.start(c, base_env, statuses, restarts=restarts[name])
                else:
                    exits[name] = code
                    statuses[name] = self.terminated(c, code, restarts[name])
                ended = True
            if ended:
                if len(exits) == len(containers):
                    return all(code == 0 for code in exits.values())
                self.report("Pending" if init else "Running", initialized=not init)
            left = self.deadline_left()
            self.wait(WAKE_EVERY if left is None else max(0.05, min(WAKE_EVERY, left)))

    @staticmethod
    def should_restart(policy: str, code: int) -> bool:
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def grace(self) -> float:
        if self.deadline_passed():
            return 0.0
        g = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if g is None:
            g = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(min(g, 30))

    def start(self, c: dict, base_env: dict, statuses: dict, restarts: int = 0) -> bool:
        name = c["name"]
        if self.agent.stopping.is_set():
            return False  # the agent is going: a process started now would outlive it
        try:
            env = podspec.container_env(self.pod, c, self.lookup, self.list_keys, base_env)
            argv = podspec.command_for(c, env)
            if self.named is not None:
                argv = podnames.wrap(self.named, argv)
        except podspec.PodSpecError as e:
            statuses[name] = self.container_status(
                c, {"waiting": {"reason": e.reason, "message": str(e)}})
            self.report("Failed", initialized=True, reason=e.reason, message=str(e))
            return False
        workdir = c.get("workingDir")
        cwd = workdir if workdir and os.path.isdir(workdir) else str(self.dir)
        logfile = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logfile,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as e:
            logfile.close()
            msg = f"container {name!r}: cannot start {argv[0]!r}: {e.strerror}"
            statuses[name] = self.terminated(c, 128, restarts, reason="StartError", message=msg)
            self.report("Failed", initialized=True, reason="StartError", message=msg)
            return False
        logfile.close()
        (self.dir / f"{name}.pid").write_text(str(proc.pid))
        self.procs[name] = proc
        self.running.add(name)
        statuses[name] = self.container_status(
            c, {"running": {"startedAt": now_rfc3339()}}, ready=True, restarts=restarts)
        return True

    def terminated(self, c: dict, code: int, restarts: int, *, reason: str | None = None,
                   message: str | None = None) -> dict:
        state = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": (self.statuses.get(c["name"]) or {}).get("state", {})
            .get("running", {}).get("startedAt"),
            "finishedAt": now_rfc3339(),
            "containerID": f"devcluster://{self.uid[:8]}-{c['name']}",
        }
        msg = message or self.termination_message(c, code)
        if msg:
            state["message"] = msg
        return self.container_status(c, {"terminated": state}, restarts=restarts)

    def termination_message(self, c: dict, code: int) -> str | None:
        """The file at terminationMessagePath if the process wrote it, else (with
        FallbackToLogsOnError and a non-zero exit) the end of its log, as the kubelet does.
        """
        path = Path(c.get("terminationMessagePath") or "/dev/termination-log")
        try:
            if path.is_file() and self.start_time and path.stat().st_mtime >= self.start_time:
                return path.read_text(errors="replace")[:4096] or None
        except OSError:
            pass
        if code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = (self.dir / f"{c['name']}.log").read_text(errors="replace").splitlines()
            return "\n".join(lines[-80:])[-2048:] or None
        return None

    def mark_killed(self, statuses: dict) -> None:
        for name, st in list(statuses.items()):
            if "running" in st.get("state", {}) or "waiting" in st.get("state", {}):
                c = next(c for c in self.all_containers() if c["name"] == name)
                statuses[name] = self.terminated(c, 137, st.get("restartCount", 0))
        self.running.clear()

    def all_containers(self) -> list[dict]:
        spec = self.pod["spec"]
        return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])

    def kill_all(self, grace: float) -> None:
        procs = list(self.procs.values())
        for p in procs:
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            _signal_group(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        self.procs.clear()

    def kill_stale(self) -> None:
        for pidfile in self.dir.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                _signal_group(int(pidfile.read_text()), signal.SIGKILL)

    # --- environment and identity --------------------------------------------------------------

    def take_name(self) -> None:
        """Give a pod with a hostname (a worker of an Indexed Job) its name, and the names of
        its namespace's other named pods (``podnames``), where this machine allows."""
        spec = self.pod["spec"]
        hostname = spec.get("hostname")
        if not hostname:
            return
        missing = podnames.available()
        if missing is not None:
            log.warning("pod %s/%s runs without its hostname %s: %s", self.namespace,
                        self.name, hostname, missing)
            return
        self.named = podnames.NamedPod(self.namespace, hostname, spec.get("subdomain"),
                                       self.dir / "hosts")
        self.agent.pod_names.add(self.uid, self.named)

    def base_env(self) -> dict[str, str]:
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "PYTHONUNBUFFERED": "1",
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.state.apiserver_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.state.apiserver_port),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if self.gpu_ids:
            ids = ",".join(str(i) for i in self.gpu_ids)
            env["NVIDIA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"] = ids
        else:
            # A pod that asked for no GPU sees none.
            env["NVIDIA_VISIBLE_DEVICES"], env["CUDA_VISIBLE_DEVICES"] = "void", ""
        if self.pod["spec"].get("automountServiceAccountToken") is not False:
            env["KUBECONFIG"] = str(self.write_identity())
            threading.Thread(target=self.refresh_token_loop, daemon=True).start()
        return env

    def request_token(self) -> dict:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": [], "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name,
                               "uid": self.uid},
        }}
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token"
        # The Node authorizer learns of the pod's binding a moment after the scheduler binds it:
        # until then the request is forbidden, so retry 403s for a while; and retry through an
        # apiserver restart, as the kubelet does, rather than fail the pod.
        deadline = time.monotonic() + 60
        while True:
            error: Exception
            try:
                return self.rest.post(path, body)
            except (errors.Forbidden, *errors.RETRYABLE) as e:
                error, retry = e, True
            except httpx.TransportError as e:
                error, retry = e, True
            if not retry or time.monotonic() > deadline or self.deleted.is_set():
                raise error
            time.sleep(0.3)

    def write_identity(self) -> Path:
        token = self.request_token()
        self.store_token(token)
        kubeconfig = self.dir / "kubeconfig"
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": {
                "server": self.agent.state.server, "certificate-authority": str(self.agent.pki.ca),
            }}],
            "users": [{"name": "pod", "user": {"tokenFile": str(self.dir / "token")}}],
            "contexts": [{"name": "pod", "context": {
                "cluster": "devcluster", "user": "pod", "namespace": self.namespace,
            }}],
            "current-context": "pod",
        }
        kubeconfig.write_text(json.dumps(config, indent=2))
        (self.dir / "namespace").write_text(self.namespace)
        shutil.copy(self.agent.pki.ca, self.dir / "ca.crt")
        return kubeconfig

    def store_token(self, token: dict) -> None:
        tmp = self.dir / "token.tmp"
        tmp.write_text(token["status"]["token"])
        tmp.replace(self.dir / "token")
        self.token_expiry = time.time() + TOKEN_SECONDS

    def refresh_token_loop(self) -> None:
        # Refresh at 80% of the token's life, as the kubelet does for projected tokens.
        while not self.terminal and not self.deleted.is_set():
            issued = self.token_expiry - TOKEN_SECONDS
            wait = max(5.0, issued + 0.8 * TOKEN_SECONDS - time.time())
            if self.ended.wait(wait) or self.deleted.is_set():
                return
            try:
                self.store_token(self.request_token())
            except Exception as e:
                log.warning("refreshing token of %s/%s: %s", self.namespace, self.name, e)

    def lookup(self, kind: str, name: str, key: str) -> str | None:
        data = self.list_keys(kind, name)
        return None if data is None else data.get(key)

    def list_keys(self, kind: str, name: str) -> Mapping[str, str] | None:
        plural = "configmaps" if kind == "configmap" else "secrets"
        try:
            obj = self.rest.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
        except errors.NotFound:
            return None
        if kind == "secret":
            return podspec.decode_secret(obj.get("data") or {})
        return dict(obj.get("data") or {})


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


